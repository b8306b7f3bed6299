"""Training = serving: the system prompt the model was trained with goes with the run.

Fine-tuning data usually carries one system prompt on every example (the quickstart's does);
a client that sends none then talks to the model in a way it never saw in training and gets
worse answers than the report promised. `train` records the training data's system prompts in
train_summary.json; `serve`, `chat` and `eval` add the most common one to a conversation that
has no system message (`--no-default-system` turns that off).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

KEPT = 10  # distinct prompts listed in train_summary.json


def system_prompts(records: list[dict]) -> dict:
    """The system prompts of the training examples: the most common one, and how often each occurs."""
    counts = Counter(r["messages"][0]["content"] for r in records
                     if "messages" in r and r["messages"] and r["messages"][0]["role"] == "system")
    chats = sum("messages" in r for r in records)
    common = counts.most_common(KEPT)
    return {"default": common[0][0] if common else None, "examples": chats,
            "with_system_prompt": sum(counts.values()), "distinct": len(counts),
            "prompts": [{"text": text, "count": n} for text, n in common]}


def training_system_prompt(run_dir: Path) -> str | None:
    """The system prompt to add to conversations that have none (None: the run recorded none)."""
    try:
        summary = json.loads((Path(run_dir) / "train_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = summary.get("system_prompt") if isinstance(summary, dict) else None
    return recorded.get("default") if isinstance(recorded, dict) else None


def with_system(messages: list[dict], system: str | None) -> list[dict]:
    if not system or any(m["role"] == "system" for m in messages):
        return messages
    return [{"role": "system", "content": system}, *messages]


def describe(info: dict) -> str | None:
    """One line for the train log, or None when the data has no system prompt."""
    if not info["default"]:
        return None
    line = (f"{info['with_system_prompt']} of {info['examples']} training examples have a system prompt; serve, chat "
            "and eval add it to conversations without one")
    if info["distinct"] > 1:
        line += (f" ({info['distinct']} distinct prompts: the most common, used {info['prompts'][0]['count']} times, "
                 "is the default; train_summary.json lists them)")
    return line


def preview(text: str, n: int = 60) -> str:
    """A system prompt on one short line, quoted, for a log message."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= n else flat[: n - 1] + "…")
