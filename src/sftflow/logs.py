"""Library output off the terminal: while a command runs, what transformers, huggingface_hub,
kernels, datasets, DeepSpeed, accelerate or torch log, warn or print to stderr goes to the
project's log file, and the terminal shows sftflow's own lines only.

    sftflow train proj/sftflow.yaml           # their messages: proj/logs/sftflow.log
    sftflow --debug train proj/sftflow.yaml   # ...on the terminal instead, with tracebacks

Why at the stream and not logger by logger: a library we never heard of (kernels 0.19 logged
"Skipping publisher trust check ..." through Python's last-resort handler) must not reach the
terminal either. So `sys.stderr` is swapped for a `LibraryOutput` for the command's length;
every handler, warning and stray write that looks up `sys.stderr` lands there, and sftflow
writes its own lines to the real stream it was handed. DeepSpeed's logger writes to stdout
(sftflow's channel for results), so its records are sent to the log by a filter instead.
Writes are kept in memory until the command knows its folder, then appended to
`<folder>/logs/sftflow.log`; with no folder (it does not exist yet or any more), to the cache's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from sftflow.errors import SftflowWarning
from sftflow.io import cache_root

LOG_NAME = "sftflow.log"
STDOUT_LOGGERS = ("DeepSpeed",)  # libraries whose loggers write to stdout, not stderr


def cache_logs() -> Path:
    return cache_root() / "logs"


class LibraryOutput(io.TextIOBase):
    """A text stream that appends to `<folder>/logs/sftflow.log` once the folder exists, each
    command's part headed by the command line; until then it keeps what it was given."""

    def __init__(self, folder: Path | None, command: str):
        self.folder, self.command = folder, command
        self.pending: list[str] = []
        self.file = None
        self.path: Path | None = None
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not text:
            return 0
        self.written += len(text)
        if self.file is None and not self._open(final=False):
            self.pending.append(text)
            return len(text)
        self.file.write(text)
        self.file.flush()
        return len(text)

    def _open(self, *, final: bool) -> bool:
        """Open the log in the command's folder once it exists; at the end, the cache's will do."""
        if self.folder is not None and self.folder.is_dir():
            target = self.folder / "logs"
        elif final:
            target = cache_logs()
        else:
            return False
        try:
            target.mkdir(parents=True, exist_ok=True)
            self.path = target / LOG_NAME
            self.file = self.path.open("a", encoding="utf-8", errors="backslashreplace")
        except OSError:  # a read-only project: the cache, or nowhere
            if target == cache_logs():
                return False
            self.folder = None
            return self._open(final=True) if final else False
        self.file.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {self.command} (pid {os.getpid()})\n")
        self.file.write("".join(self.pending))
        self.pending.clear()
        return True

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close_log(self) -> None:
        if self.file is None and self.pending:
            self._open(final=True)
        if self.file is not None:
            self.file.close()
            self.file = None

    def isatty(self) -> bool:
        return False


class _ToLog(logging.Filter):
    """On a logger that writes to stdout: the record goes to the log instead, as text."""

    def __init__(self, sink: LibraryOutput):
        super().__init__()
        self.sink = sink
        self.format = logging.Formatter("%(levelname)s %(name)s: %(message)s").format

    def filter(self, record: logging.LogRecord) -> bool:
        self.sink.write(self.format(record) + "\n")
        return False


def show_warning(terminal, message, category, filename, lineno, file=None, line=None) -> None:
    """sftflow's own warnings as one `warning:` line on the terminal; anyone else's as Python
    writes them, to `sys.stderr` (the log while a command runs)."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return
    if issubclass(category, SftflowWarning):
        terminal(f"warning: {message}")
    else:
        warnings._showwarnmsg_impl(warnings.WarningMessage(message, category, filename, lineno, file, line))


class _Redirect(io.TextIOBase):
    """`sys.stderr` during a command: writes go to the log. A handler created meanwhile keeps
    this object; after the command it writes to whatever stderr is current then (a process that
    runs several commands, as tests do, must not write into a closed log)."""

    def __init__(self, sink: LibraryOutput):
        self.sink, self.active = sink, True

    def writable(self) -> bool:
        return True

    def _target(self):
        if self.active:
            return self.sink
        return sys.stderr if sys.stderr is not self else sys.__stderr__

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # C-level writers (faulthandler, subprocess) get the real stderr, as they would anyway
        return sys.__stderr__.fileno()


@contextlib.contextmanager
def library_output_to(folder: Path | None, command: str) -> Iterator[LibraryOutput]:
    """For the length of a command: `sys.stderr` writes go to the log (see the module docstring).
    Yields the sink; `sink.path` is the log file once something was written."""
    sink = LibraryOutput(folder, command)
    terminal_stderr, redirect = sys.stderr, _Redirect(sink)
    filters = [(logging.getLogger(name), _ToLog(sink)) for name in STDOUT_LOGGERS]
    for logger, f in filters:
        logger.addFilter(f)
    sys.stderr = redirect
    try:
        yield sink
    finally:
        sys.stderr = terminal_stderr
        redirect.active = False
        for logger, f in filters:
            logger.removeFilter(f)
        sink.close_log()
