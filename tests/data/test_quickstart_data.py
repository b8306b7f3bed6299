"""The quickstart dataset: deterministic, honest about its broken rows and duplicates, varied."""

import json
import random
import re

import pytest

from sftflow.quickstart import (
    ALPACA_FILE,
    CHAT_FILE,
    INTENTS,
    PRODUCT_DETAILS,
    PRODUCT_NAMES,
    PRODUCTS,
    SYSTEM_PROMPT,
    URGENCIES,
    label_to_json,
    make_example,
    write_quickstart_data,
)

N = 2000


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The default data, as `sftflow init` writes it."""
    raw_dir = tmp_path_factory.mktemp("raw")
    counts = write_quickstart_data(raw_dir, n=N, seed=0)
    return raw_dir, counts


@pytest.fixture(scope="module")
def raw_full(tmp_path_factory):
    """Every kind of variety at full strength, where the rarer traps show up."""
    raw_dir = tmp_path_factory.mktemp("raw_full")
    write_quickstart_data(raw_dir, n=600, seed=1, variety=1.0)
    return raw_dir


def as_triple(line: str):
    """(system, user, assistant) for a usable row of either format, None for a broken one.

    Written independently of the generator, so the test checks the files, not the code.
    """
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or [m.get("role") for m in messages] != [
            "system",
            "user",
            "assistant",
        ]:
            return None
        triple = tuple(m.get("content") for m in messages)
    else:
        triple = (row.get("system"), row.get("instruction"), row.get("output"))
    if not all(isinstance(text, str) and text.strip() for text in triple):
        return None
    return triple


def read_rows(raw_dir):
    """Both files in config order: [(file_name, line_number, triple or None)]."""
    rows = []
    for file_name in (ALPACA_FILE, CHAT_FILE):
        lines = (raw_dir / file_name).read_text(encoding="utf-8").splitlines()
        rows += [(file_name, i + 1, as_triple(line)) for i, line in enumerate(lines)]
    return rows


def clean_triples(raw_dir):
    seen, out = set(), []
    for _, _, triple in read_rows(raw_dir):
        if triple is not None and triple not in seen:
            seen.add(triple)
            out.append(triple)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    write_quickstart_data(tmp_path / "a", n=200, seed=7)
    write_quickstart_data(tmp_path / "b", n=200, seed=7)
    write_quickstart_data(tmp_path / "c", n=200, seed=8)
    for name in (ALPACA_FILE, CHAT_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_make_example_is_a_function_of_the_rng():
    first = [make_example(random.Random(3)) for _ in range(2)]
    assert first[0] == first[1]


def test_variety_scales_the_difficulty():
    def stats(variety):
        rng = random.Random(0)
        messages = [make_example(rng, variety)[0] for _ in range(500)]
        return len(set(messages)), sum(len(m.split()) for m in messages) / len(messages)

    (plain_distinct, plain_words), (default_distinct, default_words), (full_distinct, full_words) = (
        stats(0.0),
        stats(0.4),
        stats(1.0),
    )
    assert plain_distinct < default_distinct <= full_distinct
    assert plain_words < default_words < full_words


def test_too_little_variety_for_n_is_refused(tmp_path):
    with pytest.raises(ValueError, match="too few distinct messages"):
        write_quickstart_data(tmp_path, n=2000, variety=0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        write_quickstart_data(tmp_path, n=100, variety=1.5)


def test_returned_counts_match_the_files(raw):
    raw_dir, counts = raw
    rows = read_rows(raw_dir)
    seen = set()
    found = {name: {"rows": 0, "broken": 0, "duplicates": 0} for name in (ALPACA_FILE, CHAT_FILE)}
    for file_name, _, triple in rows:
        found[file_name]["rows"] += 1
        if triple is None:
            found[file_name]["broken"] += 1
        elif triple in seen:
            found[file_name]["duplicates"] += 1
        seen.add(triple)
    assert counts == found
    assert sum(c["rows"] - c["broken"] - c["duplicates"] for c in counts.values()) == N
    assert counts[ALPACA_FILE]["rows"] - 5 - counts[ALPACA_FILE]["duplicates"] == N * 6 // 10
    for c in counts.values():
        assert c["broken"] == 5
        assert 0.01 <= c["duplicates"] / c["rows"] <= 0.02


def test_some_duplicates_cross_formats(raw):
    """A chat row that repeats an Alpaca row is a duplicate once both are chat messages."""
    raw_dir, _ = raw
    alpaca = {t for f, _, t in read_rows(raw_dir) if f == ALPACA_FILE and t is not None}
    chat = [t for f, _, t in read_rows(raw_dir) if f == CHAT_FILE and t is not None]
    assert any(t in alpaca for t in chat)


def test_broken_rows_are_spread_through_each_file(raw):
    raw_dir, counts = raw
    for name in (ALPACA_FILE, CHAT_FILE):
        broken_lines = [line for f, line, t in read_rows(raw_dir) if f == name and t is None]
        assert broken_lines, name
        assert broken_lines[0] > 1 and broken_lines[-1] < counts[name]["rows"]
        assert len(set(broken_lines)) == 5


def test_every_usable_row_has_a_valid_canonical_label(raw):
    raw_dir, _ = raw
    triples = list(clean_triples(raw_dir))
    assert len(triples) > 100  # the loop below checks rows, not an empty list
    for system, _, answer in triples:
        assert system == SYSTEM_PROMPT
        label = json.loads(answer)
        assert list(label) == ["intent", "product", "urgency"]
        assert label["intent"] in INTENTS
        assert label["product"] in PRODUCTS
        assert label["urgency"] in URGENCIES
        assert label_to_json(label) == answer


def test_variety(raw):
    raw_dir, _ = raw
    triples = clean_triples(raw_dir)
    messages = [user for _, user, _ in triples]
    assert len(triples) == N
    assert len(set(messages)) >= 0.95 * len(triples)
    labels = [json.loads(answer) for _, _, answer in triples]
    assert {lab["intent"] for lab in labels} == set(INTENTS)
    assert {lab["product"] for lab in labels} == set(PRODUCTS)
    assert {lab["urgency"] for lab in labels} == set(URGENCIES)
    words = [len(m.split()) for m in messages]
    assert sum(10 <= w <= 40 for w in words) >= 0.8 * len(words)
    assert 50 <= max(words) <= 90
    details = [d for ds in PRODUCT_DETAILS.values() for d in ds]
    assert sum(any(d.lower() in m.lower() for d in details) for m in messages) >= 0.1 * N


def mentioned_products(message: str) -> set[str]:
    text = message.lower()
    return {
        product
        for product, names in PRODUCT_NAMES.items()
        if any(re.search(rf"\b{re.escape(name)}\b", text) for name in names)
    }


@pytest.mark.parametrize("which", ["raw", "raw_full"])
def test_distractor_products_exist_and_the_label_follows_the_subject(which, request):
    raw_dir = request.getfixturevalue(which)
    raw_dir = raw_dir[0] if which == "raw" else raw_dir
    triples = clean_triples(raw_dir)
    with_distractor = 0
    for _, message, answer in triples:
        mentioned = mentioned_products(message)
        assert json.loads(answer)["product"] in mentioned, message
        with_distractor += len(mentioned) > 1
    assert with_distractor >= 0.03 * len(triples)


def expected_urgency(message: str) -> str:
    """The documented rule, written from the docstring rather than the cue lists."""
    text = message.lower()
    if any(
        cue in text for cue in ("no rush", "no hurry", "whenever", "not urgent", "convenience", "can wait")
    ):
        return "low"
    if any(
        cue in text for cue in ("asap", "urgent", "today", "as soon as possible", "right away", "immediately")
    ):
        return "high"
    return "medium"


def test_urgency_follows_the_cue_rule(raw, raw_full):
    triples = clean_triples(raw[0]) + clean_triples(raw_full)
    for _, message, answer in triples:
        assert json.loads(answer)["urgency"] == expected_urgency(message), message
    # the trap: "not urgent" contains a high cue but is a low one
    assert any("not urgent" in m.lower() for _, m, _ in triples)


def test_intent_negations_appear_at_full_variety(raw_full):
    messages = [m.lower() for _, m, _ in clean_triples(raw_full)]
    assert any("don't want a refund" in m for m in messages)


def test_the_same_message_never_has_two_labels(raw):
    raw_dir, _ = raw
    label_of = {}
    for _, message, answer in clean_triples(raw_dir):
        key = " ".join(message.lower().split())
        assert label_of.setdefault(key, answer) == answer, message
    assert len(label_of) > 100


def test_too_small_n_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 20"):
        write_quickstart_data(tmp_path, n=5)


def test_project_config_reads_the_written_files():
    from sftflow.project import QUICKSTART_CONFIG

    assert [s["path"] for s in QUICKSTART_CONFIG["data"]["sources"]] == [f"raw/{ALPACA_FILE}", f"raw/{CHAT_FILE}"]


def test_quickstart_config_trips_no_guardrail_and_mixes_general_data(tiny_model_dir, tmp_path):
    """The quickstart practises what the guardrails preach (the real tiny model's folder decides
    the full fine-tuning threshold), and init writes the general data its data.mix reads."""
    import shutil
    import warnings

    from sftflow.config import parse_config
    from sftflow.project import GENERAL_FILE, QUICKSTART_CONFIG, write_general_data

    shutil.copytree(tiny_model_dir, tmp_path / "tiny-model")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = parse_config(QUICKSTART_CONFIG, root=tmp_path)
    assert cfg.data.mix.path == f"raw/{GENERAL_FILE}"
    written = write_general_data(tmp_path / "raw" / GENERAL_FILE, 2000)
    rows = [json.loads(line) for line in (tmp_path / "raw" / GENERAL_FILE).read_text().splitlines()]
    assert written == len(rows) > 500
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)


def test_the_quickstart_general_chat_has_no_mass_duplicates(tmp_path):
    """init's general chat (3,000 draws for the 2,000-example quickstart) held 1,662 duplicates; each
    conversation is now written once. The oracle: the user and assistant turns with case, spacing and
    punctuation aside (system prompts aside too), counted here without sftflow's code."""
    import re

    from sftflow.project import GENERAL_FILE, write_general_data

    path = tmp_path / GENERAL_FILE
    written = write_general_data(path, 3000)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    keys = [tuple(re.sub(r"[^a-z0-9]+", " ", m["content"].lower()).strip() for m in r["messages"]
                  if m["role"] != "system") for r in rows]
    assert written == len(rows) > 1000  # enough for data.mix's 40% of ~1,560 train rows
    assert len(rows) - len(set(keys)) == 0
