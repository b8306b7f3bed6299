"""Finding a trained run and loading its model: what `serve`, `chat` and `review` are given.

    run = resolve_run("runs/quickstart")          # or the project's sftflow.yaml
    model, tok = load_run(run)

A run folder is often someone else's: `load_run` refuses one whose config switches on
trust_remote_code unless the user allowed it on the command line.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from sftflow.errors import SftflowError


@dataclass
class Run:
    run_dir: Path
    name: str
    base_path: str
    method: str
    trust_remote_code: bool  # what the run's config asks for; honoured only with --trust-remote-code
    config_file: Path
    system_prompt: str | None = None  # the training data's, added to conversations without one


def resolve_run(path: str | Path, base: str | None = None, default_system: bool = True) -> Run:
    """A run folder (runs/NAME, with the config.yaml train wrote) or a project's sftflow.yaml.

    A run's config.yaml keeps model paths as the user wrote them, relative to the project;
    the project folder is the run folder minus `<output_dir>/<name>`.
    """
    from sftflow.config import load_config

    path = Path(path)
    if not path.exists():
        raise SftflowError(f"{path}: not found; pass a run folder (e.g. runs/quickstart) or the project's sftflow.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # guardrail warnings were shown when the run was trained
        if path.is_file() or (path / "sftflow.yaml").exists():
            cfg = load_config(path)
            run_dir, cfg_file = cfg.run_dir, path if path.is_file() else path / "sftflow.yaml"
        else:
            run_dir, cfg_file = path, path / "config.yaml"
            cfg = run_config(run_dir)
    if not (run_dir / "model").exists():
        raise SftflowError(f"{run_dir / 'model'}: no trained model; run `sftflow train` first")
    from sftflow.model.resolve import resolve_model
    from sftflow.model.system_prompt import training_system_prompt

    base_path = resolve_model(base, Path(base).expanduser()) if base else cfg.model_path()  # a .gguf: converted once
    return Run(run_dir=run_dir, name=cfg.name, base_path=base_path, method=cfg.train.method,
               trust_remote_code=cfg.model.trust_remote_code, config_file=cfg_file,
               system_prompt=training_system_prompt(run_dir) if default_system else None)


def is_run_folder(path: Path) -> bool:
    """A folder `sftflow train` wrote (its config.yaml), not a project (its sftflow.yaml)."""
    return path.is_dir() and not (path / "sftflow.yaml").exists() and (path / "config.yaml").exists()


def run_config(run_dir: Path):
    """The config a run was trained with (its config.yaml), its paths read against the project folder."""
    from sftflow.config import parse_config

    cfg_file = Path(run_dir) / "config.yaml"
    if not cfg_file.exists():
        raise SftflowError(f"{run_dir}: not a run folder (no config.yaml); pass runs/NAME after `sftflow train`, "
                           "or the project's sftflow.yaml")
    try:
        data = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SftflowError(f"{cfg_file}: invalid YAML ({str(err).splitlines()[0]})") from err
    return parse_config(data, str(cfg_file), root=_project_root(Path(run_dir), data) or Path(run_dir))


def _project_root(run_dir: Path, data) -> Path | None:
    if not isinstance(data, dict):
        return None
    out = Path(str(data.get("output_dir", "runs")))
    if out.is_absolute() or ".." in out.parts:
        return None
    root = run_dir.resolve().parent
    for _ in out.parts:
        root = root.parent
    return root


def check_remote_code(run: Run, allowed: bool) -> None:
    """A run folder is often someone else's: its config may not switch on running the Python
    code that comes with its model unless the user says so on this command."""
    if run.trust_remote_code and not allowed:
        raise SftflowError(
            f"{run.config_file}: model.trust_remote_code is true, so loading {run.run_dir} would run the Python code "
            "that comes with its model on this machine; pass --trust-remote-code if you trust that folder and model"
        )


def load_run(run: Run, *, threads: int | None = None, trust_remote_code: bool = False):
    """The tuned model and its ChatTemplate (its tokenizer: left padding, the training template).
    `trust_remote_code`: the user's permission (--trust-remote-code) for a run whose config asks for it."""
    import torch

    from sftflow.model.load import load_tuned

    check_remote_code(run, trust_remote_code)
    if threads:
        torch.set_num_threads(threads)
    return load_tuned(run.run_dir, run.base_path, method=run.method, trust_remote_code=run.trust_remote_code)
