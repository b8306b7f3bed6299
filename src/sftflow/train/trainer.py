"""The training stage: TRL `SFTTrainer` + PEFT, configured the way an expert would by hand.

    sftflow train sftflow.yaml

The recipe, top to bottom: claim the run folder (run_folder.py), build the trainer (build.py:
TRL's settings and what sftflow changes in them), record the run, measure the baseline or
resume, train, stop on a non-finite loss, save the best model and describe the run folder
(summary.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sftflow.config import Config
from sftflow.errors import SftflowError
from sftflow.progress import phase
from sftflow.train.build import build_trainer, silent
from sftflow.train.distributed import is_main_process
from sftflow.train.run_folder import (
    checkpoints,
    claim_run_dir,
    disk_full,
    disk_full_message,
    metrics_until,
    pick_checkpoint,
)
from sftflow.train.summary import (
    log_done,
    record_run_in_ledger,
    save_loss_curve,
    train_summary,
    write_run_files,
)
from sftflow.train.trackers import finish_wandb, start_wandb


class NonFiniteLoss(SftflowError):
    pass


def train(cfg: Config, *, resume: bool = False, strict: bool = False, overwrite: bool = False, log=print) -> dict:
    """`sftflow train` under the run folder's lock: one run writes a folder at a time, a previous run
    is only replaced with overwrite, and a full disk stops with the last good checkpoint named."""
    from sftflow.data_folder import check_published
    from sftflow.lock import hold

    check_published(cfg.data_dir)
    if not is_main_process():  # rank 0 holds the lock and owns the folder for all ranks
        return _train(cfg, resume=resume, strict=strict, log=silent)
    if resume and overwrite:
        raise SftflowError("give --resume (continue this run) or --overwrite (start it again), not both")
    with hold(cfg.run_dir, "train"):
        claim_run_dir(cfg.run_dir, resume, overwrite, log)
        try:
            return _train(cfg, resume=resume, strict=strict, log=log)
        except Exception as err:
            if not disk_full(err):
                raise
            raise SftflowError(disk_full_message(cfg.run_dir)) from err


def _train(cfg: Config, *, resume: bool = False, strict: bool = False, log=print) -> dict:
    """The training recipe: build the trainer, record the run, measure the baseline (or resume),
    train, stop on a non-finite loss, save the best model and describe the run folder."""
    run_dir = cfg.run_dir
    main = is_main_process()  # under torchrun only rank 0 logs and writes the run folder and ledger
    if not main:
        log = silent
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer, info = build_trainer(cfg, log, strict=strict)
    info["run_id"], info["data_fingerprint"] = record_run_in_ledger(cfg) if main else ("", "")
    # Before the first evaluate, or the trainer's W&B callback opens its own run in the cwd; if
    # training fails W&B's exit hook closes it.
    tracker = start_wandb(cfg, run_dir, info) if main and "wandb" in cfg.train.report_to else None

    start = time.time()
    resume_from, initial_eval = _start_point(trainer, run_dir, resume, info, main, log)
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    finally:
        finish_wandb(tracker, log)
    seconds = time.time() - start

    if main:
        save_loss_curve(trainer.state.log_history, run_dir / "loss_curve.png")
    _stop_on_bad_loss(trainer, run_dir)
    model_dir = run_dir / "model"
    trainer.save_model(str(model_dir))  # the best checkpoint (load_best_model_at_end); every rank takes part
    if not main:
        return {"steps": trainer.state.global_step, "rank": int(os.environ.get("RANK", "0"))}
    trainer.processing_class.save_pretrained(str(model_dir))
    summary = train_summary(cfg, trainer, info, result, initial_eval, seconds)
    write_run_files(cfg, summary, trainer.processing_class)
    log_done(summary, initial_eval, seconds, model_dir, log)
    return summary


def _start_point(trainer, run_dir: Path, resume: bool, info: dict, main: bool, log) -> tuple[str | None, float | None]:
    """The checkpoint to resume from (None: a fresh start) and the validation loss before training:
    measured now on a fresh start (logged at step 0), read back from metrics.jsonl on a resume."""
    metrics_path = run_dir / "metrics.jsonl"
    resume_from = None
    if resume:
        resume_from = pick_checkpoint(run_dir, log, move_aside=main)
        log(f"train: resuming from {resume_from}" if resume_from else "train: nothing to resume, starting fresh")
    if resume_from is not None:
        # the baseline was measured by the run that wrote the checkpoint
        initial_eval = metrics_until(metrics_path, int(Path(resume_from).name.split("-")[-1])) if main else None
        return resume_from, initial_eval
    if main:
        metrics_path.unlink(missing_ok=True)  # a fresh start: a new history
    with phase(f"train: validation loss before training ({info['val_examples']:,} examples)"):
        return None, trainer.evaluate()["eval_loss"]  # the baseline the curve must beat


def _stop_on_bad_loss(trainer, run_dir: Path) -> None:
    """A non-finite loss seen by the run's MetricsLog (found by its type: another callback may carry
    an attribute of the same name) stops here, before the broken weights are saved."""
    from sftflow.train.metrics_log import MetricsLog

    guard = next(c for c in trainer.callback_handler.callbacks if isinstance(c, MetricsLog))
    if guard.bad_loss is not None:
        step, value = guard.bad_loss
        ckpts = checkpoints(run_dir)
        kept = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was saved before it"
        raise NonFiniteLoss(f"loss became {value} at step {step}; training stopped and no model was saved "
                            f"({kept}); lower train.learning_rate or check the data")
