"""Several processes on CPU (torchrun, gloo): DDP in lock-step equals one process with the same
global batch, only rank 0 writes, resume works; strategy settings and DeepSpeed configs checked."""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from sftflow.config import load_config, parse_config
from sftflow.data.prepare import prepare
from sftflow.errors import SftflowError
from sftflow.train.distributed import deepspeed_config, trainer_settings, validate_deepspeed
from sftflow.train.estimate import estimate_memory, per_gpu
from tests.support import SFTFLOW

ENV = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}


def project(root: Path, model_dir, **train) -> Path:
    from sftflow.quickstart import write_quickstart_data

    write_quickstart_data(root / "raw", n=160, seed=2)
    cfg = {"name": "dist", "data": {"sources": [{"path": "raw/support_chat.jsonl"}]},
           "model": {"name_or_path": str(model_dir)},
           "train": {"method": "lora", "learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "grad_accum": 1,
                     "max_length": 256, "lora": {"dropout": 0.0}, "early_stopping_patience": 0,
                     "extra": {"max_steps": 4, "eval_steps": 2, "save_steps": 2}, **train}}
    path = root / "sftflow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c = load_config(path)
    prepare(c, log=lambda m: None)
    # every training example the same: any sharding or order gives identical batches, so the
    # two-process run must match one process with the same global batch to float precision
    first = (c.data_dir / "train.jsonl").read_text().splitlines()[0]
    (c.data_dir / "train.jsonl").write_text((first + "\n") * 64)
    return path


def train_cli(*args):
    return subprocess.run([SFTFLOW, "train", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600)


@pytest.mark.slow
def test_ddp_two_processes_match_one_and_only_rank0_writes(tmp_path, tiny_model_dir):
    two = project(tmp_path / "two", tiny_model_dir)  # 2 processes x batch 4
    one = project(tmp_path / "one", tiny_model_dir, batch_size=8)  # 1 process x batch 8
    r = train_cli(two, "--nproc", 2)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "effective batch 8 (2 processes, ddp)" in r.stdout
    assert r.stdout.count("train: done") == 1 and r.stderr.count("warning: only") <= 1  # rank 0 speaks
    assert train_cli(one).returncode == 0

    def run_dir(p):
        return p.parent / "runs" / "dist"

    # the weights after the same 4 steps (model/ holds the best checkpoint by validation loss, and
    # eval batches of 4 per process vs 8 average the 6 validation examples differently, so the two
    # runs may pick different steps as best)
    ckpt = Path("checkpoints") / "checkpoint-4" / "adapter_model.safetensors"
    a = load_file(run_dir(two) / ckpt)
    b = load_file(run_dir(one) / ckpt)
    assert a.keys() == b.keys()
    moved = 0
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-4, k
        moved += (a[k] != 0).any().item()
    assert moved  # the adapters trained (LoRA B starts at zero)
    summary = json.loads((run_dir(two) / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["effective_batch"] == 8
    logs = [json.loads(line) for line in (run_dir(two) / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logs if "eval_loss" in m] == [0, 2, 4]  # one writer, not one per rank
    db = sqlite3.connect(two.parent / "data" / "ledger.sqlite")
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1

    # resume under DDP: continue the finished 4-step run to 6 steps from its last checkpoint
    cfg = yaml.safe_load(two.read_text())
    cfg["train"]["extra"]["max_steps"] = 6
    two.write_text(yaml.safe_dump(cfg))
    r = train_cli(two, "--nproc", 2, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from" in r.stdout and "checkpoint-4" in r.stdout
    assert json.loads((run_dir(two) / "train_summary.json").read_text())["steps"] == 6


def test_strategy_settings_and_refusals(monkeypatch, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    base = {"data": {"sources": [{"path": "x.jsonl"}]}, "model": {"name_or_path": "m"}}
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    fsdp = parse_config({**base, "train": {"distributed": {"strategy": "fsdp", "cpu_offload": True}}})
    assert trainer_settings(fsdp, model, use_cpu=False) == {}  # one process: nothing to set
    monkeypatch.setenv("WORLD_SIZE", "2")
    s = trainer_settings(fsdp, model, use_cpu=False)
    assert s["fsdp"] is True and s["fsdp_config"]["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert s["fsdp_config"]["cpu_offload"] is True and s["ddp_backend"] == "nccl"
    with pytest.raises(SftflowError, match="fsdp needs GPUs"):
        trainer_settings(fsdp, model, use_cpu=True)
    ddp = parse_config(base)
    assert trainer_settings(ddp, model, use_cpu=True) == {"ddp_backend": "gloo", "ddp_find_unused_parameters": False}
    for bad, msg in ((dict(method="qlora", distributed={"strategy": "fsdp"}), "fsdp with method qlora"),
                     (dict(method="qlora", distributed={"strategy": "deepspeed", "zero_stage": 3}), "ZeRO-3")):
        with pytest.raises(SftflowError, match=msg):
            parse_config({**base, "train": bad})


def test_generated_deepspeed_configs_pass_deepspeed_validation(tmp_path):
    import deepspeed  # noqa: F401  (the dev extra installs it: a missing one fails)
    base = {"data": {"sources": [{"path": "x.jsonl"}]}, "model": {"name_or_path": "m"}}
    for stage in (2, 3):
        for offload in (False, True):
            cfg = parse_config({**base, "train": {"distributed": {"strategy": "deepspeed", "zero_stage": stage,
                                                                  "cpu_offload": offload}}})
            ds = deepspeed_config(cfg)
            validate_deepspeed(ds)
            assert ds["zero_optimization"]["stage"] == stage
            assert ("offload_param" in ds["zero_optimization"]) == (offload and stage == 3)
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 7}}))
    own = parse_config({**base, "train": {"distributed": {"strategy": "deepspeed", "deepspeed_config": "ds.json"}}},
                       root=tmp_path)
    with pytest.raises(SftflowError, match="DeepSpeed zero_optimization config is invalid"):
        validate_deepspeed(deepspeed_config(own))


def test_per_gpu_memory_by_strategy():
    from transformers import LlamaConfig

    llama7b = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                          num_attention_heads=32)
    full = estimate_memory(llama7b, method="full", batch_size=1, seq_len=512, gradient_checkpointing=True)
    ddp, z2, z3 = (per_gpu(full, s, 8, z) for s, z in (("ddp", 2), ("deepspeed", 2), ("deepspeed", 3)))
    assert ddp == pytest.approx(full.total_gib, abs=1e-3) and ddp > 100
    assert z3 < z2 < ddp and z3 < 20  # ZeRO-3 on 8 GPUs: a 7B full fine-tune fits on 24 GB cards
