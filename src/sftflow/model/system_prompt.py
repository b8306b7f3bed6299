"""Training = serving: the system prompt the model was trained with goes with the run.

Fine-tuning data usually carries one system prompt on every example (the quickstart's does);
a client that sends none then talks to the model in a way it never saw in training and gets
worse answers than the report promised. `train` records the training data's system prompts in
train_summary.json; `serve`, `chat` and `eval` add the training system prompt to a conversation
that has no system message (`--no-default-system` turns that off) — but only when there is one:
the one system prompt of the training data (examples without any, like a general mix, aside), or
the config's (`data.system_prompt`). Data with several prompts has no default: the most common of
several is not what the model was trained to see on a request without one (issue 28).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sftflow.example import Example

KEPT = 10  # distinct prompts listed in train_summary.json
RULE = "shared-or-configured"  # how `default` was chosen; runs trained before issue 28 took the most common


def system_prompts(records: list, configured: str | None = None) -> dict:
    """The system prompts of the training examples: the default (the only one there is, or the configured
    one), and how often each occurs."""
    examples = [e for e in map(Example.of, records) if not e.is_text]
    counts = Counter(e.system for e in examples if e.system is not None)
    common = counts.most_common(KEPT)
    shared = common[0][0] if len(counts) == 1 else None  # rows without one (a general mix) do not compete
    return {"default": configured or shared, "rule": RULE, "examples": len(examples),
            "with_system_prompt": sum(counts.values()), "distinct": len(counts),
            "prompts": [{"text": text, "count": n} for text, n in common]}


def training_system_prompt(run_dir: Path) -> str | None:
    """The system prompt to add to conversations that have none (None: the run recorded none)."""
    try:
        summary = json.loads((Path(run_dir) / "train_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = summary.get("system_prompt") if isinstance(summary, dict) else None
    if not isinstance(recorded, dict):
        return None
    if recorded.get("rule") != RULE and recorded.get("distinct") != 1:
        return None  # an older run recorded the most common of several prompts: not one the model always saw
    return recorded.get("default")


def with_system(messages: list[dict], system: str | None) -> list[dict]:
    if not system or any(m["role"] == "system" for m in messages):
        return messages
    return [{"role": "system", "content": system}, *messages]


def describe(info: dict) -> str | None:
    """One line for the train log, or None when the data has no system prompt."""
    if info["default"]:
        return (f"{info['with_system_prompt']} of {info['examples']} training examples have a system prompt; serve, "
                "chat and eval add it to conversations without one")
    if not info["distinct"]:
        return None
    return (f"{info['with_system_prompt']} of {info['examples']} training examples have a system prompt "
            f"({info['distinct']} distinct; train_summary.json lists them): no training system prompt is shared, so "
            "serve, chat and eval add none to conversations without one; set data.system_prompt to name one")


def preview(text: str, n: int = 60) -> str:
    """A system prompt on one short line, quoted, for a log message."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= n else flat[: n - 1] + "…")
