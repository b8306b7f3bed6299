"""User-facing errors: the CLI prints these as one line, no traceback (unless --debug)."""


class SftflowError(Exception):
    """A problem the user can fix: bad config, missing file, unusable data.

    The message must say what is wrong, where (file, line, key) and what to do.
    """
