"""`train.report_to: [wandb]` for real, offline: a few steps of the tiny model, then the W&B run
file in the run folder is read back with a LevelDB-log reader written here (wandb 0.31 has no
Python reader any more) and W&B's own protobuf records, so the oracle shares no sftflow code."""

import json
import struct
import sys

import pytest

from sftflow.config import load_config
from sftflow.data.prepare import prepare
from sftflow.errors import SftflowError
from sftflow.train.trackers import trainer_trackers
from sftflow.train.trainer import train
from tests.train.test_training_control import make_project

quiet = dict(log=lambda m: None)
BLOCK, HEADER = 32768, 7  # the LevelDB log format W&B writes its .wandb files in


def wandb_records(path):
    """Every record of a .wandb file: a ':W&B' file header, then LevelDB log chunks (crc, length,
    type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks, each a serialised Record."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if left < HEADER or (kind == 0 and length == 0):  # the block's zero-padded tail
            pos += left
            continue
        buf = (buf if kind in (3, 4) else b"") + data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            yield record


@pytest.mark.slow
def test_wandb_offline_run_in_the_run_folder(tmp_path, tiny_model_dir, monkeypatch):
    import wandb  # the dev extra installs it: a missing one fails
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)  # a run opened anywhere but the run folder would land here
    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=120, epochs=1, report_to=["wandb"],
                                   extra={"max_steps": 3, "logging_steps": 1}))
    prepare(cfg, **quiet)
    said = []
    try:
        summary = train(cfg, log=said.append)
    finally:
        wandb.teardown()  # stop the wandb-core service it started: nothing a test starts outlives it

    runs = list((cfg.run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs
    assert not (tmp_path / "wandb").exists()
    assert any(m.startswith("train: W&B run stored offline in") and "wandb sync" in m for m in said)
    records = list(wandb_records(runs[0]))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.project, run.display_name) == ("ctl", "ctl")
    config = {}
    for r in records:
        kind = r.WhichOneof("record_type")
        for item in (r.run.config.update if kind == "run" else r.config.update if kind == "config" else []):
            config[item.key] = json.loads(item.value_json)
    assert config["sftflow"]["name"] == "ctl" and config["sftflow"]["train"]["learning_rate"] == 1e-3
    assert config["learning_rate"] == 1e-3 and config["run_name"] == "ctl"  # the trainer's arguments, as MLflow gets

    history = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            history.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item})
    logged = [h["train/loss"] for h in history if "train/loss" in h]
    ours = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([m["loss"] for m in ours if "loss" in m])
    assert len(logged) == summary["steps"] == 3
    assert any("eval/loss" in h for h in history)


def test_missing_wandb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # how Python marks a module that cannot be imported
    cfg = load_config(make_project(tmp_path, tmp_path / "model", n=40, report_to=["wandb"]))
    with pytest.raises(SftflowError, match=r"^train.report_to: wandb is not installed; pip install 'sftflow\[wandb\]'"):
        trainer_trackers(cfg, cfg.run_dir)
