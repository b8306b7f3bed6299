"""Sources by hub id and `save_to_disk` folder (issue 22, item 4), as a user meets them: `sftflow prepare`
in a subprocess, offline, reading a dataset from the Hugging Face datasets cache.

The cache is built the way `load_dataset("org/name")` builds it after a download: datasets' own
Parquet builder prepares the Arrow files and dataset_info.json, stored under org___name/<config>/
<version>/<commit> in HF_DATASETS_CACHE. What this proves: with HF_DATASETS_OFFLINE=1 the id
resolves through datasets' cache lookup (no network, no sftflow shortcut). What it does not prove:
a download from the Hub itself (no network here). Every expected count is the length of the
row lists the test wrote, never what sftflow reports.
"""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import datasets  # a base dependency
import pytest
import yaml

from tests.support import SFTFLOW


def rows(n: int, start: int = 0) -> list[dict]:
    """Distinct, well-formed alpaca rows (each passes the quality rules), and every 7th one broken
    (no output: rejected), so that some rows are rejects with their row number."""
    out = []
    for i in range(start, start + n):
        row = {"instruction": f"Which warehouse ships order number {i} to customer {i * 7 % 1000}?",
               "output": f"Order {i} ships from warehouse {i % 13} on day {i % 5 + 1} of the week."}
        if i % 7 == 3:
            row["output"] = ""
        out.append(row)
    return out


def cache_hub_dataset(cache: Path, repo_id: str, splits: dict[str, list[dict]], config: str = "default") -> None:
    """Store `splits` in a datasets cache as `load_dataset(repo_id)` leaves them after a download."""
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    org, name = repo_id.split("/")
    staging = cache.parent / f"staging-{name}-{config}"
    staging.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, data in splits.items():
        datasets.Dataset.from_list(data).to_parquet(str(staging / f"{split}.parquet"))
        files[split] = [str(staging / f"{split}.parquet")]
    builder = Parquet(cache_dir=str(staging / "build"), dataset_name=name, config_name=config,
                      hash="0123456789abcdef0123456789abcdef01234567", data_files=DataFilesDict.from_patterns(files))
    builder.download_and_prepare()
    built = Path(builder.cache_dir)  # <build>/<name>/<config-id>/0.0.0/<hash>
    target = cache / f"{org}___{name}" / config / "0.0.0" / built.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(built, target)


def project(root: Path, sources: list[dict], **data) -> Path:
    cfg = {"data": {"sources": sources, **data}, "model": {"name_or_path": "no-such-model"}}
    (root / "sftflow.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return root / "sftflow.yaml"


def prepare(root: Path, cache: Path, command: str = "prepare") -> subprocess.CompletedProcess:
    """`sftflow <command> sftflow.yaml` in `root`, offline, with `cache` as the datasets cache."""
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "NO_COLOR": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    no_model = ["--no-model"] if command == "prepare" else []  # no model here: lengths unchecked
    return subprocess.run([SFTFLOW, command, "sftflow.yaml", *no_model], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)


def fates(root: Path) -> list[tuple]:
    """(file, line, decision, reason) of every 'prepare' decision in the ledger."""
    with sqlite3.connect(root / "data" / "ledger.sqlite") as db:
        return db.execute("SELECT source_file, source_line, decision, reason FROM decisions "
                          "WHERE stage = 'prepare' ORDER BY source_file, source_line").fetchall()


def kept_texts(root: Path) -> set[str]:
    out = set()
    for split in ("train", "val", "test"):
        for line in (root / "data" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            out.add(json.loads(line)["messages"][-2]["content"])
    return out


@pytest.fixture
def hub(tmp_path):
    cache = tmp_path / "hf-cache"
    train, test = rows(140), rows(60, start=1000)
    cache_hub_dataset(cache, "acme/support", {"train": train, "test": test})
    return cache, train, test


def test_cached_hub_dataset_every_row_has_one_fate_by_row_number(tmp_path, hub):
    cache, train, test = hub
    root = tmp_path / "p"
    root.mkdir()
    project(root, [{"path": "acme/support", "license": "cc-by-4.0"}])
    r = prepare(root, cache)
    assert r.returncode == 0, r.stderr
    got = fates(root)
    for split, data in (("train", train), ("test", test)):
        mine = [(line, decision) for file, line, decision, _ in got if file == f"acme/support[{split}]"]
        assert [line for line, _ in mine] == list(range(1, len(data) + 1))  # each row once, by its row number
        broken = [i + 1 for i, row in enumerate(data) if not row["output"]]
        assert [line for line, d in mine if d == "rejected"] == broken
    assert len(got) == len(train) + len(test)
    good = {row["instruction"] for row in train + test if row["output"]}
    assert kept_texts(root) == good  # distinct rows: every good one kept
    card = (root / "data" / "data_card.md").read_text(encoding="utf-8")
    assert f"| acme/support[train] | {len(train)} |" in card and "cc-by-4.0" in card


def test_hub_split_and_max_rows(tmp_path, hub):
    cache, train, _ = hub
    root = tmp_path / "p"
    root.mkdir()
    project(root, [{"path": "acme/support", "split": "train", "max_rows": 100}])
    r = prepare(root, cache)
    assert r.returncode == 0, r.stderr
    got = fates(root)
    assert {file for file, *_ in got} == {"acme/support[train]"}
    assert [line for _, line, d, why in got if d == "unused" and why == "source_max_rows"] == list(range(101, 141))
    assert len(got) == len(train)
    assert kept_texts(root) == {row["instruction"] for row in train[:100] if row["output"]}
    card = (root / "data" / "data_card.md").read_text(encoding="utf-8")
    assert f"| acme/support | – | 100 | {len(train)} |" in card


def test_hub_subset(tmp_path):
    cache = tmp_path / "hf-cache"
    cache_hub_dataset(cache, "acme/multi", {"train": rows(30)}, config="alpha")
    cache_hub_dataset(cache, "acme/multi", {"train": rows(45, start=500)}, config="beta")
    root = tmp_path / "p"
    root.mkdir()
    project(root, [{"path": "acme/multi", "subset": "beta"}])
    r = prepare(root, cache)
    assert r.returncode == 0, r.stderr
    got = fates(root)
    assert {file for file, *_ in got} == {"acme/multi:beta[train]"} and len(got) == 45


def test_hub_errors_are_one_line(tmp_path, hub):
    cache, *_ = hub
    root = tmp_path / "p"
    root.mkdir()
    cases = [
        ({"path": "acme/not-cached"}, "'acme/not-cached' is not a local path"),
        ({"path": "acme/support", "split": "validation"}, "has no split 'validation'; it has 'train', 'test'"),
        ({"path": "raw/missing.jsonl"}, "not found; check the path"),
        ({"path": "acme/support", "subset": "nope"}, "data.sources[0]: acme/support: Couldn't find cache"),
    ]
    for source, message in cases:
        project(root, [source])
        r = prepare(root, cache)
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    project(root, [{"path": "acme/not-cached"}])
    assert "offline mode is on" in prepare(root, cache).stderr


def test_local_folder_wins_over_a_hub_id(tmp_path, hub):
    cache, *_ = hub
    root = tmp_path / "p"
    (root / "acme" / "support").mkdir(parents=True)
    (root / "acme" / "support" / "a.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows(20, start=5000)) + "\n", encoding="utf-8")
    project(root, [{"path": "acme/support"}])
    r = prepare(root, cache)
    assert r.returncode == 0, r.stderr
    assert {file for file, *_ in fates(root)} == {"acme/support/a.jsonl"}


@pytest.mark.parametrize("shape", ["DatasetDict", "Dataset"])
def test_save_to_disk_folder_each_split_numbered_on_its_own(tmp_path, shape):
    train, test = rows(50), rows(20, start=2000)
    root = tmp_path / "p"
    if shape == "DatasetDict":
        datasets.DatasetDict({"train": datasets.Dataset.from_list(train),
                              "test": datasets.Dataset.from_list(test)}).save_to_disk(str(root / "raw" / "saved"))
        expect = {"raw/saved[train]": len(train), "raw/saved[test]": len(test)}
    else:
        datasets.Dataset.from_list(train + test).save_to_disk(str(root / "raw" / "saved"))
        expect = {"raw/saved": len(train) + len(test)}
    project(root, [{"path": "raw/saved"}])
    r = prepare(root, tmp_path / "unused-cache")
    assert r.returncode == 0, r.stderr
    got = fates(root)
    for file, n in expect.items():
        assert [line for f, line, *_ in got if f == file] == list(range(1, n + 1))
    assert len(got) == len(train) + len(test)
    if shape == "DatasetDict":
        project(root, [{"path": "raw/saved", "split": "test"}])
        r = prepare(root, tmp_path / "unused-cache")
        assert r.returncode == 0, r.stderr
        assert {f for f, *_ in fates(root)} == {"raw/saved[test]"}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_split_that_loses_a_row_stops_prepare(tmp_path, monkeypatch):
    """The reconciliation for datasets: the rows read are held against datasets' own row count, so
    a reader that loses a row stops prepare (here the split yields one row fewer than it states)."""
    from sftflow.config import parse_config
    from sftflow.data.prepare import prepare as run_prepare
    from sftflow.data.read import hub
    from sftflow.errors import SftflowError

    datasets.Dataset.from_list(rows(30)).save_to_disk(str(tmp_path / "saved"))
    real = hub._part

    def losing(ds, label, split, is_hub):
        part = real(ds, label, split, is_hub)
        part.dataset = ds.select(range(ds.num_rows - 1))
        return part

    monkeypatch.setattr(hub, "_part", losing)
    cfg = parse_config({"data": {"sources": [{"path": "saved"}]}, "model": {"name_or_path": "no-such-model"}},
                       root=tmp_path)
    with pytest.raises(SftflowError, match=r"saved: the file states 30 rows but 29 were read"):
        run_prepare(cfg, log=lambda m: None)


def test_synth_seeds_from_a_cached_hub_dataset(tmp_path, hub):
    """`sftflow synth` takes its seeds from a human source given by hub id, as prepare reads it:
    every usable row of the split a seed, named by the dataset, split and row number."""
    from tests.fake_openai import FakeOpenAI

    cache, train, _ = hub
    with FakeOpenAI() as teacher:
        config = {"data": {"sources": [{"path": "acme/support", "split": "train"}],
                           "synth": {"teacher": {"base_url": teacher.url, "model": "teacher-1", "api_key_env": None},
                                     "tasks": [{"strategy": "paraphrase", "count": 1}]}},
                  "model": {"name_or_path": "no-such-model"}}
        (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        r = prepare(tmp_path, cache, "synth")
    assert r.returncode == 0, r.stdout + r.stderr
    usable = [i + 1 for i, row in enumerate(train) if row["output"]]  # rows() breaks every 7th one
    candidates = [json.loads(line) for line in (tmp_path / "synthetic" / "candidates.jsonl").read_text().splitlines()]
    assert len(candidates) == len(usable) == 120
    # a paraphrase keeps its seed's answer: the answers are the split's own, each seed used once
    assert sorted(c["messages"][-1]["content"] for c in candidates) == sorted(train[i - 1]["output"] for i in usable)


def test_decontamination_benchmark_by_hub_id(tmp_path, hub):
    """data.decontaminate lists its benchmarks through the same iter_sources as data.sources, so a hub
    id works there too (before, only files were listed: 'not found')."""
    cache, train, _ = hub
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(20) + rows(30, start=5000)))
    project(tmp_path, [{"path": "raw.jsonl"}], decontaminate=["acme/support"])
    done = prepare(tmp_path, cache)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "data" / "stats.json").read_text())
    usable_shared = [r for r in rows(20) if r["output"]]  # rows with no output are rejected on both sides
    assert stats["filter_reasons"].get("contaminated") == len(usable_shared)
