"""Rule-based quality score of a chat example: a number in [0, 1] and the reasons behind it.

Cheap signals that catch what ruins SFT data in practice: empty or trivial answers,
repetition loops, mojibake and control characters, boilerplate refusals ("As an AI
language model…"), truncated answers, answers that copy the prompt, placeholder text,
HTML debris, and personal data (emails, phone numbers, card numbers), which is flagged,
redacted or dropped as configured. Each signal subtracts a penalty; a score below
`data.quality.threshold` puts the example in the `filtered` fate, with its reasons.
The score is a triage tool, not a judge: the data card lists the lowest-scoring
examples so a person can check what the rules did.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# name → penalty. Chosen so that one serious problem (refusal, placeholder, copy, garbage)
# drops an example below the default threshold 0.5, and one mild one does not.
PENALTIES = {
    "empty_answer": 1.0,
    "trivial_answer": 0.2,
    "repetition": 0.6,
    "repeated_lines": 0.5,
    "charset_noise": 0.6,
    "refusal_boilerplate": 0.6,
    "truncated_answer": 0.5,
    "answer_copies_prompt": 0.6,
    "placeholder": 0.6,
    "markup_debris": 0.3,
    "pii": 0.0,  # flagged only, unless data.quality.pii is "drop" (penalty 1.0)
}

REFUSAL = re.compile(
    r"\b(as an ai(?: language)? model|as a large language model|i(?:'m| am) (?:just )?an ai\b|"
    r"i (?:cannot|can't|can not|am unable to|'m unable to) (?:help|assist|provide|comply|fulfil)|"
    r"i(?:'m| am) sorry,? but i (?:cannot|can't|am unable)|my knowledge cutoff|"
    r"i do not have (?:personal )?(?:opinions|feelings|access to real-time))",
    re.IGNORECASE,
)
PLACEHOLDER = re.compile(
    r"(lorem ipsum|\bTODO\b|\bTBD\b|\bFIXME\b|\[insert [^\]]*\]|<placeholder>|\{\{\s*\w+\s*\}\}|"
    r"^\s*(n/?a|none|null|undefined|\.\.\.|-|\?)\s*$|your answer here)",
    re.IGNORECASE,
)
HTML_TAG = re.compile(r"</?(div|span|p|br|td|tr|table|li|ul|script|style|font|a|img)\b[^>]*>|&(nbsp|amp|lt|gt|quot|#\d+);",
                      re.IGNORECASE)
MOJIBAKE = re.compile("[\ufffd]|Ã[\u0080-\u00bf]|â€|Â[\u00a0-\u00bf]")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w#])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{3,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?(?![\w-])")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)")
WORD = re.compile(r"\w+", re.UNICODE)
SENTENCE_END = re.compile(r"""[.!?…:;)\]}"'`*>\u3002\uff01\uff1f]\s*$|^\S+$""")

PII_LABELS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD_NUMBER]"}
# Cheap pre-checks: the full patterns run only on the few texts these let through.
SEVEN_DIGITS = re.compile(r"\d(?:\D{0,3}\d){6}")
REFUSAL_HINTS = ("as an ai", "language model", "i cannot", "i can't", "i can not", "unable to", "sorry",
                 "knowledge cutoff", "i do not have", "i'm an ai", "i am an ai", "i am just an ai", "i'm just an ai")
PLACEHOLDER_HINTS = ("lorem", "todo", "tbd", "fixme", "[insert", "<placeholder>", "{{", "your answer here")


@dataclass
class Quality:
    score: float
    reasons: list[str] = field(default_factory=list)
    pii: list[str] = field(default_factory=list)  # kinds found: email, phone, card

    def as_dict(self) -> dict:
        return {"score": round(self.score, 3), "reasons": self.reasons}


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of emails, phone numbers and Luhn-valid card numbers."""
    found = [("email", m.start(), m.end()) for m in EMAIL.finditer(text)] if "@" in text else []
    if not SEVEN_DIGITS.search(text):
        return found
    long_numbers = []  # 13-19 digit runs: a card if Luhn-valid, and never a phone number either way
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        long_numbers.append((m.start(), m.end()))
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            found.append(("card", m.start(), m.end()))
    taken = [(s, e) for _, s, e in found] + long_numbers
    for m in PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 7 <= len(digits) <= 15 and not any(s <= m.start() < e for s, e in taken):
            found.append(("phone", m.start(), m.end()))
    return sorted(found, key=lambda f: f[1])


def redact(text: str) -> str:
    out, pos = [], 0
    for kind, start, end in find_pii(text):
        if start < pos:
            continue
        out += [text[pos:start], PII_LABELS[kind]]
        pos = end
    return "".join(out) + text[pos:]


def _repetition(words: list[str]) -> float:
    """Share of word trigrams that repeat an earlier trigram (0 for short answers)."""
    if len(words) < 12:
        return 0.0
    grams = list(zip(words, words[1:], words[2:], strict=False))
    return 1.0 - len(set(grams)) / len(grams)


def _looks_truncated(answer: str) -> bool:
    text = answer.rstrip()
    if text.endswith(("...", "…")) and len(text) > 40:
        return True
    if text.count("```") % 2 == 1:
        return True
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        opens = sum(stripped.count(c) for c in "{[")
        closes = sum(stripped.count(c) for c in "}]")
        return opens > closes
    # Long prose that stops mid-sentence (short answers and labels legitimately lack a full stop).
    return len(text) > 200 and not SENTENCE_END.search(text)


def score_messages(messages: list[dict], pii_mode: str = "flag") -> Quality:
    """Score a canonical chat (system/user/assistant messages). Looks mostly at assistant turns."""
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    prompts = [m["content"] for m in messages if m["role"] == "user"]
    answer, prompt = "\n".join(answers), "\n".join(prompts)
    reasons = []
    stripped = answer.strip()
    if not stripped:
        reasons.append("empty_answer")
    elif len(WORD.findall(stripped)) == 0 or (len(stripped) < 2 and not stripped.isalnum()):
        reasons.append("trivial_answer")
    words = [w.lower() for w in WORD.findall(answer)]
    if _repetition(words) > 0.3:
        reasons.append("repetition")
    lines = [ln.strip() for ln in answer.splitlines() if len(ln.strip()) > 10]
    if lines and Counter(lines).most_common(1)[0][1] >= 3:
        reasons.append("repeated_lines")
    everything = answer + prompt
    noise = len(MOJIBAKE.findall(everything)) + len(CONTROL.findall(everything))
    if everything and noise / len(everything) > 0.01 or noise >= 5:
        reasons.append("charset_noise")
    low = answer.lower()
    if any(h in low for h in REFUSAL_HINTS) and REFUSAL.search(answer):
        reasons.append("refusal_boilerplate")
    if any(_looks_truncated(a) for a in answers):
        reasons.append("truncated_answer")
    norm_a, norm_p = " ".join(words), " ".join(w.lower() for w in WORD.findall(prompt))
    if norm_a and len(norm_a) >= 20 and (norm_a == norm_p or norm_a in norm_p):
        reasons.append("answer_copies_prompt")
    if (len(stripped) <= 10 or any(h in low for h in PLACEHOLDER_HINTS)) and PLACEHOLDER.search(answer):
        reasons.append("placeholder")
    if ("<" in answer or "&" in answer) and len(HTML_TAG.findall(answer)) >= 3:
        reasons.append("markup_debris")
    pii = sorted({kind for m in messages for kind, _, _ in find_pii(m["content"])})
    if pii:
        reasons.append("pii")
    penalty = sum(PENALTIES[r] for r in reasons)
    if pii and pii_mode == "drop":
        penalty += 1.0
    return Quality(score=max(0.0, 1.0 - penalty), reasons=reasons, pii=pii)


def score_text(text: str, pii_mode: str = "flag") -> Quality:
    """Plain-text (continued pre-training) rows: the same signals that apply without turns."""
    return score_messages([{"role": "assistant", "content": text}], pii_mode)
