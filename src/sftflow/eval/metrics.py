"""Metrics on held-out test examples: answer-token perplexity and task metrics on greedy
outputs, each with a bootstrap confidence interval so a small test set does not over-claim.

Per-example metrics are functions `(prediction, reference) -> float in [0, 1]`. BLEU and chrF
(sacrebleu) are corpus metrics: their per-example values are sentence scores (for finding
the worst examples), their summary is the corpus score, bootstrapped over examples from
sacrebleu's sufficient statistics. Scores from sacrebleu are divided by 100 to share the
0-1 scale of every other metric. The per-example metrics and the registry of metric names are
in sftflow/task_metrics.py (re-exported here).
"""

from __future__ import annotations

import math
import re

from sftflow.errors import SftflowError
from sftflow.model.chat import tokenize_record
from sftflow.stats import percentiles, resample_index
from sftflow.task_metrics import (  # noqa: F401 - the per-example metrics live there; callers import them here too
    TASK_METRICS,
    TOOL_METRICS,
    bleu,
    chrf,
    classification_accuracy,
    exact_match,
    json_field_accuracy,
    json_fields,
    json_match,
    json_valid,
    normalize_answer,
    normalized_exact_match,
    parse_json,
    rouge_l,
    sacrebleu_metric,
    token_f1,
)

SCHEMA_KEYWORDS = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "minItems", "maxItems",
}
SCHEMA_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def check_schema(schema: dict, where: str = "json_schema") -> None:
    """Reject keywords this validator does not implement, rather than ignore them silently."""
    if not isinstance(schema, dict):
        raise SftflowError(f"{where}: a JSON schema must be a mapping, got {type(schema).__name__}")
    unknown = set(schema) - SCHEMA_KEYWORDS - SCHEMA_ANNOTATIONS
    if unknown:
        raise SftflowError(f"{where}: unsupported JSON-schema keyword(s) {', '.join(sorted(unknown))}; "
                           f"supported: {', '.join(sorted(SCHEMA_KEYWORDS))}")
    for key, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.properties.{key}")
    for name in ("items", "additionalProperties"):
        if isinstance(schema.get(name), dict):
            check_schema(schema[name], f"{where}.{name}")


def schema_errors(value, schema: dict, path: str = "$") -> list[str]:
    """Validate against the subset of JSON Schema in SCHEMA_KEYWORDS; returns the violations."""
    errors = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types if t in _TYPES):
            return [f"{path}: expected {'/'.join(types)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} != {schema['const']!r}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        errors += [f"{path}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected key {k!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(v, schema["additionalProperties"], f"{path}.{k}")
    if isinstance(value, list):
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                errors += schema_errors(v, schema["items"], f"{path}[{i}]")
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", math.inf):
            errors.append(f"{path}: {len(value)} items")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", math.inf):
            errors.append(f"{path}: length {len(value)}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']!r}")
    if _TYPES["number"](value) and not (schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf)):
        errors.append(f"{path}: {value} out of range")
    return errors


def json_schema_valid(pred: str, schema: dict) -> float:
    ok, value = parse_json(pred.strip())
    return float(ok and not schema_errors(value, schema))


# --- classification -------------------------------------------------------------------------


def is_label_like(refs: list[str]) -> bool:
    """Short answers drawn from a small set: a classification task."""
    if len(refs) < 2:
        return False
    labels = {normalize_answer(r) for r in refs}
    short = all(len(r.split()) <= 4 and len(r) <= 50 and "\n" not in r.strip() for r in refs)
    return short and 2 <= len(labels) <= max(2, min(50, len(refs) // 3))


def label_breakdown(preds: list[str], refs: list[str]) -> dict:
    """Per-label accuracy (recall) and how often the prediction is no known label at all."""
    labels = sorted({normalize_answer(r) for r in refs})
    by_label = {}
    for label in labels:
        hits = [normalize_answer(p) == label for p, r in zip(preds, refs, strict=True) if normalize_answer(r) == label]
        by_label[label] = {"accuracy": sum(hits) / len(hits), "n": len(hits)}
    outside = sum(normalize_answer(p) not in labels for p in preds) / max(1, len(preds))
    return {"by_label": by_label, "outside_label_set": outside}



def _json_object_share(refs: list[str]) -> float:
    parsed = [parse_json(r.strip()) for r in refs]
    return sum(ok and isinstance(v, dict | list) for ok, v in parsed) / max(1, len(refs))


def infer_metrics(refs: list[str], has_schema: bool = False, calls: int = 0) -> tuple[list[str], str]:
    """The metrics that fit the answers, and why: tool calls (`calls`: answers that call a tool), JSON,
    labels or free text."""
    names = ["exact_match", "normalized_exact_match"]
    if calls:
        names += list(TOOL_METRICS)
        reason = f"answers call tools ({calls} of {len(refs)})"
    elif refs and _json_object_share(refs) >= 0.9:
        names += ["json_valid", "json_match", "json_field_accuracy"]
        if has_schema:
            names.append("json_schema_valid")
        reason = "answers are JSON"
    elif is_label_like(refs):
        names.append("classification_accuracy")
        reason = f"answers are labels ({len({normalize_answer(r) for r in refs})} distinct)"
    else:
        names += ["token_f1", "rouge_l", "bleu", "chrf"]
        reason = "answers are free text"
    return names + ["perplexity"], reason


def corpus_summary(name: str, preds: list[str], refs: list[str], base_preds: list[str] | None = None) -> dict:
    """Corpus BLEU/chrF with a bootstrap interval over examples (and a paired delta vs base).

    Resamples sum sacrebleu's per-sentence sufficient statistics, the way its own paired
    bootstrap does, so 1,000 resamples cost 1,000 cheap score computations."""
    import numpy as np

    metric = sacrebleu_metric(name)
    # sacrebleu's documented-by-use path for significance tests (sacrebleu.significance).
    stats = np.asarray(metric._extract_corpus_statistics(preds, [refs]), dtype=float)
    score = lambda s: metric._compute_score_from_stats(list(s)).score / 100  # noqa: E731
    idx = resample_index(len(preds))
    samples = [score(stats[row].sum(axis=0)) for row in idx]
    out = {"mean": score(stats.sum(axis=0)), "ci95": list(percentiles(samples)), "n": len(preds), "kind": "corpus"}
    if base_preds is not None:
        base_stats = np.asarray(metric._extract_corpus_statistics(base_preds, [refs]), dtype=float)
        diffs = [s - score(base_stats[row].sum(axis=0)) for s, row in zip(samples, idx, strict=True)]
        out["delta"] = {"mean": out["mean"] - score(base_stats.sum(axis=0)), "ci95": list(percentiles(diffs)),
                        "n": len(preds)}
    return out


# --- perplexity -----------------------------------------------------------------------------


def answer_perplexity(model, chat, records: list[dict], *, max_length: int = 1024, batch_size: int = 8,
                      progress=None) -> dict:
    """exp(mean NLL over answer tokens), summed over all tokens of all examples (not a mean of
    per-example perplexities, which over-weights short answers). Text records count every
    token. The interval resamples examples, keeping each one's tokens together."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    tokenizer = chat.tokenizer  # chat: the model's ChatTemplate
    rows = [tokenize_record(chat, r, max_length) for r in records]
    rows = [r for r in rows if any(r.assistant_masks)]
    nll_sums, token_counts = [], []
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
        shift_labels = labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
        )
        nll_sums += nll.sum(dim=1).tolist()
        token_counts += (shift_labels != -100).sum(dim=1).tolist()
        if progress:
            progress(min(start + batch_size, len(rows)), len(rows))
    total_tokens = sum(token_counts)
    mean_nll = sum(nll_sums) / max(total_tokens, 1)
    out = {"perplexity": math.exp(mean_nll), "mean_nll": mean_nll, "answer_tokens": total_tokens,
           "examples": len(rows)}
    if rows:
        idx = resample_index(len(rows))
        sums, counts = np.asarray(nll_sums)[idx].sum(axis=1), np.asarray(token_counts)[idx].sum(axis=1)
        out["ci95"] = [math.exp(x) for x in percentiles(sums / np.maximum(counts, 1))]
    return out
