"""Guardrails: settings and data that practice says hurt a fine-tune, checked before training.

Warned about loudly; `sftflow train --strict` turns every warning into an error, for
pipelines that must not train on a risky setup unnoticed. Settings-only checks live in
`config/guardrails.py` (they run when a config is loaded); the checks here need the
tokenized data or the hardware.
"""

from __future__ import annotations

import math

from sftflow.config import Config
from sftflow.errors import SftflowError

PLAYBOOK_MIN_TRAIN = 500  # quality pairs practice starts from
MIN_VAL = 20  # fewer validation examples make early stopping a coin toss


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def data_warnings(cfg: Config, train_lengths: list[int], val_examples: int) -> list[str]:
    """Checks on the tokenized training data (lengths before truncation)."""
    t = cfg.train
    out = []
    if len(train_lengths) < PLAYBOOK_MIN_TRAIN:
        out.append(f"only {len(train_lengths)} training examples; practice starts from ~{PLAYBOOK_MIN_TRAIN} "
                   "quality pairs (expect a weak or overfit model)")
    if val_examples < MIN_VAL:
        out.append(f"validation split has {val_examples} examples (< {MIN_VAL}): early stopping and the best "
                   "checkpoint rest on noise; raise data.split.val")
    p95 = percentile(train_lengths, 0.95)
    if p95 > t.max_length:
        out.append(f"train.max_length {t.max_length} is below the 95th-percentile example ({p95} tokens): "
                   "answers get cut; raise it or filter long examples in prepare")
    return out


def hardware_warnings(cfg: Config) -> list[str]:
    import torch

    out = []
    if cfg.train.bf16 is True and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        out.append("train.bf16 is true but this GPU has no bf16 support; training falls back to fp32")
    return out


def enforce(messages: list[str], strict: bool, log) -> None:
    """Print each warning; under --strict, fail with all of them in one line."""
    if strict and messages:
        raise SftflowError(f"--strict: {len(messages)} guardrail(s) tripped: " + "; ".join(messages))
    for m in messages:
        log(f"warning: {m}")
