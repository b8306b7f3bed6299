"""Labelled quality benchmark: how much junk the row scorer catches, and how many clean rows it loses.

    python bench/quality.py                      # rules only, seeds 0 (dev) and 1 (held out)
    python bench/quality.py --semantic           # also rules + semantic signals (pip install -e '.[semantic]')
    python bench/quality.py --json results.json  # the tables as JSON too
    python bench/quality.py --time 20000         # rows/s of the row scorer on 20k benchmark rows

The benchmark is generated, not downloaded: `generate(seed)` composes rows from the hand-written
pools in quality_pools.py and quality_code.py with `random.Random(seed)`, so a seed always gives
the same rows. Each row is a chat (system, user, assistant) labelled with a kind:

- `clean` (1,200 rows by default) across 15 tasks and formats: short factual answers, JSON
  extraction, code (Python, SQL, JS, bash, and raw HTML/JSX/Jinja that carries `<div>` and
  `{{ }}` legitimately), multi-paragraph prose, bullet and numbered lists, one-word labels,
  numbers, worked maths with symbols, Markdown tables, translations (answers in another language
  on purpose), whole conversations in Spanish/German/French/..., summaries, quoted sentences
  (answers copied from the prompt on purpose), empathetic support replies ("I'm sorry to hear…",
  which are not refusals) and two-turn chats.
- 15 per-row junk kinds (60 rows each by default), mostly derived from clean rows of a fresh
  draw: `repetition_short` (loops under 12 words: "refund refund …", "hahaha…"), `repetition_long`
  (a good start that falls into a loop, repeated paragraphs or list items), `markup_only`
  ("<div><br><br>&nbsp;</div>"), `markup_heavy` (a few words buried in tags), `empty_after_strip`
  (whitespace, zero-width characters, empty fences, lone Markdown), `truncated_json`,
  `truncated_code`, `truncated_prose` (cut mid-sentence or mid-word), `refusal` (composed from
  openers × cores × tails, so no one phrasing dominates), `prompt_copy` (exact, re-cased, the input
  part only, or with "Q:" in front), `placeholder`, `mojibake` (typographic text encoded as UTF-8
  and decoded as cp1252 or Latin-1, and U+FFFD), `gibberish` (symbol soup, keyboard mash, random
  alphanumerics), `wrong_language` (an English prompt answered in German, Russian, Chinese, …)
  and `unrelated_answer` (the answer of another task's row).
- Dataset-level kinds, reported apart as "needs dataset-level check" because no per-row scorer
  can see them: `conflicting_label` groups (the same or near-same prompt with different answers)
  and `paraphrase_duplicate` groups (one question asked in two phrasings with the same answer).
  Their rows are counted in no per-row figure.

A row counts as filtered when its rule score is below 0.5 (the default `data.quality.threshold`).
Recall per junk kind and the share of clean rows filtered are printed for each seed; seed 0 is the
one the rules were tuned on, seed 1 is held out (same pools, different draws and combinations).
With `--semantic`, rows are also flagged by sftflow.data.signals.embeddings's `unrelated_answer` and
`semantic_outlier` (per task, the task being the system prompt), and its near-duplicate clusters
are scored on the dataset-level groups.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_code import code_answer  # noqa: E402
from quality_pools import (  # noqa: E402
    CITIES,
    EMPTY_AFTER_STRIP,
    FACT_QUESTIONS,
    FACTS,
    FOREIGN_QA,
    INTENT_MESSAGES,
    LANGUAGES,
    LIST_PROMPTS,
    LIST_TOPICS,
    MARKUP_ONLY,
    NAMES,
    OTHER_LANGUAGE,
    PLACEHOLDERS,
    PRODUCTS,
    PROSE_PROMPTS,
    REFUSAL_CORES,
    REFUSAL_OPENERS,
    REFUSAL_TAILS,
    REVIEWS,
    SIGN_OFFS,
    TOPICS,
    TRANSLATIONS,
    URGENCY_HINTS,
)

# Clean rows per task for --clean 1200 (scaled for other sizes); pool-limited tasks get fewer.
TASKS = {"json_extract": 200, "label": 150, "code": 120, "number": 120, "support_reply": 120, "math": 80,
         "list": 80, "table": 60, "extractive": 60, "translation": 48, "chat": 40, "factual_qa": 35,
         "prose": 36, "summary": 36, "foreign": 12}
SYSTEM = {
    "json_extract": "Extract the requested fields from the text and answer with JSON only.",
    "label": "Answer with a single label.", "code": "You are a senior software engineer. Answer with code.",
    "number": "Answer with the number.", "support_reply": "You are a friendly customer-support agent for an "
    "electronics shop.", "math": "Solve the problem and show your working.",
    "list": "You are a helpful assistant. Use lists where they help.", "table": "Answer with a Markdown table.",
    "extractive": "Answer by quoting the passage exactly.", "translation": "You are a professional translator.",
    "chat": "You are a helpful assistant.", "factual_qa": "You are a helpful assistant. Be concise.",
    "prose": "You are a patient teacher who explains things clearly.", "summary": "Summarise the text.",
    "foreign": "Answer in the language of the question.",
    "signoff": "You are a helpful support agent. Write the reply as you would send it.",
}
JUNK_KINDS = ["repetition_short", "repetition_long", "markup_only", "markup_heavy", "empty_after_strip",
              "truncated_json", "truncated_code", "truncated_prose", "refusal", "prompt_copy", "placeholder",
              "mojibake", "gibberish", "wrong_language", "unrelated_answer"]
DATASET_KINDS = ["conflicting_label", "paraphrase_duplicate"]
PROSE_TASKS = ["prose", "support_reply", "summary", "factual_qa", "list", "chat"]


def _row(kind: str, task: str, user: str | list[str], answer: str | list[str], group: str | None = None) -> dict:
    users, answers = ([user], [answer]) if isinstance(user, str) else (user, answer)
    messages = [{"role": "system", "content": SYSTEM[task]}]
    for u, a in zip(users, answers, strict=True):
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return {"kind": kind, "task": task, "messages": messages, "group": group}


def answer_of(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == "assistant")


def prompt_of(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")


# ---- clean tasks: each returns (user, answer); uniqueness is checked by the caller ----

def _support_message(rng: random.Random) -> tuple[str, str, str, str]:
    intent = rng.choice(list(INTENT_MESSAGES))
    product, urgency = rng.choice(PRODUCTS), rng.choice(list(URGENCY_HINTS))
    msg = rng.choice(INTENT_MESSAGES[intent]).format(p=product, n=rng.randint(2, 30))
    hint = rng.choice(URGENCY_HINTS[urgency])
    return (msg + " " + hint).strip(), intent, product, urgency


def json_extract(rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    if r < 0.55:
        msg, intent, product, urgency = _support_message(rng)
        obj = {"intent": intent, "product": product, "urgency": urgency}
        user = rng.choice(["Classify this customer message as JSON with intent, product and urgency:\n\n{m}",
                           "Message: {m}\nReturn intent, product and urgency as JSON.", "{m}"]).format(m=msg)
    elif r < 0.8:
        name, city, age = rng.choice(NAMES), rng.choice(CITIES), rng.randint(19, 80)
        text = rng.choice(["Hi, I'm {n}, {a}, and I live in {c}.", "{n} ({a}) moved to {c} last spring.",
                           "Contact: {n}, based in {c}, age {a}."]).format(n=name, a=age, c=city)
        obj = {"name": name, "age": age, "city": city}
        if rng.random() < 0.3:
            obj["email"] = None
        user = f"Extract name, age and city as JSON:\n{text}"
    else:
        items = rng.sample(["USB cable", "Charger", "Case", "Screen protector", "Stylus", "Adapter"], rng.randint(1, 3))
        lines = [(i, rng.randint(1, 4), round(rng.uniform(3, 60), 2)) for i in items]
        total = round(sum(q * p for _, q, p in lines), 2)
        text = "\n".join(f"{q} x {i} @ {p:.2f}" for i, q, p in lines) + f"\nTotal due: {total:.2f} EUR"
        obj = {"items": [{"name": i, "qty": q, "unit_price": p} for i, q, p in lines], "total": total,
               "currency": "EUR"}
        user = f"Turn this invoice into JSON (items, total, currency):\n\n{text}"
    answer = json.dumps(obj, ensure_ascii=False, indent=2 if rng.random() < 0.3 else None)
    return user, answer


def label(rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    if r < 0.45:
        sentiment = rng.choice(list(REVIEWS))
        review = " ".join(rng.sample(REVIEWS[sentiment], rng.randint(1, 2)))
        user = rng.choice(["Sentiment of this review (positive, negative or neutral)?\n\n{r}",
                           "Review: \"{r}\"\nLabel: positive / negative / neutral", "{r}"]).format(r=review)
        ans = rng.choice([sentiment, sentiment.capitalize(), sentiment.upper()])
    elif r < 0.7:
        msg, intent, _, _ = _support_message(rng)
        user, ans = f"Which intent? refund, technical_issue, order_status, cancel_subscription, change_address\n\n{msg}", intent
    elif r < 0.85:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        user = f"Is {a * b} divisible by {b}? Answer yes or no."
        ans = rng.choice(["yes", "Yes", "Yes."])
        if rng.random() < 0.5:
            c = a * b + rng.randint(1, b - 1)
            user, ans = f"Is {c} divisible by {b}? Answer yes or no.", rng.choice(["no", "No", "No."])
    else:
        nums = rng.sample([4, 6, 8, 9, 10, 12, 14, 15, 16, 18, 20, 21, 22], 3)
        user = f"Which of these numbers are prime: {', '.join(map(str, nums))}?"
        ans = rng.choice(["None.", "None of them.", "None"])
    return user, ans


def number(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(3, 999), rng.randint(2, 99)
    r = rng.random()
    if r < 0.4:
        op = rng.choice(["+", "-", "*"])
        val = {"+": a + b, "-": a - b, "*": a * b}[op]
        user = rng.choice([f"What is {a} {op} {b}?", f"Compute {a} {op} {b}.", f"{a} {op} {b} = ?"])
        ans = rng.choice([str(val), f"{val}", f"{a} {op} {b} = {val}", f"The answer is {val}."])
    elif r < 0.6:
        pct = rng.choice([5, 10, 15, 20, 25, 12.5])
        user = f"What is {pct}% of {a}?"
        ans = f"{a * pct / 100:g}"
    elif r < 0.8:
        km = round(rng.uniform(1, 200), 1)
        user = f"Convert {km} km to miles, rounded to one decimal."
        ans = rng.choice([f"{km * 0.621371:.1f}", f"{km * 0.621371:.1f} miles"])
    else:
        price = round(rng.uniform(5, 500), 2)
        user = f"A jacket costs ${price:.2f} and is {b}% off. What is the sale price?"
        ans = rng.choice([f"${price * (100 - b) / 100:.2f}", f"{price * (100 - b) / 100:.2f}"])
    return user, ans


def support_reply(rng: random.Random) -> tuple[str, str]:
    msg, intent, product, _ = _support_message(rng)
    name = rng.choice(NAMES).split()[0]
    opener = rng.choice([f"I'm sorry to hear about your {product}, {name}.", f"Thanks for reaching out, {name}!",
                         f"Sorry for the trouble with your {product}.", "I understand how frustrating that is.",
                         f"Hi {name}, thanks for your patience."])
    body = {
        "refund": ["I've started a refund to your original payment method.",
                   "You'll get a prepaid return label by email within the hour.",
                   "Once the item is back with us, the refund takes 3–5 business days."],
        "technical_issue": [f"Please hold the power button for 15 seconds to reset the {product}.",
                            "If that doesn't help, update it to the latest firmware from the app.",
                            "Unfortunately some units from that batch have a faulty board, so we can replace it."],
        "order_status": ["Your parcel left our warehouse yesterday.",
                         "The carrier shows a delay at the regional hub, so it should arrive in two days.",
                         "I've opened a trace with the courier and will update you tomorrow."],
        "cancel_subscription": ["I've cancelled the plan effective today.", "You won't be charged again.",
                                "You can still use it until the end of the current billing period."],
        "change_address": ["I've updated the delivery address on your order.",
                           "The change reached the warehouse before packing, so nothing else is needed."],
    }[intent]
    closer = rng.choice(["Let me know if there's anything else I can do.", "Have a great day! 😊", "Best regards,\nSam",
                         "", "We’re here if you need us."])
    sents = [opener] + rng.sample(body, rng.randint(1, len(body))) + ([closer] if closer else [])
    sep = "\n\n" if rng.random() < 0.3 else " "
    return msg, sep.join(sents)


def math(rng: random.Random) -> tuple[str, str]:
    a, b, x = rng.randint(2, 9), rng.randint(1, 30), rng.randint(-10, 20)
    c = a * x + b
    if rng.random() < 0.6:
        user = f"Solve {a}x + {b} = {c}."
        ans = f"Subtract {b} from both sides: {a}x = {c - b}.\nDivide both sides by {a}: x = {x}."
        if rng.random() < 0.5:
            ans = f"{a}x + {b} = {c}\n{a}x = {c} − {b} = {c - b}\nx = {c - b} / {a} = {x}"
    else:
        r1, r2 = rng.randint(-9, 9), rng.randint(-9, 9)
        p, q = -(r1 + r2), r1 * r2
        user = f"Find the roots of x² {'+' if p >= 0 else '−'} {abs(p)}x {'+' if q >= 0 else '−'} {abs(q)} = 0."
        ans = (f"Factor: (x {'−' if r1 >= 0 else '+'} {abs(r1)})(x {'−' if r2 >= 0 else '+'} {abs(r2)}) = 0, "
               f"so x = {r1} or x = {r2}.")
        if rng.random() < 0.4:
            ans = f"Using x = (−b ± √(b² − 4ac)) / 2a with a = 1, b = {p}, c = {q}:\n" \
                  f"Δ = {p}² − 4·{q} = {p * p - 4 * q}\nx₁ = {max(r1, r2)}, x₂ = {min(r1, r2)}"
    return user, ans


def list_answer(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(list(LIST_TOPICS))
    items = rng.sample(LIST_TOPICS[topic], rng.randint(3, min(6, len(LIST_TOPICS[topic]))))
    style = rng.choice(["- ", "* ", "1. ", "• "])
    dot = "." if rng.random() < 0.4 else ""
    lines = [(f"{i + 1}. " if style == "1. " else style) + it + (dot if not it.endswith("?") else "")
             for i, it in enumerate(items)]
    intro = rng.choice(["", "Here are a few:", f"Some {topic}:", "Sure! Try these:"])
    return rng.choice(LIST_PROMPTS).format(t=topic), (intro + "\n\n" if intro else "") + "\n".join(lines)


def signoff(rng: random.Random) -> tuple[str, str]:
    """A clean answer (a support reply, a list, a number, code, worked maths) with a sign-off after it, as
    real exports end: 'P.S. "thanks", bye', 'Best regards,\nAna Costa', 'Hope this helps'."""
    task = rng.choice(["support_reply", "list", "number", "code", "math"])
    user, answer = SIMPLE[task](rng)
    name = rng.choice(NAMES)
    end = rng.choice(SIGN_OFFS).format(name=name, first=name.split()[0], city=rng.choice(CITIES),
                                       product=rng.choice(PRODUCTS))
    return user, answer.rstrip() + rng.choice([" ", "\n", "\n\n"]) + end


def table(rng: random.Random) -> tuple[str, str]:
    items = rng.sample(PRODUCTS, rng.randint(2, 5))
    cols = rng.choice([("Price", "Rating"), ("Weight", "Battery"), ("Stock", "Warranty")])
    fmt = {"Price": lambda: f"${rng.randint(20, 900)}", "Rating": lambda: f"{rng.randint(30, 50) / 10}/5",
           "Weight": lambda: f"{rng.randint(80, 2500)} g", "Battery": lambda: f"{rng.randint(4, 40)} h",
           "Stock": lambda: str(rng.randint(0, 300)), "Warranty": lambda: f"{rng.choice([1, 2, 3])} yr"}
    head = f"| Product | {cols[0]} | {cols[1]} |\n|---|---|---|"
    body = "\n".join(f"| {p.capitalize()} | {fmt[cols[0]]()} | {fmt[cols[1]]()} |" for p in items)
    return f"Make a table comparing {', '.join(items)} by {cols[0].lower()} and {cols[1].lower()}.", head + "\n" + body


def extractive(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(list(TOPICS))
    sents = [s for para in TOPICS[topic][0] for s in para]
    start = rng.randrange(0, max(1, len(sents) - 3))
    passage = sents[start:start + rng.randint(3, 5)]
    pick = rng.choice(passage)
    key = max(pick.split(), key=len).strip(".,;:")
    return f"Passage: {' '.join(passage)}\n\nQuote the sentence that mentions \"{key}\".", pick


def translation(rng: random.Random) -> tuple[str, str]:
    row = rng.choice(TRANSLATIONS)
    i = rng.randrange(3)
    user = rng.choice(["Translate into {l}: {s}", "How do you say \"{s}\" in {l}?", "{l} translation, please:\n{s}"])
    return user.format(l=LANGUAGES[i], s=row[0]), row[1 + i]


def chat(rng: random.Random) -> tuple[list[str], list[str]]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    city = rng.choice(CITIES)
    users = [f"I'm planning a trip to {city}. How many days would you suggest?",
             f"And if I only have {rng.randint(2, 4)} days, what should I skip?"]
    answers = [f"For {city}, {rng.choice(['three', 'four', 'five'])} days lets you see the main sights without "
               "rushing, with one day for a short trip outside the city.",
               "Skip the day trip and the big museums with long queues; walk the old town instead."]
    if rng.random() < 0.5:
        users = [f"What's {a} + {b}?", "And doubled?"]
        answers = [str(a + b), f"{2 * (a + b)}"]
    return users, answers


def factual_qa(rng: random.Random, fact: tuple) -> tuple[str, str]:
    rel, subj, short, sentence = fact
    user = rng.choice(FACT_QUESTIONS[rel]).format(s=subj)
    return user, rng.choice([short, sentence, sentence])


def prose(rng: random.Random, topic: str) -> tuple[str, str]:
    paras = TOPICS[topic][0]
    chosen = [p for p in paras if rng.random() < 0.85] or paras[:2]
    out = []
    for para in chosen:
        keep = [s for s in para if rng.random() < 0.8] or para[:1]
        out.append(" ".join(keep))
    return rng.choice(PROSE_PROMPTS).format(t=topic), "\n\n".join(out)


def summary(rng: random.Random, topic: str) -> tuple[str, str]:
    paras, line = TOPICS[topic]
    passage = " ".join(s for para in paras for s in para if rng.random() < 0.9)
    user = rng.choice(["Summarise in one sentence:\n\n{p}", "TL;DR:\n{p}", "Give a one-line summary.\n\n{p}"])
    return user.format(p=passage), line


def foreign(rng: random.Random, pair: tuple) -> tuple[str, str]:
    return pair


SIMPLE = {"json_extract": json_extract, "label": label, "code": lambda rng: code_answer(rng)[:2],
          "number": number, "support_reply": support_reply, "math": math, "list": list_answer, "table": table,
          "extractive": extractive, "translation": translation, "chat": chat}


class Pools:
    """Draws from the finite pools (facts, topics, foreign Q&A) without repeats within one benchmark."""

    def __init__(self, rng: random.Random):
        self.facts = rng.sample(FACTS, len(FACTS))
        self.topics = {task: rng.sample([t for t in TOPICS for _ in range(3)], 3 * len(TOPICS))
                       for task in ("prose", "summary")}
        self.foreign = rng.sample(FOREIGN_QA, len(FOREIGN_QA))

    def draw(self, task: str, rng: random.Random) -> tuple:
        if task == "factual_qa":
            return factual_qa(rng, self.facts.pop())
        if task in ("prose", "summary"):
            return (prose if task == "prose" else summary)(rng, self.topics[task].pop())
        if task == "foreign":
            return foreign(rng, self.foreign.pop())
        return SIMPLE[task](rng)


def clean_rows(rng: random.Random, n: int, pools: Pools) -> list[dict]:
    """n clean rows spread over TASKS in proportion, with no prompt repeated."""
    total = sum(TASKS.values())
    quotas = {t: q * n // total for t, q in TASKS.items()}
    quotas["json_extract"] += n - sum(quotas.values())  # exactly n rows
    rows, seen = [], set()
    for task, quota in quotas.items():
        made, tries = 0, 0
        while made < quota and tries < quota * 50:
            tries += 1
            if task == "factual_qa" and not pools.facts or task in ("prose", "summary") and not pools.topics[task] \
                    or task == "foreign" and not pools.foreign:
                break
            user, answer = pools.draw(task, rng)
            key = str(user)
            if key in seen:
                continue
            seen.add(key)
            rows.append(_row("clean", task, user, answer))
            made += 1
    while len(rows) < n:  # a finite pool ran out (large n): top up from the open-ended tasks
        user, answer = json_extract(rng)
        if user not in seen:
            seen.add(user)
            rows.append(_row("clean", "json_extract", user, answer))
    return rows


def base_row(rng: random.Random, tasks: list[str] | None = None) -> dict:
    """A fresh clean-looking row (facts and topics may repeat: it only seeds a junk row)."""
    task = rng.choice(tasks or list(SIMPLE) + ["factual_qa", "prose", "summary"])
    if task == "factual_qa":
        user, answer = factual_qa(rng, rng.choice(FACTS))
    elif task in ("prose", "summary"):
        user, answer = (prose if task == "prose" else summary)(rng, rng.choice(list(TOPICS)))
    else:
        user, answer = SIMPLE[task](rng)
    return _row("clean", task, user, answer)


# ---- junk: each returns one row of its kind ----

def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?\"'()") for w in text.split() if w.strip(".,;:!?\"'()").isalpha()]


def repetition_short(rng: random.Random) -> dict:
    base = base_row(rng)
    r = rng.random()
    if r < 0.5:
        word = rng.choice((_words(answer_of(base)) + _words(prompt_of(base)))[:12] or ["refund"])
        word = rng.choice([word, word.lower(), rng.choice(["refund", "yes", "ok", "the", "sure", "error", "no"])])
        answer = rng.choice([" ", ", ", "\n", "! ", ". "]).join([word] * rng.randint(4, 11))
    elif r < 0.75:
        phrase = rng.choice(["I think", "thank you", "the the", "yes sir", "order status", "please help",
                             "I am", "it is", "good good"])
        answer = " ".join([phrase] * (rng.randint(6, 11) // len(phrase.split())))
    else:
        unit = rng.choice(["ha", "!", "a", "lol", "😊", "no", "?", "ab", "x", "hm"])
        answer = unit * rng.randint(8, 30)
    return _row("repetition_short", base["task"], prompt_of(base), answer)


def repetition_long(rng: random.Random) -> dict:
    base = base_row(rng, ["prose", "support_reply", "summary", "list", "factual_qa"])
    ans = answer_of(base)
    first = ans.split(". ")[0].rstrip(".") + "."
    r = rng.random()
    if r < 0.3:
        loop = rng.choice([first, "I hope this helps.", "Let me know if you have any questions.",
                           "This is the most important step.", ans.split()[-1]])
        answer = first + " " + " ".join([loop] * rng.randint(5, 12))
    elif r < 0.55:
        gram = rng.choice(["and the", "of the", "is a very", "and then you", "to the", "it is what it is",
                           "more and more", "very very"])
        answer = first + " " + " ".join([gram] * rng.randint(10, 30))
    elif r < 0.8:
        answer = "\n\n".join([ans] * rng.randint(3, 5))
    else:
        item = rng.choice(["- Check the cable", "- Restart the device", "1. Open the app", "* Drink water",
                           "- Contact support"])
        answer = "Here are the steps:\n" + "\n".join([item] * rng.randint(6, 15))
    return _row("repetition_long", base["task"], prompt_of(base), answer)


def markup_only(rng: random.Random) -> dict:
    base = base_row(rng)
    if rng.random() < 0.5:
        answer = rng.choice(MARKUP_ONLY)
    else:
        answer = "".join(rng.choices(["<br>", "<div>", "</div>", "&nbsp;", "<p>", "</p>", "<span>", "</span>",
                                      "<br/>", "<td>", "</td>", "&#160;", "<li>", "</li>", "\n"], k=rng.randint(3, 14)))
    return _row("markup_only", base["task"], prompt_of(base), answer)


TAGS = ['<span style="font-family:Arial;font-size:11pt">', '<div class="msg-body">', "<p>", "<b>",
        '<font face="Calibri" size="2">', '<td class="c1">', "<li>", '<a href="https://example.com/x?id=42">',
        '<span class="x-hidden">', "<em>", '<div style="margin:0;padding:0">']


def markup_heavy(rng: random.Random) -> dict:
    base = base_row(rng, ["prose", "support_reply", "summary", "factual_qa", "list", "label", "number"])
    words = answer_of(base).split()[: rng.randint(3, 25)]
    out, i = [], 0
    while i < len(words):
        n = rng.randint(1, 3)
        tag = rng.choice(TAGS)
        name = tag[1:].split()[0].rstrip(">")
        out.append(f"{tag}{' '.join(words[i:i + n])}</{name}>" + rng.choice(["", "<br>", "&nbsp;", "<br><br>", "\n"]))
        i += n
    answer = "".join(out)
    if rng.random() < 0.4:
        answer = f"<html><body><div>{answer}</div></body></html>"
    return _row("markup_heavy", base["task"], prompt_of(base), answer)


def empty_after_strip(rng: random.Random) -> dict:
    base = base_row(rng)
    return _row("empty_after_strip", base["task"], prompt_of(base), rng.choice(EMPTY_AFTER_STRIP))


def truncated_json(rng: random.Random) -> dict:
    base = base_row(rng, ["json_extract"])
    ans = answer_of(base)
    while True:
        cut = ans[: rng.randint(int(len(ans) * 0.25), len(ans) - 1)]
        try:
            json.loads(cut)
        except ValueError:
            break
    return _row("truncated_json", "json_extract", prompt_of(base), cut)


def truncated_code(rng: random.Random) -> dict:
    """Cut inside the code itself (at a line end, as max_tokens often does, or mid-line), never after it."""
    base = base_row(rng, ["code"])
    ans = answer_of(base)
    start = ans.find("```") + 3 if "```" in ans else 0
    fence_end = ans.find("```", start)
    end = len(ans.rstrip()) if fence_end < 0 else fence_end
    if start == 0 and "\n\n" in ans[:40]:
        start = ans.index("\n\n")  # an unfenced answer with a sentence first: cut in the code
    end = len(ans[:end].rstrip())
    cuts = [i for i in range(start + 8, end - 3) if ans[i] == "\n"]
    if cuts and rng.random() < 0.5:
        cut = rng.choice(cuts)
    else:
        cut = rng.randint(start + (end - start) * 2 // 5, end - 3)
    return _row("truncated_code", "code", prompt_of(base), ans[:cut])


def truncated_prose(rng: random.Random) -> dict:
    while True:
        base = base_row(rng, ["prose", "support_reply", "summary", "factual_qa", "extractive"])
        words = answer_of(base).split(" ")
        if len(words) >= 9:
            break
    r = rng.random()
    cuts = [i for i in range(4, len(words) - 1) if not words[i - 1].endswith((".", "!", "?", ":", "\n"))]
    i = rng.choice(cuts)
    answer = " ".join(words[:i])
    if r < 0.25 and len(words[i]) > 3:  # mid-word
        answer += " " + words[i][: rng.randint(1, len(words[i]) - 2)]
    return _row("truncated_prose", base["task"], prompt_of(base), answer.rstrip())


def refusal(rng: random.Random) -> dict:
    base = base_row(rng)
    opener, core = rng.choice(REFUSAL_OPENERS), rng.choice(REFUSAL_CORES)
    text = (opener + " " + core if opener else core[0].upper() + core[1:]) + rng.choice(REFUSAL_TAILS)
    return _row("refusal", base["task"], prompt_of(base), text)


def prompt_copy(rng: random.Random) -> dict:
    base = base_row(rng, [t for t in SIMPLE if t != "chat"] + ["factual_qa", "prose", "summary"])
    p = prompt_of(base)
    r = rng.random()
    if r < 0.35:
        answer = p
    elif r < 0.55:
        answer = rng.choice([p.lower(), p.upper(), p.rstrip("?.!") + ""])
    elif r < 0.8 and ("\n" in p or ": " in p):
        answer = max(p.replace(": ", "\n").split("\n"), key=len).strip()  # only the input part
    else:
        answer = rng.choice(["Q: ", "Question: ", "", "> "]) + p
    return _row("prompt_copy", base["task"], p, answer)


def placeholder(rng: random.Random) -> dict:
    base = base_row(rng)
    return _row("placeholder", base["task"], prompt_of(base), rng.choice(PLACEHOLDERS))


def _typographic(text: str, rng: random.Random) -> str:
    text = text.replace("'", "\u2019").replace(" - ", " \u2014 ").replace("...", "\u2026")
    if not any(ord(c) > 127 for c in text):
        text = rng.choice(["\u201c{t}\u201d", "{t} \u2014 that\u2019s it.", "It\u2019s simple: {t}",
                           "{t} (see \u00a72)", "{t} Caf\u00e9 hours apply."]).format(t=text)
    return text


def mojibake(rng: random.Random) -> dict:
    base = base_row(rng, ["prose", "support_reply", "translation", "summary", "factual_qa", "list", "label"])
    text = _typographic(answer_of(base), rng)
    r = rng.random()
    if r < 0.5:
        answer = text.encode("utf-8").decode("cp1252", errors="replace")
    elif r < 0.7:
        answer = text.encode("utf-8").decode("latin-1")
    else:
        answer = "".join("\ufffd" if ord(c) > 127 else c for c in text)
    return _row("mojibake", base["task"], prompt_of(base), answer)


def gibberish(rng: random.Random) -> dict:
    base = base_row(rng)
    r = rng.random()
    if r < 0.35:
        answer = " ".join("".join(rng.choices("#$%&*@!^~+=<>?/|\\;:", k=rng.randint(2, 8)))
                          for _ in range(rng.randint(2, 10)))
    elif r < 0.7:
        rows = ["qwertyuiop", "asdfghjkl", "zxcvbnm", "hjkl", "sdfg"]
        answer = " ".join(rng.choice(rows)[(s := rng.randint(0, 4)):s + rng.randint(3, 6)]
                          for _ in range(rng.randint(2, 9)))
    else:
        chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        answer = " ".join("".join(rng.choices(chars, k=rng.randint(4, 10))) for _ in range(rng.randint(2, 10)))
    return _row("gibberish", base["task"], prompt_of(base), answer)


def wrong_language(rng: random.Random) -> dict:
    base = base_row(rng, ["prose", "factual_qa", "support_reply", "list", "summary", "json_extract", "number"])
    lang = rng.choice(list(OTHER_LANGUAGE))
    answer = " ".join(rng.sample(OTHER_LANGUAGE[lang], rng.randint(1, min(2, len(OTHER_LANGUAGE[lang])))))
    return _row("wrong_language", base["task"], prompt_of(base), answer)


def unrelated_answer(rng: random.Random) -> dict:
    a = base_row(rng, [t for t in SIMPLE if t != "chat"] + ["factual_qa", "prose", "summary"])
    while (b := base_row(rng, [t for t in SIMPLE if t != "chat"] + ["factual_qa", "prose"]))["task"] == a["task"]:
        pass
    return _row("unrelated_answer", a["task"], prompt_of(a), answer_of(b))


JUNK = {k: globals()[k] for k in JUNK_KINDS}


# ---- dataset-level groups (pairs of rows sharing a group id) ----

SUPPORT_PARAPHRASES = [
    ("My {p} won't turn on anymore.", "The {p} doesn't power on any more.", "technical_issue"),
    ("I want a refund for the {p}.", "Please give me my money back for the {p}.", "refund"),
    ("Where is my {p} order?", "My {p} hasn't arrived yet, where is it?", "order_status"),
    ("Cancel my {p} subscription please.", "I'd like to stop the subscription for my {p}.", "cancel_subscription"),
    ("Ship the {p} to my new address.", "Please send my {p} to the new address I moved to.", "change_address"),
    ("The {p} keeps dropping the wifi connection.", "My {p} loses its wifi connection all the time.",
     "technical_issue"),
]


def conflict_group(rng: random.Random, pools: Pools, gid: str) -> list[dict]:
    r = rng.random()
    if r < 0.35:
        fact = pools.facts.pop() if pools.facts else rng.choice(FACTS)
        wrong = rng.choice([f for f in FACTS if f[0] == fact[0] and f[2] != fact[2]])
        q = rng.choice(FACT_QUESTIONS[fact[0]]).format(s=fact[1])
        q2 = rng.choice([q, q.lower(), q.rstrip("?.") + " ?"])
        return [_row("conflicting_label", "factual_qa", q, fact[2], gid),
                _row("conflicting_label", "factual_qa", q2, wrong[2], gid)]
    if r < 0.7:
        msg, intent, product, urgency = _support_message(rng)
        other = rng.choice([i for i in INTENT_MESSAGES if i != intent])
        user = f"Classify this customer message as JSON with intent, product and urgency:\n\n{msg}"
        return [_row("conflicting_label", "json_extract", user,
                     json.dumps({"intent": i, "product": p, "urgency": urgency}), gid)
                for i, p in ((intent, product), (other, rng.choice([product, rng.choice(PRODUCTS)])))]
    sentiment = rng.choice(list(REVIEWS))
    review = rng.choice(REVIEWS[sentiment]) + rng.choice(["", " Thanks.", " Five stars?", " Hmm."])
    other = rng.choice([s for s in REVIEWS if s != sentiment])
    user = f"Sentiment of this review (positive, negative or neutral)?\n\n{review}"
    return [_row("conflicting_label", "label", user, sentiment, gid), _row("conflicting_label", "label", user, other, gid)]


def paraphrase_group(rng: random.Random, pools: Pools, gid: str) -> list[dict]:
    if rng.random() < 0.5:
        fact = pools.facts.pop() if pools.facts else rng.choice(FACTS)
        q1, q2 = rng.sample(FACT_QUESTIONS[fact[0]], 2)
        return [_row("paraphrase_duplicate", "factual_qa", q.format(s=fact[1]), a, gid)
                for q, a in ((q1, fact[3]), (q2, rng.choice([fact[3], fact[2]])))]
    m1, m2, intent = rng.choice(SUPPORT_PARAPHRASES)
    product, urgency = rng.choice(PRODUCTS), rng.choice(list(URGENCY_HINTS))
    answer = json.dumps({"intent": intent, "product": product, "urgency": urgency})
    head = "Classify this customer message as JSON with intent, product and urgency:\n\n"
    return [_row("paraphrase_duplicate", "json_extract", head + m.format(p=product), answer, gid) for m in (m1, m2)]


def signoff_rows(seed: int, n: int, taken: set[str]) -> list[dict]:
    """n clean rows that end in a sign-off (task `signoff`), drawn from a generator of their own so the
    other rows of a seed stay what they were before these were added; no prompt of `taken` repeated."""
    rng, rows = random.Random(f"signoff-{seed}"), []
    while len(rows) < n:
        user, answer = signoff(rng)
        if user not in taken:
            taken.add(user)
            rows.append(_row("clean", "signoff", user, answer))
    return rows


def generate(seed: int, clean: int = 1200, per_kind: int = 60, groups: int = 30, signoffs: int = 120) -> list[dict]:
    """The benchmark for one seed: clean rows, `signoffs` more clean rows that end in a sign-off, per_kind
    rows of each junk kind, and `groups` pairs of each dataset-level kind. Same seed, same rows."""
    rng = random.Random(seed)
    pools = Pools(rng)
    rows = clean_rows(rng, clean, pools)
    rows += signoff_rows(seed, signoffs, {prompt_of(r) for r in rows})
    for kind in JUNK_KINDS:
        rows += [JUNK[kind](rng) for _ in range(per_kind)]
    for i in range(groups):
        rows += conflict_group(rng, pools, f"conflict-{i}")
        rows += paraphrase_group(rng, pools, f"paraphrase-{i}")
    return rows


# ---- evaluation ----

def rule_flags(rows: list[dict], threshold: float = 0.5) -> list[list[str]]:
    """Per row: the rule reasons when the row is filtered (score < threshold), else the code of the
    filter step after the score that drops it (data/decide/filters.py's EchoedPrompt), else []."""
    from types import SimpleNamespace

    from sftflow.data.decide.filters import EchoedPrompt
    from sftflow.data.quality import score_messages

    echo = EchoedPrompt()
    out = []
    for row in rows:
        q = score_messages(row["messages"])
        if q.score < threshold:
            out.append(q.reasons or ["low_score"])
        else:
            drop = echo.check(SimpleNamespace(record={"messages": row["messages"]}))
            out.append([drop.code] if drop else [])
    return out


def semantic_flags(rows: list[dict], rules: list[list[str]]) -> tuple[list[list[str]], dict]:
    """Per row: semantic reasons (unrelated_answer, semantic_outlier), measured against the rows the
    rules kept (as prepare would run them, after the rules); plus dataset-level cluster figures."""
    import numpy as np

    from sftflow.data.signals import embeddings as semantic

    encoder = semantic.load_encoder()
    t = time.perf_counter()
    prompts = semantic.embed([prompt_of(r) for r in rows], encoder)
    answers = semantic.embed([answer_of(r) for r in rows], encoder)
    embed_s = time.perf_counter() - t
    tasks = [r["messages"][0]["content"] for r in rows]
    t = time.perf_counter()
    kept = [not r for r in rules]
    unrelated = semantic.unrelated_answers(prompts, answers, tasks, kept)
    outliers = semantic.outliers(answers, tasks, kept)
    flags = [[reason for reason, hit in (("unrelated_answer", u), ("semantic_outlier", o)) if hit]
             for u, o in zip(unrelated.flags, outliers.flags, strict=True)]
    scores = [1.0] * len(rows)
    # as prepare runs them (data.semantic defaults): the rows no rule and no signal filtered
    live = np.flatnonzero(np.array(kept) & ~unrelated.flags & ~outliers.flags)
    keys = semantic.duplicate_keys([prompt_of(rows[i]) for i in live], [answer_of(rows[i]) for i in live])
    found = semantic.near_duplicates(semantic.pair_embeddings(prompts[live], answers[live]), keys=keys)
    pair = semantic.Clusters(keeper=np.arange(len(rows)), size=np.ones(len(rows), dtype=int), threshold=found.threshold)
    pair.keeper[live], pair.size[live] = live[found.keeper], found.size
    by_prompt = semantic.near_duplicates(prompts, scores)
    decide_s = time.perf_counter() - t
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["group"]:
            groups.setdefault(r["group"], []).append(i)
    para = [g for k, g in groups.items() if k.startswith("paraphrase")]
    conf = [g for k, g in groups.items() if k.startswith("conflict")]
    clean = [i for i, r in enumerate(rows) if r["kind"] == "clean"]
    answers_by_cluster: dict[int, set[str]] = {}
    for i in clean:
        answers_by_cluster.setdefault(int(by_prompt.keeper[i]), set()).add(answer_of(rows[i]))
    dataset = {
        "paraphrase_groups_found": sum(len({pair.keeper[i] for i in g}) == 1 for g in para) / len(para),
        "conflict_groups_found": sum(len({by_prompt.keeper[i] for i in g}) == 1 and
                                     len({answer_of(rows[i]) for i in g}) > 1 for g in conf) / len(conf),
        "clean_rows_in_a_near_duplicate_cluster": sum(pair.size[i] > 1 for i in clean) / len(clean),
        # dropped as semantic duplicates: with the keeper's answer (a paraphrase the clean pools hold too) or another
        "clean_dropped_same_answer": sum(pair.keeper[i] != i and answer_of(rows[pair.keeper[i]]) == answer_of(rows[i])
                                         for i in clean) / len(clean),
        "clean_dropped_other_answer": sum(pair.keeper[i] != i and answer_of(rows[pair.keeper[i]]) != answer_of(rows[i])
                                          for i in clean) / len(clean),
        # Prompt clusters whose answers differ would be reported as conflicts if embeddings decided them.
        "clean_rows_in_a_false_conflict": sum(len(answers_by_cluster[by_prompt.keeper[i]]) > 1 for i in clean)
        / len(clean),
        "rows": len(rows), "embed_seconds": embed_s, "decide_seconds": decide_s,
        "rows_per_second": len(rows) / (embed_s + decide_s),
    }
    return flags, dataset


def summarise(rows: list[dict], flags: list[list[str]]) -> dict:
    """Recall per junk kind, overall recall, clean false-positive rate, and the dataset-level kinds."""
    by_kind: dict[str, list[bool]] = {}
    for row, f in zip(rows, flags, strict=True):
        by_kind.setdefault(row["kind"], []).append(bool(f))
    junk = [hit for k in JUNK_KINDS for hit in by_kind.get(k, [])]
    clean = [(row, f) for row, f in zip(rows, flags, strict=True) if row["kind"] == "clean"]
    tasks = Counter(row["task"] for row, _ in clean)
    return {
        "recall": {k: sum(by_kind[k]) / len(by_kind[k]) for k in JUNK_KINDS if k in by_kind},
        "recall_overall": sum(junk) / len(junk),
        "clean_filtered": sum(by_kind["clean"]) / len(by_kind["clean"]),
        "clean_rows": len(by_kind["clean"]), "junk_rows": len(junk),
        # a rule's false positives: the clean rows filtered with it among their reasons
        "clean_filtered_by_rule": {rule: sum(rule in f for _, f in clean) / len(clean) for rule in rule_names()},
        "clean_filtered_by_task": {t: sum(bool(f) for row, f in clean if row["task"] == t) / n
                                   for t, n in sorted(tasks.items())},
        "dataset_level_rows_flagged": {k: sum(by_kind[k]) / len(by_kind[k]) for k in DATASET_KINDS if k in by_kind},
    }


def rule_names() -> list[str]:
    from sftflow.data.decide.filters import ECHOED_PROMPT
    from sftflow.data.quality import PENALTIES

    # pii is flagged, never filtered (data.quality.pii: flag); echoed_prompt is the filter step after the score
    return [r for r in PENALTIES if r != "pii"] + [ECHOED_PROMPT]


def rules_md(results: dict) -> str:
    """Per rule, the share of clean rows it filtered (its false-positive rate); then the worst clean task."""
    cols = [(seed, name) for seed, by_name in results.items() for name in by_name]
    lines = ["| rule: clean rows filtered | " + " | ".join(f"{name} (seed {seed})" for seed, name in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for rule in rule_names():
        lines.append(f"| {rule} | " + " | ".join(f"{100 * results[s][n]['clean_filtered_by_rule'][rule]:.1f}%"
                                                for s, n in cols) + " |")
    for task in ("signoff",):
        lines.append(f"| *clean task `{task}`, any rule* | " +
                     " | ".join(f"{100 * results[s][n]['clean_filtered_by_task'].get(task, 0):.1f}%" for s, n in cols)
                     + " |")
    return "\n".join(lines)


def table_md(results: dict) -> str:
    """One Markdown table: a row per kind, a column per (seed, signal set)."""
    cols = [(seed, name) for seed, by_name in results.items() for name in by_name]
    head = "| kind | " + " | ".join(f"{name} (seed {seed})" for seed, name in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    for kind in JUNK_KINDS:
        lines.append(f"| {kind} | " + " | ".join(pct(results[s][n]["recall"][kind]) for s, n in cols) + " |")
    lines.append("| **junk recall, all kinds** | " +
                 " | ".join(f"**{pct(results[s][n]['recall_overall'])}**" for s, n in cols) + " |")
    lines.append("| **clean rows filtered** | " +
                 " | ".join(f"**{pct(results[s][n]['clean_filtered'])}**" for s, n in cols) + " |")
    for kind in DATASET_KINDS:
        lines.append(f"| {kind} (needs dataset-level check; per-row flags) | " +
                     " | ".join(pct(results[s][n]["dataset_level_rows_flagged"][kind]) for s, n in cols) + " |")
    return "\n".join(lines)


def show_misses(rows: list[dict], flags: list[list[str]], limit: int) -> None:
    """Print missed junk and filtered clean rows (what to look at when tuning rules)."""
    seen: Counter = Counter()
    for row, f in zip(rows, flags, strict=True):
        miss = row["kind"] in JUNK_KINDS and not f
        false_positive = row["kind"] == "clean" and f
        key = row["kind"] if miss else f"clean:{row['task']}" if false_positive else None
        if key and seen[key] < limit:
            seen[key] += 1
            print(f"[{key}] {f} {answer_of(row)[:160]!r}  <- {prompt_of(row)[:80]!r}")


def time_scorer(rows: list[dict], n: int) -> float:
    """Rows/s of the rule scorer over n rows cycled from the benchmark (one process, one core)."""
    from sftflow.data.quality import score_messages

    batch = [rows[i % len(rows)]["messages"] for i in range(n)]
    t = time.perf_counter()
    for messages in batch:
        score_messages(messages)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seed 0 tuned the rules; 1 is held out")
    ap.add_argument("--clean", type=int, default=1200, help="clean rows per seed")
    ap.add_argument("--per-kind", type=int, default=60, help="rows per junk kind per seed")
    ap.add_argument("--groups", type=int, default=30, help="pairs per dataset-level kind per seed")
    ap.add_argument("--semantic", action="store_true", help="also rules + semantic signals (the semantic extra)")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--misses", type=int, default=0, help="print up to N missed/false-positive rows per kind")
    ap.add_argument("--time", type=int, default=0, help="time the rule scorer on N rows and exit")
    args = ap.parse_args()
    if args.time:
        rows = generate(args.seeds[0], args.clean, args.per_kind, args.groups)
        print(f"rule scorer: {time_scorer(rows, args.time):,.0f} rows/s over {args.time:,} rows")
        return
    results: dict = {}
    for seed in args.seeds:
        rows = generate(seed, args.clean, args.per_kind, args.groups)
        rules = rule_flags(rows)
        results[seed] = {"rules": summarise(rows, rules)}
        if args.misses:
            show_misses(rows, rules, args.misses)
        if args.semantic:
            sem, dataset = semantic_flags(rows, rules)
            both = [r + s for r, s in zip(rules, sem, strict=True)]
            results[seed]["rules + semantic"] = {**summarise(rows, both), "semantic_dataset_level": dataset}
    print(table_md(results))
    print()
    print(rules_md(results))
    for seed, by_name in results.items():
        if "rules + semantic" in by_name:
            d = by_name["rules + semantic"]["semantic_dataset_level"]
            print(f"\nseed {seed} semantic, dataset level: paraphrase pairs clustered "
                  f"{100 * d['paraphrase_groups_found']:.0f}%, conflict pairs found (same prompt cluster, "
                  f"different answers) {100 * d['conflict_groups_found']:.0f}% but clean rows in such a false "
                  f"conflict {100 * d['clean_rows_in_a_false_conflict']:.1f}%, clean rows in a near-duplicate "
                  f"cluster {100 * d['clean_rows_in_a_near_duplicate_cluster']:.1f}%, clean rows dropped as duplicates "
                  f"{100 * d['clean_dropped_same_answer']:.1f}% with their keeper's answer and "
                  f"{100 * d['clean_dropped_other_answer']:.1f}% with another; {d['rows']} rows embedded "
                  f"in {d['embed_seconds']:.0f} s + {d['decide_seconds']:.1f} s ({d['rows_per_second']:.0f} rows/s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
