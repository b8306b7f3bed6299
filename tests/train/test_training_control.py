"""Run control on the tiny model, for real: guardrails and --strict, early stopping keeping the
best checkpoint, the overfitting detector, a NaN loss stopping the run, resume after kill -9,
padding-free rows that cannot attend to each other, and the loss curve."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from sftflow.config import load_config, parse_config
from sftflow.data.prepare import prepare
from sftflow.train.build import build_trainer
from sftflow.train.guardrails import data_warnings
from sftflow.train.run_folder import checkpoint_problem, pick_checkpoint
from sftflow.train.summary import overfitting
from sftflow.train.trainer import NonFiniteLoss, train
from tests.support import SFTFLOW

pytestmark = pytest.mark.slow
quiet = dict(log=lambda m: None)


def make_project(root: Path, model_dir, n=240, **train_cfg) -> Path:
    from sftflow.quickstart import write_quickstart_data

    write_quickstart_data(root / "raw", n=n, seed=1)
    cfg = {
        "name": "ctl",
        "data": {"sources": [{"path": "raw/support_chat.jsonl"}, {"path": "raw/support_alpaca.jsonl"}],
                 "split": {"train": 0.7, "val": 0.2, "test": 0.1}},
        "model": {"name_or_path": str(model_dir)},
        "train": {"method": "full", "learning_rate": 1e-3, "epochs": 2, "batch_size": 16, "grad_accum": 1,
                  "max_length": 256, **train_cfg},
    }
    path = root / "sftflow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_settings_guardrails_warn():
    base = {"data": {"sources": [{"path": "x.jsonl"}]}, "model": {"name_or_path": "m"}}
    with pytest.warns(UserWarning) as caught:
        parse_config({**base, "train": {"learning_rate": 5e-3, "epochs": 5, "batch_size": 32, "grad_accum": 4}})
    text = " ".join(str(w.message) for w in caught)
    assert "far from the usual LoRA range" in text and "epochs 5 > 3" in text and "effective batch 128" in text


def test_data_guardrails():
    cfg = parse_config({"data": {"sources": [{"path": "x.jsonl"}]}, "model": {"name_or_path": "m"},
                        "train": {"max_length": 100}})
    msgs = data_warnings(cfg, [50] * 90 + [300] * 10, val_examples=5)
    assert any("only 100 training examples" in m for m in msgs)
    assert any("validation split has 5 examples" in m for m in msgs)
    assert any("below the 95th-percentile example (300 tokens)" in m for m in msgs)
    assert data_warnings(cfg, [50] * 600, val_examples=60) == []


def test_overfitting_detector():
    hist = [{"step": s, "loss": 2.0 - 0.1 * s} for s in range(1, 11)]
    hist += [{"step": 2, "eval_loss": 1.5}, {"step": 4, "eval_loss": 1.2}, {"step": 6, "eval_loss": 1.3},
             {"step": 8, "eval_loss": 1.4}, {"step": 10, "eval_loss": 1.6}]
    o = overfitting(hist)
    assert o["best_step"] == 4 and o["val_loss_last"] == 1.6
    hist[-1]["eval_loss"] = 1.1  # recovered: not overfitting
    assert overfitting(hist) is None


def test_strict_turns_guardrails_into_one_line_error(tmp_path, tiny_model_dir):
    cfg_path = make_project(tmp_path, tiny_model_dir, n=120)
    env = {**os.environ, "NO_COLOR": "1"}
    assert subprocess.run([SFTFLOW, "prepare", str(cfg_path)], capture_output=True, env=env).returncode == 0
    r = subprocess.run([SFTFLOW, "train", str(cfg_path), "--strict"], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "--strict:" in err[0] and "only" in err[0] and "learning_rate 0.001" in err[0]
    assert not (tmp_path / "runs" / "ctl" / "model").exists()


def test_early_stopping_keeps_the_best_checkpoint_and_writes_curve(tmp_path, tiny_model_dir):
    # far too many epochs at a high rate on little data: validation loss turns up, training stops early
    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=200, epochs=12, evals_per_epoch=2,
                                   learning_rate=3e-3))
    prepare(cfg, **quiet)
    summary = train(cfg, **quiet)
    assert summary["early_stopped"] and summary["epochs_done"] < 12
    assert summary["val_loss_best"] == min(summary["val_losses"]) < summary["val_losses"][-1]
    best_step = int(Path(summary["best_checkpoint"]).name.split("-")[1])
    metrics = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("eval_loss") == summary["val_loss_best"] and m["step"] == best_step for m in metrics)
    assert (cfg.run_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    # the saved model is the best checkpoint's: its validation loss is the best one
    trainer, _ = build_trainer(cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"name_or_path": str(cfg.run_dir / "model")})}), **quiet)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(summary["val_loss_best"], rel=1e-4)


def test_nan_loss_stops_the_run_without_saving(tmp_path, tiny_model_dir):
    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=120, learning_rate=1e8, epochs=1,
                                   extra={"logging_steps": 1}))
    prepare(cfg, **quiet)
    with pytest.raises(NonFiniteLoss, match=r"loss became (nan|inf) at step \d+; training stopped"):
        train(cfg, **quiet)
    assert not (cfg.run_dir / "model").exists()


def test_resume_after_kill_reaches_the_same_state(tmp_path, tiny_model_dir, processes):
    def final_losses(run_dir):
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [round(r["eval_loss"], 4) for r in rows if "eval_loss" in r][-2:]

    settings = dict(n=160, epochs=2, evals_per_epoch=2, early_stopping_patience=0, learning_rate=5e-4)
    straight = make_project(tmp_path / "a", tiny_model_dir, **settings)
    killed = make_project(tmp_path / "b", tiny_model_dir, **settings)
    env = {**os.environ, "NO_COLOR": "1"}
    for p in (straight, killed):
        assert subprocess.run([SFTFLOW, "prepare", str(p)], capture_output=True, env=env).returncode == 0
    assert subprocess.run([SFTFLOW, "train", str(straight)], capture_output=True, env=env).returncode == 0

    proc = processes.start([SFTFLOW, "train", killed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ckpts = tmp_path / "b" / "runs" / "ctl" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not any((c / "trainer_state.json").exists() for c in ckpts.glob("checkpoint-*")):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "b" / "runs" / "ctl" / "train_summary.json").exists()  # it really died mid-run
    # and a later save that was cut short: a whole-looking checkpoint whose optimizer state is half there
    import shutil

    newest = max((c for c in ckpts.glob("checkpoint-*") if (c / "trainer_state.json").exists()),
                 key=lambda c: int(c.name.split("-")[1]))
    broken = ckpts / f"checkpoint-{int(newest.name.split('-')[1]) + 1}"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(newest, broken)
    optimizer = (broken / "optimizer.pt").read_bytes()
    (broken / "optimizer.pt").write_bytes(optimizer[: len(optimizer) // 2])
    r = subprocess.run([SFTFLOW, "train", str(killed), "--resume"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert f"skipping {broken.name}: optimizer.pt: not a complete torch archive" in r.stdout
    assert "resuming from" in r.stdout and (ckpts / f"broken-{broken.name}").is_dir()
    assert final_losses(tmp_path / "b" / "runs" / "ctl") == final_losses(tmp_path / "a" / "runs" / "ctl")
    # the resumed run's summary keeps the validation loss measured before the killed run trained
    summaries = [json.loads((tmp_path / x / "runs" / "ctl" / "train_summary.json").read_text()) for x in "ab"]
    assert summaries[1]["val_loss_initial"] == pytest.approx(summaries[0]["val_loss_initial"], rel=1e-6)


def test_a_run_interrupted_before_its_first_checkpoint_is_simply_run_again(tmp_path, tiny_model_dir, processes):
    """Ctrl-C before the first checkpoint (or during its save) leaves a folder with no model and no complete
    checkpoint: not a previous run that needs --resume or --overwrite. Running it again just works, --resume
    says once that there is nothing to resume, and neither keeps the interrupted run's metrics."""
    import shutil

    # one checkpoint, at the end of the epoch: small batches make that epoch long enough (tens of steps) that the
    # Ctrl-C sent when the first validation loss is printed always lands before it, however busy the machine
    cfg_path = make_project(tmp_path, tiny_model_dir, n=80, epochs=1, evals_per_epoch=1, batch_size=2)
    env = {**os.environ, "NO_COLOR": "1"}
    assert subprocess.run([SFTFLOW, "prepare", str(cfg_path)], capture_output=True, env=env).returncode == 0
    first_save = -(-len((tmp_path / "data" / "train.jsonl").read_text().splitlines()) // 2)  # steps in the epoch
    proc = processes.start([SFTFLOW, "train", cfg_path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env=env)
    for line in proc.stdout:
        if "before training: val loss" in line:
            proc.send_signal(signal.SIGINT)  # what a person at the terminal does
            break
    proc.communicate(timeout=120)
    run_dir = tmp_path / "runs" / "ctl"
    assert proc.returncode == 130 and not (run_dir / "model").exists()
    assert (run_dir / "checkpoints").is_dir() and not list(run_dir.glob("checkpoints/*/trainer_state.json"))
    cut = run_dir / "checkpoints" / f"checkpoint-{first_save}"  # and the first save cut short: weights, no state
    cut.mkdir()
    (cut / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    shutil.copytree(run_dir, tmp_path / "interrupted")

    def initial_evals() -> int:
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return sum(1 for r in rows if r["step"] == 0 and "eval_loss" in r)

    for flags in ([], ["--resume"]):
        shutil.rmtree(run_dir)
        shutil.copytree(tmp_path / "interrupted", run_dir)
        r = subprocess.run([SFTFLOW, "train", str(cfg_path), *flags], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert (run_dir / "model").is_dir() and initial_evals() == 1  # the interrupted run's rows are gone
        assert r.stdout.count("nothing to resume") == (1 if flags else 0), r.stdout


def test_padding_free_rows_do_not_attend_to_each_other(tmp_path, tiny_model_dir):
    import torch

    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=120))
    prepare(cfg, **quiet)
    trainer, _ = build_trainer(cfg, **quiet)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1  # one packed row
    model = trainer.model.eval()
    pos = batch["position_ids"][0]
    starts = [i for i in range(len(pos)) if pos[i] == 0] + [len(pos)]
    assert len(starts) > 3
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        for a, b in zip(starts[:3], starts[1:4], strict=True):
            alone = model(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits[0]
            assert torch.allclose(packed[a:b], alone, atol=1e-4)


def test_warmup_time_estimate(tmp_path, tiny_model_dir):
    from sftflow.train.estimate import measure_warmup

    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=120))
    prepare(cfg, **quiet)
    w = measure_warmup(cfg, steps=2)
    assert w["seconds_per_step"] > 0 and w["tokens_per_second"] > 0 and w["steps"] >= 10
    assert w["estimated_seconds"] == pytest.approx(w["seconds_per_step"] * w["steps"])
    assert not (tmp_path / "runs").exists()  # the warm-up leaves nothing behind


def fake_checkpoint(root: Path, step: int) -> Path:
    """A complete checkpoint folder as the Trainer writes one: safetensors weights, a torch archive, the state."""
    import torch
    from safetensors.torch import save_file

    d = root / "checkpoints" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    save_file({"w": torch.ones(64, 64)}, d / "model.safetensors")
    torch.save({"state": {0: torch.zeros(256)}}, d / "optimizer.pt")
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


def test_checkpoint_damage_is_found_without_unpickling(tmp_path):
    import zipfile

    def make(step):
        return fake_checkpoint(tmp_path, step)

    good = make(2)
    assert checkpoint_problem(good) is None
    cut = make(4) / "model.safetensors"
    cut.write_bytes(cut.read_bytes()[:-100])
    flipped = make(6) / "optimizer.pt"
    with zipfile.ZipFile(flipped) as z:  # one bit of the tensor data, inside the archive's stored bytes
        info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(flipped.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + int.from_bytes(data[info.header_offset + 28:
                                                                                        info.header_offset + 30], "little")
    data[start + 10] ^= 1
    flipped.write_bytes(bytes(data))
    (make(8) / "trainer_state.json").unlink()
    (make(10) / "trainer_state.json").write_text("{")
    said = []
    assert pick_checkpoint(tmp_path, log=said.append) == str(good)
    assert [m.split(": ")[1] for m in said] == [f"skipping checkpoint-{s}" for s in (10, 8, 6, 4)]
    assert "trainer_state.json unreadable" in said[0] and "cut short" in said[1]
    assert "optimizer.pt: member" in said[2] and "CRC" in said[2] and "model.safetensors" in said[3]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "broken-checkpoint-10", "broken-checkpoint-4", "broken-checkpoint-6", "broken-checkpoint-8", "checkpoint-2"]


def test_the_same_checkpoint_broken_again_and_again_never_blocks_resume(tmp_path):
    """A resumed run killed again while saving the same step leaves a second broken checkpoint-N: the
    next resume must still move it aside (it used to stop for good with "Directory not empty")."""
    good = fake_checkpoint(tmp_path, 2)
    ckpts = tmp_path / "checkpoints"

    def cut_short(ckpt: Path) -> None:
        (ckpt / "trainer_state.json").unlink()

    def half_weights(ckpt: Path) -> None:
        weights = ckpt / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])

    def half_optimizer(ckpt: Path) -> None:
        optimizer = ckpt / "optimizer.pt"
        optimizer.write_bytes(optimizer.read_bytes()[:200])

    for damage, problem in ((cut_short, "cut short"), (half_weights, "model.safetensors"),
                            (half_optimizer, "optimizer.pt: not a complete torch archive")):
        damage(fake_checkpoint(tmp_path, 4))
        said = []
        assert pick_checkpoint(tmp_path, log=said.append) == str(good)
        assert len(said) == 1 and said[0].startswith("train: skipping checkpoint-4: ") and problem in said[0]
        assert sorted(p.name for p in ckpts.iterdir()) == ["broken-checkpoint-4", "checkpoint-2"]
    # the newest broken copy is the one kept: repeated failures do not pile up on a disk that may be full
    assert (ckpts / "broken-checkpoint-4" / "optimizer.pt").stat().st_size == 200


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_full_disk_while_saving_stops_cleanly_and_resume_skips_the_half_checkpoint(tmp_path, tiny_model_dir,
                                                                                monkeypatch):
    """The disk fills while checkpoint-2 is written, twice in a row (the run and its first resume): each
    stop is one line naming the disk, the checkpoint and the last good one; the next resume finishes,
    its summary keeps the first run's initial validation loss, and metrics.jsonl has each step once."""
    from transformers import Trainer

    from sftflow.errors import SftflowError

    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=80, epochs=1, early_stopping_patience=0, method="lora",
                                   learning_rate=2e-4, extra={"max_steps": 2, "eval_steps": 1, "save_steps": 1,
                                                              "logging_steps": 1}))
    prepare(cfg, **quiet)
    real = Trainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        # checkpoint-2's optimizer state goes to /dev/full, where every write fails with ENOSPC: torch's own
        # zip writer reports it ("[enforce fail at inline_container.cc:...] . unexpected pos ...")
        if output_dir.endswith("checkpoint-2"):
            Path(output_dir, "optimizer.pt").symlink_to("/dev/full")
        real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", save)
    ckpts = cfg.run_dir / "checkpoints"
    for resume in (False, True):
        with pytest.raises(SftflowError) as caught:
            train(cfg, resume=resume, **quiet)
        message = str(caught.value)
        assert message == (f"train: no space left on the device while saving checkpoint-2 in {ckpts} "
                           f"({message.split(' (')[1].split(')')[0]}); the last good checkpoint is "
                           f"{ckpts / 'checkpoint-1'}: free some space and continue with --resume")
        assert "MiB free there now" in message
        assert isinstance(caught.value.__cause__, RuntimeError) and "unexpected pos" in str(caught.value.__cause__)
        if not resume:
            rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
            measured_before_training = [r["eval_loss"] for r in rows if r["step"] == 0 and "eval_loss" in r]
            assert len(measured_before_training) == 1
    monkeypatch.undo()
    said = []
    summary = train(cfg, resume=True, log=said.append)
    assert any(m.startswith("train: skipping checkpoint-2: no trainer_state.json") for m in said)
    assert any(m.startswith("train: resuming from") and m.endswith("checkpoint-1") for m in said)
    assert summary["steps"] == 2 and (cfg.run_dir / "model").is_dir()
    assert sorted(p.name for p in ckpts.iterdir() if p.name != "README.md") == [
        "broken-checkpoint-2", "checkpoint-1", "checkpoint-2"]
    assert summary["val_loss_initial"] == measured_before_training[0]
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    for kind in ("loss", "eval_loss"):
        steps = [r["step"] for r in rows if kind in r]
        assert steps == sorted(set(steps)), (kind, steps)  # the steps redone after the resume are logged once
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]


def test_tensorboard_and_mlflow_file_store(tmp_path, tiny_model_dir, monkeypatch):
    """Both trackers write into the run folder, given it as arguments: the environment is left as it
    was (transformers' TENSORBOARD_LOGGING_DIR / MLFLOW_* are not set) and MLflow's tracking URI is
    put back after the run."""
    import mlflow
    import tensorboard  # noqa: F401  (the dev extra installs both: a missing one fails)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in for a file store (the CLI sets it)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)  # undone after the test
    cfg = load_config(make_project(tmp_path, tiny_model_dir, n=120, epochs=1, report_to=["tensorboard", "mlflow"],
                                   extra={"max_steps": 3, "logging_steps": 1}))
    prepare(cfg, **quiet)
    before = dict(os.environ)
    train(cfg, **quiet)
    assert list((cfg.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert list((cfg.run_dir / "mlruns").rglob("metrics/eval_loss"))  # MLflow file store inside the run folder
    changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}
    assert not changed & {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR"}, changed
    assert not mlflow.is_tracking_uri_set()  # the run folder's store was this training's only  # MLflow file store inside the run folder
