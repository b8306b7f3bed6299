"""A tiny pre-trained Llama-style chat model, built offline, for tests, examples and the quickstart.

    python -c "from sftflow.model.tiny import build_tiny_model; build_tiny_model('tiny-model')"

Nothing here downloads anything. We generate a small "general knowledge" corpus (greetings,
capitals, colours, animals, calendar, opposites, small sums, short prose), train a byte-level
BPE tokenizer on it, and pre-train a ~1.8M parameter Llama for about two minutes on one CPU thread.
The result loads with `AutoModelForCausalLM` / `AutoTokenizer` like any hub model, and it has
real behaviour to preserve: "Hello" gets a polite greeting, "What is 2 + 3?" gets "2 + 3 = 5.".
Fine-tuning tests measure forgetting against exactly that behaviour.

The quickstart task (customer-support message -> JSON intent) is deliberately NOT in the
pre-training corpus: the tokenizer sees JSON-like and support-like text so that `{"`, `":`,
`"}` are single tokens, but the model has to learn the task from fine-tuning.

Builds are cached by a key over everything that changes the weights (see `_cache_key`):
`$SFTFLOW_CACHE/tiny-model-<key>`, default `~/.cache/sftflow/tiny-model-<key>`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sftflow.model.template import (
    BOS_TOKEN,
    DEFAULT_CHAT_TEMPLATE,
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
)

# Bump when the corpus, tokenizer or training recipe changes: it invalidates every cached build.
BUILDER_VERSION = 2

VOCAB_SIZE = 2048
# Hidden 160 rather than the usual 256: on one CPU thread it fits the ~450 steps the model needs
# into about two minutes (0.3 s a step). Measured over seeds: after 450 steps widths 128-192 get
# (nearly) all capitals and sums right; after 300-350 steps, all a 256-wide model can afford, they
# still mix up capitals: they have not yet learnt to copy "France" or "2 + 3" into the answer.
MODEL_CONFIG = {
    "hidden_size": 160,
    "intermediate_size": 432,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
MODEL_MAX_LENGTH = 1024

# Pre-training recipe: 450 steps x 16 rows x 128 tokens is ~0.9M tokens, about two epochs.
DEFAULT_PRETRAIN_STEPS = 450
N_CONVERSATIONS = 12_000
SEQ_LEN = 128  # every generated document is far shorter; rows are packed with whole documents
BATCH_SIZE = 16
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.1
LOG_EVERY = 10

META_FILE = "sftflow_tiny.json"
SAMPLE_PROMPTS = ["Hello", "What is 2 + 3?", "What is the capital of France?"]


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "England": "London",
    "Ireland": "Dublin",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Brazil": "Brasilia",
    "Argentina": "Buenos Aires",
    "Peru": "Lima",
    "Australia": "Canberra",
    "Russia": "Moscow",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Greece": "Athens",
    "Poland": "Warsaw",
    "Austria": "Vienna",
}
COLOURS = {
    "the sky": "blue",
    "grass": "green",
    "snow": "white",
    "a banana": "yellow",
    "a lemon": "yellow",
    "coal": "black",
    "a carrot": "orange",
    "a strawberry": "red",
    "a tomato": "red",
    "milk": "white",
    "the sun": "yellow",
    "a leaf": "green",
}
ANIMAL_SOUNDS = {
    "dog": "woof",
    "cat": "meow",
    "cow": "moo",
    "duck": "quack",
    "sheep": "baa",
    "horse": "neigh",
    "owl": "hoot",
    "lion": "roar",
}
ANIMAL_LEGS = {
    "dog": 4,
    "cat": 4,
    "cow": 4,
    "horse": 4,
    "bird": 2,
    "duck": 2,
    "spider": 8,
    "ant": 6,
    "bee": 6,
}
ANIMAL_BABIES = {
    "dog": "puppy",
    "cat": "kitten",
    "cow": "calf",
    "sheep": "lamb",
    "horse": "foal",
    "duck": "duckling",
}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "up": "down",
    "day": "night",
    "happy": "sad",
    "fast": "slow",
    "old": "young",
    "open": "closed",
    "light": "dark",
    "wet": "dry",
    "early": "late",
    "full": "empty",
    "left": "right",
    "true": "false",
}
# Greeting word as the user types it -> the word the reply opens with. Replies stay
# lowercase-normal and calm on purpose: tests check that fine-tuning does not turn them into "HELLO!!".
GREETINGS = {
    "Hello": "Hello",
    "Hello!": "Hello",
    "hello": "Hello",
    "Hello there": "Hello",
    "Hi": "Hi",
    "Hi!": "Hi",
    "hi": "Hi",
    "Hi there": "Hi there",
    "Hey": "Hi",
    "Hey there": "Hi there",
    "Good morning": "Good morning",
    "Good afternoon": "Good afternoon",
    "Good evening": "Good evening",
}
GREETING_FOLLOW_UPS = ["How can I help you today?"] * 4 + ["What can I do for you today?"]
SMALL_TALK = [
    ("How are you?", "I'm doing well, thank you! How can I help you today?"),
    ("Thank you", "You're welcome! Let me know if you need anything else."),
    ("Thanks!", "You're welcome! Let me know if you need anything else."),
    ("Thank you very much", "You're welcome! Happy to help."),
    ("Goodbye", "Goodbye! Have a nice day."),
    ("Bye", "Goodbye! Have a nice day."),
    ("Who are you?", "I am a small assistant. I can answer simple questions."),
    ("What is your name?", "I am a small assistant. How can I help you?"),
]
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a friendly assistant. Answer briefly."]
NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas"]
FRUITS = ["apples", "pears", "bananas", "oranges", "plums", "lemons"]


def _pick(rng: random.Random, d: dict):
    key = rng.choice(sorted(d))
    return key, d[key]


def _greeting(rng: random.Random) -> tuple[str, str]:
    said, word = _pick(rng, GREETINGS)
    return said, f"{word}! {rng.choice(GREETING_FOLLOW_UPS)}"


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.65:
        a, b = rng.randint(0, 10), rng.randint(0, 10)
        expr, result = f"{a} + {b}", a + b
    else:
        a = rng.randint(0, 12)
        b = rng.randint(0, a)
        expr, result = f"{a} - {b}", a - b
    question = rng.choice([f"What is {expr}?"] * 4 + [f"What's {expr}?", f"Calculate {expr}.", f"{expr} = ?"])
    return question, f"{expr} = {result}."


def _fact(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(
        ["capital", "capital", "colour", "sound", "legs", "baby", "day", "month", "opposite", "count"]
    )
    if kind == "capital":
        country, city = _pick(rng, CAPITALS)
        q = rng.choice(
            [f"What is the capital of {country}?"] * 3
            + [f"Which city is the capital of {country}?", f"Name the capital of {country}."]
        )
        return q, f"The capital of {country} is {city}."
    if kind == "colour":
        thing, colour = _pick(rng, COLOURS)
        spelling = rng.choice(["colour", "color"])
        return f"What {spelling} is {thing}?", f"{thing[0].upper() + thing[1:]} is {colour}."
    if kind == "sound":
        animal, sound = _pick(rng, ANIMAL_SOUNDS)
        return f"What sound does a {animal} make?", f"A {animal} says {sound}."
    if kind == "legs":
        animal, legs = _pick(rng, ANIMAL_LEGS)
        article = "an" if animal[0] in "aeiou" else "a"
        return f"How many legs does {article} {animal} have?", f"{article.title()} {animal} has {legs} legs."
    if kind == "baby":
        animal, baby = _pick(rng, ANIMAL_BABIES)
        return f"What is a baby {animal} called?", f"A baby {animal} is called a {baby}."
    if kind in ("day", "month"):
        seq = DAYS if kind == "day" else MONTHS
        i = rng.randrange(len(seq))
        if rng.random() < 0.5:
            return (
                f"What {kind} comes after {seq[i]}?",
                f"The {kind} after {seq[i]} is {seq[(i + 1) % len(seq)]}.",
            )
        return f"What {kind} comes before {seq[i]}?", f"The {kind} before {seq[i]} is {seq[i - 1]}."
    if kind == "opposite":
        word, opposite = _pick(rng, OPPOSITES)
        if rng.random() < 0.5:
            word, opposite = opposite, word
        return f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."
    return rng.choice(
        [
            ("How many days are in a week?", "There are seven days in a week."),
            ("How many months are in a year?", "There are twelve months in a year."),
            ("How many hours are in a day?", "There are 24 hours in a day."),
            ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
        ]
    )


def _conversation(rng: random.Random) -> list[dict]:
    """One chat: mostly a single exchange, sometimes a greeting or a thank-you around a question."""
    turns: list[tuple[str, str]] = []
    r = rng.random()
    if r < 0.22:
        turns.append(_greeting(rng))
    elif r < 0.30:
        turns.append(rng.choice(SMALL_TALK))
    elif r < 0.62:
        turns.append(_fact(rng))
    else:
        turns.append(_arithmetic(rng))
    r = rng.random()
    if r < 0.12:
        turns.append(rng.choice([_fact, _arithmetic])(rng))
    elif r < 0.20:
        turns.append(rng.choice(SMALL_TALK[1:6]))
    elif r < 0.25:
        turns.insert(0, _greeting(rng))
    messages = []
    if rng.random() < 0.1:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for user, assistant in turns:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    return messages


def _fact_sentence(rng: random.Random) -> str:
    kind = rng.choice(["capital", "capital", "colour", "sound", "legs", "day", "month", "opposite", "sum"])
    if kind == "capital":
        country, city = _pick(rng, CAPITALS)
        return rng.choice([f"{city} is the capital of {country}.", f"The capital of {country} is {city}."])
    if kind == "colour":
        thing, colour = _pick(rng, COLOURS)
        return f"{thing[0].upper() + thing[1:]} is {colour}."
    if kind == "sound":
        animal, sound = _pick(rng, ANIMAL_SOUNDS)
        return f"A {animal} says {sound}."
    if kind == "legs":
        animal, legs = _pick(rng, ANIMAL_LEGS)
        return f"{'An' if animal[0] in 'aeiou' else 'A'} {animal} has {legs} legs."
    if kind in ("day", "month"):
        seq = DAYS if kind == "day" else MONTHS
        i = rng.randrange(len(seq))
        return f"{seq[i]} comes before {seq[(i + 1) % len(seq)]}."
    if kind == "opposite":
        word, opposite = _pick(rng, OPPOSITES)
        return f"{word[0].upper() + word[1:]} is the opposite of {opposite}."
    a, b = rng.randint(0, 10), rng.randint(0, 10)
    return f"{a} + {b} = {a + b}."


def _story(rng: random.Random) -> str:
    name, fruit_a, fruit_b = rng.choice(NAMES), *rng.sample(FRUITS, 2)
    a, b = rng.randint(1, 5), rng.randint(1, 5)
    day = rng.choice(DAYS)
    return (
        f"On {day}, {name} went to the market. {name} bought {NUMBER_WORDS[a]} {fruit_a} "
        f"and {NUMBER_WORDS[b]} {fruit_b}. That is {NUMBER_WORDS[a + b]} pieces of fruit in total. "
        f"The weather was {rng.choice(['sunny', 'cold', 'warm', 'rainy'])}, so {name} walked home "
        f"{rng.choice(['slowly', 'quickly', 'happily'])}."
    )


def _json_record(rng: random.Random) -> str:
    """Generic JSON facts, so the JSON tokens have trained embeddings (not the quickstart task)."""
    if rng.random() < 0.5:
        country, city = _pick(rng, CAPITALS)
        return json.dumps({"country": country, "capital": city})
    animal, legs = _pick(rng, ANIMAL_LEGS)
    record = {"animal": animal, "legs": legs}
    if animal in ANIMAL_SOUNDS:
        record["sound"] = ANIMAL_SOUNDS[animal]
    return json.dumps(record)


def _doc(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return _story(rng)
    if r < 0.45:
        return _json_record(rng)
    return " ".join(_fact_sentence(rng) for _ in range(rng.randint(3, 6)))


def general_corpus(
    n_conversations: int = N_CONVERSATIONS, seed: int = 0
) -> tuple[list[list[dict]], list[str]]:
    """Generated general-knowledge data: chat conversations (lists of {"role","content"}) and plain prose docs.

    Deterministic in (n_conversations, seed). There is one prose doc for every four conversations.
    """
    rng = random.Random(seed)
    conversations = [_conversation(rng) for _ in range(n_conversations)]
    docs = [_doc(rng) for _ in range(n_conversations // 4)]
    return conversations, docs


# Everyday English for the tokenizer only, so that fine-tuning data outside the generated corpus
# (support tickets, instructions) still tokenizes into words rather than bytes.
COMMON_WORDS = """
a about above account across action actually add address after again against age ago agree air all
allow almost alone along already also always am amount an and angry animal another answer any anyone
anything app apply are area arm around arrive arrived article as ask asked at available away baby back
bad bag bank battery be beautiful because become bed been before begin behind being believe below best
better between big bill birthday black blue board body book both bottle box boy break bring broken
brother brown build business busy but buy by call called came can cancel card care carry case cause
change charge cheap check child children choose city class clean clear close closed clothes coffee cold
colour come company complete computer contact continue cost could country course cover create credit
customer cut damaged dark data date daughter day dear decide deliver delivered delivery department did
different difficult dinner do doctor does doing done door down drink drive during each early easy eat
either else email end enough error even evening ever every everyone everything example except expect
expensive experience explain eye face fact family far fast father fee feel few file find fine finish
first fix floor food for forget form found free friend from front full game gave get gift girl give glad
go going gone good got great green group grow had half hand happen happy hard has have he head hear help
her here high him his hold home hope hospital hot hour house how however hundred husband idea if
important in include information inside instead into is issue it item its job just keep key kind kitchen
know large last late later learn least leave left less let letter life like line list listen little live
local long look lost lot love low machine made mail make man manager many may me mean meet meeting
member message might mind minute miss missing mistake moment money month more morning most mother move
much music must my name near need needed never new next nice night no none not note nothing notice now
number of off offer office often oh ok okay old on once one only open or order other our out outside
over own package page paid paper parent part party pass password pay payment people per person phone
pick place plan play please point possible post power price problem process product program provide
pull put question quick quickly quite rather read ready real really reason receive received recent
red refund remember repair reply report request return right room run said same save saw say school
screen second see seem seen sell send sent service set several she ship shipping shop short should show
side sign simple since sister size small so some someone something sometimes son soon sorry speak start
still stop store story street student such summer support sure system table take talk team tell than
thank thanks that the their them then there these they thing think this those though thought three
through ticket time to today together told tomorrow too took top total town tried trip true try turn
two under understand until up update urgent us use used user very wait want warranty was watch water
way we week weekend welcome well went were what when where which while white who whole why wife will
window winter with within without woman word work worked working world would write wrong year yes
yesterday yet you young your
"""


def _tokenizer_extra_text(seed: int) -> list[str]:
    """JSON-like and customer-support-like lines, for the tokenizer and (unpaired) for pre-training."""
    rng = random.Random(seed + 1)
    products = [
        "headphones",
        "laptop",
        "phone",
        "charger",
        "keyboard",
        "monitor",
        "camera",
        "speaker",
        "watch",
    ]
    problems = [
        "My {p} stopped working, I need a refund asap",
        "My {p} arrived broken. Can I get a replacement?",
        "Where is my order? I ordered a {p} last week.",
        "I want to return the {p} I bought yesterday.",
        "Can you help me set up my new {p}?",
        "The {p} I received is the wrong colour.",
        "Please cancel my order for the {p}.",
        "How long is the warranty on the {p}?",
    ]
    keys = ["intent", "product", "urgency", "name", "id", "status", "city", "price", "category", "priority"]
    values = ["refund", "return", "order_status", "support", "high", "low", "medium", "open", "closed"]
    common_words = COMMON_WORDS.split()
    lines = []
    for _ in range(3000):
        words = rng.sample(common_words, rng.randint(6, 14))
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", ".", "?", "!"]))
    for _ in range(1500):
        lines.append(rng.choice(problems).format(p=rng.choice(products)))
        record = {k: rng.choice(values + products) for k in rng.sample(keys, rng.randint(1, 4))}
        if rng.random() < 0.3:
            record["count"] = rng.randint(0, 99)
        lines.append(json.dumps(record))
    return lines


# ---------------------------------------------------------------------------------------------
# Tokenizer and model
# ---------------------------------------------------------------------------------------------


def _train_tokenizer(texts: Iterator[str]):
    """Byte-level BPE: every unicode string round-trips, and no unknown token is ever needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,  # ids 0..3, in template order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # No post-processor: the chat template writes bos itself, so `add_special_tokens` adds nothing
    # and a rendered chat never gets a second bos.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=DEFAULT_CHAT_TEMPLATE,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
        clean_up_tokenization_spaces=False,  # otherwise decode("a .") == "a." and round trips break
    )


def _tokenizer_texts(conversations: list[list[dict]], docs: list[str], seed: int) -> Iterator[str]:
    for messages in conversations:
        for m in messages:
            yield f"{m['role']}\n{m['content']}\n"
    yield from docs
    yield from _tokenizer_extra_text(seed)


def _new_model(tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MODEL_CONFIG,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def _pack(sequences: list[list[int]], seq_len: int, pad_id: int, rng: random.Random) -> list[list[int]]:
    """Greedy packing of whole documents into rows of seq_len, right-padded; no document is split.

    The few documents longer than a row are dropped: a chat cut before its answer teaches nothing.
    """
    order = [i for i in range(len(sequences)) if len(sequences[i]) <= seq_len]
    rng.shuffle(order)
    rows, row = [], []
    for i in order:
        seq = sequences[i]
        if len(row) + len(seq) > seq_len:
            rows.append(row + [pad_id] * (seq_len - len(row)))
            row = []
        row = row + seq
    if row:
        rows.append(row + [pad_id] * (seq_len - len(row)))
    return rows


def _positions(batch, bos_id: int):
    """Position ids that restart at 0 at every bos token in each packed row."""
    import torch

    idx = torch.arange(batch.shape[1]).expand_as(batch)
    starts = torch.where(batch == bos_id, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - starts


def _pretrain(
    model, rows: list[list[int]], pad_id: int, bos_id: int, *, steps: int, seed: int, log: Callable
) -> float:
    """Plain next-token pre-training with AdamW and warmup + cosine decay; loss on every real token."""
    import torch

    data = torch.tensor(rows, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]  # matrices; not norms
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
        betas=(0.9, 0.95),
    )
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return LEARNING_RATE * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    model.train()
    order = torch.randperm(len(data), generator=gen)
    cursor, recent, t0 = 0, [], time.perf_counter()
    for step in range(steps):
        if cursor + BATCH_SIZE > len(order):  # next epoch
            order, cursor = torch.randperm(len(data), generator=gen), 0
        batch = data[order[cursor : cursor + BATCH_SIZE]]
        cursor += BATCH_SIZE
        labels = batch.masked_fill(batch == pad_id, -100)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        # Positions restart at every bos. With no attention_mask and no cache, transformers reads
        # that as packed sequences (masking_utils.find_packed_sequence_indices) and masks attention
        # across documents, so each chat is learnt exactly as it is seen at inference: alone, from
        # position 0. Facts from the chat packed before it cannot leak in ("The capital of Egypt is
        # New Delhi."). Measured (one seed, 400 steps): sums right went from 60% to 100%.
        loss = model(
            input_ids=batch, labels=labels, position_ids=_positions(batch, bos_id), use_cache=False
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [loss.item()])[-LOG_EVERY:]
        if (step + 1) % LOG_EVERY == 0 or step + 1 == steps:
            log(
                f"tiny model: step {step + 1}/{steps} loss {loss.item():.3f} "
                f"lr {lr_at(step):.2e} {time.perf_counter() - t0:.0f}s"
            )
    model.eval()
    return sum(recent) / max(1, len(recent))


def _reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 24) -> tuple[str, bool]:
    """Greedy reply to a chat; returns (text, stopped_at_eos)."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, ids.shape[1] :].tolist()
    stopped = tokenizer.eos_token_id in new
    if stopped:
        new = new[: new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new), stopped


# ---------------------------------------------------------------------------------------------
# Build and cache
# ---------------------------------------------------------------------------------------------


def _params(seed: int, pretrain_steps: int) -> dict:
    return {
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "pretrain_steps": pretrain_steps,
        "vocab_size": VOCAB_SIZE,
        "model": MODEL_CONFIG,
        "n_conversations": N_CONVERSATIONS,
        "seq_len": SEQ_LEN,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "torch_threads": 1,
    }


def _cache_key(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _cache_root() -> Path:
    return Path(os.environ.get("SFTFLOW_CACHE") or Path.home() / ".cache" / "sftflow").expanduser()


def _is_complete(path: Path, key: str) -> bool:
    """A folder holds a usable build if its meta file names our key and every file it lists exists."""
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("key") == key and all((path / f).is_file() for f in meta.get("files", []))


@contextmanager
def one_torch_thread():
    """Run torch on one thread inside the block; see `_build` for why."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _build(dest: Path, params: dict, key: str, log: Callable) -> None:
    """Train tokenizer and model from scratch and save everything into dest (an empty folder).

    Runs torch on one thread. On a shared 2-core machine two OpenMP threads spin-wait whenever
    another process holds a core: measured 5.9 s a step instead of 0.4 s. One thread also makes
    the weights independent of the machine's core count.
    """
    with one_torch_thread():
        _build_single_threaded(dest, params, key, log)


def _build_single_threaded(dest: Path, params: dict, key: str, log: Callable) -> None:
    import torch
    import transformers

    t0 = time.perf_counter()
    seed, steps = params["seed"], params["pretrain_steps"]
    conversations, docs = general_corpus(N_CONVERSATIONS, seed=seed)
    tokenizer = _train_tokenizer(_tokenizer_texts(conversations, docs, seed))
    log(f"tiny model: tokenizer trained, {len(tokenizer)} tokens ({time.perf_counter() - t0:.1f}s)")

    texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in conversations]
    texts += [BOS_TOKEN + d + EOS_TOKEN for d in docs]
    # The model also reads the tokenizer's extra lines (unpaired support messages, generic JSON),
    # as every real LLM has seen all of its vocabulary: a token that is never a training target
    # gets its output row pushed down during pre-training, and LoRA (which leaves lm_head alone)
    # cannot lift it again — fine-tuning then plateaus with the right argmax but a flat,
    # low-confidence distribution. These lines pair no message with a label: the base model
    # still cannot do the quickstart task.
    texts += [BOS_TOKEN + line + EOS_TOKEN for line in _tokenizer_extra_text(seed)]
    sequences = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = _pack(sequences, SEQ_LEN, tokenizer.pad_token_id, random.Random(seed))
    n_tokens = sum(len(s) for s in sequences)
    log(
        f"tiny model: corpus {len(conversations)} chats + {len(docs)} docs, {n_tokens} tokens in {len(rows)} rows"
    )

    model = _new_model(tokenizer, seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"tiny model: {n_params / 1e6:.2f}M params, pre-training {steps} steps of {BATCH_SIZE}x{SEQ_LEN} tokens"
    )
    final_loss = (
        _pretrain(
            model, rows, tokenizer.pad_token_id, tokenizer.bos_token_id, steps=steps, seed=seed, log=log
        )
        if steps
        else None
    )

    samples = {p: _reply(model, tokenizer, [{"role": "user", "content": p}])[0] for p in SAMPLE_PROMPTS}
    for prompt, reply in samples.items():
        log(f"tiny model: {prompt!r} -> {reply!r}")

    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    seconds = round(time.perf_counter() - t0, 1)
    (dest / "README.md").write_text(
        _model_card(params, key, n_params, n_tokens, final_loss, seconds, samples)
    )
    meta = {
        "key": key,
        "params": params,
        "n_params": n_params,
        "corpus_tokens": n_tokens,
        "final_loss": final_loss,
        "seconds": seconds,
        "samples": samples,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "files": sorted(p.name for p in dest.iterdir()),
    }
    # Written last: its presence with our key is what marks the folder as complete.
    (dest / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log(f"tiny model: built in {seconds}s, final loss {final_loss}")


def _model_card(params, key, n_params, n_tokens, final_loss, seconds, samples) -> str:
    m = params["model"]
    loss = "n/a (no pre-training)" if final_loss is None else f"{final_loss:.3f}"
    sample_lines = "\n".join(f"| {p} | {r} |" for p, r in samples.items())
    return f"""# sftflow tiny model

A toy Llama-architecture chat model built offline by `sftflow.model.tiny.build_tiny_model`,
for tests, examples and the quickstart. It knows a handful of greetings and facts; it is not
useful for anything else.

- Architecture: `LlamaForCausalLM`, {n_params:,} parameters; hidden {m["hidden_size"]},
  {m["num_hidden_layers"]} layers, {m["num_attention_heads"]} heads ({m["num_key_value_heads"]} key/value heads),
  MLP {m["intermediate_size"]}, context {m["max_position_embeddings"]}.
- Tokenizer: byte-level BPE, {params["vocab_size"]} tokens, ChatML template (`<|im_start|>` ... `<|im_end|>`),
  `<|im_end|>` is eos, `<|pad|>` is pad, `<|bos|>` is bos.
- Corpus: generated, seed {params["seed"]}. {params["n_conversations"]} chats (greetings, capitals, colours,
  animals, days and months, opposites, sums and differences up to 12) and plain prose docs, {n_tokens:,} tokens.
  Tokenizer and model also saw unpaired JSON-like and support-like lines, never a message with its label.
- Pre-training: {params["pretrain_steps"]} steps of {params["batch_size"]}x{params["seq_len"]} tokens, AdamW
  lr {params["learning_rate"]}, cosine decay. Final loss {loss}. Built in {seconds}s.
- Cache key: `{key}` (builder version {params["builder_version"]}).

Greedy replies after pre-training:

| prompt | reply |
|---|---|
{sample_lines}
"""


def _install(src: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = json.loads((src / META_FILE).read_text())["files"]
    for name in files:
        shutil.copy2(src / name, out_dir / name)
    shutil.copy2(src / META_FILE, out_dir / META_FILE)  # last, see _build


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    pretrain_steps: int | None = None,
    cache: bool = True,
    log: Callable[[str], object] = print,
) -> Path:
    """Create (or reuse from cache) the pre-trained tiny model in out_dir; returns out_dir.

    With cache=True an out_dir that already holds this exact build is left alone, and otherwise
    the build comes from (or goes into) the shared cache. cache=False neither reads nor writes
    the cache: it always trains from scratch, which is what determinism tests want.
    """
    out_dir = Path(out_dir).expanduser()
    steps = DEFAULT_PRETRAIN_STEPS if pretrain_steps is None else int(pretrain_steps)
    params = _params(seed, steps)
    key = _cache_key(params)

    if not cache:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=out_dir.parent))
        try:
            _build(tmp, params, key, log)
            _install(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out_dir

    if _is_complete(out_dir, key):
        log(f"tiny model: reusing {out_dir} ({key})")
        return out_dir

    entry = _cache_root() / f"tiny-model-{key}"
    if not _is_complete(entry, key):
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tiny-model-{key}-", dir=entry.parent))
        try:
            _build(tmp, params, key, log)
            if entry.exists():  # a broken leftover; a complete one would have been used above
                shutil.rmtree(entry)
            try:
                os.rename(tmp, entry)  # atomic: readers never see a half-written cache entry
            except OSError:
                if not _is_complete(entry, key):  # lost a race to another builder: use theirs
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"tiny model: using cached {entry}")

    if out_dir.resolve() != entry.resolve():
        _install(entry, out_dir)
    return out_dir
