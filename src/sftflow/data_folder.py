"""The data folder `sftflow prepare` writes and every later stage reads: its file names, and
publishing them as one step.

    from sftflow.data_folder import TRAIN, check_published
    check_published(cfg.data_dir); rows = read_jsonl(cfg.data_dir / TRAIN)

prepare writes into a temp folder and moves the outputs into place under a journal
(PUBLISHING); train, eval, audit and report call `check_published` first, so none of them
reads a folder a killed prepare left half moved.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sftflow.errors import SftflowError
from sftflow.io import atomic_write_text

TRAIN, VAL, TEST = "train.jsonl", "val.jsonl", "test.jsonl"
REJECTS, REJECTS_FAILED = "rejects.jsonl", "rejects.failed.jsonl"  # the second: a prepare that kept nothing
STATS, CARD, QUALITY_HIST, LEDGER = "stats.json", "data_card.md", "quality_hist.png", "ledger.sqlite"
OUTPUTS = (TRAIN, VAL, TEST, REJECTS, STATS, CARD, QUALITY_HIST, LEDGER)
PUBLISHING = ".publishing"  # journal of an output move in progress: names the temp folder


def publish(work: Path, data_dir: Path) -> None:
    """Move the outputs into place as one step. Each rename is atomic but a kill can fall between
    two, so a journal names the folder they come from until all are moved: the next prepare
    finishes the move, and train refuses a half-published folder."""
    atomic_write_text(data_dir / PUBLISHING, work.name)
    for name in OUTPUTS:
        if (work / name).exists():
            os.replace(work / name, data_dir / name)
    (data_dir / PUBLISHING).unlink()


def finish_interrupted_publish(data_dir: Path, log=print) -> None:
    """Complete a publish cut short by a kill, and remove temp folders of killed runs (call under the lock)."""
    journal = data_dir / PUBLISHING
    if journal.exists():
        work = data_dir / journal.read_text(encoding="utf-8").strip()
        if work.name.startswith(".prepare-") and work.is_dir():
            for name in OUTPUTS:
                if (work / name).exists():
                    os.replace(work / name, data_dir / name)
            log(f"prepare: finished publishing the outputs of an interrupted prepare into {data_dir}")
        journal.unlink()
    for stale in data_dir.glob(".prepare-*"):  # no other prepare runs while we hold the lock
        shutil.rmtree(stale, ignore_errors=True)


def check_published(data_dir: Path) -> None:
    """Refuse to read a data folder whose outputs a killed prepare left half moved into place."""
    if (data_dir / PUBLISHING).exists():
        raise SftflowError(f"{data_dir}: a prepare was interrupted while publishing its outputs (train/val/test may "
                           "not match); run `sftflow prepare` again to finish it")
