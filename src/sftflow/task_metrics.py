"""The task metrics scored on each (prediction, reference) pair, and the one list of metric names.

    eval: {metrics: [exact_match, json_valid]}   # in sftflow.yaml: the names below

`METRICS` is the registry: the config's `eval.metrics` choices (config.py) and the scoring
(eval/evaluate.py) both read it, so adding a metric is one function and one entry here. It
lives outside the eval package because config.py reads it and eval imports config.py (no
import loops: tests/test_architecture.py). eval/metrics.py has the rest: intervals, corpus
BLEU/chrF, JSON schema, perplexity.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable

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


def sacrebleu_metric(name: str, sentence: bool = False):
    from sacrebleu.metrics import BLEU, CHRF

    if name == "bleu":
        return BLEU(effective_order=True) if sentence else BLEU()
    return CHRF()


def bleu(pred: str, ref: str) -> float:
    """Sentence BLEU (sacrebleu, effective order), 0-1."""
    return sacrebleu_metric("bleu", sentence=True).sentence_score(pred, [ref]).score / 100


def chrf(pred: str, ref: str) -> float:
    """Sentence chrF (sacrebleu defaults: character 6-grams, beta 2), 0-1."""
    return sacrebleu_metric("chrf").sentence_score(pred, [ref]).score / 100


# --- JSON metrics ---------------------------------------------------------------------------


def parse_json(text: str):
    try:
        return True, json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return False, None


def json_valid(pred: str, ref: str = "") -> float:
    return float(parse_json(pred.strip())[0])


def json_match(pred: str, ref: str) -> float:
    """Same JSON value (key order and spacing ignored)."""
    ok_p, p = parse_json(pred.strip())
    ok_r, r = parse_json(ref.strip())
    return float(ok_p and ok_r and p == r)


def json_fields(pred: str, ref: str, fields: list[str] | None = None) -> dict[str, float]:
    """Per field: 1 if the prediction's value equals the reference's. Fields are the
    reference's top-level keys, or the schema's properties when given."""
    ok_r, r = parse_json(ref.strip())
    if not ok_r or not isinstance(r, dict):
        return {}
    ok_p, p = parse_json(pred.strip())
    p = p if ok_p and isinstance(p, dict) else {}
    keys = fields if fields is not None else list(r)
    return {k: float(k in p and p[k] == r.get(k)) for k in keys if k in r}


def json_field_accuracy(pred: str, ref: str, fields: list[str] | None = None) -> float:
    """Share of the reference's fields the prediction got right: credit for 2 of 3 fields."""
    per_field = json_fields(pred, ref, fields)
    if not per_field:
        return json_match(pred, ref)
    return sum(per_field.values()) / len(per_field)



# --- classification -------------------------------------------------------------------------


def classification_accuracy(pred: str, ref: str) -> float:
    """Label answers ("positive", "Billing."): right if the normalised label is the same."""
    return normalized_exact_match(pred, ref)


# --- the registry -------------------------------------------------------------------------------

# Every metric eval.metrics may name, in the order the config's messages list them: its
# (prediction, reference) -> float function, or None for the two scored apart, json_schema_valid
# (against eval.json_schema: eval/metrics.py) and perplexity (of the model on the answers).
METRICS: dict[str, Callable[[str, str], float] | None] = {
    "exact_match": exact_match,
    "normalized_exact_match": normalized_exact_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "bleu": bleu,
    "chrf": chrf,
    "json_valid": json_valid,
    "json_match": json_match,
    "json_field_accuracy": json_field_accuracy,
    "json_schema_valid": None,
    "classification_accuracy": classification_accuracy,
    "perplexity": None,
}
TASK_METRICS = {name: f for name, f in METRICS.items() if f is not None}  # scored per example on the outputs
