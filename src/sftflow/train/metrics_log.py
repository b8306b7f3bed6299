"""The training run's own callback: metrics.jsonl, one short progress line per log, NaN stop.

Imported by `build.py` when a trainer is built (it needs transformers).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from transformers import TrainerCallback


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class MetricsLog(TrainerCallback):
    """Appends every log (train loss, eval loss, lr) as one JSON line to metrics.jsonl, prints one
    short progress line per log (with tokens/s and ETA), and stops the run on a NaN/inf loss
    before anything is evaluated or saved from the broken weights."""

    def __init__(self, metrics_path: Path, tokens_per_step: float, log):
        self.metrics_path, self.tokens_per_step, self.log = metrics_path, tokens_per_step, log
        self.started = None
        self.start_step = 0
        self.bad_loss = None
        self.bar = None  # a live rich progress bar when a person watches a terminal

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.start_step = time.time(), state.global_step
        if state.is_world_process_zero and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                TextColumn("{task.fields[info]}"))
            self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step, info="")
            self.bar.start()

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        loss = logs.get("loss", logs.get("eval_loss"))
        if loss is not None and not math.isfinite(loss):
            self.bad_loss = (state.global_step, loss)
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False
        if not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self._show(state, logs)

    def _show(self, state, logs: dict) -> None:
        where = (f"step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f}"
                 if state.max_steps else "before training:")
        if "eval_loss" in logs:
            line = f"train: {where} val loss {logs['eval_loss']:.4f}"
            self.bar.console.print(line, markup=False) if self.bar is not None else self.log(line)
        elif "loss" in logs:
            done = state.global_step - self.start_step
            elapsed = time.time() - (self.started or time.time())
            speed = ""
            if done > 0 and elapsed > 0:
                eta = elapsed / done * (state.max_steps - state.global_step)
                speed = f" · {self.tokens_per_step * done / elapsed:,.0f} tok/s · ETA {duration(eta)}"
            if self.bar is not None:  # the bar shows the ETA; loss, lr and speed ride along
                self.bar.update(self.task, info=f"loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.1e}"
                                + speed.split(" · ETA")[0])
            else:
                self.log(f"train: {where} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e}{speed}")
