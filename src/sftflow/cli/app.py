"""What every sftflow command shares: the app, its consoles, one-line errors, config loading.

    sftflow init quickstart && sftflow run quickstart/sftflow.yaml

The commands live beside this module, one module per group (project.py: init; data.py: prepare,
synth, audit; training.py: train, run, estimate; trained.py: the commands that use a trained model).
Heavy imports (torch, transformers) happen inside commands so `sftflow --help` is instant.
A problem the user can fix prints one line and exits non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from sftflow import __version__
from sftflow.errors import SftflowError

# The help lists the commands in the order of the work: set up, data, training, then the trained model.
WORKFLOW = ("init", "prepare", "synth", "audit", "estimate", "train", "run", "eval", "report", "review", "chat",
            "serve", "export")


class _Group(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))


class _Command(TyperCommand):
    """Usage lines as Unix tools write them, `sftflow prepare [OPTIONS] CONFIG` (Typer writes {CONFIG})."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [re.sub(r"^\{(.*)\}$", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


app = typer.Typer(
    name="sftflow",
    cls=_Group,
    help="Supervised fine-tuning done right: prepare → train → eval → report, from one YAML config.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
command = functools.partial(app.command, cls=_Command)  # every command's decorator
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
STATE = {"debug": False, "shown": set()}  # --debug; the warnings this run has shown (category, text)

ConfigArg = typer.Argument(..., metavar="CONFIG", help="the project's sftflow.yaml (or its folder)", show_default=False)
# What the commands that use a trained model take: the run folder, or the config whose run it is.
RunArg = typer.Argument(..., metavar="RUN", help="the run folder (runs/NAME) or the project's sftflow.yaml",
                        show_default=False)


class GateFailure(Exception):
    pass


def check_gates(result) -> None:
    """A failed gate of any stage: its one line and exit 1."""
    if not result.passed:
        raise GateFailure(result.failure())


def log(message: str) -> None:
    console.print(message, markup=False)


def _warn_line(text: str) -> None:
    err_console.print(text, markup=False, style="yellow")


def _quiet_libraries() -> None:
    """Library progress bars off, and sftflow's own warnings as one `warning:` line each. What
    libraries log or warn goes to the project's log file while a command runs (sftflow.logs);
    --debug shows it on the terminal instead."""
    from sftflow.logs import show_warning

    warnings.showwarning = functools.partial(show_warning, _warn_line)
    if not STATE["debug"] and "transformers" in sys.modules:  # imported before us (tests, notebooks)
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def _folder(path: Path | None) -> Path | None:
    """Where a command's library log goes: the project of a config file, else the folder given."""
    if path is None:
        return None
    return path.parent if path.suffix in (".yaml", ".yml") or path.is_file() else path


@contextlib.contextmanager
def user_errors(folder: Path | None = None, command: str = ""):
    """Turn any failure into one readable line and a non-zero exit (traceback with --debug).
    Also shows the progress of long stretches (model loading, generation) while the command runs,
    and sends library output to `folder`/logs/sftflow.log meanwhile (not with --debug)."""
    from sftflow.logs import library_output_to

    err_console.file = sys.stderr  # sftflow's own lines: the terminal, whatever sys.stderr becomes
    try:
        if STATE["debug"]:
            with _reported_errors(None):
                yield
        else:
            # the log names the command, not its arguments (they may hold keys and tokens)
            with library_output_to(_folder(folder), f"sftflow {command}".strip()) as sink, _reported_errors(sink):
                yield
    finally:
        err_console.file = None


@contextlib.contextmanager
def _reported_errors(sink):
    from sftflow.progress import reporting

    try:
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
            yield
        else:
            with reporting(console):
                yield
    except typer.Exit:
        raise
    except GateFailure as err:
        err_console.print(f"error: {err}", markup=False, style="red")
        raise typer.Exit(1) from None
    except SftflowError as err:
        if STATE["debug"]:
            raise
        err_console.print(f"error: {err}", markup=False, style="red")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        raise typer.Exit(130) from None
    except Exception as err:  # unexpected: still one line, with the way to see more
        if STATE["debug"]:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        logged = f"; library messages: {sink.path}" if sink is not None and sink.path else ""
        err_console.print(f"error: {type(err).__name__}: {first} (run with --debug for the traceback{logged})",
                          markup=False, style="red")
        raise typer.Exit(1) from None


def load_cfg(config: Path, *, training: bool = False, model_code: bool = False):
    """The config (or the one a run folder was trained with: `sftflow export runs/NAME`). Its guardrail
    warnings are shown where they apply, once per command, not by every command: the risky training
    settings (learning rate, epochs, batch: `TrainingGuardrail`) by the commands that train (`train`,
    `run`; --strict makes them errors there), trust_remote_code (`RemoteCodeGuardrail`) by those and by
    the commands that run the model's code (model_code). Other warnings always. A warning already shown
    in this run is not shown again."""
    from sftflow.config import load_config
    from sftflow.config.guardrails import RemoteCodeGuardrail, TrainingGuardrail
    from sftflow.runs import is_run_folder, run_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        cfg = run_config(config) if is_run_folder(config) else load_config(config)
    for w in caught:
        shown = (w.category, str(w.message))
        if issubclass(w.category, TrainingGuardrail) and not (
                training or (model_code and issubclass(w.category, RemoteCodeGuardrail))):
            continue
        if shown in STATE["shown"]:
            continue
        STATE["shown"].add(shown)
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return cfg


def show_rendered(header: str, text) -> None:
    """A rendered example (data/show.py): trained tokens highlighted on a terminal, [[between brackets]] elsewhere."""
    from sftflow.data.show import bracketed

    console.print(header, markup=False, style="bold")
    console.print(text) if console.is_terminal else print(bracketed(text))


def require_model_of(cfg) -> None:
    """The commands that need the model stop before any work when it cannot be had: one line naming
    the download command or the cached id nearest to a mistyped one (a .gguf base is converted here, once)."""
    from sftflow.model.resolve import require_model

    require_model(cfg.model_path(), cfg.model.revision)


def _version(value: bool):
    if value:
        console.print(f"sftflow {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="show full tracebacks and library logs (also after the command)"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
):
    STATE["debug"] = debug
    _quiet_libraries()
    if ctx.invoked_subcommand is None:  # bare `sftflow`: the help, on stdout, and success
        console.print(ctx.get_help(), markup=False)
        raise typer.Exit(0)


def hoist_debug(args: list[str]) -> list[str]:
    """`--debug` anywhere before a `--` moves to the front, where the app's option lives:
    `sftflow prepare x.yaml --debug` works like `sftflow --debug prepare x.yaml`."""
    end = args.index("--") if "--" in args else len(args)
    found = [a for a in args[:end] if a == "--debug"]
    if not found:
        return args
    return ["--debug"] + [a for a in args[:end] if a != "--debug"] + args[end:]


def main() -> None:
    """The entry point, and the one place that sets the environment: library progress bars off, no
    tokenizer threads forked into workers, and MLflow 3 allowed its file store in the run folder."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        app(args=hoist_debug(sys.argv[1:]))
    except SystemExit:
        raise
    except Exception as err:  # a failure outside any command body (e.g. option parsing)
        if STATE["debug"]:
            raise
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
