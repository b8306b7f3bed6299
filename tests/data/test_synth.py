"""`sftflow synth` against live endpoints on 127.0.0.1: a scripted OpenAI-compatible stub for
retries, timeouts, budgets, malformed replies and resume; `sftflow serve`'s app and a local
model folder with the tiny model for the real thing; then prepare on the candidates:
provenance in records, ledger and data card, the synthetic cap and the test-split rule."""

import json
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.synth.generate import rejected_path, synthesize
from sftflow.data.synth.seeds import load_seeds
from sftflow.errors import SftflowError
from tests.fake_openai import FakeOpenAI
from tests.support import SFTFLOW, live_server

WORDS = [f"w{i}" for i in range(3000)]
quiet = dict(log=lambda m: None)


def pair(prompt, answer, **extra):
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], **extra}


def human_rows(n, seed=0):
    rng = random.Random(seed)
    return [pair("please " + " ".join(rng.choice(WORDS) for _ in range(25)),
                 json.dumps({"intent": rng.choice(["a", "b", "c"]), "n": i})) for i in range(n)]


def project(tmp_path, url, tasks, *, seeds=6, rows=None, teacher=None, data=None, **synth):
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "human.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (rows or human_rows(seeds))))
    t = {"base_url": url, "model": "teacher-1", "api_key_env": None, "backoff": 0.01, "timeout": 5, "concurrency": 2,
         **(teacher or {})}
    config = {"data": {"sources": [{"path": "raw/human.jsonl"}], "system_prompt": "Answer with JSON.",
                       "synth": {"teacher": t, "tasks": tasks, **synth}, **(data or {})},
              "model": {"name_or_path": "m"}}
    return parse_config(config, root=tmp_path)


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f


def test_candidates_carry_provenance_and_a_rerun_generates_nothing_twice(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase", "count": 2},
                                       {"strategy": "self_instruct", "count": 3, "examples": 2},
                                       {"strategy": "multi_turn", "count": 1, "examples": 0}])
    out = synthesize(cfg, **quiet)
    assert (out["planned"], out["accepted"], out["rejected"], out["failed"], out["left"]) == (21, 21, 0, 0, 0)
    # paraphrase keeps the seed answer: 1 request; self_instruct and multi_turn: prompt + answer
    assert len(fake.requests) == 12 + 3 * 2 + 6 * 2
    rows = read(cfg.path(cfg.data.synth.output))
    seed_ids = {s.id for s in load_seeds(cfg)}
    for r in rows:
        p = r["synthetic"]
        assert r["origin"] == "synthetic" and p["teacher"] == "teacher-1" and p["endpoint"] == fake.url
        assert p["template"]["id"].startswith(p["strategy"] + "@") and p["template"]["params"]["temperature"] == 0.7
        assert set(p["seed_ids"]) <= seed_ids and p["created_at"].endswith("+00:00")
    para = [r for r in rows if r["synthetic"]["strategy"] == "paraphrase"]
    assert all(len(r["synthetic"]["seed_ids"]) == 1 + 3 for r in para)  # the seed + 3 reference examples
    assert all(r["messages"][0] == {"role": "system", "content": "Answer with JSON."} for r in rows)
    multi = [r for r in rows if r["synthetic"]["strategy"] == "multi_turn"]
    assert all(len(r["messages"]) == 5 and r["messages"][-1]["content"].startswith("Here is the answer") for r in multi)
    assert len({r["synthetic"]["key"] for r in rows}) == 21

    again = synthesize(cfg, **quiet)
    assert (again["done_before"], again["todo"], again["accepted"]) == (21, 0, 0)
    assert len(fake.requests) == 30  # nothing sent
    more = project(tmp_path, fake.url, [{"strategy": "paraphrase", "count": 3},
                                        {"strategy": "self_instruct", "count": 3, "examples": 2},
                                        {"strategy": "multi_turn", "count": 1, "examples": 0}])
    assert synthesize(more, **quiet)["accepted"] == 6  # only the third paraphrase of each seed
    assert len({r["synthetic"]["key"] for r in read(cfg.path(cfg.data.synth.output))}) == 27


def test_retries_429_5xx_and_timeouts_with_backoff(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase"}], seeds=2,
                  teacher={"concurrency": 1, "timeout": 0.5, "retries": 4})
    fake.script = [429, 500, ("sleep", 1.2), 503]
    out = synthesize(cfg, **quiet)
    assert (out["accepted"], out["failed"]) == (2, 0)
    assert out["usage"]["requests"] == 6 == len(fake.requests)  # the first job needed 5 attempts

    cfg = project(tmp_path / "b", fake.url, [{"strategy": "paraphrase"}], seeds=2,
                  teacher={"concurrency": 1, "retries": 1})
    fake.script = [500, 502]  # the first job fails after its retry: not written, tried again next run
    out = synthesize(cfg, **quiet)
    assert (out["accepted"], out["failed"], out["left"]) == (1, 1, 1)
    assert "HTTP 502: scripted 502" in out["last_error"]
    assert synthesize(cfg, **quiet)["accepted"] == 1
    assert len(read(cfg.path(cfg.data.synth.output))) == 2


def test_a_dead_teacher_stops_the_run_with_one_line(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase"}], seeds=8, teacher={"concurrency": 1, "retries": 0})
    fake.script = [500] * 8
    with pytest.raises(SftflowError, match=r"5 jobs in a row failed \(last: gave up after 1 attempts: HTTP 500"):
        synthesize(cfg, **quiet)
    assert len(fake.requests) == 5  # stopped instead of burning the rest of the budget
    wrong = project(tmp_path / "b", fake.url.replace("/v1", "/v2"), [{"strategy": "paraphrase"}])
    with pytest.raises(SftflowError, match="HTTP 404.*check data.synth.teacher.base_url"):
        synthesize(wrong, **quiet)


def test_malformed_replies_are_rejected_with_reasons(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase"}], seeds=8, teacher={"concurrency": 1})
    seeds = load_seeds(cfg)
    fake.script = [("text", "I would rather not."), ("text", '{"other": "field"}'), ("length", '{"prompt": "cut o'),
                   ("text", json.dumps({"prompt": seeds[3].view()["prompt"].upper()})), 400,
                   ("text", '```json\n{"prompt": "fenced but fine"}\n```')]
    out = synthesize(cfg, **quiet)
    assert (out["accepted"], out["rejected"], out["failed"]) == (3, 5, 0)
    rejected = read(rejected_path(cfg.path(cfg.data.synth.output)))
    reasons = [r["reason"] for r in rejected]
    assert reasons[0].startswith("malformed: no JSON object") and rejected[0]["reply"] == "I would rather not."
    assert reasons[1].startswith("malformed: the JSON reply has no non-empty 'prompt'")
    assert reasons[2].startswith("truncated") and reasons[3].startswith("copy")
    assert reasons[4] == "the teacher refused the request: HTTP 400: scripted 400"
    assert out["reject_reasons"] == {"malformed": 2, "truncated": 1, "copy": 1, "the teacher refused the request": 1}
    assert "fenced but fine" in [r["messages"][1]["content"] for r in read(cfg.path(cfg.data.synth.output))]
    assert synthesize(cfg, **quiet)["todo"] == 0  # rejected jobs are done too: not asked again


def test_budgets_bound_requests_cost_and_concurrency_and_resume(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase", "count": 2}], seeds=10,
                  teacher={"concurrency": 3, "max_requests": 7})
    fake.delay = 0.05
    runs = []
    while not runs or runs[-1]["left"]:
        runs.append(synthesize(cfg, **quiet))
        assert runs[-1]["usage"]["requests"] <= 7 and len(runs) < 6
    assert [r["accepted"] for r in runs] == [7, 7, 6]
    assert runs[0]["stopped"] == "request budget of 7 spent"
    assert len(fake.requests) == 20  # every job exactly once over the three runs
    keys = [r["synthetic"]["key"] for r in read(cfg.path(cfg.data.synth.output))]
    assert len(keys) == len(set(keys)) == 20
    assert fake.max_in_flight == 3

    priced = project(tmp_path / "b", fake.url, [{"strategy": "paraphrase"}], seeds=4,
                     teacher={"concurrency": 1, "price_input": 1.0, "price_output": 2.0, "max_cost": 1e-9})
    before = len(fake.requests)
    out = synthesize(priced, **quiet)
    assert out["accepted"] == 1 and out["stopped"].startswith("cost budget of $1e-09 spent")
    u = out["usage"]
    assert u["cost"] == pytest.approx((u["prompt_tokens"] + 2 * u["completion_tokens"]) / 1e6)
    assert u["prompt_tokens"] > 50 and len(fake.requests) == before + 1

    timed = project(tmp_path / "c", fake.url, [{"strategy": "paraphrase"}], seeds=20,
                    teacher={"concurrency": 1, "max_seconds": 0.3})
    fake.delay = 0.1
    start = time.monotonic()
    out = synthesize(timed, **quiet)
    assert 1 <= out["accepted"] < 20 and out["stopped"].startswith("time budget of 0.3s spent")
    assert time.monotonic() - start < 2


def test_a_half_written_last_line_is_cut_and_its_job_redone(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase"}], seeds=3)
    synthesize(cfg, **quiet)
    path = cfg.path(cfg.data.synth.output)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:40])  # killed while writing the third row
    out = synthesize(cfg, **quiet)
    assert (out["done_before"], out["accepted"]) == (2, 1)
    assert len(read(path)) == 3
    from sftflow.lock import FolderInUse, hold

    with hold(path.parent, "synth", name=f".{path.name}.lock"), pytest.raises(
            FolderInUse, match=r"in use by sftflow synth \(pid \d+\)"):
        synthesize(cfg, **quiet)  # a second synth appending to the same file would generate jobs twice
    assert len(read(path)) == 3


def test_config_and_input_errors_are_one_readable_line(tmp_path, fake):
    cfg = project(tmp_path, fake.url, [{"strategy": "answer"}])
    with pytest.raises(SftflowError, match=r"data.synth.tasks\[0\]: strategy answer needs data.synth.prompts"):
        synthesize(cfg, **quiet)
    (tmp_path / "bad.j2").write_text("{% for x in %}")
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase", "template": "bad.j2"}])
    with pytest.raises(SftflowError, match=r"tasks\[0\].template: bad.j2:1: template syntax error"):
        synthesize(cfg, **quiet)
    (tmp_path / "typo.j2").write_text("Reword {{ seed.promt }}")
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase", "template": "typo.j2"}])
    with pytest.raises(SftflowError, match="template typo: .*'promt'"):
        synthesize(cfg, **quiet)
    no_teacher = parse_config({"data": {"sources": [{"path": "raw/human.jsonl"}]}, "model": {"name_or_path": "m"}},
                              root=tmp_path)
    with pytest.raises(SftflowError, match="data.synth.teacher is not set"):
        synthesize(no_teacher, **quiet)
    cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase"}])
    cfg.data.synth.seeds = "nope.jsonl"
    with pytest.raises(SftflowError, match=r"data.synth.seeds: .*nope.jsonl not found"):
        synthesize(cfg, **quiet)
    with pytest.raises(SftflowError, match="max_cost needs price_input and/or price_output"):
        project(tmp_path, fake.url, [], teacher={"max_cost": 5})
    with pytest.raises(SftflowError, match=r"unknown key 'data.synth.tasks.0.stratgy' \(did you mean 'strategy'\?\)"):
        project(tmp_path, fake.url, [{"stratgy": "paraphrase"}])


def test_custom_templates_and_the_answer_strategy(tmp_path, fake):
    (tmp_path / "prompts.txt").write_text("where is my parcel?\n\nmy screen is cracked\n")
    (tmp_path / "ans.j2").write_text("{{ system }} | {{ examples | length }} examples | {{ prompt }}")
    cfg = project(tmp_path, fake.url, [{"strategy": "answer", "count": 2, "examples": 1, "template": "ans.j2"}],
                  prompts="prompts.txt")
    out = synthesize(cfg, **quiet)
    assert out["accepted"] == 4
    sent = sorted(r["messages"][0]["content"] for r in fake.requests)
    assert sent[0] == "Answer with JSON. | 1 examples | my screen is cracked"
    rows = read(cfg.path(cfg.data.synth.output))
    assert {r["synthetic"]["prompt_source"] for r in rows} == {"prompts.txt:1", "prompts.txt:3"}
    assert all(r["synthetic"]["template"]["id"].startswith("ans@") for r in rows)


def test_cli_synth_progress_and_bad_key(tmp_path):
    with FakeOpenAI(api_key="sekrit") as fake:
        cfg = project(tmp_path, fake.url, [{"strategy": "paraphrase"}], teacher={"api_key_env": "SYNTH_KEY"})
        config = tmp_path / "sftflow.yaml"
        import yaml

        config.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
        env = {k: v for k, v in os.environ.items() if k != "SYNTH_KEY"} | {"NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
        r = subprocess.run([SFTFLOW, "synth", str(config)], capture_output=True, text=True, env=env, timeout=60)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert "HTTP 401, not authorised (Incorrect API key provided); $SYNTH_KEY is not set" in lines[0]
        r = subprocess.run([SFTFLOW, "synth", str(config)], capture_output=True, text=True,
                           env=env | {"SYNTH_KEY": "sekrit"}, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "synth: 6 accepted, 0 rejected, 0 failed; 6 requests" in r.stdout


def test_prepare_admits_candidates_with_provenance_a_cap_and_no_test_rows(tmp_path, fake):
    rows = human_rows(300, seed=1)
    cfg = project(tmp_path, fake.url, [{"strategy": "self_instruct", "count": 250, "examples": 2}], rows=rows,
                  teacher={"concurrency": 4}, max_train_share=0.3, max_seeds=20)
    assert synthesize(cfg, **quiet)["accepted"] == 250
    stats = prepare(cfg, **quiet)
    syn = stats["synthetic"]
    assert syn["by_split"]["test"] == 0 and syn["moved_out_of_test"] > 10
    train = read(cfg.data_dir / "train.jsonl")
    share = sum(r["source"]["origin"] == "synthetic" for r in train) / len(train)
    assert 0.29 <= share <= 0.3 and syn["over_cap"] > 0
    assert not any(r["source"]["origin"] == "synthetic" for r in read(cfg.data_dir / "test.jsonl"))
    one = next(r for r in train if r["source"]["origin"] == "synthetic")
    assert one["source"]["file"] == "synthetic/candidates.jsonl"
    assert one["source"]["synthetic"]["teacher"] == "teacher-1" and len(one["source"]["synthetic"]["seed_ids"]) == 2
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    assert db.execute("SELECT count(*) FROM synthetic").fetchone()[0] == 250
    teacher, template, seeds = db.execute("SELECT teacher, template, seed_ids FROM synthetic WHERE example_id = ?",
                                          (one["id"],)).fetchone()
    assert teacher == "teacher-1" and template.startswith("self_instruct@") and json.loads(seeds)
    human_ids = {r[0] for r in db.execute("SELECT id FROM examples WHERE origin = 'human'")}
    assert set(json.loads(seeds)) <= human_ids  # seed ids are the prepared ids of the human rows
    unused = dict(db.execute("SELECT reason, count(*) FROM decisions WHERE decision = 'unused' GROUP BY reason"))
    assert unused == {"synthetic beyond data.synth.max_train_share 0.3": syn["over_cap"]}
    assert db.execute("SELECT count(*) FROM decisions WHERE stage = 'synth'").fetchone()[0] == 250
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "## Synthetic data" in card and "Cap: synthetic ≤ 30% of train" in card
    assert "| test |" in card and "Teachers: teacher-1 (250)" in card


def test_synthetic_rows_sharing_a_group_with_human_test_rows_stay_out(tmp_path):
    """Hand-written synthetic rows (origin field) in the same group as human rows (data.group_field;
    a synthetic row with a human row's prompt, or a near-duplicate of it, and another answer is a
    conflict instead, left unused for that: tests/data/test_conflicts.py): no leak, no test."""
    human = [{**r, "customer": f"c{i}"} for i, r in enumerate(human_rows(300, seed=2))]
    fresh = human_rows(100, seed=3)
    other = human_rows(150, seed=5)  # other prompts, the same customers
    synthetic = [pair(r["messages"][0]["content"], f"another answer {i}.", origin="synthetic", customer=f"c{i}")
                 for i, r in enumerate(other)] + [{**r, "origin": "synthetic"} for r in fresh]
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "human.jsonl").write_text("".join(json.dumps(r) + "\n" for r in human))
    (raw / "syn.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic))
    base = {"sources": [{"path": "raw/human.jsonl"}, {"path": "raw/syn.jsonl"}], "quality": {"enabled": False},
            "group_field": "customer"}
    cfg = parse_config({"data": base, "model": {"name_or_path": "m"}}, root=tmp_path)
    stats = prepare(cfg, **quiet)
    syn = stats["synthetic"]
    assert syn["by_split"]["test"] == 0 and syn["left_out_of_test"] > 0 and syn["moved_out_of_test"] > 0
    test_prompts = {r["messages"][0]["content"] for r in read(cfg.data_dir / "test.jsonl")}
    train = read(cfg.data_dir / "train.jsonl") + read(cfg.data_dir / "val.jsonl")
    assert not any(r["messages"][0]["content"] in test_prompts for r in train)
    assert stats["unused"] == syn["left_out_of_test"]
    allowed = parse_config({"data": {**base, "synth": {"in_test": True}}, "model": {"name_or_path": "m"}},
                           root=tmp_path)
    assert prepare(allowed, **quiet)["synthetic"]["by_split"]["test"] > 0


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir):
    """`sftflow serve`'s own app and engine with the tiny model, on a free 127.0.0.1 port."""
    import torch

    from sftflow.model.engine import Engine
    from sftflow.model.load import load_chat, load_model
    from sftflow.serve.app import create_app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    template = load_chat(str(tiny_model_dir), padding_side="left")
    engine = Engine(load_model(str(tiny_model_dir), template, method="full").eval(), template, max_batch=4).start()
    try:
        with live_server(create_app(engine, "tiny", api_key="k")) as url:
            yield url + "/v1"
    finally:
        engine.stop()
        torch.set_num_threads(threads)


def test_real_teachers_sftflow_serve_and_a_local_model_folder(tmp_path, tiny_server, tiny_model_dir, monkeypatch):
    """The tiny model behind `sftflow serve`'s API and loaded from its folder: same greedy outputs."""
    (tmp_path / "prompts.txt").write_text("my laptop is broken\nwhere is my order\n")
    tasks = [{"strategy": "answer", "examples": 1}, {"strategy": "paraphrase", "count": 1, "examples": 0}]
    settings = {"max_tokens": 48, "temperature": 0, "concurrency": 1}
    monkeypatch.setenv("TINY_KEY", "k")
    served = project(tmp_path / "a", tiny_server, tasks, seeds=2, prompts=str(tmp_path / "prompts.txt"),
                     teacher={"model": "tiny", "api_key_env": "TINY_KEY", **settings})
    local = project(tmp_path / "b", None, tasks, seeds=2, prompts=str(tmp_path / "prompts.txt"),
                    teacher={"model": str(tiny_model_dir), **settings})
    results = {}
    for name, cfg in (("served", served), ("local", local)):
        out = synthesize(cfg, **quiet)
        assert out["accepted"] + out["rejected"] == 4 and out["failed"] == 0, out
        assert out["usage"]["prompt_tokens"] > 50 and out["usage"]["usage_missing"] == 0
        rows = read(cfg.path(cfg.data.synth.output))
        rejected = read(rejected_path(cfg.path(cfg.data.synth.output)))
        assert all(r["synthetic"]["teacher"] == cfg.data.synth.teacher.model for r in rows)
        assert all(r["reason"] for r in rejected)  # e.g. the tiny model seldom writes the JSON asked for
        results[name] = {r["synthetic"]["key"]: r["messages"][-1]["content"] for r in rows}
        results[name] |= {r["key"]: (r["reason"], r["reply"]) for r in rejected}
    assert results["served"] == results["local"]  # greedy, same model, same template: same outputs


def test_a_teacher_answer_that_contradicts_a_human_row_is_a_conflict_and_never_wins(tmp_path, fake):
    """`synth` answers two prompts people already answered, differently: prepare finds the two
    conflict groups, shows them in the data card and leaves the synthetic answers unused."""
    rows = human_rows(80, seed=3)
    (tmp_path / "prompts.txt").write_text(rows[5]["messages"][0]["content"] + "\n" + rows[9]["messages"][0]["content"])
    cfg = project(tmp_path, fake.url, [{"strategy": "answer", "count": 1, "examples": 1}], rows=rows,
                  prompts="prompts.txt")
    assert synthesize(cfg, **quiet)["accepted"] == 2
    stats = prepare(cfg, **quiet)
    c = stats["conflicts"]
    assert (c["groups"], c["rows"], c["unused"]) == (2, 4, 2)
    for group in c["shown"]:
        assert sorted((m["origin"], m["fate"]) for m in group["members"]) == [("human", "kept"), ("synthetic", "unused")]
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "## Conflicting labels" in card and rows[5]["messages"][1]["content"] in card


def test_quickstart_with_a_teacher_that_contradicts_people_shows_the_conflicts(tmp_path, fake):
    """The quickstart's own data and config, `synth` (answer strategy) asked two messages people
    already labelled, and a teacher that gets the intent wrong: prepare finds both conflict groups,
    shows them side by side in the data card and leaves the teacher's answers unused."""
    import copy

    from sftflow.project import QUICKSTART_CONFIG
    from sftflow.quickstart import write_quickstart_data

    write_quickstart_data(tmp_path / "raw", n=300)
    human = []
    for line in (tmp_path / "raw" / "support_alpaca.jsonl").read_text().splitlines()[:40]:
        try:  # the quickstart plants broken rows; the first two whole ones will do
            human.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    human = [r for r in human if isinstance(r, dict) and r.get("instruction") and r.get("output")][:2]
    (tmp_path / "prompts.txt").write_text("".join(r["instruction"].replace("\n", " ") + "\n" for r in human))
    wrong = {r["instruction"].replace("\n", " "): json.dumps({**json.loads(r["output"]), "intent": "definitely_wrong"})
             for r in human}
    fake.reply = lambda body: next((w for m, w in wrong.items() if m in body["messages"][-1]["content"]), "{}")
    config = copy.deepcopy(QUICKSTART_CONFIG)
    del config["data"]["mix"]  # general chat is not what this checks
    config["model"] = {"name_or_path": "no-such-model"}
    config["data"]["synth"] = {"teacher": {"base_url": fake.url, "model": "teacher-1", "api_key_env": None,
                                           "backoff": 0.01, "timeout": 5},
                               "tasks": [{"strategy": "answer", "count": 1, "examples": 1}], "prompts": "prompts.txt"}
    cfg = parse_config(config, root=tmp_path)
    assert synthesize(cfg, **quiet)["accepted"] == 2
    stats = prepare(cfg, **quiet)
    c = stats["conflicts"]
    assert (c["groups"], c["unused"]) == (2, 2)
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "## Conflicting labels" in card
    for r in human:
        [group] = [g for g in c["shown"] if any(m["answer"] == r["output"] for m in g["members"])]
        fates = sorted((m["origin"], m["fate"], m["answer"]) for m in group["members"])
        assert fates[-1] == ("synthetic", "unused", wrong[r["instruction"].replace("\n", " ")])
        assert all(f[:2] == ("human", "kept") for f in fates[:-1])
        assert wrong[r["instruction"].replace("\n", " ")].replace("|", "\\|") in card
