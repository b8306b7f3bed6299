"""Several processes, one config: DDP, FSDP or DeepSpeed ZeRO through the engines that exist.

    sftflow train sftflow.yaml --nproc 8                         # one node, 8 GPUs (torchrun for you)
    sftflow train sftflow.yaml --nproc 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1
    torchrun --nproc_per_node 8 -m sftflow train sftflow.yaml    # or launch it yourself
    accelerate launch --num_processes 8 -m sftflow train sftflow.yaml

sftflow never implements parallelism itself: it maps `train.distributed` onto the Trainer's
own arguments (DDP is the Trainer's default under torchrun; FSDP2 via `fsdp_config`; DeepSpeed
via a config generated from ours, or the user's JSON). The data is sharded by the Trainer's
distributed sampler, the effective batch is per-device batch x accumulation x world size, and
only rank 0 writes logs, the ledger entry and the run folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sftflow.config import Config
from sftflow.errors import SftflowError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def deepspeed_config(cfg: Config) -> dict:
    """A ZeRO config from ours; "auto" values are filled in by the Trainer from the SFTConfig."""
    d = cfg.train.distributed
    if d.deepspeed_config:
        path = cfg.path(d.deepspeed_config)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SftflowError(f"train.distributed.deepspeed_config: cannot read {path} ({err})") from err
    zero: dict = {"stage": d.zero_stage, "overlap_comm": True, "contiguous_gradients": True,
                  "reduce_bucket_size": "auto"}
    if d.zero_stage == 3:
        zero.update({"stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                     "stage3_gather_16bit_weights_on_model_save": True})
    if d.cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if d.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def validate_deepspeed(config: dict) -> None:
    """Check a DeepSpeed config with DeepSpeed's own models (no GPU needed), as a clear error."""
    try:
        from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    except ImportError as err:
        raise SftflowError("train.distributed.strategy deepspeed needs deepspeed: pip install deepspeed") from err
    from pydantic import ValidationError

    zero = {k: v for k, v in config.get("zero_optimization", {}).items() if v != "auto"}
    try:
        DeepSpeedZeroConfig(**zero)
    except ValidationError as err:
        raise SftflowError(f"DeepSpeed zero_optimization config is invalid: {err.errors()[0]['msg']}") from err


def check_strategy(cfg: Config, use_cpu: bool) -> None:
    """Refuse strategies this hardware cannot run, before any process starts."""
    strategy = cfg.train.distributed.strategy
    if use_cpu and strategy == "fsdp":  # accelerate silently runs plain DDP on CPU: refuse rather than pretend
        raise SftflowError("train.distributed.strategy fsdp needs GPUs (accelerate runs FSDP on CUDA only); "
                           "use ddp on CPU")
    if use_cpu and strategy == "deepspeed":
        raise SftflowError("train.distributed.strategy deepspeed needs GPUs; use ddp on CPU")


def trainer_settings(cfg: Config, model, use_cpu: bool) -> dict:
    """SFTConfig arguments for the configured strategy (nothing when running as one process)."""
    if world_size() == 1:
        return {}
    check_strategy(cfg, use_cpu)
    d = cfg.train.distributed
    settings: dict = {"ddp_backend": "gloo" if use_cpu else "nccl", "ddp_find_unused_parameters": False}
    if d.strategy == "fsdp":
        layers = list(getattr(model, "_no_split_modules", None) or [])
        settings.update(fsdp=True, fsdp_config={
            "version": 2, "reshard_after_forward": True, "cpu_offload": d.cpu_offload,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "transformer_layer_cls_to_wrap": layers,
        })
    elif d.strategy == "deepspeed":
        ds = deepspeed_config(cfg)
        validate_deepspeed(ds)
        settings["deepspeed"] = ds
    return settings


def launch(config: Path, args: list[str], *, nproc: int, nnodes: int, node_rank: int, master_addr: str,
           master_port: int) -> int:
    """Run `sftflow train` under torchrun with the given topology; returns its exit code."""
    if "WORLD_SIZE" in os.environ:
        raise SftflowError("--nproc given inside a distributed launch; drop --nproc (torchrun/accelerate already "
                           "started the processes)")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--nnodes={nnodes}",
           f"--node_rank={node_rank}", f"--master_addr={master_addr}", f"--master_port={master_port}",
           "-m", "sftflow", "train", str(config), *args]
    return subprocess.run(cmd).returncode
