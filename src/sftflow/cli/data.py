"""The data commands: prepare, synth, audit.

    sftflow prepare my-project/sftflow.yaml --show 2
"""

from __future__ import annotations

from pathlib import Path

import typer

from sftflow.cli.app import (
    ConfigArg,
    command,
    console,
    load_cfg,
    log,
    require_model_of,
    show_rendered,
    user_errors,
)
from sftflow.errors import SftflowError


@command()
def prepare(
    config: Path = ConfigArg,
    show: int = typer.Option(0, "--show", min=0, help="print N rendered training examples, trained tokens highlighted"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes for parsing, scoring and MinHash"),
    no_model: bool = typer.Option(False, "--no-model", help="prepare without the model (not downloaded yet): token "
                                  "lengths are not checked, train truncates over-long examples"),
):
    """Load, convert, validate, score, deduplicate and split the data (nothing is lost: see rejects.jsonl).

    Every row ends kept, rejected, duplicate or filtered; data_card.md and ledger.sqlite say which and why.
    The model's tokenizer measures every example, so the model must be here (a local folder, a .gguf,
    or a hub id in the cache or reachable); --no-model prepares without it.

    Example: sftflow prepare quickstart/sftflow.yaml --show 2
    """
    with user_errors(config, "prepare"):
        from sftflow.data.prepare import prepare as run_prepare

        cfg = load_cfg(config, model_code=True)
        if not no_model:
            require_model_of(cfg)
        run_prepare(cfg, log=log, workers=workers)
        if show:
            from sftflow.data.show import show_examples

            for header, text in show_examples(cfg, show):
                show_rendered(header, text)


@command()
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

        from sftflow.data.synth.generate import synthesize

        cfg = load_cfg(config)
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


@command()
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
        from sftflow.data.account import audit as queries

        cfg = load_cfg(config)
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
