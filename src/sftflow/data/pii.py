"""Personal data in examples: emails, phone numbers and Luhn-valid card numbers, found (`find_pii`) and
redacted (`redact`, `redact_message`). The quality score flags it; data.quality.pii flags, redacts or
drops it."""

from __future__ import annotations

import re
from dataclasses import replace

from sftflow.example import Message

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w#])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{3,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?(?![\w-])")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)")
# a cheap pre-check: the full patterns run only on the few texts with seven digits close together
SEVEN_DIGITS = re.compile(r"\d(?:\D{0,3}\d){6}")
PII_LABELS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD_NUMBER]"}


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


def redact_message(m: Message) -> Message:
    """A turn with personal data replaced in its text, its reasoning and its calls' arguments."""
    calls = tuple(replace(c, arguments=redact(c.arguments)) for c in m.tool_calls)
    return replace(m, content=redact(m.content), reasoning=redact(m.reasoning) if m.reasoning else m.reasoning,
                   tool_calls=calls)
