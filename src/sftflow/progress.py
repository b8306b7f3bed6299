"""Progress for the long stretches (model loading, generation, perplexity), so that no command
sits silent for a minute.

The CLI installs a reporter for the length of a command; library code opens phases:

    with phase("eval: tuned: test answers", total=191) as update:
        ...
        update(done)              # or update(done, total)

A line that should stay in the command's output, from library code that has no `log` of its own
(a model converted once into the cache), goes through `note(line)`.

Without a reporter (tests, library use) a phase or a note costs nothing. On a terminal a phase is a
rich bar (count, elapsed, ETA) or, without a total, a spinner with the elapsed time, and it
disappears when done: the command's own log lines stay the record. Elsewhere (CI logs, a pipe)
a phase prints one line when it starts, so a log shows what a slow stretch was doing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_REPORTER: ContextVar[Reporter | None] = ContextVar("sftflow_progress", default=None)


class Reporter:
    def __init__(self, console, live: bool | None = None):
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.active = False  # one bar at a time: a phase inside a phase is counted by the outer one

    @contextlib.contextmanager
    def phase(self, label: str, total: int | None, unit: str | None = None) -> Iterator[Callable]:
        if self.active:
            yield _ignore
            return
        if not self.live:
            self.console.print(f"{label}" + (f" ({total})" if total else "") + " …", markup=False)
            self.active = True
            try:
                yield _ignore
            finally:
                self.active = False
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if total:
            columns = (TextColumn(label.replace("[", r"\[")), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("ETA"), TimeRemainingColumn())
        elif unit:  # a count with no known end: how many so far
            columns = (SpinnerColumn(), TextColumn(label.replace("[", r"\[")),
                       TextColumn("{task.completed:,.0f} " + unit), TimeElapsedColumn())
        else:
            columns = (SpinnerColumn(), TextColumn(label.replace("[", r"\[")), TimeElapsedColumn())
        self.active = True
        try:
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(label, total=total)

                def update(done: int, new_total: int | None = None) -> None:
                    bar.update(task, completed=done, **({"total": new_total} if new_total else {}))

                yield update
        finally:
            self.active = False


def _ignore(*args, **kwargs) -> None:
    return None


@contextlib.contextmanager
def reporting(console, live: bool | None = None) -> Iterator[Reporter]:
    """Phases opened inside this block are shown on `console`."""
    reporter = Reporter(console, live)
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)


@contextlib.contextmanager
def phase(label: str, total: int | None = None, unit: str | None = None) -> Iterator[Callable]:
    """A stretch of work worth showing; yields update(done, total=None). With no total, `unit`
    shows the count so far (e.g. "rows")."""
    reporter = _REPORTER.get()
    if reporter is None:
        yield _ignore
        return
    with reporter.phase(label, total, unit) as update:
        yield update


def note(line: str) -> None:
    """One line for the command's output (a thing done once, worth knowing); nothing without a reporter."""
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter.console.print(line, markup=False, highlight=False)
