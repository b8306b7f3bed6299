"""The sftflow command line.

    sftflow init quickstart && sftflow run quickstart/sftflow.yaml

Heavy imports (torch, transformers) happen inside commands so `sftflow --help` is instant.
A problem the user can fix prints one line and exits non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
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
STATE = {"debug": False, "shown": set()}  # --debug; the warnings this run has shown (category, text)

ConfigArg = typer.Argument(..., help="the project's sftflow.yaml (or its folder)", show_default=False)


class GateFailure(Exception):
    pass


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


def _load(config: Path, *, training: bool = False, model_code: bool = False):
    """The config. Its guardrail warnings are shown where they apply, once per command, not by
    every command: the risky training settings (learning rate, epochs, batch: `TrainingGuardrail`)
    by the commands that train (`train`, `run`; --strict makes them errors there), trust_remote_code
    (`RemoteCodeGuardrail`) by those and by the commands that run the model's code (model_code).
    Other warnings always. A warning already shown in this run is not shown again."""
    from sftflow.config import RemoteCodeGuardrail, TrainingGuardrail, load_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        cfg = load_config(config)
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


def _version(value: bool):
    if value:
        console.print(f"sftflow {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="show full tracebacks and library logs (also after the command)"),
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
    model: str = typer.Option(None, "--model", help="a real-model project instead (smollm2-135m-instruct)"),
):
    """Create a ready-to-run quickstart project, a real-model project, or just the tiny base model.

    The project holds sftflow.yaml, raw/ (customer-support messages → JSON, in Alpaca and
    OpenAI-chat formats, with a few broken rows and duplicates on purpose, and general
    conversations mixed into training against forgetting) and tiny-model/ (a small Llama
    pre-trained offline on general text, cached after the first build).

    With --model smollm2-135m-instruct the project fine-tunes a real pretrained model offline
    (SmolLM2-135M-Instruct from a PyPI wheel, converted once) with LoRA on support tickets → JSON,
    general chat mixed in, and gates for a real model (about 15 minutes on 2 CPU cores).

    Examples:

        sftflow init quickstart && sftflow run quickstart/sftflow.yaml

        sftflow init smol --model smollm2-135m-instruct && sftflow run smol/sftflow.yaml

        sftflow init --tiny-model ./tiny
    """
    with user_errors(None if tiny_model else directory, "init"):
        from sftflow.model.tiny import build_tiny_model

        if tiny_model:
            build_tiny_model(directory, log=log)
            log(f"tiny model ready: {directory}")
            return
        if model is not None:
            from sftflow.real_project import write_model_project

            config_path = write_model_project(directory, model, force=force, log=log)
            log(f"project ready: {config_path}\nnext: sftflow run {config_path}")
            return
        from sftflow.project import write_quickstart_project

        config_path = write_quickstart_project(directory, n=examples, force=force, log=log)
        log(f"project ready: {config_path}\nnext: sftflow run {config_path}")


@app.command()
def prepare(
    config: Path = ConfigArg,
    show: int = typer.Option(0, "--show", min=0, help="print N rendered training examples, trained tokens highlighted"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes for parsing, scoring and MinHash"),
):
    """Load, convert, validate, score, deduplicate and split the data (nothing is lost: see rejects.jsonl).

    Every row ends kept, rejected, duplicate or filtered; data_card.md and ledger.sqlite say which and why.

    Example: sftflow prepare quickstart/sftflow.yaml --show 2
    """
    with user_errors(config, "prepare"):
        from sftflow.data.prepare import prepare as run_prepare

        cfg = _load(config, model_code=True)
        run_prepare(cfg, log=log, workers=workers)
        if show:
            from sftflow.data.show import bracketed, show_examples

            for header, text in show_examples(cfg, show):
                console.print(header, markup=False, style="bold")
                console.print(text) if console.is_terminal else print(bracketed(text))


@app.command()
def synth(config: Path = ConfigArg):
    """Generate synthetic candidate examples with a teacher model (data.synth); re-run to continue.

    Candidates are appended to data.synth.output with their provenance (teacher, template,
    seed ids, time), rejected replies beside it with the reason; nothing is generated twice.
    The next `sftflow prepare` reads them under the same quality gate, dedup and ledger as
    human rows, keeps them out of the test split and applies data.synth.max_train_share.

    Example: sftflow synth my-project/sftflow.yaml && sftflow prepare my-project/sftflow.yaml
    """
    with user_errors(config, "synth"):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from sftflow.data.synth import synthesize

        cfg = _load(config)
        columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = {}

            def show(p) -> None:
                if "id" not in task:
                    task["id"] = bar.add_task("", total=p.total)
                bar.update(task["id"], completed=p.finished, description=f"{p.accepted} accepted, {p.rejected} "
                           f"rejected, {p.failed} failed; {p.budget.describe()}")

            synthesize(cfg, log=log, on_progress=show)


@app.command()
def audit(
    config: Path = ConfigArg,
    example: str = typer.Option(None, "--example", help="where an example (id or prefix) came from and its fate"),
    run: str = typer.Option(None, "--run", help="the examples a training run (id or name) trained on"),
    file: str = typer.Option(None, "--file", help="the rows of a source file that were dropped, and why"),
    output: Path = typer.Option(None, "--output", help="export the answer as .csv or .json"),
):
    """Query the provenance ledger: an example's history, a run's training data, a file's dropped rows.

    Examples:

        sftflow audit quickstart/sftflow.yaml --file raw/support_chat.jsonl

        sftflow audit quickstart/sftflow.yaml --run quickstart --output run-data.csv
    """
    with user_errors(config, "audit"):
        from sftflow.data import audit as queries

        cfg = _load(config)
        if sum(x is not None for x in (example, run, file)) > 1:
            raise SftflowError("give one of --example, --run, --file")
        ledger = queries.open_ledger(cfg.data_dir)
        try:
            if example:
                rows = queries.example(ledger, example)
            elif run:
                rows = queries.run(ledger, run)
            elif file:
                rows = queries.dropped(ledger, file)
            else:
                rows = queries.summary(ledger)
        finally:
            ledger.close()
        if output:
            log(f"audit: {len(rows)} rows → {queries.export(rows, output)}")
            return
        for r in rows[:200]:
            log("  ".join(f"{k}={v}" for k, v in r.items() if v not in (None, "")))
        if len(rows) > 200:
            log(f"... {len(rows) - 200} more rows; use --output to export all {len(rows)}")


@app.command()
def train(
    config: Path = ConfigArg,
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint of this run"),
    strict: bool = typer.Option(False, "--strict", help="treat guardrail warnings as errors"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a previous run in the same run folder"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="processes (GPUs) per node: launches torchrun for you"),
    guardrails_shown: bool = typer.Option(False, "--guardrails-shown", hidden=True,
                                          help="the launcher of these processes has shown the guardrails"),
    nnodes: int = typer.Option(1, "--nnodes", min=1, help="number of nodes (run the same command on each)"),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="this node's rank, 0 .. nnodes-1"),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="address of the rank-0 node"),
    master_port: int = typer.Option(29500, "--master-port", help="port on the rank-0 node"),
):
    """Fine-tune the model (LoRA by default) on the prepared train split, early-stopping on val loss.

    Several GPUs or nodes: --nproc N (and --nnodes/--node-rank/--master-addr) launches torchrun with
    train.distributed.strategy (ddp, fsdp, deepspeed); `torchrun ... -m sftflow train` works too.

    Example: sftflow train quickstart/sftflow.yaml
    """
    with user_errors(config, "train"):
        from sftflow.train.trainer import train as run_train

        cfg = _load(config, training=not guardrails_shown)
        if nproc > 1 or nnodes > 1:
            import torch

            from sftflow.train.distributed import check_strategy, launch

            check_strategy(cfg, use_cpu=not torch.cuda.is_available())

            args = [a for a, on in (("--resume", resume), ("--strict", strict), ("--overwrite", overwrite)) if on]
            args.append("--guardrails-shown")  # the processes it launches do not repeat them
            log(f"train: launching {nproc} process(es) x {nnodes} node(s) with torchrun "
                f"({cfg.train.distributed.strategy})")
            code = launch(config, args, nproc=nproc, nnodes=nnodes, node_rank=node_rank, master_addr=master_addr,
                          master_port=master_port)
            if code:
                raise typer.Exit(code)
            return
        run_train(cfg, resume=resume, strict=strict, overwrite=overwrite, log=log)


@app.command(name="eval")
def eval_(config: Path = ConfigArg):
    """Evaluate base vs tuned on the held-out test split; exit 1 if a gate fails.

    Task metrics with confidence intervals, regression probes outside the task, forgetting on
    general text, hallucination checks; writes eval/ and the report.

    Example: sftflow eval quickstart/sftflow.yaml
    """
    with user_errors(config, "eval"):
        from sftflow.pipeline import evaluate_stage

        _gates(evaluate_stage(_load(config, model_code=True), log=log))


def _gates(result) -> None:
    """A failed gate of any stage: its one line and exit 1."""
    if not result.passed:
        raise GateFailure(result.failure())


@app.command()
def report(config: Path = ConfigArg):
    """Write the HTML report (metrics, loss curves, predictions) from the last eval.

    Human ratings from `sftflow review` are merged in; exits 1 if a human_* gate fails.

    Example: sftflow report quickstart/sftflow.yaml
    """
    with user_errors(config, "report"):
        from sftflow.pipeline import PipelineResult, report_stage

        cfg = _load(config)
        path, failed = report_stage(cfg, log)
        _gates(PipelineResult(cfg.run_dir, report=path, failed=failed))


def _export_formats() -> list[str]:
    from sftflow.model.export import EXPORTERS

    return [e.name for e in EXPORTERS]


def _export_help() -> str:
    """`export --help`, from the exporters registry (a light module: no torch), so a new format shows there."""
    from sftflow.model.export import EXPORTERS

    formats = "\n\n".join(f"{e.name}: {e.writes}" for e in EXPORTERS)
    return ("Export the trained model in one of these formats (--format):\n\n" + formats
            + "\n\nExample: sftflow export quickstart/sftflow.yaml --format merged --out merged-model"
            "\n\nExample: sftflow export quickstart/sftflow.yaml --format gguf --quantize q8_0 --out gguf-model")


@app.command(help=_export_help())
def export(
    config: Path = ConfigArg,
    out: Path = typer.Option(..., "--out", help="folder for the exported model"),
    merge: bool = typer.Option(False, "--merge", help="hf: fold the LoRA adapter into the base weights (= --format merged)"),
    fmt: str = typer.Option("hf", "--format", help="what to write: " + ", ".join(_export_formats())),
    quantize: str = typer.Option("f16", "--quantize", help="GGUF weights: f16, q8_0 or q4_k_m"),
    verify: int = typer.Option(5, "--verify", min=0, help="GGUF: compare greedy answers with the HF model on N test prompts"),
):
    with user_errors(config, "export"):
        from sftflow.model.export import ExportOptions, check_options, find_exporter

        exporter = find_exporter(fmt)
        options = ExportOptions(merge=merge, quantize=quantize, verify=verify)
        check_options(exporter, options)
        if exporter.require is not None:
            exporter.require()  # before the config's model loads: a missing extra is the first thing said
        log(exporter.run(_load(config, model_code=True), out, options, log))


@app.command()
def estimate(
    config: Path = ConfigArg,
    model: str = typer.Option(None, "--model", help="estimate for this model id/path instead of the config's"),
    seq_len: int = typer.Option(None, "--seq-len", help="tokens per example (default: train.max_length)"),
    warmup: int = typer.Option(0, "--warmup", min=0, help="time N real training steps on the prepared data for an ETA"),
    gpus: int = typer.Option(1, "--gpus", min=1, help="also show per-GPU memory for DDP / ZeRO-2 / ZeRO-3 / FSDP on N GPUs"),
):
    """Estimate memory for lora, qlora and full fine-tuning (no weights loaded), per GPU size and for this machine.

    With --warmup N, also time N training steps of the configured run and extrapolate the run time.

    Example: sftflow estimate quickstart/sftflow.yaml --model meta-llama/Llama-2-7b-hf
    """
    with user_errors(config, "estimate"):
        from sftflow.train.estimate import estimate_report

        estimate_report(_load(config, model_code=True), model=model, seq_len=seq_len, warmup=warmup, gpus=gpus, log=log)


RunArg = typer.Argument(..., help="the run folder (runs/NAME) or the project's sftflow.yaml", show_default=False)
DefaultSystemOption = typer.Option(True, "--default-system/--no-default-system",
                                   help="add the training data's system prompt to conversations that have none")
TrustOption = typer.Option(False, "--trust-remote-code",
                           help="allow a run whose config sets model.trust_remote_code to run its model's Python code")


@app.command()
def serve(
    run_dir: Path = RunArg,
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 exposes it: warns)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="port; 0 picks a free one"),
    api_key: str = typer.Option(None, "--api-key", envvar="SFTFLOW_API_KEY", help="require 'Authorization: Bearer KEY'"),
    base: str = typer.Option(None, "--base", help="base model path/id for an adapter run (default: the run's config)"),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, help="the most tokens one request may generate"),
    max_request_kb: int = typer.Option(1024, "--max-request-kb", min=1, help="largest request body accepted"),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="requests decoded together at most"),
    batch_wait_ms: float = typer.Option(10.0, "--batch-wait-ms", min=0, help="wait for more requests to batch"),
    threads: int = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's choice)"),
    default_system: bool = DefaultSystemOption,
    trust_remote_code: bool = TrustOption,
):
    """Serve the tuned model with an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models).

    The prompt is rendered with the run's own chat template, as in training; a conversation
    without a system message gets the training data's (--no-default-system: not). A <think>
    block comes back apart, as reasoning_content. Concurrent requests are batched. Any OpenAI client works: base_url=http://127.0.0.1:8000/v1.

    Example: sftflow serve quickstart/runs/quickstart --port 8000
    """
    with user_errors(run_dir, "serve"):
        from sftflow.runs import resolve_run
        from sftflow.serve import Limits
        from sftflow.serve import serve as run_server

        limits = Limits(max_request_bytes=max_request_kb * 1024, max_tokens=max_tokens,
                        default_max_tokens=min(256, max_tokens))
        run_server(resolve_run(run_dir, base, default_system), host=host, port=port, api_key=api_key, limits=limits,
                   max_batch=max_batch, batch_wait_ms=batch_wait_ms, threads=threads,
                   trust_remote_code=trust_remote_code, log=log)


@app.command()
def chat(
    run_dir: Path = RunArg,
    system: str = typer.Option(None, "--system", help="system message for the conversation"),
    temperature: float = typer.Option(0.0, "--temperature", min=0, max=2, help="0 = greedy, as in eval"),
    top_p: float = typer.Option(1.0, "--top-p", min=0.01, max=1, help="nucleus sampling mass"),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="tokens per answer at most"),
    seed: int = typer.Option(None, "--seed", help="sampling seed (same seed, same answers)"),
    base: str = typer.Option(None, "--base", help="base model path/id for an adapter run (default: the run's config)"),
    threads: int = typer.Option(None, "--threads", min=1, help="torch CPU threads"),
    default_system: bool = DefaultSystemOption,
    trust_remote_code: bool = TrustOption,
):
    """Chat with the tuned model in the terminal (same chat template as training): a first look.

    Type /reset to clear the conversation, /exit or ctrl-D to quit.

    Example: sftflow chat quickstart/runs/quickstart --system "Answer with JSON."
    """
    with user_errors(run_dir, "chat"):
        from sftflow.runs import resolve_run
        from sftflow.terminal_chat import chat as run_chat

        run_chat(resolve_run(run_dir, base, default_system), system=system, temperature=temperature, top_p=top_p,
                 max_tokens=max_tokens, seed=seed, threads=threads, trust_remote_code=trust_remote_code)


@app.command()
def review(
    run_dir: Path = RunArg,
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 exposes it: warns)"),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="port; 0 picks a free one"),
    token: str = typer.Option(None, "--token", envvar="SFTFLOW_REVIEW_TOKEN",
                              help="access token (default: a random one, printed)"),
):
    """Human review in the browser: blinded base-vs-tuned comparisons of the test predictions.

    Reviewers log in with the printed token and a name, rate coherence and correctness,
    flag safety issues and hallucinations, and pick the better answer (keyboard shortcuts:
    press ? on the page). Ratings go to RUN/eval/review.sqlite at every submit; `sftflow
    report` merges them (human win rate, gate human_win_rate).

    Example: sftflow review quickstart/runs/quickstart
    """
    with user_errors(run_dir, "review"):
        from sftflow.review.app import serve_review

        serve_review(run_dir, host=host, port=port, token=token, log=log)


@app.command()
def run(
    config: Path = ConfigArg,
    strict: bool = typer.Option(False, "--strict", help="treat guardrail warnings as errors"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a previous run in the same run folder"),
):
    """Run the whole pipeline: prepare → train → eval → report.

    Example: sftflow run quickstart/sftflow.yaml
    """
    with user_errors(config, "run"):
        from sftflow.pipeline import run_pipeline

        _gates(run_pipeline(_load(config, training=True), strict=strict, overwrite=overwrite, log=log))


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
