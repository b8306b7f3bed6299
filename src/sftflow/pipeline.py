"""The whole pipeline as one function: prepare → train → evaluate → report.

    sftflow run sftflow.yaml

`sftflow run`, the playbook benchmark (bench/playbook/run.py) and the tests call `run_pipeline`;
`sftflow eval` and `sftflow report` call its last stages. The gates of every stage end in one
list, `PipelineResult.failed`: eval's gates (task, probes, forgetting, hallucination, benchmarks)
as "name (value, needs rule)", then the human_* gates the report checks, by name. A failed gate
is a result, not an exception: the caller decides (the CLI exits 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sftflow.config import Config


@dataclass
class PipelineResult:
    """What each stage returned (None for a stage not run) and the gates that failed."""

    run_dir: Path
    prepare: dict | None = None
    train: dict | None = None
    eval: dict | None = None
    report: Path | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed

    def failure(self) -> str:
        """The one line the CLI prints when a gate failed."""
        return f"gates failed: {', '.join(self.failed)} (see {self.run_dir / 'eval' / 'report.html'})"


def failed_eval_gates(metrics: dict) -> list[str]:
    from sftflow.eval.gates import value_text

    return [f"{g['gate']} ({value_text(g)}, needs {g['rule']})" for g in metrics["gates"] if not g["passed"]]


def report_stage(cfg: Config, log=print) -> tuple[Path, list[str]]:
    """Merge human ratings (if any) and write the report; return it and the failed human_* gates."""
    from sftflow.data_folder import check_published
    from sftflow.eval.gates import refresh_headline, resolve_gates
    from sftflow.eval.human import merge_human_ratings
    from sftflow.eval.report import write_report
    from sftflow.review.stats import human_metrics

    check_published(cfg.data_dir)  # the report shows the data card and stats of the data folder
    human_failed = merge_human_ratings(cfg.run_dir, resolve_gates(cfg.eval)[0],
                                       lambda: human_metrics(cfg.run_dir, cfg.review), cfg.review.min_ratings)
    refresh_headline(cfg.run_dir / "eval" / "metrics.json")  # human gates may have changed the verdict
    path = write_report(cfg.run_dir, cfg.data_dir, cfg.name)
    log(f"report: {path}")
    return path, human_failed


def evaluate_stage(cfg: Config, log=print, report: bool = True) -> PipelineResult:
    """Evaluate, then (with report) write the report; eval's and the report's failed gates in one list."""
    from sftflow.eval.evaluate import evaluate

    result = PipelineResult(cfg.run_dir, eval=evaluate(cfg, log=log))
    result.failed = failed_eval_gates(result.eval)
    if report:
        result.report, human_failed = report_stage(cfg, log)
        result.failed += human_failed
    return result


def run_pipeline(cfg: Config, *, log=print, strict: bool = False, overwrite: bool = False, resume: bool = False,
                 train: Callable[[Config], dict] | None = None, eval_cfg: Config | None = None,
                 report: bool = True) -> PipelineResult:
    """prepare → train → evaluate → report on one config.

    train: trains instead of the in-process trainer (the playbook runs `sftflow train` in its own
    process to measure its memory). eval_cfg: evaluates and reports with another config (the
    playbook scores every variant on one shared test split). report: False skips the report."""
    from sftflow.data.prepare import prepare
    from sftflow.eval.benchmarks import check_benchmarks
    from sftflow.train.trainer import train as train_run

    check_benchmarks(eval_cfg or cfg)  # a missing lm-eval or task file stops the run before training, not after it
    started = time.time()
    stats = prepare(cfg, log=log)
    summary = train(cfg) if train else train_run(cfg, resume=resume, strict=strict, overwrite=overwrite, log=log)
    try:
        result = evaluate_stage(eval_cfg or cfg, log, report=report)
    finally:
        log(f"run: finished in {time.time() - started:.0f}s; report: {cfg.run_dir / 'eval' / 'report.html'}")
    result.prepare, result.train = stats, summary
    return result
