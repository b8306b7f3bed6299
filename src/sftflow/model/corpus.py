"""The generated general-knowledge corpus: what the tiny model is pre-trained on, and the
held-out general text eval measures forgetting on.

    from sftflow.model.corpus import general_corpus
    conversations, docs = general_corpus(200, seed=20_231)

Greetings, capitals, colours, animals, calendar, opposites, small sums and short prose, all
generated from the tables below, deterministic in (size, seed). Changing a table or a
generator changes the tiny model: bump BUILDER_VERSION in sftflow/model/tiny.py with it.
"""

from __future__ import annotations

import json
import random

N_CONVERSATIONS = 12_000  # the tiny model's pre-training size


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


def tokenizer_extra_text(seed: int) -> list[str]:
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
