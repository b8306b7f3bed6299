"""Risky training settings, read from the config alone: warned about when a config loads, not forbidden.

The checks that need the tokenized data or the hardware are in train/guardrails.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sftflow.errors import SftflowWarning

if TYPE_CHECKING:
    from sftflow.config import Config

# Full fine-tuning above about a tenth of the peak learning rate a model was pre-trained with
# tends to erase what it knew: 3e-5 for LLMs, pre-trained at 1.5e-4 to 3e-4.
FULL_RISKY_LR = 3e-5
FULL_RISKY_SHARE = 0.1


def pretraining_lr(cfg: Config) -> float | None:
    """The peak pre-training learning rate a local model folder records (sftflow's tiny model
    does, in sftflow_tiny.json); None for hub models and folders that do not say."""
    import json

    from sftflow.model.tiny import META_FILE

    path = cfg.path(cfg.model.name_or_path) / META_FILE  # not model_path(): no .gguf conversion for a warning
    try:
        lr = json.loads(path.read_text(encoding="utf-8"))["params"]["learning_rate"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(lr) if isinstance(lr, int | float) and lr > 0 else None


def full_risky_lr(cfg: Config) -> tuple[float, str]:
    """The full fine-tuning learning rate above which the guardrail warns, and why that value."""
    own = pretraining_lr(cfg)
    if own is None:
        return FULL_RISKY_LR, ""
    return FULL_RISKY_SHARE * own, f" (a tenth of this model's pre-training learning rate {own:g})"


class TrainingGuardrail(SftflowWarning):
    """A risky training setting: the commands that train show it (`--strict` makes it an error)."""


class RemoteCodeGuardrail(TrainingGuardrail):
    """model.trust_remote_code: the commands that run the model's code show it, as well as those that train."""


def guardrail_warnings(cfg: Config) -> list[TrainingGuardrail]:
    """Risky settings that practice says hurt: warned about, not forbidden. Typed, so that each command
    shows the ones that concern it (cli.py) without reading their text."""
    t = cfg.train
    out = []
    risky, why = full_risky_lr(cfg) if t.method == "full" else (FULL_RISKY_LR, "")
    if t.method == "full" and t.lr > risky:
        out.append(TrainingGuardrail(
            f"train.learning_rate {t.lr:g} > {risky:g}{why} in full fine-tuning tends to erase what the base model knew"
        ))
    if t.epochs > 3:
        out.append(TrainingGuardrail(f"train.epochs {t.epochs:g} > 3 usually overfits small SFT sets; early stopping "
                                     "is on guard"))
    if t.method != "full" and not 1e-5 <= t.lr <= 5e-4:
        out.append(TrainingGuardrail(f"train.learning_rate {t.lr:g} is far from the usual LoRA range 1e-5 to 5e-4 "
                                     "(default 2e-4)"))
    if cfg.model.trust_remote_code:
        out.append(RemoteCodeGuardrail("model.trust_remote_code: true runs the Python code that comes with the model on "
                                       "this machine; use it only for a model you trust, and pin model.revision"))
    effective = t.batch_size * t.grad_accum
    if not 4 <= effective <= 32:
        out.append(TrainingGuardrail(f"effective batch {effective} (batch_size x grad_accum) is outside the usual 4-32: "
                                     "noisy steps below, few updates above"))
    return out
