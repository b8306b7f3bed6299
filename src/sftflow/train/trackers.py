"""The experiment trackers of `train.report_to`, each given its place in the run folder as arguments.

    WANDB_MODE=offline sftflow train sftflow.yaml     # then: wandb sync runs/NAME/wandb/offline-run-*

TensorBoard writes to `runs/NAME/tensorboard` and MLflow to a file store in `runs/NAME/mlruns`
(experiment and run: the config's `name`): sftflow builds their trainer callbacks with those
settings instead of setting transformers' environment variables for the whole process. MLflow 3
only opens a file store when `MLFLOW_ALLOW_FILE_STORE=true` (the `sftflow` command sets it; a
Python caller sets it itself, or points `MLFLOW_TRACKING_URI` at a server).

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
from sftflow.errors import SftflowError

INSTALL = {"tensorboard": "pip install tensorboard", "mlflow": "pip install mlflow",
           "wandb": "pip install 'sftflow[wandb]'"}


def trainer_trackers(cfg: Config, run_dir: Path) -> tuple[list[str], list]:
    """What the trainer reports to: the names transformers' own callbacks handle (W&B, whose run
    `start_wandb` opened), and the TensorBoard and MLflow callbacks built here with their folders."""
    import importlib.util

    names = list(cfg.train.report_to)
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise SftflowError(f"train.report_to: {name} is not installed; {INSTALL[name]} (or remove it)")
    callbacks = []
    if "tensorboard" in names:
        callbacks.append(_tensorboard(run_dir / "tensorboard"))
    if "mlflow" in names:
        callbacks.append(_mlflow((run_dir / "mlruns").resolve().as_uri(), cfg.name))
    return [n for n in names if n not in ("tensorboard", "mlflow")], callbacks


def _tensorboard(folder: Path):
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(folder)  # read by its on_train_begin; TENSORBOARD_LOGGING_DIR is not consulted
    return callback


def _mlflow(tracking_uri: str, experiment: str):
    """transformers' MLflow callback, pointed at this run's store for the length of the training only
    (MLflow keeps its tracking URI and experiment per process: the ones before are put back)."""
    from transformers.integrations import MLflowCallback

    class RunFolderMLflow(MLflowCallback):
        previous = None  # the tracking URI before the run, put back at its end

        def setup(self, args, state, model):
            mlflow = self._ml_flow
            if state.is_world_process_zero and mlflow.active_run() is None and not os.environ.get("MLFLOW_TRACKING_URI"):
                self.previous = (mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None,)
                mlflow.set_tracking_uri(tracking_uri)  # a server the user named (MLFLOW_TRACKING_URI) wins
                mlflow.set_experiment(experiment)
            super().setup(args, state, model)

        def on_train_end(self, args, state, control, **kwargs):
            super().on_train_end(args, state, control, **kwargs)
            if self.previous is not None:
                self._ml_flow.set_tracking_uri(self.previous[0])

    return RunFolderMLflow()


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
