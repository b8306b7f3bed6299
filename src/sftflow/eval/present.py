"""How the report puts numbers into words and colours, kept apart from the templates so each
rule can be tested on hand-built inputs (tests/eval/test_report.py).

    from sftflow.eval.present import judge_answer, delta_words, ratio_words, card_html

The rules a reviewer relies on at a glance: an answer is green only when it is identical to
the reference (JSON compared as values); a change is called better or worse only when its
interval excludes zero, with the metric's direction (lower is better for hallucination rate
and perplexity) taken into account; every count of duplicates says how many were exact and
how many near.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sftflow.task_metrics import METRICS


def _json(text: str):
    try:
        return json.loads(text.strip())
    except (json.JSONDecodeError, ValueError, AttributeError):
        return None


def is_identical(output: str, reference: str) -> bool:
    """Same text (surrounding space ignored) or, for JSON, the same value (key order and
    spacing ignored)."""
    if output.strip() == reference.strip():
        return True
    ref = _json(reference)
    return ref is not None and isinstance(ref, dict | list) and _json(output) == ref


def field_marks(output: str, reference: str) -> list[dict] | None:
    """Per top-level field of a JSON-object reference: the output's value and whether it is the
    reference's, then any key the reference does not have (expected None). None when the
    reference is not a JSON object."""
    ref = _json(reference)
    if not isinstance(ref, dict):
        return None
    out = _json(output)
    out = out if isinstance(out, dict) else None
    marks = []
    for key, expected in ref.items():
        present = out is not None and key in out
        marks.append({"field": key, "ok": present and out[key] == expected,
                      "value": json.dumps(out[key], ensure_ascii=False) if present else None,
                      "expected": json.dumps(expected, ensure_ascii=False)})
    for key in (out or {}):  # a key the reference lacks: why an answer with every field right is still red
        if key not in ref:
            marks.append({"field": key, "ok": False, "value": json.dumps(out[key], ensure_ascii=False),
                          "expected": None})
    return marks


def judge_answer(output: str, reference: str, *, exact_task: bool) -> dict:
    """How to show one answer: css class 'ok' only when identical to the reference; 'bad' when
    it is not and the task is judged by exactness (JSON, labels); '' for free text, where a
    different wording is not necessarily wrong. Plus per-field marks for JSON answers."""
    identical = is_identical(output, reference)
    css = "ok" if identical else ("bad" if exact_task else "")
    marks = field_marks(output, reference)
    return {"css": css, "identical": identical, "fields": marks,
            "json_object": marks is None or isinstance(_json(output), dict)}


def is_exact_task(task: dict | None) -> bool:
    names = set((task or {}).get("metrics") or [])
    # Tasks judged by exactness (the registry's `exact`): a non-identical answer is wrong (red), not "partly right".
    return any(n in METRICS and METRICS[n].exact for n in names) or bool((task or {}).get("labels"))


def same_per_example(predictions: list[dict], first: str, second: str) -> bool:
    """True when two per-example metrics agree on every example of every model shown: one of
    them adds nothing to the report."""
    seen = False
    for p in predictions:
        for block in (p.get("tuned_metrics"), p.get("base_metrics")):
            if not block:
                continue
            if first not in block or second not in block:
                return False
            if block[first] != block[second]:
                return False
            seen = True
    return seen


def delta_direction(d: dict | None, lower_is_better: bool = False) -> str:
    """'better' or 'worse' for a paired delta (tuned - base) whose interval excludes 0, else 'same'."""
    if not d:
        return "same"
    lo, hi = d["ci95"]
    if not (lo > 0 or hi < 0):
        return "same"
    return "better" if (d["mean"] < 0) == lower_is_better else "worse"


def change_direction(before: float | None, after: float | None, lower_is_better: bool, tolerance: float = 0.005) -> str:
    """'better', 'worse' or 'same' (a relative change under `tolerance`): what a colour says. A worse
    perplexity is never green, even where a gate lets it pass."""
    if before is None or after is None or abs(after - before) <= tolerance * max(abs(before), 1e-12):
        return "same"
    return "better" if (after < before) == lower_is_better else "worse"


# Colours follow better/worse (and red only for what a gate failed), in the page and in the charts.
CHANGE_COLOURS = {"better": "#228833", "worse": "#ddaa33", "failed": "#ee6677", "same": "#4477aa"}
BASE_COLOUR = "#bbbbbb"


def delta_words(d: dict | None, lower_is_better: bool = False, digits: int = 3) -> tuple[str, str]:
    """A paired delta (tuned - base) with its interval and what it means, and the css class:
    'better'/'worse' only when the interval excludes 0."""
    if not d:
        return "–", ""
    lo, hi = d["ci95"]
    numbers = f"{d['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    way = delta_direction(d, lower_is_better)
    if way != "same":
        return f"{numbers}: {way}", "ok" if way == "better" else "bad"
    return f"{numbers}: no clear change (interval includes 0)", ""


def _times(ratio: float, higher: str, lower: str) -> str:
    if ratio >= 2:
        return f"{ratio:.3g}× {higher}"
    if ratio > 1:
        return f"{ratio - 1:.0%} {higher}"
    if ratio > 0.5:
        return f"{1 - ratio:.0%} {lower}"
    return f"{1 / ratio:.3g}× {lower}"


def ratio_words(base: dict | None, tuned: dict | None, name: str = "perplexity") -> tuple[str, str]:
    """Tuned vs base perplexity in words ("136× lower: better", "35% higher: worse"); 'better'
    or 'worse' only when the two 95% intervals do not overlap."""
    if not base or not tuned or not base.get(name) or tuned.get(name) is None:
        return "–", ""
    b, t = base[name], tuned[name]
    ratio = t / b
    if abs(ratio - 1) < 0.005:
        return "about the same", ""
    text = _times(ratio, "higher", "lower")
    bci, tci = base.get("ci95"), tuned.get("ci95")
    if bci and tci and (tci[1] < bci[0] or tci[0] > bci[1]):
        better = t < b
        return f"{text}: {'better' if better else 'worse'}", "ok" if better else "bad"
    return f"{text}: no clear change (intervals overlap)", ""


def duplicate_text(stats: dict) -> str:
    """'69 duplicates (34 exact, 35 near)': the same split the data card shows."""
    total = stats.get("duplicates", "?")
    if "exact_duplicates" in stats and "near_duplicates" in stats:
        return f"{total} duplicates ({stats['exact_duplicates']} exact, {stats['near_duplicates']} near)"
    return f"{total} duplicates"


# ---------------------------------------------------------------------------- the data card


def card_html(markdown: str, folder: Path, heading_offset: int = 2) -> str:
    """The data card (Markdown: headings, pipe tables, lists, code, one image) as HTML for the
    report. Raw HTML in the card is escaped, headings move down `heading_offset` levels to sit
    under the report's own, and an image next to the card is embedded (the report can be
    mailed); any other image is left out, its alt text shown."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    folder = Path(folder).resolve()

    def image(self, tokens, idx, options, env):
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children or [], options, env)
        src = str(token.attrGet("src") or "")
        path = (folder / src).resolve()
        if "://" in src or path.parent != folder or path.suffix.lower() != ".png" or not path.is_file():
            return f'<span class="muted">[{_escape(alt)}]</span>'
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img alt="{_escape(alt)}" src="data:image/png;base64,{data}">'

    md.add_render_rule("image", image)
    tokens = md.parse(markdown)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + heading_offset)}"
    return md.renderer.render(tokens, md.options, {})


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
