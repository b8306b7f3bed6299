"""The commands that use a trained model: eval, report, export, serve, chat, review.

    sftflow serve my-project/runs/my-run

Each takes the run folder (runs/NAME) or the project's sftflow.yaml (whose run it is).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from sftflow.cli.app import RunArg, check_gates, command, load_cfg, log, user_errors

# New tokens per answer when nobody says: chat's --max-tokens and what serve gives a request
# without max_tokens. Eval's budget is the config's eval.max_new_tokens (default 128), sized to the task.
GENERATION_DEFAULT = 256


def _export_formats() -> list[str]:
    from sftflow.model.export import EXPORTERS

    return [e.name for e in EXPORTERS]


ExportFormat = StrEnum("ExportFormat", {name: name for name in _export_formats()})  # the exporters registry's


def _export_help() -> str:
    """`export --help`, from the exporters registry (a light module: no torch), so a new format shows there."""
    from sftflow.model.export import EXPORTERS

    formats = "\n\n".join(f"{e.name}: {e.writes}" for e in EXPORTERS)
    return ("Export the trained model in one of these formats (--format):\n\n" + formats
            + "\n\nExamples:\n\n    sftflow export quickstart/runs/quickstart --format merged --out merged-model"
            "\n\n    sftflow export quickstart/sftflow.yaml --format gguf --quantize q8_0 --out gguf-model")


class Quantize(StrEnum):
    f16 = "f16"
    q8_0 = "q8_0"
    q4_k_m = "q4_k_m"


@command(name="eval")
def eval_(config: Path = RunArg):
    """Evaluate base vs tuned on the held-out test split; exit 1 if a gate fails.

    Task metrics with confidence intervals, regression probes outside the task, forgetting on
    general text, hallucination checks; writes eval/ and the report. Given a run folder, it
    evaluates with the config that run was trained with (RUN/config.yaml).

    Examples:

        sftflow eval quickstart/sftflow.yaml

        sftflow eval quickstart/runs/quickstart
    """
    with user_errors(config, "eval"):
        from sftflow.pipeline import evaluate_stage

        check_gates(evaluate_stage(load_cfg(config, model_code=True), log=log))


@command()
def report(config: Path = RunArg):
    """Write the HTML report (metrics, loss curves, predictions) from the last eval.

    Human ratings from `sftflow review` are merged in; exits 1 if a human_* gate fails.

    Example: sftflow report quickstart/sftflow.yaml   (or the run folder: quickstart/runs/quickstart)
    """
    with user_errors(config, "report"):
        from sftflow.pipeline import PipelineResult, report_stage

        cfg = load_cfg(config)
        path, failed = report_stage(cfg, log)
        check_gates(PipelineResult(cfg.run_dir, report=path, failed=failed))


@command(help=_export_help())
def export(
    config: Path = RunArg,
    out: Path = typer.Option(..., "--out", help="folder for the exported model"),
    merge: bool = typer.Option(False, "--merge", help="hf: fold the LoRA adapter into the base weights (= --format merged)"),
    fmt: ExportFormat = typer.Option("hf", "--format", case_sensitive=False,
                                     help="what to write: " + ", ".join(_export_formats())),
    quantize: Quantize = typer.Option("f16", "--quantize", case_sensitive=False, help="GGUF weights"),
    verify: int = typer.Option(5, "--verify", min=0, help="GGUF: compare greedy answers with the HF model on N test prompts"),
):
    with user_errors(config, "export"):
        from sftflow.model.export import ExportOptions, check_options, find_exporter

        exporter = find_exporter(fmt.value)
        options = ExportOptions(merge=merge, quantize=quantize.value, verify=verify)
        check_options(exporter, options)
        if exporter.require is not None:
            exporter.require()  # before the config's model loads: a missing extra is the first thing said
        log(exporter.run(load_cfg(config, model_code=True), out, options, log))


DefaultSystemOption = typer.Option(True, "--default-system/--no-default-system",
                                   help="add the training data's system prompt to conversations that have none")
TrustOption = typer.Option(False, "--trust-remote-code",
                           help="allow a run whose config sets model.trust_remote_code to run its model's Python code")


@command()
def serve(
    run_dir: Path = RunArg,
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 exposes it: warns)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="port; 0 picks a free one"),
    api_key: str = typer.Option(None, "--api-key", envvar="SFTFLOW_API_KEY", help="require 'Authorization: Bearer KEY'"),
    base: str = typer.Option(None, "--base", help="base model path/id for an adapter run (default: the run's config)"),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, help="the most tokens one request may ask for"),
    default_max_tokens: int = typer.Option(
        GENERATION_DEFAULT, "--default-max-tokens", min=1,
        help="tokens a request that sets no max_tokens gets (the same default as chat's --max-tokens)"),
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
        from sftflow.serve.app import Limits
        from sftflow.serve.app import serve as run_server

        limits = Limits(max_request_bytes=max_request_kb * 1024, max_tokens=max_tokens,
                        default_max_tokens=min(default_max_tokens, max_tokens))
        run_server(resolve_run(run_dir, base, default_system), host=host, port=port, api_key=api_key, limits=limits,
                   max_batch=max_batch, batch_wait_ms=batch_wait_ms, threads=threads,
                   trust_remote_code=trust_remote_code, log=log)


@command()
def chat(
    run_dir: Path = RunArg,
    system: str = typer.Option(None, "--system", help="system message for the conversation"),
    temperature: float = typer.Option(0.0, "--temperature", min=0, max=2, help="0 = greedy, as in eval"),
    top_p: float = typer.Option(1.0, "--top-p", min=0.01, max=1, help="nucleus sampling mass"),
    max_tokens: int = typer.Option(
        GENERATION_DEFAULT, "--max-tokens", min=1,
        help="tokens per answer at most (the same default as serve's --default-max-tokens; eval uses its own, "
             "eval.max_new_tokens)"),
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


@command()
def review(
    run_dir: Path = RunArg,
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 exposes it: warns)"),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="port; 0 picks a free one"),
    token: str = typer.Option(None, "--token", envvar="SFTFLOW_REVIEW_TOKEN",
                              help="reviewers' access token (default: a random one, printed)"),
    admin_token: str = typer.Option(None, "--admin-token", envvar="SFTFLOW_REVIEW_ADMIN_TOKEN",
                                    help="admin token: the summary and exports (default: a random one, printed)"),
):
    """Human review in the browser: blinded base-vs-tuned comparisons of the test predictions.

    Reviewers log in with the printed token and a name; each rates an assigned batch
    (config `review:` batch_size, overlap), sees only their own ratings, and can correct
    them until they submit the batch. The admin token opens the summary and the exports.
    Ratings go to RUN/eval/review.sqlite at every submit; `sftflow report` merges them
    (human win rate, gate human_win_rate, decided from review.min_ratings rated examples).

    Example: sftflow review quickstart/runs/quickstart
    """
    with user_errors(run_dir, "review"):
        from sftflow.review.app import serve_review

        serve_review(run_dir, host=host, port=port, token=token, admin_token=admin_token, log=log)
