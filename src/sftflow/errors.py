"""User-facing errors: the CLI prints these as one line, no traceback (unless --debug)."""


class SftflowError(Exception):
    """A problem the user can fix: bad config, missing file, unusable data.

    The message must say what is wrong, where (file, line, key) and what to do.
    """


class SftflowWarning(UserWarning):
    """A warning of sftflow's own: shown on the terminal as one `warning:` line. Library
    warnings go to the project's log file instead (sftflow.logs)."""
