"""Metrics on held-out test examples: answer-token perplexity and task metrics on greedy
outputs, each with a bootstrap confidence interval so a small test set does not over-claim.

Per-example metrics are functions `(prediction, reference) -> float in [0, 1]`. BLEU and chrF
(sacrebleu) are corpus metrics: their per-example values are sentence scores (for finding
the worst examples), their summary is the corpus score, bootstrapped over examples from
sacrebleu's sufficient statistics. Scores from sacrebleu are divided by 100 to share the
0-1 scale of every other metric.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter

from sftflow.config import METRICS
from sftflow.errors import SftflowError
from sftflow.model.chat import tokenize_record
from sftflow.stats import percentiles, resample_index

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_WORD = re.compile(r"\w+")


# --- text metrics ---------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(pred: str, ref: str) -> float:
    return float(pred.strip() == ref.strip())


def normalized_exact_match(pred: str, ref: str) -> float:
    """Exact match that forgives case, punctuation, articles and spacing ("The Paris." == "paris")."""
    return float(normalize_answer(pred) == normalize_answer(ref))


def token_f1(pred: str, ref: str) -> float:
    """SQuAD token F1 on normalised words: partial credit for a partly right answer."""
    p, r = normalize_answer(pred).split(), normalize_answer(ref).split()
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1: longest common subsequence of lowercase words (rouge-score's formula, with
    Unicode words instead of its ASCII-only tokenizer)."""
    p, r = _WORD.findall(pred.lower()), _WORD.findall(ref.lower())
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _sacrebleu(name: str, sentence: bool = False):
    from sacrebleu.metrics import BLEU, CHRF

    if name == "bleu":
        return BLEU(effective_order=True) if sentence else BLEU()
    return CHRF()


def bleu(pred: str, ref: str) -> float:
    """Sentence BLEU (sacrebleu, effective order), 0-1."""
    return _sacrebleu("bleu", sentence=True).sentence_score(pred, [ref]).score / 100


def chrf(pred: str, ref: str) -> float:
    """Sentence chrF (sacrebleu defaults: character 6-grams, beta 2), 0-1."""
    return _sacrebleu("chrf").sentence_score(pred, [ref]).score / 100


# --- JSON metrics ---------------------------------------------------------------------------


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


def json_fields(pred: str, ref: str, fields: list[str] | None = None) -> dict[str, float]:
    """Per field: 1 if the prediction's value equals the reference's. Fields are the
    reference's top-level keys, or the schema's properties when given."""
    ok_r, r = _parse_json(ref.strip())
    if not ok_r or not isinstance(r, dict):
        return {}
    ok_p, p = _parse_json(pred.strip())
    p = p if ok_p and isinstance(p, dict) else {}
    keys = fields if fields is not None else list(r)
    return {k: float(k in p and p[k] == r.get(k)) for k in keys if k in r}


def json_field_accuracy(pred: str, ref: str, fields: list[str] | None = None) -> float:
    """Share of the reference's fields the prediction got right: credit for 2 of 3 fields."""
    per_field = json_fields(pred, ref, fields)
    if not per_field:
        return json_match(pred, ref)
    return sum(per_field.values()) / len(per_field)


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
    ok, value = _parse_json(pred.strip())
    return float(ok and not schema_errors(value, schema))


# --- classification -------------------------------------------------------------------------


def classification_accuracy(pred: str, ref: str) -> float:
    """Label answers ("positive", "Billing."): right if the normalised label is the same."""
    return normalized_exact_match(pred, ref)


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


# The metrics `eval.metrics` may name are declared once, as config.METRICS (the config cannot import
# eval: tests/test_architecture.py). Each is the function of that name here, (prediction, reference)
# -> float, except the two scored apart: json_schema_valid (against eval.json_schema, in
# evaluate.score) and perplexity (of the model on the answers, answer_perplexity).
SCORED_APART = ("json_schema_valid", "perplexity")
TASK_METRICS = {name: globals()[name] for name in METRICS if name not in SCORED_APART}
CORPUS_METRICS = ("bleu", "chrf")


def _json_object_share(refs: list[str]) -> float:
    parsed = [_parse_json(r.strip()) for r in refs]
    return sum(ok and isinstance(v, dict | list) for ok, v in parsed) / max(1, len(refs))


def infer_metrics(refs: list[str], has_schema: bool = False) -> tuple[list[str], str]:
    """The metrics that fit the answers, and why: JSON, labels or free text."""
    names = ["exact_match", "normalized_exact_match"]
    if refs and _json_object_share(refs) >= 0.9:
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

    metric = _sacrebleu(name)
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


def answer_perplexity(model, tokenizer, records: list[dict], *, max_length: int = 1024, batch_size: int = 8,
                      progress=None) -> dict:
    """exp(mean NLL over answer tokens), summed over all tokens of all examples (not a mean of
    per-example perplexities, which over-weights short answers). Text records count every
    token. The interval resamples examples, keeping each one's tokens together."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    rows = [tokenize_record(tokenizer, r, max_length) for r in records]
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
