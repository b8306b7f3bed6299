"""The training commands: train, run (the whole pipeline), estimate.

    sftflow run my-project/sftflow.yaml
"""

from __future__ import annotations

from pathlib import Path

import typer

from sftflow.cli.app import (
    ConfigArg,
    check_gates,
    command,
    load_cfg,
    log,
    require_model_of,
    user_errors,
)

# the options `train` and `run` share
StrictOption = typer.Option(False, "--strict", help="treat guardrail warnings as errors")
OverwriteOption = typer.Option(False, "--overwrite", help="replace a previous run in the same run folder")


@command()
def train(
    config: Path = ConfigArg,
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint of this run"),
    strict: bool = StrictOption,
    overwrite: bool = OverwriteOption,
    nproc: int = typer.Option(1, "--nproc", min=1, help="processes (GPUs) per node: launches torchrun for you"),
    guardrails_shown: bool = typer.Option(False, "--guardrails-shown", hidden=True,
                                          help="the launcher of these processes has shown the guardrails"),
    nnodes: int = typer.Option(1, "--nnodes", min=1, help="number of nodes (run the same command on each)"),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="this node's rank, 0 .. nnodes-1"),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="address of the rank-0 node"),
    master_port: int = typer.Option(29500, "--master-port", help="port on the rank-0 node"),
):
    """Fine-tune the model (LoRA by default) on the prepared train split, early-stopping on val loss.

    Several GPUs or nodes: --nproc N (and --nnodes/--node-rank/--master-addr) launches torchrun with
    train.distributed.strategy (ddp, fsdp, deepspeed); `torchrun ... -m sftflow train` works too.

    Example: sftflow train quickstart/sftflow.yaml
    """
    with user_errors(config, "train"):
        from sftflow.train.trainer import train as run_train

        cfg = load_cfg(config, training=not guardrails_shown)
        require_model_of(cfg)
        if nproc > 1 or nnodes > 1:
            import torch

            from sftflow.train.distributed import check_strategy, launch

            check_strategy(cfg, use_cpu=not torch.cuda.is_available())

            args = [a for a, on in (("--resume", resume), ("--strict", strict), ("--overwrite", overwrite)) if on]
            args.append("--guardrails-shown")  # the processes it launches do not repeat them
            log(f"train: launching {nproc} process(es) x {nnodes} node(s) with torchrun "
                f"({cfg.train.distributed.strategy})")
            code = launch(config, args, nproc=nproc, nnodes=nnodes, node_rank=node_rank, master_addr=master_addr,
                          master_port=master_port)
            if code:
                raise typer.Exit(code)
            return
        run_train(cfg, resume=resume, strict=strict, overwrite=overwrite, log=log)


@command()
def run(
    config: Path = ConfigArg,
    strict: bool = StrictOption,
    overwrite: bool = OverwriteOption,
    resume: bool = typer.Option(False, "--resume", help="continue the run's training from its last checkpoint"),
):
    """Run the whole pipeline: prepare → train → eval → report.

    Examples:

        sftflow run quickstart/sftflow.yaml

        sftflow run quickstart/sftflow.yaml --resume      (after an interrupted run)
    """
    with user_errors(config, "run"):
        from sftflow.pipeline import run_pipeline

        cfg = load_cfg(config, training=True)
        require_model_of(cfg)
        check_gates(run_pipeline(cfg, strict=strict, overwrite=overwrite, resume=resume, log=log))


@command()
def estimate(
    config: Path = ConfigArg,
    model: str = typer.Option(None, "--model", help="estimate for this model id/path instead of the config's"),
    seq_len: int = typer.Option(None, "--seq-len", help="tokens per example (default: train.max_length)"),
    warmup: int = typer.Option(0, "--warmup", min=0, help="time N real training steps on the prepared data for an ETA"),
    gpus: int = typer.Option(1, "--gpus", min=1, help="also show per-GPU memory for DDP / ZeRO-2 / ZeRO-3 / FSDP on N GPUs"),
):
    """Estimate memory for lora, qlora and full fine-tuning (no weights loaded), per GPU size and for this machine.

    With --warmup N, also time N training steps of the configured run and extrapolate the run time.

    Example: sftflow estimate quickstart/sftflow.yaml --model meta-llama/Llama-2-7b-hf
    """
    with user_errors(config, "estimate"):
        from sftflow.train.estimate import estimate_report

        estimate_report(load_cfg(config, model_code=True), model=model, seq_len=seq_len, warmup=warmup, gpus=gpus, log=log)
