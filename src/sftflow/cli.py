"""The sftflow command line.

    sftflow init quickstart && sftflow run quickstart/sftflow.yaml

Heavy imports (torch, transformers) happen inside commands so `sftflow --help` is instant.
A problem the user can fix prints one line and exits non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console

from sftflow import __version__
from sftflow.errors import SftflowError

app = typer.Typer(
    name="sftflow",
    help="Supervised fine-tuning done right: prepare → train → eval → report, from one YAML config.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
STATE = {"debug": False}

ConfigArg = typer.Argument(..., help="the project's sftflow.yaml (or its folder)", show_default=False)


class GateFailure(Exception):
    pass


def log(message: str) -> None:
    console.print(message, markup=False)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    err_console.print(f"warning: {message}", markup=False, style="yellow")


def _quiet_libraries() -> None:
    """Library chatter (progress bars, advice for other setups) hides what matters in our output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not STATE["debug"]:
        warnings.showwarning = _show_warning
        for noisy in ("transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"(transformers|trl|peft|accelerate|torch|datasets|bitsandbytes)\b.*")
        with contextlib.suppress(ImportError):
            import datasets

            datasets.disable_progress_bars()


@contextlib.contextmanager
def user_errors():
    """Turn any failure into one readable line and a non-zero exit (traceback with --debug)."""
    try:
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
        err_console.print(
            f"error: {type(err).__name__}: {first} (run with --debug for the traceback)", markup=False, style="red"
        )
        raise typer.Exit(1) from None


def _load(config: Path):
    from sftflow.config import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        return load_config(config)


def _version(value: bool):
    if value:
        console.print(f"sftflow {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="show full tracebacks and library logs"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
):
    STATE["debug"] = debug
    _quiet_libraries()


@app.command()
def init(
    directory: Path = typer.Argument(..., help="folder for the new project (or the model, with --tiny-model)"),
    tiny_model: bool = typer.Option(False, "--tiny-model", help="only build the tiny offline base model into DIRECTORY"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing sftflow.yaml and data"),
    examples: int = typer.Option(2000, "--examples", min=50, help="quickstart examples to generate"),
):
    """Create a ready-to-run quickstart project, or just the tiny base model.

    The project holds sftflow.yaml, raw/ (customer-support messages → JSON, in Alpaca and
    OpenAI-chat formats, with a few broken rows and duplicates on purpose) and tiny-model/
    (a small Llama pre-trained offline on general text, cached after the first build).

    Examples:

        sftflow init quickstart && sftflow run quickstart/sftflow.yaml

        sftflow init --tiny-model ./tiny
    """
    with user_errors():
        from sftflow.model.tiny import build_tiny_model

        if tiny_model:
            build_tiny_model(directory, log=log)
            log(f"tiny model ready: {directory}")
            return
        from sftflow.project import write_quickstart_project

        config_path = write_quickstart_project(directory, n=examples, force=force, log=log)
        log(f"project ready: {config_path}\nnext: sftflow run {config_path}")


@app.command()
def prepare(config: Path = ConfigArg):
    """Load, convert, validate, deduplicate and split the data (nothing is lost: see rejects.jsonl).

    Example: sftflow prepare quickstart/sftflow.yaml
    """
    with user_errors():
        from sftflow.data.prepare import prepare as run_prepare

        run_prepare(_load(config), log=log)


@app.command()
def train(
    config: Path = ConfigArg,
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint of this run"),
):
    """Fine-tune the model (LoRA by default) on the prepared train split, early-stopping on val loss.

    Example: sftflow train quickstart/sftflow.yaml
    """
    with user_errors():
        from sftflow.train.trainer import train as run_train

        run_train(_load(config), resume=resume, log=log)


@app.command(name="eval")
def eval_(config: Path = ConfigArg):
    """Evaluate base vs tuned on the held-out test split; exit 1 if a gate fails.

    Example: sftflow eval quickstart/sftflow.yaml
    """
    with user_errors():
        _evaluate(_load(config))


def _evaluate(cfg) -> dict:
    from sftflow.eval.evaluate import evaluate

    metrics = evaluate(cfg, log=log)
    _report(cfg)
    if not metrics["passed"]:
        failed = [g["gate"] for g in metrics["gates"] if not g["passed"]]
        raise GateFailure(f"gates failed: {', '.join(failed)} (see {cfg.run_dir / 'eval' / 'report.html'})")
    return metrics


def _report(cfg) -> Path:
    from sftflow.eval.report import write_report

    path = write_report(cfg.run_dir, cfg.data_dir, cfg.name)
    log(f"report: {path}")
    return path


@app.command()
def report(config: Path = ConfigArg):
    """Write the HTML report (metrics, loss curves, predictions) from the last eval.

    Example: sftflow report quickstart/sftflow.yaml
    """
    with user_errors():
        _report(_load(config))


@app.command()
def export(
    config: Path = ConfigArg,
    out: Path = typer.Option(..., "--out", help="folder for the exported model"),
    merge: bool = typer.Option(False, "--merge", help="fold the LoRA adapter into the base weights"),
):
    """Export the trained model: the adapter as is, or merged into a standalone model (--merge).

    Example: sftflow export quickstart/sftflow.yaml --merge --out merged-model
    """
    with user_errors():
        from sftflow.model.export import export_model

        cfg = _load(config)
        path = export_model(cfg.run_dir, cfg.model_path(), out, merge=merge, method=cfg.train.method,
                            trust_remote_code=cfg.model.trust_remote_code)
        log(f"exported {'merged model' if merge else 'model'}: {path}")


@app.command()
def estimate(
    config: Path = ConfigArg,
    model: str = typer.Option(None, "--model", help="estimate for this model id/path instead of the config's"),
    seq_len: int = typer.Option(None, "--seq-len", help="tokens per example (default: train.max_length)"),
):
    """Estimate GPU memory for lora, qlora and full fine-tuning of the configured model (no weights loaded).

    Example: sftflow estimate quickstart/sftflow.yaml --model meta-llama/Llama-2-7b-hf
    """
    with user_errors():
        from transformers import AutoConfig

        from sftflow.train.estimate import estimate_memory

        cfg = _load(config)
        t = cfg.train
        path = model or cfg.model_path()
        try:
            model_config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
        except OSError as err:
            raise SftflowError(f"model {path!r}: cannot read its config ({str(err).splitlines()[0]})") from err
        log(f"{path}: batch {t.batch_size} x {seq_len or t.max_length} tokens, LoRA r {t.lora.r}")
        log(f"{'method':<7}{'params':>10}{'trainable':>12}{'weights':>10}{'grads':>8}{'optim':>8}{'activ':>8}{'total GiB':>11}")
        for method in ("full", "lora", "qlora"):
            e = estimate_memory(model_config, method=method, r=t.lora.r, target_modules=t.lora.target_modules,
                                batch_size=t.batch_size, seq_len=seq_len or t.max_length,
                                gradient_checkpointing=t.gradient_checkpointing)
            mark = " <- configured" if method == t.method else ""
            log(f"{method:<7}{e.total_parameters / 1e6:>9.1f}M{e.trainable_parameters / 1e6:>11.2f}M"
                f"{e.weights_gib:>10.2f}{e.gradients_gib:>8.2f}{e.optimizer_gib:>8.2f}{e.activations_gib:>8.2f}"
                f"{e.total_gib:>11.2f}{mark}")


@app.command()
def run(config: Path = ConfigArg):
    """Run the whole pipeline: prepare → train → eval → report.

    Example: sftflow run quickstart/sftflow.yaml
    """
    with user_errors():
        from sftflow.data.prepare import prepare as run_prepare
        from sftflow.train.trainer import train as run_train

        cfg = _load(config)
        start = time.time()
        run_prepare(cfg, log=log)
        run_train(cfg, log=log)
        try:
            _evaluate(cfg)
        finally:
            log(f"run: finished in {time.time() - start:.0f}s; report: {cfg.run_dir / 'eval' / 'report.html'}")


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except Exception as err:  # a failure outside any command body (e.g. option parsing)
        if STATE["debug"]:
            raise
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
