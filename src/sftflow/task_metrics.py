"""The task metrics scored on each (prediction, reference) pair, and the one registry of metrics.

    eval: {metrics: [exact_match, json_valid]}   # in sftflow.yaml: the names below

`METRICS` is the registry: each `Metric` entry carries its function and its facts (direction,
judged by exactness or not, corpus-level, the note the report shows, the order in which it is
picked as the task's main metric and for the task_gain gate). The config's `eval.metrics`
choices (config.py), the scoring (eval/evaluate.py, eval/metrics.py), the gates and the report
all read it, so adding a metric is one entry here and no table elsewhere has to know. It lives
outside the eval package because config.py reads it and eval imports config.py (no import
loops: tests/test_architecture.py). eval/metrics.py has the rest: intervals, corpus BLEU/chrF,
JSON schema, perplexity.

Tool-call metrics (`on="calls"`) score the calls parsed from the generated reply
(model/output.py) against the reference answer's `tool_calls`, with the example's tools.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sftflow.example import Message, Tool

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


# --- tool calls -----------------------------------------------------------------------------
# Each scores one example: the reply (a Message with the calls parsed from the generated text), the
# reference answer (a Message with its tool_calls), and the tools the example declares. An answer
# that calls nothing where the reference calls nothing scores 1 on each: those examples measure
# that the model does not call when it should not.


def _canonical_arguments(text: str):
    try:
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except (ValueError, TypeError):
        return None  # not JSON: equal to nothing


def tool_call_decision(reply: Message, ref: Message, tools: list[Tool]) -> float:
    """Called a tool when the reference does, and none when it does not."""
    return float(bool(reply.tool_calls) == bool(ref.tool_calls))


def tool_name_match(reply: Message, ref: Message, tools: list[Tool]) -> float:
    """Called the reference's tools (the same names, as many times; order ignored)."""
    return float(sorted(c.name for c in reply.tool_calls) == sorted(c.name for c in ref.tool_calls))


def tool_args_match(reply: Message, ref: Message, tools: list[Tool]) -> float:
    """Called the reference's tools with equal arguments, compared as JSON values (key order and spacing
    ignored; order of parallel calls ignored)."""
    key = lambda calls: sorted((c.name, _canonical_arguments(c.arguments) or "\0") for c in calls)  # noqa: E731
    got = key(reply.tool_calls)
    return float(got == key(ref.tool_calls) and all(a != "\0" for _, a in got))


def tool_args_valid(reply: Message, ref: Message, tools: list[Tool]) -> float:
    """Every call names a declared tool and its arguments are JSON valid against the tool's schema; a
    reply that calls nothing scores 1 only where the reference calls nothing too."""
    import jsonschema

    if not reply.tool_calls:
        return float(not ref.tool_calls)
    schemas = {t.name: t.parameters for t in tools}
    for call in reply.tool_calls:
        if call.name not in schemas:
            return 0.0
        try:
            args = json.loads(call.arguments)
        except ValueError:
            return 0.0
        try:
            if next(jsonschema.Draft202012Validator(schemas[call.name]).iter_errors(args), None) is not None:
                return 0.0
        except jsonschema.SchemaError:
            return 0.0
    return 1.0


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A metric and its facts.

    fn: `(prediction, reference) -> float in [0, 1]` for text metrics (`on="text"`), `(reply, reference
    answer, tools) -> float` for tool-call metrics (`on="calls"`); None for the ones scored apart
    (json_schema_valid against eval.json_schema, perplexity of the model, hallucination_rate).
    higher_is_better: the direction: deltas are called better when they rise (charts group by it).
    exact: measuring it makes the task one judged by exactness: a non-identical answer is shown red,
    not "partly right" (exact_match is measured on every task, free text too, so it does not).
    corpus: the summary is a corpus score (sacrebleu's BLEU, chrF), per-example values sentence scores.
    note: the few words the report shows beside its name.
    main: the order in which it becomes the task's main metric (ranks the worst examples); None: never.
    gain: the order in which the task_gain gate picks it; None: never.
    choosable: `eval.metrics` may name it (hallucination_rate is always measured).
    """

    name: str
    fn: Callable[..., float] | None
    higher_is_better: bool = True
    exact: bool = False
    corpus: bool = False
    note: str = ""
    main: int | None = None
    gain: int | None = None
    on: str = "text"
    choosable: bool = True


# In the order the config's messages list them. task_gain's order: label accuracy for labels, the right
# call for tools and ROUGE-L for free text (every task measures exact match, which free text rarely hits);
# else exact match, the user's question for JSON ("is the answer right?"), before partial credit.
_ENTRIES = [
    Metric("exact_match", exact_match, main=7, gain=7),
    Metric("normalized_exact_match", normalized_exact_match, main=6, gain=8),
    Metric("token_f1", token_f1, main=5, gain=4),
    Metric("rouge_l", rouge_l, main=4, gain=3),
    Metric("bleu", bleu, corpus=True, note="corpus BLEU / 100", gain=6),
    Metric("chrf", chrf, corpus=True, note="corpus chrF / 100", gain=5),
    Metric("json_valid", json_valid, exact=True, main=8, gain=10),
    Metric("json_match", json_match, exact=True, note="same JSON value, key order and spacing ignored"),
    Metric("json_field_accuracy", json_field_accuracy, exact=True, main=1, gain=9),
    Metric("json_schema_valid", None, exact=True),
    Metric("classification_accuracy", classification_accuracy, exact=True, main=2, gain=1),
    Metric("tool_call_decision", tool_call_decision, exact=True, on="calls",
           note="called a tool exactly when the reference does"),
    Metric("tool_name_match", tool_name_match, exact=True, on="calls", note="the reference's tools called"),
    Metric("tool_args_match", tool_args_match, exact=True, on="calls", main=0, gain=2,
           note="the reference's tools with equal arguments (as JSON)"),
    Metric("tool_args_valid", tool_args_valid, exact=True, on="calls",
           note="arguments valid against the tool's schema"),
    Metric("perplexity", None, higher_is_better=False),
    Metric("hallucination_rate", None, higher_is_better=False, note="lower is better; defined below",
           choosable=False),
]
METRICS: dict[str, Metric] = {m.name: m for m in _ENTRIES}
CHOOSABLE = tuple(n for n, m in METRICS.items() if m.choosable)  # what eval.metrics accepts
TOOL_METRICS = tuple(n for n, m in METRICS.items() if m.on == "calls")
TASK_METRICS = {n: m.fn for n, m in METRICS.items() if m.fn is not None and m.on == "text"}  # per example, on text


def lower_is_better(name: str) -> bool:
    """A block key the registry does not hold (answer_perplexity, json_fields) follows its metric."""
    name = "perplexity" if name == "answer_perplexity" else name
    return name in METRICS and not METRICS[name].higher_is_better


def note(name: str) -> str:
    return METRICS[name].note if name in METRICS else ""


def first_metric(names, order: str) -> str | None:
    """Of `names`, the one first in the registry's `order` ("main" or "gain"); None if none has one."""
    ranked = [(getattr(METRICS[n], order), n) for n in names if n in METRICS and getattr(METRICS[n], order) is not None]
    return min(ranked)[1] if ranked else None
