"""User-facing errors: the CLI prints these as one line, no traceback (unless --debug); a row's
error is written with the row to rejects.jsonl."""


class SftflowError(Exception):
    """A problem the user can fix: bad config, missing file, unusable data.

    The message must say what is wrong, where (file, line, key) and what to do.
    """


class SftflowWarning(UserWarning):
    """A warning of sftflow's own: shown on the terminal as one `warning:` line. Library
    warnings go to the project's log file instead (sftflow.logs)."""


class RowError(ValueError):
    """A raw row that cannot become a training example (formats/): the field and the reason."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
