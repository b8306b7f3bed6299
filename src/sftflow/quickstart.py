"""The built-in quickstart dataset: customer-support messages -> {"intent", "product", "urgency"} JSON.

    python -c "from sftflow.quickstart import write_quickstart_data; print(write_quickstart_data('raw'))"

Generated, not downloaded, so `sftflow init quickstart` works offline and every test sees the
same bytes. The task has to suit the tiny CPU model: a rigid template saturates at 100% in a
minute, so base, tuned and badly tuned runs all look alike, while full variety stays near 0%.
Messages mix paraphrases, product synonyms and descriptions, greetings, sign-offs, order
numbers, typos, a second product that is not the subject, and intent negations ("I don't
want a refund, just ..."); one knob, `variety`, scales all of it (see DEFAULT_VARIETY).

Urgency follows one rule, so it is learnable and checkable:
  high   the message contains a high cue (asap, urgent, today, right away, immediately, ...)
  low    the message contains a low cue (no rush, whenever, not urgent, it can wait, ...)
  medium no cue at all.
A message never carries both kinds; "not urgent" is a low cue despite containing "urgent".

The raw files are deliberately imperfect, like real exports: two formats (Alpaca and OpenAI
chat), a few broken rows and a few exact duplicates, some of them across the two files. The
counts come back from `write_quickstart_data` so tests and data cards can check what
`prepare` rejected.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM_PROMPT = (
    'Read the customer message and answer with JSON: {"intent": ..., "product": ..., "urgency": ...}'
)

INTENTS = (
    "refund",
    "order_status",
    "technical_issue",
    "cancel_subscription",
    "change_address",
    "product_question",
)
PRODUCTS = (
    "headphones",
    "laptop",
    "phone",
    "smartwatch",
    "router",
    "coffee maker",
    "tablet",
    "camera",
)
URGENCIES = ("low", "medium", "high")

ALPACA_FILE = "support_alpaca.jsonl"
CHAT_FILE = "support_chat.jsonl"
ALPACA_SHARE = 0.6  # the rest goes to the chat file
DUPLICATE_SHARE = 0.015  # of each file's clean rows
BROKEN_PER_FILE = 5  # one of each kind listed in _broken_alpaca_rows / _broken_chat_rows

# Difficulty. `variety` (0..1) multiplies every share below and picks how much of each
# phrasing list is used; at 1 the shares apply as written. With the quickstart recipe (LoRA
# r=16, lr 2e-3, 3 epochs, ~1,600 examples) on CPU, a near-rigid version of this task reached
# 100% exact match and variety 1 reached 0-3%: re-measure before moving the default.
DEFAULT_VARIETY = 0.4
SYNONYM_SHARE = 0.7  # the product goes by another name ("notebook", "espresso machine")
DETAIL_SHARE = 0.7  # the product is also described ("the one with the milk frother")
DISTRACTOR_SHARE = 0.25  # a second product is named that is not the subject
FILLER_SHARE = 0.5  # chance of each further off-topic sentence, up to MAX_FILLERS
MAX_FILLERS = 4
CUE_FIRST_SHARE = 0.35  # the urgency cue opens the message rather than closing it
GREETING_SHARE = 0.6
SIGN_OFF_SHARE = 0.5
TYPO_SHARE = 0.15
LOWERCASE_SHARE = 0.12
NO_FINAL_STOP_SHARE = 0.1

# How customers name each product, plainest first. The label is always the name in PRODUCTS.
PRODUCT_NAMES = {
    "headphones": [
        "headphones",
        "headset",
        "pair of headphones",
        "wireless headset",
        "noise-cancelling headset",
    ],
    "laptop": ["laptop", "notebook", "13-inch laptop"],
    "phone": ["phone", "smartphone", "mobile phone"],
    "smartwatch": ["smartwatch", "smart watch", "fitness watch"],
    "router": ["router", "wifi router", "mesh router"],
    "coffee maker": ["coffee maker", "coffee machine", "espresso machine"],
    "tablet": ["tablet", "drawing tablet", "10-inch tablet"],
    "camera": ["camera", "action camera", "digital camera"],
}

# What only that product has. The subject of a message is often described as well as named,
# while a distractor product is only named: reading the whole message tells them apart.
PRODUCT_DETAILS = {
    "headphones": ["padded ear cups", "the foldable headband", "the detachable mic"],
    "laptop": ["the backlit keyboard", "a 512GB drive and the trackpad", "the fingerprint reader"],
    "phone": ["dual SIM slots", "128GB of storage", "the triple rear lens"],
    "smartwatch": ["the heart-rate sensor", "the silicone strap", "step counting and sleep tracking"],
    "router": ["four ethernet ports", "dual-band wifi", "the external antennas"],
    "coffee maker": ["the milk frother", "a glass carafe", "the built-in bean grinder"],
    "tablet": ["the stylus pen", "a detachable keyboard cover", "the 10-inch touchscreen"],
    "camera": ["the zoom lens", "the memory card slot", "4K video recording"],
}
DETAIL_SENTENCES = ["It's the one with {detail}.", "The model with {detail}.", "(The one with {detail}.)"]

# {p} is the product the message is about; {order}, {date}, {street} are optional details.
# Plainest first; the last ones negate another intent on purpose, so keywords are not enough.
TEMPLATES = {
    "refund": [
        "The {p} arrived broken, please refund me.",
        "I want a refund for the {p} I bought {date}.",
        "Can I get my money back for the {p}? It stopped working after a week.",
        "I sent the {p} back two weeks ago and still haven't seen the refund.",
        "Please refund order {order}, the {p} is not what I expected.",
        "How do I return my {p} and get a refund?",
        "I was charged twice for the {p}. I need the extra charge refunded.",
        "The {p} looks nothing like the pictures. I'd like my money back.",
        "Order {order}: the {p} is missing parts. Refund please, I'm done with it.",
        "I don't want a replacement {p}, I want a full refund.",
    ],
    "order_status": [
        "Where is my {p}? I ordered it {date}.",
        "My {p} order {order} still says processing. When will it ship?",
        "Tracking for the {p} hasn't updated in days.",
        "Has my {p} shipped yet?",
        "I'm still waiting on the {p} I ordered. Any update on delivery?",
        "Can you check the status of order {order}? It's a {p}.",
        "The delivery date for my {p} keeps moving. What's going on?",
        "The courier says the {p} was delivered but there is no package here.",
        "I don't want a refund, I just want to know when my {p} will arrive.",
    ],
    "technical_issue": [
        "My {p} keeps restarting on its own.",
        "The {p} won't turn on anymore.",
        "After the last update my {p} is really slow.",
        "My {p} keeps disconnecting every few minutes.",
        "The {p} makes a weird buzzing noise and then shuts off.",
        "I already tried resetting the {p} but it still doesn't work.",
        "The {p} gets really hot and the app says error 42.",
        "Since {date} my {p} won't charge at all.",
        "I'm not asking for a refund, I just need the {p} to work again. It keeps freezing.",
    ],
    "cancel_subscription": [
        "Cancel my {p} care membership before the next billing date.",
        "Please cancel the protection plan on my {p}.",
        "I want to stop the monthly subscription for my {p}.",
        "How do I cancel the cloud plan for the {p}? I don't use it anymore.",
        "I no longer need the premium service for the {p}, please end it.",
        "Stop charging me for the {p} subscription.",
        "I'd like to unsubscribe from the extended warranty for my {p}.",
        "My {p} works fine, I just don't want to pay for the plan anymore. Cancel it please.",
    ],
    "change_address": [
        "Wrong address on my {p} order, can I fix it before it ships?",
        "I need to change the shipping address for my {p} order.",
        "I moved last week. Can you send the {p} to my new address?",
        "Please update the delivery address on order {order}, the {p}.",
        "Can the {p} be delivered to my office instead of my home?",
        "I typed the wrong street for the {p}. The right one is {street}.",
        "Please redirect my {p} package to {street}.",
        "Don't cancel anything, I only need the {p} shipped to {street} instead.",
    ],
    "product_question": [
        "Does the {p} come with a charger?",
        "Is the {p} compatible with older devices?",
        "What is the warranty on the {p}?",
        "Before I buy the {p}: is it waterproof?",
        "How long does the battery on the {p} last?",
        "Can the {p} be used abroad with a different voltage?",
        "Is there a newer model of the {p} coming out soon?",
        "Does the {p} come in any colour other than black?",
        "Not a complaint, just a question: how many years of updates does the {p} get?",
    ],
}

# Cues are the only thing that decides urgency; nothing else in a message may contain them.
# Plainest first; "not urgent" is a low cue that contains a high one.
HIGH_CUES = [
    "This is urgent.",
    "Please help asap.",
    "I need this sorted today.",
    "Please reply as soon as possible.",
    "ASAP please!",
    "Need an answer right away!",
    "Please handle this immediately.",
    "Urgent!!",
]
LOW_CUES = [
    "No rush.",
    "No rush, whenever you can.",
    "It can wait, no hurry.",
    "Whenever you get a chance is fine.",
    "Reply at your convenience.",
    "Not urgent, just wanted to ask.",
    "Not urgent at all.",
]

GREETINGS = [
    "Hi,",
    "Hello,",
    "Hey there,",
    "Good morning,",
    "Dear support,",
    "hi team",
    "To whom it may concern,",
]
NAMES = ["Anna", "Ben", "Carla", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luca"]
SIGN_OFFS = ["Thanks!", "Thank you.", "Cheers, {name}", "Best, {name}", "- {name}", "Regards, {name}", "thx"]
DATES = [
    "on May 3",
    "last Tuesday",
    "two weeks ago",
    "on the 12th",
    "back in March",
    "last month",
    "yesterday",
]
STREETS = ["12 Oak Street", "4 Mill Lane", "88 Harbour Road", "7 Elm Court", "230 King Avenue"]
RELATIVES = ["sister", "dad", "best friend", "son", "partner"]
FILLERS = [
    "I've been a customer for {k} years.",
    "I bought it as a gift for my {relative}.",
    "I checked the FAQ but couldn't find anything.",
    "Your chat line was busy so I'm writing here.",
    "My order number is {order}.",
    "This is the second time I'm writing about this.",
    "You can reach me at {name_lower}@example.com.",
    "We use it every day at home, so it matters a lot to us.",
    "Honestly it has been a long week and this is the last thing I needed.",
    "I ordered through the website, not the app, in case that matters.",
]
# A second product that is NOT the subject: the label must follow the {p} in the template.
DISTRACTOR_PREFIXES = [
    "I love my {q}, but ",
    "My {q} from you works perfectly. ",
    "No problems with the {q} I bought last year. ",
    "Not about my {q} this time. ",
]
DISTRACTOR_SUFFIXES = [
    "(The {q} I got from you is great, by the way.)",
    "I already wrote to you about my {q} last month, that one is solved.",
    "This is about the {p}, not the {q}.",
]
TYPOS = {
    "please": "pls",
    "you": "u",
    "address": "adress",
    "really": "realy",
    "weird": "wierd",
    "doesn't": "doesnt",
    "won't": "wont",
    "I'm": "im",
    "don't": "dont",
    "subscription": "subscribtion",
    "thanks": "thx",
    "warranty": "waranty",
}


def label_to_json(label: dict) -> str:
    """Canonical answer text: compact JSON with the keys in a fixed order, so exact match is fair."""
    ordered = {"intent": label["intent"], "product": label["product"], "urgency": label["urgency"]}
    return json.dumps(ordered, ensure_ascii=False)


def _join_after(prefix: str, sentence: str) -> str:
    """Glue a 'but '-style prefix onto a sentence, lowercasing its first letter unless it is 'I'."""
    if prefix.endswith(", but ") and not sentence.startswith(("I ", "I'")):
        sentence = sentence[0].lower() + sentence[1:]
    return prefix + sentence


def _add_typos(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for i, word in enumerate(words):
        bare = word.rstrip(".,!?:")
        if bare in TYPOS and rng.random() < 0.6:
            words[i] = TYPOS[bare] + word[len(bare) :]
    return " ".join(words)


def _first(items: list, variety: float) -> list:
    """The first 1 + variety * (len - 1) items: lists are ordered from plainest to hardest."""
    return items[: 1 + round(variety * (len(items) - 1))]


def make_example(rng: random.Random, variety: float = DEFAULT_VARIETY) -> tuple[str, dict]:
    """One (customer message, label) pair; all randomness comes from `rng`.

    `variety` scales every source of difficulty at once: 0 is one phrasing per intent with the
    product named plainly and the urgency cue last (close to the rigid template a tiny model
    learns to 100%), 1 is every paraphrase, synonym, distractor, filler and typo at full share.
    """

    def sometimes(share: float) -> bool:
        return rng.random() < share * variety

    intent = rng.choice(INTENTS)
    product = rng.choice(PRODUCTS)
    urgency = rng.choices(URGENCIES, weights=[3, 4, 3])[0]
    name = rng.choice(NAMES)
    other = rng.choice([p for p in PRODUCTS if p != product])
    slots = {
        "p": rng.choice(PRODUCT_NAMES[product][1:]) if sometimes(SYNONYM_SHARE) else product,
        "q": rng.choice(PRODUCT_NAMES[other]),
        "order": rng.choice(["#", "", "A-"]) + str(rng.randint(10000, 99999)),
        "date": rng.choice(DATES),
        "street": rng.choice(STREETS),
        "name": name,
        "name_lower": name.lower(),
        "k": rng.randint(2, 12),
        "relative": rng.choice(RELATIVES),
    }

    body = rng.choice(_first(TEMPLATES[intent], variety)).format(**slots)
    if sometimes(DETAIL_SHARE):
        detail = rng.choice(PRODUCT_DETAILS[product])
        body = body + " " + rng.choice(DETAIL_SENTENCES).format(detail=detail)
    if sometimes(DISTRACTOR_SHARE):
        if rng.random() < 0.6:
            body = _join_after(rng.choice(DISTRACTOR_PREFIXES).format(**slots), body)
        else:
            body = body + " " + rng.choice(DISTRACTOR_SUFFIXES).format(**slots)

    sentences = [body]
    n_fillers = 0
    while n_fillers < MAX_FILLERS and sometimes(FILLER_SHARE):
        n_fillers += 1
    for filler in rng.sample(FILLERS, k=n_fillers):
        sentences.insert(rng.randint(0, len(sentences)), filler.format(**slots))
    if urgency != "medium":
        cue = rng.choice(_first(HIGH_CUES if urgency == "high" else LOW_CUES, variety))
        # Cues open or close the message, never sit inside the product sentence.
        sentences.insert(0 if sometimes(CUE_FIRST_SHARE) else len(sentences), cue)
    message = " ".join(sentences)
    if sometimes(GREETING_SHARE):
        message = rng.choice(GREETINGS) + rng.choice([" ", "\n"]) + message
    if sometimes(SIGN_OFF_SHARE):
        message = message + rng.choice([" ", "\n"]) + rng.choice(SIGN_OFFS).format(**slots)
    if sometimes(TYPO_SHARE):
        message = _add_typos(rng, message)
    if sometimes(LOWERCASE_SHARE):
        message = message.lower()
    if sometimes(NO_FINAL_STOP_SHARE):
        message = message.rstrip(".!")
    return message, {"intent": intent, "product": product, "urgency": urgency}


def _alpaca_row(message: str, label: dict) -> dict:
    # the system prompt in Alpaca's `system` field (LLaMA-Factory's), so an Alpaca row and a chat row with
    # the same message become the same chat messages after conversion: cross-format duplicates are real.
    return {"system": SYSTEM_PROMPT, "instruction": message, "output": label_to_json(label)}


def _chat_row(message: str, label: dict) -> dict:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": message},
            {"role": "assistant", "content": label_to_json(label)},
        ]
    }


def _dump(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def _broken_alpaca_rows(examples: list[tuple[str, dict]]) -> list[str]:
    """Five lines that `prepare` must reject, one per kind of damage."""
    (m0, l0), (m1, l1), (m2, l2), (m3, l3), (m4, l4) = examples
    return [
        _dump(_alpaca_row(m0, l0))[:-1],  # closing brace cut off: not valid JSON
        _dump({"system": SYSTEM_PROMPT, "instruction": m1, "output": ""}),  # empty output
        _dump({"system": SYSTEM_PROMPT, "instruction": m2, "output": l2}),  # output is an object
        _dump({"system": SYSTEM_PROMPT, "instruction": m3}),  # no output key
        _dump({"system": SYSTEM_PROMPT, "instruction": m4, "output": None}),  # output is null
    ]


def _broken_chat_rows(examples: list[tuple[str, dict]]) -> list[str]:
    """Five lines that `prepare` must reject, one per kind of damage."""
    (m0, l0), (m1, l1), (m2, l2), (m3, l3), (m4, l4) = examples
    no_assistant = _chat_row(m1, l1)
    no_assistant["messages"].pop()
    unknown_role = _chat_row(m2, l2)
    unknown_role["messages"][1]["role"] = "customer"
    empty_answer = _chat_row(m3, l3)
    empty_answer["messages"][2]["content"] = ""
    not_a_string = _chat_row(m4, l4)
    not_a_string["messages"][2]["content"] = l4
    return [
        _dump(_chat_row(m0, l0)).replace('"messages": [', '"messages": [[', 1),  # not valid JSON
        _dump(no_assistant),  # no assistant turn to learn from
        _dump(unknown_role),  # role outside system/user/assistant
        _dump(empty_answer),  # empty assistant content
        _dump(not_a_string),  # assistant content is an object, not a string
    ]


def _place(
    rng: random.Random, rows: list[str], duplicates: list[tuple[int, str]], broken: list[str]
) -> list[str]:
    """Insert each duplicate somewhere after its original, then broken rows at evenly spaced lines."""
    lines = list(rows)
    positions = list(range(len(lines)))  # where each original row sits now
    for original, line in duplicates:
        at = rng.randint(positions[original] + 1, len(lines))
        lines.insert(at, line)
        positions = [p + 1 if p >= at else p for p in positions]
    for i, line in enumerate(broken):
        lines.insert((i * 2 + 1) * len(lines) // (2 * len(broken)), line)
    return lines


def write_quickstart_data(
    raw_dir: str | Path, n: int = 2000, seed: int = 0, variety: float = DEFAULT_VARIETY
) -> dict:
    """Write the raw files and return counts: {file_name: {"rows": .., "broken": .., "duplicates": ..}}.

    `n` is the number of distinct, valid examples over both files; broken rows and duplicates
    come on top, so for each file rows - broken - duplicates is its share of `n`. A duplicate
    in the chat file may repeat an Alpaca row (the Alpaca file is listed first in the config).
    `variety` is passed to `make_example`.
    """
    if n < 20:
        raise ValueError(f"n must be at least 20 to place broken rows and duplicates, got {n}")
    if not 0.0 <= variety <= 1.0:
        raise ValueError(f"variety must be between 0 and 1, got {variety}")
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[tuple[str, dict]] = []
    # Broken rows get fresh messages too, so no text appears once broken and once clean.
    wanted, attempts = n + 2 * BROKEN_PER_FILE, 0
    while len(examples) < wanted:
        attempts += 1
        if attempts > 50 * wanted:
            raise ValueError(
                f"variety {variety} allows too few distinct messages for n={n}; raise variety or lower n"
            )
        message, label = make_example(rng, variety)
        key = " ".join(message.lower().split())  # close variants would count as duplicates downstream
        if key in seen:
            continue
        seen.add(key)
        examples.append((message, label))

    n_alpaca = round(n * ALPACA_SHARE)
    alpaca_examples = examples[:n_alpaca]
    chat_examples = examples[n_alpaca:n]
    broken_examples = examples[n:]

    alpaca_rows = [_dump(_alpaca_row(m, lab)) for m, lab in alpaca_examples]
    alpaca_dups = [
        (i, alpaca_rows[i]) for i in rng.sample(range(n_alpaca), max(1, round(n_alpaca * DUPLICATE_SHARE)))
    ]
    alpaca_lines = _place(
        rng, alpaca_rows, alpaca_dups, _broken_alpaca_rows(broken_examples[:BROKEN_PER_FILE])
    )

    chat_rows = [_dump(_chat_row(m, lab)) for m, lab in chat_examples]
    n_chat_dups = max(2, round(len(chat_rows) * DUPLICATE_SHARE))
    # Half of the chat duplicates repeat an Alpaca row: they may sit anywhere in the chat file.
    cross = [_dump(_chat_row(*alpaca_examples[i])) for i in rng.sample(range(n_alpaca), n_chat_dups // 2)]
    within = [(i, chat_rows[i]) for i in rng.sample(range(len(chat_rows)), n_chat_dups - len(cross))]
    chat_lines = _place(rng, chat_rows, within, _broken_chat_rows(broken_examples[BROKEN_PER_FILE:]))
    for line in cross:
        chat_lines.insert(rng.randint(0, len(chat_lines)), line)

    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for file_name, lines, n_dups in [
        (ALPACA_FILE, alpaca_lines, len(alpaca_dups)),
        (CHAT_FILE, chat_lines, n_chat_dups),
    ]:
        (raw_dir / file_name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        counts[file_name] = {"rows": len(lines), "broken": BROKEN_PER_FILE, "duplicates": n_dups}
    return counts
