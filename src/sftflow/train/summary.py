"""What a finished run records about itself: its entry in the data's provenance ledger,
train_summary.json (overfitting included), the loss curve, the resolved config, chat template and
versions, and the closing log line: a run folder describes itself.
"""

from __future__ import annotations

import hashlib
import platform
import time
from pathlib import Path

import sftflow
from sftflow.config import Config, dump_config
from sftflow.data_folder import LEDGER, TRAIN, VAL
from sftflow.io import atomic_write_text, read_jsonl, write_json


def overfitting(history: list[dict]) -> dict | None:
    """Train loss still falling while validation loss rose for two evaluations in a row after its best."""
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    trains = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if len(evals) < 3:
        return None
    best = min(range(len(evals)), key=lambda i: evals[i][1])
    after = evals[best:]
    rising = len(after) >= 3 and all(b[1] > a[1] for a, b in zip(after, after[1:], strict=False))
    train_after = [loss for step, loss in trains if step >= evals[best][0]]
    train_falling = len(train_after) >= 2 and train_after[-1] < train_after[0]
    if rising and train_falling:
        return {"best_step": evals[best][0], "val_loss_best": evals[best][1], "val_loss_last": after[-1][1],
                "train_loss_at_best": train_after[0], "train_loss_last": train_after[-1]}
    return None


def save_loss_curve(history: list[dict], path: Path) -> Path | None:
    from sftflow.plots import loss_figure

    fig = loss_figure(history)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def data_fingerprint(data_dir: Path) -> str:
    """sha256 of the train and val files: which exact data a run learned from."""
    h = hashlib.sha256()
    for name in (TRAIN, VAL):
        with open(data_dir / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def record_run_in_ledger(cfg: Config) -> tuple[str, str]:
    """Append this run and the ids it trains on to the provenance ledger (one transaction)."""
    from sftflow.data.account.ledger import Ledger

    fingerprint = data_fingerprint(cfg.data_dir)
    run_id = f"{cfg.name}-{time.strftime('%Y%m%dT%H%M%S')}-{fingerprint[:6]}"
    ids = [r["id"] for r in read_jsonl(cfg.data_dir / TRAIN)]
    ledger_path = cfg.data_dir / LEDGER
    if ledger_path.exists():
        ledger = Ledger(ledger_path)
        try:
            ledger.record_run(run_id, cfg.name, fingerprint, ids, method=cfg.train.method,
                              model=cfg.model.name_or_path, config=cfg.model_dump(mode="json"))
        finally:
            ledger.close()
    return run_id, fingerprint


def train_summary(cfg: Config, trainer, info: dict, result, initial_eval: float | None, seconds: float) -> dict:
    history = trainer.state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    train_losses = [h["loss"] for h in history if "loss" in h]
    return {
        **info,
        "epochs_configured": cfg.train.epochs,
        "epochs_done": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "early_stopped": trainer.state.global_step < trainer.state.max_steps,
        "val_loss_initial": initial_eval,
        "val_losses": evals,
        "val_loss_best": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "train_loss_mean": result.training_loss,
        "overfitting": overfitting(history),
        "seconds": round(seconds, 1),
        "answer_tokens_per_second": round(info["answer_tokens"] * (trainer.state.epoch or 0) / max(seconds, 1e-9), 1),
    }


def write_run_files(cfg: Config, summary: dict, tokenizer) -> None:
    """The run folder describes itself: summary, resolved config, chat template, versions."""
    import peft
    import torch
    import transformers
    import trl

    run_dir = cfg.run_dir
    write_json(run_dir / "train_summary.json", summary)
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    atomic_write_text(run_dir / "chat_template.jinja", tokenizer.chat_template)
    write_json(run_dir / "versions.json", {
        "sftflow": sftflow.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    })


def log_done(summary: dict, initial_eval: float | None, seconds: float, model_dir: Path, log) -> None:
    if summary["overfitting"]:
        o = summary["overfitting"]
        log(f"warning: overfitting: validation loss rose from {o['val_loss_best']:.4f} (step {o['best_step']}) to "
            f"{o['val_loss_last']:.4f} while train loss fell to {o['train_loss_last']:.4f}; the best checkpoint "
            "was kept — fewer epochs or more data would help")
    best = f"{summary['val_loss_best']:.4f}" if summary["val_loss_best"] is not None else "n/a"
    log(f"train: done in {seconds:.0f}s, {summary['steps']} steps, val loss {initial_eval or float('nan'):.4f} → "
        f"best {best}; model saved to {model_dir}")
