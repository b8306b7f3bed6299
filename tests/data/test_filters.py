"""The per-record filters of prepare (data/decide/filters.py): each drops a row it should with its reason code
and keeps a row it should, counting both; the chain stops at the first drop; stats.json counts drops
by the field the filter set, never by parsing the ledger's words."""

import numpy as np

from sftflow.data.account.stats import filter_kinds
from sftflow.data.decide.filters import (
    CONTAMINATED,
    ECHOED_PROMPT,
    LOW_QUALITY,
    Contaminated,
    Drop,
    EchoedPrompt,
    LowQuality,
    PersonalData,
    chain,
    low_quality,
)
from sftflow.data.decide.split import NgramIndex
from sftflow.data.read import RawRow
from sftflow.data.signals.rows import RowProcessor, RowSettings, SourceSpec

GOOD = "Open Settings, choose Security, then Reset password; a link arrives by email within a minute."
REFUSAL = "I'm sorry, but as an AI language model I cannot help with that."
BENCH_Q = "What is the boiling point of water at sea level in degrees Celsius?"
BENCH_STORY = ("the lighthouse keeper counted ships every night until the winter storm finally came and took "
               "the light away from the harbour town")


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def rows(settings: RowSettings, *raws: dict):
    """The rows the processor makes of these raw rows, and its filters after the chunk."""
    p = RowProcessor(settings)
    chunk = p.process([RawRow("t.jsonl", i + 1, r) for i, r in enumerate(raws)], SourceSpec("t.jsonl"))
    return chunk.rows, chunk.filter_counts


def benchmark_settings(**kw) -> RowSettings:
    bench = [chat(BENCH_Q, "100 degrees Celsius."), chat("Tell me a story.", BENCH_STORY)]
    from sftflow.data.decide.dedup import dedup_texts, prompt_key

    return RowSettings(benchmark=NgramIndex([dedup_texts(r)[0] for r in bench]),
                       benchmark_prompts=frozenset(prompt_key(r) for r in bench), **kw)


def test_low_quality_drops_a_refusal_with_its_code_and_keeps_a_good_answer():
    (bad, good), counts = rows(RowSettings(threshold=0.5), chat("Close my account.", REFUSAL),
                               chat("How do I reset my password?", GOOD))
    assert bad.drop.code == LOW_QUALITY
    assert bad.drop.kind == "refusal_boilerplate"  # counted by the quality rule it tripped
    assert bad.drop.reason == f"quality {bad.score:.2f} < 0.5: refusal_boilerplate"
    assert good.drop is None and good.score == 1.0
    assert counts[LOW_QUALITY] == {"seen": 2, "kept": 1, "dropped": 1}


def test_low_quality_is_off_when_the_quality_filter_is():
    (bad,), counts = rows(RowSettings(quality=False), chat("Close my account.", REFUSAL))
    assert bad.drop is None and bad.score < 0.5 and LOW_QUALITY not in counts


def test_contaminated_drops_a_benchmark_prompt_and_a_shared_ngram_and_keeps_the_rest():
    (same_prompt, shared, clean), counts = rows(
        benchmark_settings(), chat(BENCH_Q, "It boils at 100 degrees."),
        chat("Retell it briefly.", "In short: " + BENCH_STORY + "."), chat("How do I reset my password?", GOOD))
    assert same_prompt.drop == Drop(CONTAMINATED, "contaminated: its prompt is in a decontamination benchmark")
    assert shared.drop.code == CONTAMINATED and shared.drop.kind == CONTAMINATED
    assert "13-word sequence" in shared.drop.reason
    assert clean.drop is None
    assert counts[CONTAMINATED] == {"seen": 3, "kept": 1, "dropped": 2}


def test_the_first_drop_wins_and_later_filters_do_not_see_the_row():
    (row,), counts = rows(benchmark_settings(), chat(BENCH_Q, REFUSAL))
    assert row.drop.code == LOW_QUALITY
    assert counts[LOW_QUALITY]["dropped"] == 1 and counts[CONTAMINATED]["seen"] == 0


def test_the_chain_holds_the_filters_the_settings_switch_on_in_order():
    assert [type(f) for f in chain(RowSettings())] == [LowQuality, EchoedPrompt]
    assert [type(f) for f in chain(benchmark_settings())] == [LowQuality, Contaminated, EchoedPrompt]
    assert chain(RowSettings(quality=False)) == []
    assert [type(f) for f in chain(RowSettings(quality=False, pii="drop"))] == [PersonalData]
    assert [type(f) for f in chain(RowSettings(pii="drop"))] == [LowQuality, EchoedPrompt]  # the score drops pii


def test_personal_data_is_dropped_under_pii_drop_with_the_quality_score_off():
    """data.quality.pii: drop promises the data card's "examples with personal data are filtered"
    also when the quality score is switched off (before: they were kept)."""
    (email, clean), counts = rows(RowSettings(quality=False, pii="drop"),
                                  chat("My address is ann.lee@example.com, please update it.", GOOD),
                                  chat("How do I reset my password?", GOOD))
    assert email.pii == ["email"] and email.drop.code == "pii" and email.drop.kind == "pii"
    assert clean.drop is None
    assert counts["pii"] == {"seen": 2, "kept": 1, "dropped": 1}


def test_filter_counts_are_a_chunks_own():
    """Each chunk returns its own counts (a worker process's filters live on between chunks)."""
    p = RowProcessor(RowSettings())
    src = SourceSpec("t.jsonl")
    first = p.process([RawRow("t.jsonl", 1, chat("Close my account.", REFUSAL))], src).filter_counts
    second = p.process([RawRow("t.jsonl", 2, chat("How do I reset my password?", GOOD))], src).filter_counts
    # all three counters, a zero included: stats.json's "steps" shows every filter alike
    assert first[LOW_QUALITY] == {"seen": 1, "kept": 0, "dropped": 1}
    assert second[LOW_QUALITY] == {"seen": 1, "kept": 1, "dropped": 0}


def test_stats_count_drops_by_their_fields_not_by_their_words():
    """A detail with ': ' in it, a quality drop with no rule named (the judge's combined score alone)
    and two semantic drops with different details each land under the name the filter gave them."""
    drops = [None, Drop(CONTAMINATED, "contaminated: odd: words"), low_quality(0.4, 0.5, []),
             low_quality(0.2, 0.5, ["gibberish", "pii"]), Drop("unrelated_answer", "unrelated_answer", "sim 0.1"),
             Drop("unrelated_answer", "unrelated_answer", "sim 0.2")]
    counts = np.array([9, 1, 2, 3, 4, 5])
    assert filter_kinds(drops, counts) == {"contaminated": 1, "": 2, "gibberish, pii": 3, "unrelated_answer": 9}


def test_echoed_prompt_drops_a_short_answer_that_repeats_its_prompt():
    """bench/quality.py's prompt_copy misses: '549 - 63 = ?' answered with itself scores 1.0 (the quality
    rule needs 10 characters of words), so only this step drops it; a quote of part of the prompt stays."""
    (same, quoted, labelled, part, good), counts = rows(
        RowSettings(), chat("549 - 63 = ?", "549 - 63 = ?"), chat("579 - 20 = ?", "> 579 - 20 = ?"),
        chat("827 * 46 = ?", "Q: 827 * 46 = ?"),
        chat('Quote the first sentence: "Tides follow the moon. They rise twice a day."', "Tides follow the moon."),
        chat("549 - 63 = ?", "486"))
    assert same.score == 1.0 and same.drop == Drop(ECHOED_PROMPT, "the answer repeats its prompt")
    assert quoted.drop.code == labelled.drop.code == ECHOED_PROMPT
    assert part.drop is None and good.drop is None
    assert counts[ECHOED_PROMPT] == {"seen": 5, "kept": 2, "dropped": 3}
