"""Settings travel as arguments, not through process-wide state: the guardrail warnings are typed and
shown once by the CLI's own bookkeeping, the trackers are given their folders, the hub is not switched
off for the whole process, the NaN guard is found by its type, and sftflow's cache is named in one place.
None of these tests trains a model."""

import os
import warnings
from types import SimpleNamespace

import pytest

from sftflow import cli
from sftflow.cli.app import load_cfg
from sftflow.config import parse_config
from sftflow.config.guardrails import RemoteCodeGuardrail, TrainingGuardrail, guardrail_warnings
from sftflow.train.metrics_log import MetricsLog

MINIMAL = {"data": {"sources": [{"path": "raw.jsonl"}]}, "model": {"name_or_path": "some/model"}}


def test_guardrail_warnings_carry_their_kind():
    risky = parse_config({**MINIMAL, "train": {"epochs": 5}, "model": {"name_or_path": "m", "trust_remote_code": True}})
    kinds = {type(w) for w in guardrail_warnings(risky)}
    assert kinds == {TrainingGuardrail, RemoteCodeGuardrail}


def shown_by_load(tmp_path, capsys, **load):
    config = tmp_path / "sftflow.yaml"
    config.write_text("data: {sources: [{path: raw.jsonl}]}\nmodel: {name_or_path: m, trust_remote_code: true}\n"
                      "train: {epochs: 5}\n")
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *a, **k: print(f"warning: {message}")
        load_cfg(config, **load)
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]


def test_each_command_shows_the_guardrails_that_concern_it_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(cli.STATE, "shown", set())
    assert shown_by_load(tmp_path, capsys) == []  # e.g. `report`: neither trains nor runs the model's code
    remote = shown_by_load(tmp_path, capsys, model_code=True)
    assert len(remote) == 1 and "trust_remote_code" in remote[0]
    train = shown_by_load(tmp_path, capsys, training=True)
    assert len(train) == 1 and "epochs 5 > 3" in train[0]  # trust_remote_code was shown already in this run
    assert shown_by_load(tmp_path, capsys, training=True) == []


def test_the_processes_a_multi_process_train_launches_are_told_by_argument(monkeypatch, tmp_path):
    """`train --nproc N` passes --guardrails-shown to the processes it starts; nothing goes through the
    environment (SFTFLOW_GUARDRAILS_SHOWN was set in the launcher's environment until now)."""
    from typer.testing import CliRunner

    from sftflow.train import distributed

    launched = {}
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # the CLI sets its own; undone after
    monkeypatch.setattr(distributed, "launch", lambda config, args, **kw: launched.setdefault("args", args) and 0)
    monkeypatch.setattr(distributed, "check_strategy", lambda cfg, use_cpu: None)
    config = tmp_path / "sftflow.yaml"
    (tmp_path / "m").mkdir()  # a local model folder: `train` checks the model can be had before launching
    config.write_text("data: {sources: [{path: raw.jsonl}]}\nmodel: {name_or_path: m}\n")
    before = dict(os.environ)
    result = CliRunner().invoke(cli.app, ["train", str(config), "--nproc", "2", "--resume"])
    assert result.exit_code == 0, result.output
    assert launched["args"] == ["--resume", "--guardrails-shown"]
    assert dict(os.environ) == before


def test_trackers_are_given_the_run_folder(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from transformers.integrations import MLflowCallback, TensorBoardCallback

    from sftflow.train.trackers import trainer_trackers

    cfg = parse_config({**MINIMAL, "train": {"report_to": ["tensorboard", "mlflow"]}})
    before = dict(os.environ)
    names, callbacks = trainer_trackers(cfg, tmp_path / "run")
    assert names == [] and dict(os.environ) == before
    tensorboard = next(c for c in callbacks if isinstance(c, TensorBoardCallback))
    assert tensorboard.logging_dir == str(tmp_path / "run" / "tensorboard")
    assert any(isinstance(c, MLflowCallback) for c in callbacks)


def test_an_unreachable_hub_does_not_switch_the_process_offline(monkeypatch):
    from huggingface_hub import constants

    from sftflow.model.resolve import Unreachable, locate_model

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(Unreachable, match="the hub cannot be reached"):
        locate_model("some-org/not-cached-anywhere")
    assert constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ


def test_the_nan_guard_is_found_by_its_type(tmp_path):
    """Another callback with a `bad_loss` attribute of its own is not taken for the run's guard."""
    from sftflow.train.trainer import NonFiniteLoss, _stop_on_bad_loss

    class UserCallback:
        bad_loss = (3, float("nan"))  # whatever a user's callback keeps under that name

    guard = MetricsLog(tmp_path / "metrics.jsonl", 1.0, log=lambda m: None)
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[UserCallback(), guard]))
    _stop_on_bad_loss(trainer, tmp_path)  # the run's own guard saw no bad loss
    guard.bad_loss = (5, float("inf"))
    with pytest.raises(NonFiniteLoss, match="loss became inf at step 5"):
        _stop_on_bad_loss(trainer, tmp_path)


def test_one_cache_root_for_logs_models_and_converters(monkeypatch, tmp_path):
    from sftflow import io, logs
    from sftflow.model import gguf, gguf_base, offline, tiny

    monkeypatch.setenv("SFTFLOW_CACHE", "~/sftflow-cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert io.cache_root() == tmp_path / "sftflow-cache"
    assert logs.cache_logs() == tmp_path / "sftflow-cache" / "logs"  # `~` expanded here too
    assert gguf.cache_root is tiny.cache_root is gguf_base.cache_root is offline.cache_root is io.cache_root
    assert not hasattr(gguf, "_cache_root")

