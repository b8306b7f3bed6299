"""The data stage's promises, end to end through `prepare`: quality filter, near duplicates,
ledger completeness, chunked/parallel equivalence, mixing, decontamination, stratification,
token-length checks and the audit queries."""

import json
import random
import sqlite3

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.sizes import Sizes

WORDS = [f"w{i}" for i in range(3000)]
quiet = dict(log=lambda m: None)


def sentence(rng, n=30):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pair(prompt, answer, **extra):
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], **extra}


def project(tmp_path, files: dict, model="m", **data):
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    for name, rows in files.items():
        (raw / name).write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    sources = [{"path": f"raw/{name}"} for name in files if not name.startswith("_")]
    return parse_config({"data": {"sources": sources, **data}, "model": {"name_or_path": str(model)}}, root=tmp_path)


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def all_kept(cfg):
    return {s: read(cfg.data_dir / f"{s}.jsonl") for s in ("train", "val", "test")}


def corpus(n=300, seed=0, words=30):
    rng = random.Random(seed)
    return [pair(sentence(rng, words), sentence(rng, 20) + ".") for _ in range(n)]


def test_near_duplicates_keep_the_best_and_near_prompts_share_a_split(tmp_path):
    rng = random.Random(1)
    rows = corpus(300, words=180)
    # near copies: one word of 200 changed (Jaccard ~0.95, far above 0.85 for MinHash's estimate); the first 10 originals have a
    # placeholder and scores lower, so the copy is the one kept
    for i in range(20):
        p, a = rows[i]["messages"][0]["content"], rows[i]["messages"][1]["content"]
        words = p.split()
        words[5] = "changed"
        if i < 10:
            rows[i] = pair(p, a + " TODO")
        rows.append(pair(" ".join(words), a))
    # same prompt family with a different answer: must stay in one split with its original
    for i in range(20, 60):
        p = rows[i]["messages"][0]["content"].split()
        p[3] = "other"
        rows.append(pair(" ".join(p), sentence(rng, 60) + "."))  # a different, longer answer: Jaccard ~0.5
    cfg = project(tmp_path, {"a.jsonl": rows}, quality={"enabled": False})
    stats = prepare(cfg, **quiet)
    assert stats["near_duplicates"] == 20 and stats["exact_duplicates"] == 0
    kept = all_kept(cfg)
    answers = [r["messages"][1]["content"] for s in kept.values() for r in s]
    assert not any(a.endswith("TODO") for a in answers)  # the better-scored copy won
    where = {r["messages"][0]["content"].split()[10]: s for s, rows_ in kept.items() for r in rows_}
    # prompts of one family share word 10 (only word 3 or 5 differs): one split per family
    families = {}
    for s, rows_ in kept.items():
        for r in rows_:
            families.setdefault(" ".join(r["messages"][0]["content"].split()[6:]), set()).add(s)
    assert all(len(v) == 1 for v in families.values()) and where


def test_every_row_has_exactly_one_fate_in_the_ledger(tmp_path):
    rows = corpus(200)
    rows[3] = pair("Tell me", "As an AI language model, I cannot help with that.")  # filtered
    rows[7] = "{broken json\n"  # rejected
    rows.append(rows[10])  # exact duplicate
    cfg = project(tmp_path, {"a.jsonl": rows})
    stats = prepare(cfg, **quiet)
    assert stats["rows_read"] == 201
    assert (stats["kept"], stats["rejected"], stats["duplicates"], stats["filtered"]) == (198, 1, 1, 1)
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    fates = db.execute("SELECT source_line, count(*), group_concat(decision) FROM decisions "
                       "WHERE stage='prepare' GROUP BY source_file, source_line").fetchall()
    assert len(fates) == 201 and all(n == 1 for _, n, _ in fates)
    filtered = db.execute("SELECT reason, detail FROM decisions WHERE decision='filtered'").fetchone()
    assert filtered[0].startswith("quality 0.40 < 0.5: refusal_boilerplate") and filtered[1] == "score 0.400"
    splits = db.execute("SELECT count(*) FROM decisions WHERE stage='split'").fetchone()[0]
    assert splits == 198
    assert (cfg.data_dir / "quality_hist.png").read_bytes()[:4] == b"\x89PNG"
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "refusal_boilerplate" in card and "Leakage report" in card and "quality_hist.png" in card


def test_small_chunks_and_worker_processes_give_identical_outputs(tmp_path):
    rows = corpus(120) + corpus(30)[:30]  # with exact duplicates across chunk borders
    cfg = project(tmp_path, {"a.jsonl": rows})
    prepare(cfg, **quiet)
    reference = {s: (cfg.data_dir / f"{s}.jsonl").read_text() for s in ("train", "val", "test", "rejects")}
    prepare(cfg, sizes=Sizes(chunk=7), **quiet)  # a file many times larger than the chunk
    assert {s: (cfg.data_dir / f"{s}.jsonl").read_text() for s in reference} == reference
    prepare(cfg, workers=2, sizes=Sizes(chunk=16), **quiet)
    assert {s: (cfg.data_dir / f"{s}.jsonl").read_text() for s in reference} == reference


def test_reading_keys_in_small_blocks_and_key_ranges_changes_nothing(tmp_path):
    """prepare's bounded-memory paths (key columns read back a block at a time, equal keys sorted a
    key range at a time, only records with something in common decided together) against blocks and
    ranges larger than the data: the same outputs, stats and ledger, with every kind of fate."""
    rng = random.Random(2)
    rows = corpus(150, words=150)
    rows += [rows[i] for i in range(20)]  # exact duplicates
    for i in range(20, 40):  # near duplicates
        words = rows[i]["messages"][0]["content"].split()
        words[7] = "changed"
        rows.append(pair(" ".join(words), rows[i]["messages"][1]["content"]))
    rows += [pair(rows[i]["messages"][0]["content"], sentence(rng, 40) + ".") for i in range(40, 60)]  # same prompt
    rows += [pair(sentence(rng, 30), sentence(rng, 20) + ".", origin="synthetic") for _ in range(40)]
    general = [pair(f"general question {i} " + sentence(random.Random(i), 10), f"general answer {i}.")
               for i in range(60)]
    cfg = project(tmp_path, {"a.jsonl": rows, "_general.jsonl": general}, mix={"path": "raw/_general.jsonl",
                  "ratio": 0.2}, synth={"max_train_share": 0.1, "in_test": False})

    def run(sizes=Sizes()):
        stats = prepare(cfg, sizes=sizes, **quiet)
        stats.pop("seconds")
        with sqlite3.connect(cfg.data_dir / "ledger.sqlite") as db:
            ledger = sorted(map(str, db.execute("SELECT example_id, source_line, stage, decision, reason, detail "
                                                "FROM decisions")))
        return stats, ledger, {s: (cfg.data_dir / f"{s}.jsonl").read_text() for s in ("train", "val", "test")}

    reference = run()
    stats = reference[0]
    assert stats["duplicates"] >= 40 and stats["near_duplicates"] >= 15 and stats["general_mix_in_train"] > 0
    assert stats["synthetic"]["over_cap"] > 0 and stats["unused"] > stats["synthetic"]["over_cap"]
    assert run(Sizes(block=13, write_block=11, partition_keys=20)) == reference


def test_general_mix_goes_to_train_only_at_the_ratio(tmp_path):
    general = [pair(f"general question {i} " + sentence(random.Random(i), 10), f"general answer {i}.")
               for i in range(400)]
    cfg = project(tmp_path, {"a.jsonl": corpus(300), "_general.jsonl": general},
                  mix={"path": "raw/_general.jsonl", "ratio": 0.2})
    stats = prepare(cfg, **quiet)
    kept = all_kept(cfg)
    mixed = [r for r in kept["train"] if r["source"]["origin"] == "general-mix"]
    assert abs(len(mixed) / len(kept["train"]) - 0.2) < 0.01
    assert not any(r["source"]["origin"] == "general-mix" for s in ("val", "test") for r in kept[s])
    assert stats["unused"] == 400 - len(mixed) and stats["general_mix_in_train"] == len(mixed)
    assert "General-data mix" in (cfg.data_dir / "data_card.md").read_text()


def test_decontamination_drops_benchmark_overlaps(tmp_path):
    rows = corpus(200)
    bench = [rows[0], pair(rows[1]["messages"][0]["content"], "a different answer"),
             pair("prefix " + " ".join(rows[2]["messages"][0]["content"].split()[:15]), "x")]
    cfg = project(tmp_path, {"a.jsonl": rows, "_bench.jsonl": bench}, decontaminate=["raw/_bench.jsonl"])
    stats = prepare(cfg, **quiet)
    assert stats["filtered"] == 3
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    lines = [r[0] for r in db.execute("SELECT source_line FROM decisions WHERE decision='filtered' ORDER BY 1")]
    assert lines == [1, 2, 3]


def test_stratified_split_gives_every_label_its_share(tmp_path):
    rng = random.Random(3)
    rows = [{**pair(sentence(rng), "yes" if i % 10 == 0 else "no"), "label": "rare" if i % 10 == 0 else "common"}
            for i in range(500)]
    cfg = project(tmp_path, {"a.jsonl": rows}, stratify_field="label")
    prepare(cfg, **quiet)
    kept = all_kept(cfg)
    rare = {s: sum(r["messages"][1]["content"] == "yes" for r in rows_) for s, rows_ in kept.items()}
    assert rare == {"train": 40, "val": 5, "test": 5}


def test_token_length_check_rejects_or_truncates(tmp_path, tiny_model_dir):
    long_answer = " ".join(f"item{i}" for i in range(700)) + "."
    rows = corpus(60, words=5) + [pair("Write a lot", long_answer)]
    cfg = project(tmp_path, {"a.jsonl": rows}, model=tiny_model_dir, max_tokens=400)
    stats = prepare(cfg, **quiet)
    reject = read(cfg.data_dir / "rejects.jsonl")[0]
    assert reject["line"] == 61 and "tokens > max_tokens 400" in reject["reason"]
    assert "measured with" in stats["length_check"]
    cfg = project(tmp_path, {"a.jsonl": rows}, model=tiny_model_dir, max_tokens=400, truncate=True)
    stats = prepare(cfg, **quiet)
    assert stats["rejected"] == 0 and stats["truncated"] == 1


def test_show_highlights_exactly_the_trained_tokens(tmp_path, tiny_model_dir):
    from sftflow.data.show import TRAINED, show_examples

    cfg = project(tmp_path, {"a.jsonl": [pair(f"question {i}", f"answer number {i}") for i in range(20)]},
                  model=tiny_model_dir)
    prepare(cfg, **quiet)
    header, text = show_examples(cfg, 1)[0]
    trained = "".join(text.plain[s.start:s.end] for s in text.spans if s.style == TRAINED)
    first = read(cfg.data_dir / "train.jsonl")[0]
    assert trained.startswith(first["messages"][-1]["content"]) and "question" not in trained
    assert "trained" in header and first["id"] in header


def test_audit_queries_through_the_cli(tmp_path):
    from tests.test_cli import sftflow

    rows = corpus(100)
    rows[5] = "{broken\n"
    rows.append(rows[9])
    cfg_path = tmp_path / "sftflow.yaml"
    project(tmp_path, {"a.jsonl": rows})
    cfg_path.write_text("data:\n  sources: [{path: raw/a.jsonl}]\nmodel: {name_or_path: m}\n")
    assert sftflow("prepare", str(cfg_path), "--no-model").returncode == 0  # no model here: lengths unchecked
    r = sftflow("audit", str(cfg_path), "--file", "raw/a.jsonl")
    assert r.returncode == 0, r.stderr
    assert "line=6  decision=rejected" in r.stdout and "line=101  decision=duplicate" in r.stdout
    kept_id = read(tmp_path / "data" / "train.jsonl")[0]["id"]
    r = sftflow("audit", str(cfg_path), "--example", kept_id[:8])
    assert "decision=kept" in r.stdout and "stage=split" in r.stdout
    out = tmp_path / "dropped.csv"
    r = sftflow("audit", str(cfg_path), "--file", "a.jsonl", "--output", str(out))
    assert r.returncode == 0 and out.read_text().splitlines()[0].startswith("file,line,decision")
    r = sftflow("audit", str(cfg_path), "--run", "nope")
    assert r.returncode != 0 and r.stderr.strip() == "error: run 'nope' is not in the ledger (runs: none yet)"


def test_templated_prompts_do_not_chain_into_one_giant_split_group(tmp_path):
    # 30-word template, one word varies: every prompt is a near duplicate of every other (Jaccard ~0.93)
    rng = random.Random(5)
    template = " ".join(sentence(random.Random(9), 29).split())
    rows = [pair(f"{template} item{i}", sentence(rng, 25) + ".") for i in range(400)]
    cfg = project(tmp_path, {"a.jsonl": rows})
    stats = prepare(cfg, **quiet)
    assert any("chain" in w for w in stats["warnings"])
    assert 0.7 < stats["splits"]["train"] / stats["kept"] < 0.9 and stats["splits"]["test"] > 20
    assert stats["leakage"]["exact_prompt_leaks"] == 0


def test_leakage_report_counts_shared_ngrams_exactly_in_any_hash_range_size(tmp_path):
    # a third of the answers quote one of three 15-word passages: shared 13-grams across the splits
    from sftflow.data.decide.dedup import dedup_texts
    from sftflow.data.decide.split import ngram_hashes

    rng = random.Random(3)
    quotes = [sentence(random.Random(40 + k), 15) for k in range(3)]
    rows = [pair(sentence(rng, 30), sentence(rng, 12) + (" " + quotes[i % 3] if i % 3 == 0 else "") + ".")
            for i in range(240)]
    cfg = project(tmp_path, {"a.jsonl": rows})
    whole = prepare(cfg, **quiet)["leakage"]
    # the same counts one example at a time, with Python sets
    grams = {s: [set(ngram_hashes(dedup_texts(r)[0])) for r in read(cfg.data_dir / f"{s}.jsonl")]
             for s in ("train", "val", "test")}
    evals = grams["val"] + grams["test"]
    every_eval = set().union(*evals)
    train_hits = [j for j, g in enumerate(grams["train"]) if g & every_eval]
    assert whole["train_with_shared_ngram"] == len(train_hits) > 20
    assert whole["eval_with_shared_ngram"] == sum(bool(g & set().union(*grams["train"])) for g in evals) > 5
    ids = {s: [r["id"] for r in read(cfg.data_dir / f"{s}.jsonl")] for s in ("train", "val", "test")}
    eval_ids = ids["val"] + ids["test"]
    first = [{"train": ids["train"][j], "eval": eval_ids[min(k for k, g in enumerate(evals) if g & grams["train"][j])]}
             for j in train_hits[:5]]
    assert whole["examples"] == first
    assert prepare(cfg, sizes=Sizes(ngram_range=40, partition_keys=16), **quiet)["leakage"] == whole  # ~100 ranges
