"""LLM judge for quality scoring (`data.quality.judge`), on top of the rule-based score.

A chat model (any OpenAI-compatible endpoint, or a local model folder) grades each example's
final answer 1-5 for correctness, helpfulness and format adherence from a rubric template,
and says why. `prepare` combines the verdict with the rule score:

    combined = (1 - weight) x rule_score + weight x (judge mean - 1) / 4

and the usual threshold filters on the combined score, so with the defaults (weight 0.75,
threshold 0.5) a clean example is filtered when the judge's mean is below about 2.3.
Rows the rules already filter are not sent to the judge (they would be filtered anyway).

Verdicts are cached in data/judge_cache.sqlite by a hash of the content, the judge model and
the rubric, so re-running prepare asks only about new or changed examples and a changed
rubric is asked again. A reply without the JSON the rubric asks for is recorded as
malformed (cached: at temperature 0 asking again gives the same reply) and the example
keeps its rule score; a request that failed after its retries is not cached, so the next
prepare asks again.

When the project's run has human review ratings (runs/NAME/eval/review.sqlite), the judge
also grades the outputs the reviewers rated, and its correctness scores are compared with
theirs (exact and within-one agreement, Cohen's kappa): how far to trust the judge.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sftflow.config.data import JudgeConfig, QualityConfig
from sftflow.data.decide.filters import LOW_QUALITY, low_quality
from sftflow.data.llm.prompts import load_template, parse_json_object
from sftflow.data.llm.teacher import BudgetSpent, RequestRefused, TeacherFailed, budget_for, open_model
from sftflow.data.step import Filter
from sftflow.example import Example

CRITERIA = ("correctness", "helpfulness", "format")
CACHE = "judge_cache.sqlite"  # in the data folder: verdicts by content, judge model and rubric
LOW_MEAN = 3.0  # below this the judge's verdict is named among the quality reasons

RUBRIC = """You grade one example of training data for a chat assistant. Judge only the assistant's final \
reply, in the context of the conversation before it.

{% if system %}
The assistant's instructions (system prompt):
{{ system }}

{% endif %}
Conversation:

{% for m in turns %}
{{ m.role | capitalize }}: {{ m.content }}
{% endfor %}

Score the final assistant reply from 1 (very poor) to 5 (excellent) on:
- correctness: is it true, accurate and consistent with the conversation?
- helpfulness: does it do what the user asked, completely and without padding?
- format: does it follow the format the instructions and the user ask for?

Reply with a JSON object only:
{"correctness": <1-5>, "helpfulness": <1-5>, "format": <1-5>, "reasons": "<one or two sentences>"}
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY, model TEXT, rubric TEXT, scores TEXT, reasons TEXT, error TEXT, reply TEXT, at REAL
);
"""


@dataclass
class Verdict:
    scores: dict | None  # criterion → 1..5, None when the reply was malformed
    reasons: str = ""
    error: str | None = None
    reply: str = ""
    cached: bool = False

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores)


def parse_verdict(text: str) -> Verdict:
    """The rubric's JSON, with integer scores 1-5 for every criterion; anything else is malformed."""
    obj = parse_json_object(text)
    if obj is None:
        return Verdict(None, error="malformed: no JSON object in the judge's reply", reply=text)
    scores = {}
    for c in CRITERIA:
        value = obj.get(c)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
            return Verdict(None, error=f"malformed: '{c}' must be an integer 1-5, got {value!r}", reply=text)
        scores[c] = value
    reasons = obj.get("reasons", "")
    return Verdict(scores, reasons=reasons if isinstance(reasons, str) else json.dumps(reasons), reply=text)


class Judge(Filter):
    """The configured judge with its cache, as a filter on the chunks of task rows the rules kept: it folds
    its verdict into their score and drops those below the threshold. Opened lazily, so a fully cached
    run sends nothing."""

    name = "judge"
    code = LOW_QUALITY  # its drops: the combined score below the threshold

    def __init__(self, jc: JudgeConfig, threshold: float | None, root: Path, data_dir: Path, run_dir: Path):
        super().__init__()  # counts: seen, kept, dropped; judged, cached, malformed, failed, budget
        self.jc, self.threshold, self.root, self.run_dir = jc, threshold, root, run_dir
        self.template = load_template("rubric", self.jc.rubric, root, "data.quality.judge.rubric", RUBRIC)
        self.budget = budget_for(self.jc)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(data_dir / CACHE), check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.model = None
        self.sums: Counter = Counter()
        self.last_error = ""

    @classmethod
    def of(cls, q: QualityConfig, root: Path, data_dir: Path, run_dir: Path) -> Judge | None:
        """The judge data.quality asks for (None without data.quality.judge); its threshold is the rule
        score's, when the quality filter is on."""
        if q.judge is None:
            return None
        return cls(q.judge, q.threshold if q.enabled else None, root, data_dir, run_dir)

    def key(self, messages: list[dict]) -> str:
        content = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
        return hashlib.sha256(f"{self.jc.model}\0{self.template.id}\0{content}".encode()).hexdigest()[:32]

    def _ask(self, messages: list[dict]) -> Verdict | None:
        turns = [m for m in messages if m["role"] != "system"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        prompt = self.template.render(system=system, turns=turns, answer=turns[-1]["content"])
        try:
            reply = self.model.chat([{"role": "user", "content": prompt}], seed=0)
        except RequestRefused as err:
            return Verdict(None, error=f"refused: {err}")
        except TeacherFailed as err:
            self.counts["failed"] += 1
            self.last_error = str(err)
            return None
        except BudgetSpent as err:
            self.counts["budget"] += 1
            self.last_error = str(err)
            return None
        if reply.finish_reason == "length":
            return Verdict(None, error="truncated: the verdict reached judge.max_tokens", reply=reply.text)
        return parse_verdict(reply.text)

    def verdicts(self, conversations: list[list[dict]]) -> list[Verdict | None]:
        """A verdict per conversation (its final assistant turn judged); None where none could be had."""
        keys = [self.key(m) for m in conversations]
        out: list[Verdict | None] = [None] * len(keys)
        missing: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            row = self.db.execute("SELECT scores, reasons, error, reply FROM verdicts WHERE key = ?", (k,)).fetchone()
            if row is None:
                missing.setdefault(k, []).append(i)
            else:
                out[i] = Verdict(json.loads(row[0]) if row[0] else None, row[1] or "", row[2], row[3] or "", True)
                self.counts["cached"] += 1
        if missing:
            if self.model is None:
                self.model = open_model(self.jc, self.budget, "data.quality.judge", self.root)
            firsts = [idx[0] for idx in missing.values()]
            with ThreadPoolExecutor(max_workers=self.jc.concurrency, thread_name_prefix="judge") as pool:
                results = list(pool.map(lambda i: self._ask(conversations[i]), firsts))
            now = time.time()
            for (k, idx), v in zip(missing.items(), results, strict=True):
                if v is None:
                    continue
                self.counts["judged"] += 1
                self.db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (k, self.jc.model, self.template.id, json.dumps(v.scores) if v.scores else None,
                                 v.reasons, v.error, v.reply[:2000], now))
                for i in idx:
                    out[i] = v
            self.db.commit()
        return out

    def filter(self, rows: list) -> None:
        """Judge the rows of a chunk that passed the rules, in one batch, and fold the verdict into their score."""
        threshold = self.threshold
        todo = [r for r in rows if r.reject is None and r.drop is None and not Example.of(r.record).is_text]
        w = self.jc.weight
        for row, v in zip(todo, self.verdicts([r.record["messages"] for r in todo]), strict=True):
            q = row.record["quality"]
            if v is None:
                q["judge"] = {"error": f"not judged: {self.last_error}"}
                self.counted(None)
                continue
            if v.scores is None:
                self.counts["malformed"] += 1
                q["judge"] = {"error": v.error, "model": self.jc.model, "rubric": self.template.id}
                self.counted(None)
                continue
            combined = (1 - w) * row.score + w * (v.mean - 1) / 4
            for c, s in v.scores.items():
                self.sums[c] += s
            self.sums["n"] += 1
            q["rule_score"] = q["score"]
            q["score"] = round(combined, 3)
            q["judge"] = {**v.scores, "mean": round(v.mean, 3), "reasons": v.reasons, "model": self.jc.model,
                          "rubric": self.template.id}
            if v.mean < LOW_MEAN:
                q["reasons"] = [*q["reasons"], "judge_low"]
            row.score = combined
            drop = low_quality(combined, threshold, q["reasons"]) if threshold is not None and combined < threshold else None
            row.drop = self.counted(drop)

    def human_agreement(self) -> dict | None:
        """The judge's correctness against the reviewers' on the outputs they rated, if there are ratings."""
        run_dir = self.run_dir
        db_file, pred_file = run_dir / "eval" / "review.sqlite", run_dir / "eval" / "predictions.jsonl"
        if not db_file.exists() or not pred_file.exists():
            return None
        from sftflow.io import read_jsonl
        from sftflow.ratings import current, read_rated
        from sftflow.stats import cohen_kappa

        preds = {str(p["id"]): p for p in read_jsonl(pred_file) if "base" in p and isinstance(p.get("prompt"), list)}
        items, human = [], []
        for r in current(read_rated(db_file), preds):
            p = preds[r["example_id"]]
            for m in ("tuned", "base"):
                if r.get(f"{m}_correctness") is not None and p.get(m):
                    items.append([*p["prompt"], {"role": "assistant", "content": p[m]}])
                    human.append(int(r[f"{m}_correctness"]))
        pairs = [(h, v.scores["correctness"]) for h, v in zip(human, self.verdicts(items), strict=True)
                 if v is not None and v.scores]
        result = {"source": str(db_file), "ratings": len(human), "pairs": len(pairs), "criterion": "correctness"}
        if pairs:
            a, b = [h for h, _ in pairs], [j for _, j in pairs]
            result.update(exact=sum(x == y for x, y in pairs) / len(pairs),
                          within_one=sum(abs(x - y) <= 1 for x, y in pairs) / len(pairs),
                          kappa=cohen_kappa(a, b), human_mean=sum(a) / len(a), judge_mean=sum(b) / len(b))
        return result

    def stats(self) -> dict:
        n = self.sums["n"]
        return {"model": self.jc.model, "rubric": self.template.id, "weight": self.jc.weight,
                **{k: self.counts[k] for k in ("judged", "cached", "malformed", "failed", "budget")},
                "filtered": self.counts["dropped"],
                "scored": n, "means": {c: round(self.sums[c] / n, 3) for c in CRITERIA} if n else {},
                "last_error": self.last_error, "usage": self.budget.summary()}

    def close(self) -> None:
        self.db.close()
        if self.model is not None:
            self.model.close()
