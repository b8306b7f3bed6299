"""Weights & Biases for `train.report_to: [wandb]`: the run lives in the run folder, offline by default.

    WANDB_MODE=offline sftflow train sftflow.yaml     # then: wandb sync runs/NAME/wandb/offline-run-*

sftflow starts the W&B run itself, before the trainer does, so that it can put it in the run
folder (`runs/NAME/wandb/`), name it (project and run name: the config's `name`, as MLflow's
experiment and run) and log sftflow's resolved config beside the trainer arguments that
transformers' `WandbCallback` adds to the same run. It stays offline unless you chose otherwise:
`WANDB_MODE` set, or a W&B API key (`WANDB_API_KEY`, or `wandb login`'s entry in ~/.netrc).
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

import yaml

from sftflow.config import Config, dump_config

INSTALL = {"tensorboard": "pip install tensorboard", "mlflow": "pip install mlflow",
           "wandb": "pip install 'sftflow[wandb]'"}


def has_wandb_key() -> bool:
    """An API key the user gave W&B: in the environment, or stored by `wandb login` in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def start_wandb(cfg: Config, run_dir: Path, info: dict):
    """Open the W&B run the trainer's callback then logs into (it reuses an open run)."""
    import wandb

    mode = None if os.environ.get("WANDB_MODE") or has_wandb_key() else "offline"
    config = {"sftflow": yaml.safe_load(dump_config(cfg)), "run_id": info.get("run_id"),
              "data_fingerprint": info.get("data_fingerprint")}
    return wandb.init(dir=str(run_dir), project=os.environ.get("WANDB_PROJECT") or cfg.name, name=cfg.name,
                      config=config, mode=mode, reinit="finish_previous")


def finish_wandb(run, log) -> None:
    """Close the run (the trainer's callback leaves it open) and say where it is and how to upload it."""
    if run is None:
        return
    offline = run.settings.mode == "offline"
    where = run.settings.sync_dir
    run.finish()
    log(f"train: W&B run {'stored offline in' if offline else 'logged, local copy in'} {where}"
        + (f"; upload it with `wandb sync {where}`" if offline else ""))
