"""Metrics on held-out test examples: answer-token perplexity and task metrics on greedy
outputs, each with a bootstrap confidence interval so a small test set does not over-claim."""

from __future__ import annotations

import json
import math
import random
import re

from sftflow.model.chat import tokenize_record

_WS = re.compile(r"\s+")


def exact_match(pred: str, ref: str) -> float:
    return float(pred.strip() == ref.strip())


def _parse_json(text: str):
    try:
        return True, json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return False, None


def json_valid(pred: str, ref: str = "") -> float:
    return float(_parse_json(pred.strip())[0])


def json_match(pred: str, ref: str) -> float:
    """Same JSON value (key order and spacing ignored)."""
    ok_p, p = _parse_json(pred.strip())
    ok_r, r = _parse_json(ref.strip())
    return float(ok_p and ok_r and p == r)


TASK_METRICS = {"exact_match": exact_match, "json_valid": json_valid, "json_match": json_match}


def bootstrap_ci(values: list[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    if not values:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    k = len(values)
    means = sorted(sum(rng.choices(values, k=k)) / k for _ in range(n))
    lo = means[int((1 - level) / 2 * n)]
    hi = means[min(n - 1, int((1 + level) / 2 * n))]
    return lo, hi


def summarise(values: list[float]) -> dict:
    lo, hi = bootstrap_ci(values)
    return {"mean": sum(values) / len(values) if values else math.nan, "ci95": [lo, hi], "n": len(values)}


def answer_perplexity(model, tokenizer, records: list[dict], *, max_length: int = 1024, batch_size: int = 8) -> dict:
    """exp(mean NLL over answer tokens), summed over all tokens of all examples (not a mean of
    per-example perplexities, which over-weights short answers)."""
    import torch

    device = next(model.parameters()).device
    rows = [tokenize_record(tokenizer, r, max_length) for r in records]
    rows = [r for r in rows if any(r.assistant_masks)]
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(r.input_ids) for r in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, r in enumerate(batch):
            n = len(r.input_ids)
            ids[i, :n] = torch.tensor(r.input_ids)
            attn[i, :n] = 1
            labels[i, :n] = torch.tensor([t if m else -100 for t, m in zip(r.input_ids, r.assistant_masks, strict=True)])
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
        shift_labels = labels[:, 1:].reshape(-1).to(device)
        nll = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
        total_nll += nll.item()
        total_tokens += int((shift_labels != -100).sum())
    mean_nll = total_nll / max(total_tokens, 1)
    return {"perplexity": math.exp(mean_nll), "mean_nll": mean_nll, "answer_tokens": total_tokens}
