"""The rating form: what the page sends, checked field by field, and filed under the models.

The server, not the page, is the judge of a submitted form: unknown, repeated or out-of-range
fields are a 400 with the field's name. `diff_html` marks where an answer differs from the
reference, so the reviewer knows where to look first.
"""

import difflib
import re

from sftflow.review.store import FLAGS, SCORES

CSRF_FIELD = "csrf"
MAX_TEXT = 2000
FORM_FIELDS = {CSRF_FIELD, "action", "preferred", *(f"{side}_{f}" for side in "ab" for f in (*SCORES, *FLAGS, "span", "note"))}


class ReviewError(Exception):
    """A request we refuse: status and a message for the reviewer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


_TOKEN = re.compile(r"\w+|[^\w\s]+|\s+")


def diff_html(output: str, reference: str):
    """The output, HTML-escaped, with the words that differ from the reference in <mark>:
    what a reviewer should look at first. Only whole tokens are wrapped, so the page's text
    (and a span selected in it) is exactly the output."""
    from markupsafe import Markup, escape

    out, ref = _TOKEN.findall(output), _TOKEN.findall(reference)
    changed = [False] * len(out)
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, ref, out, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            for j in range(j1, j2):
                changed[j] = not out[j].isspace()
    for j in range(1, len(out) - 1):  # one mark over "two words", not one per word
        changed[j] = changed[j] or (out[j].isspace() and changed[j - 1] and changed[j + 1])
    html, j = [], 0
    while j < len(out):
        k = j
        while k < len(out) and changed[k] == changed[j]:
            k += 1
        text = str(escape("".join(out[j:k])))
        html.append(f'<mark class="diff">{text}</mark>' if changed[j] else text)
        j = k
    return Markup("".join(html))


def check_form(form) -> dict:
    """The submitted form, validated field by field (the server, not the page, is the judge)."""
    keys = list(form.keys())
    unknown = sorted(set(keys) - FORM_FIELDS)
    if unknown:
        raise ReviewError(400, f"unknown form field(s): {', '.join(unknown)[:200]}")
    repeated = sorted({k for k in keys if len(form.getlist(k)) > 1})
    if repeated:
        raise ReviewError(400, f"form field(s) sent more than once: {', '.join(repeated)}")
    values = {k: form[k] for k in keys}
    if any(not isinstance(v, str) for v in values.values()):
        raise ReviewError(400, "file uploads are not accepted here")
    action = values.get("action", "rate")
    if action not in ("rate", "skip"):
        raise ReviewError(400, f"action must be 'rate' or 'skip' (got {action[:40]!r})")
    if action == "skip":
        return {"skipped": 1}
    out: dict = {"skipped": 0}
    for side in "ab":
        for score in SCORES:
            key = f"{side}_{score}"
            raw = values.get(key, "").strip()
            if raw not in ("1", "2", "3", "4", "5"):
                shown = f" (got {raw[:20]!r})" if raw else " (missing)"
                raise ReviewError(400, f"{key}: choose a score from 1 to 5{shown}")
            out[key] = int(raw)
        for flag in FLAGS:
            raw = values.get(f"{side}_{flag}", "")
            if raw not in ("", "on", "1", "0"):
                raise ReviewError(400, f"{side}_{flag}: a checkbox value 'on' or nothing (got {raw[:20]!r})")
            out[f"{side}_{flag}"] = int(raw in ("on", "1"))
        for text in ("span", "note"):
            raw = values.get(f"{side}_{text}", "")
            if len(raw) > MAX_TEXT:
                raise ReviewError(400, f"{side}_{text}: at most {MAX_TEXT} characters")
            out[f"{side}_{text}"] = raw.strip()
    preferred = values.get("preferred", "")
    if preferred not in ("A", "B", "tie"):
        raise ReviewError(400, f"preferred: choose A, B or tie (got {preferred[:20]!r})" if preferred
                          else "preferred: choose A, B or tie (missing)")
    out["preferred"] = preferred
    return out


def unblind(form: dict, a_model: str) -> dict:
    """Scores filed under the model that was shown on each side."""
    side_model = {"a": a_model, "b": "base" if a_model == "tuned" else "tuned"}
    row = {"skipped": form["skipped"], "a_model": a_model, "preferred": None}
    if form["skipped"]:
        return row
    for side, model in side_model.items():
        for f in (*SCORES, *FLAGS, "span", "note"):
            row[f"{model}_{f}"] = form[f"{side}_{f}"]
    row["preferred"] = "tie" if form["preferred"] == "tie" else side_model[form["preferred"].lower()]
    return row


def as_form(rating: dict) -> dict:
    """A stored rating back in the page's terms (a/b fields, preferred A/B/tie), to prefill the
    form when the reviewer corrects it."""
    side_model = {"a": rating["a_model"], "b": "base" if rating["a_model"] == "tuned" else "tuned"}
    form = {f"{side}_{f}": rating[f"{m}_{f}"] for side, m in side_model.items() for f in (*SCORES, *FLAGS, "span", "note")}
    model_side = {m: side.upper() for side, m in side_model.items()}
    form["preferred"] = "tie" if rating["preferred"] == "tie" else model_side.get(rating["preferred"])
    form["skipped"] = rating["skipped"]
    return form
