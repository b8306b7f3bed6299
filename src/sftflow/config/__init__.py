"""The sftflow config: one YAML file, validated before any expensive work starts.

    sftflow init my-project        # writes a commented sftflow.yaml generated from these fields

Every field documents itself (`description=`); `sftflow init` renders that help into the
YAML it writes, so the docs never drift from the code. Unknown keys are errors with a
"did you mean" hint, and every problem is reported at once with its key path.
Relative paths are resolved against the config file's folder.

`Config` here is the whole file; each section is a module of its own (`data.py`, `train.py` for
model: and train:, `eval.py`, `review.py`), beside the settings-only guardrails (`guardrails.py`),
the one-line validation message (`problems.py`) and the commented YAML `init` writes (`commented.py`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from sftflow.config.data import DataConfig
from sftflow.config.eval import EvalConfig
from sftflow.config.guardrails import guardrail_warnings
from sftflow.config.problems import format_validation_error
from sftflow.config.review import ReviewConfig
from sftflow.config.strict import Strict, inside_project
from sftflow.config.train import ModelConfig, TrainConfig
from sftflow.errors import SftflowError


class Config(Strict):
    name: str = Field("run", description="run name; outputs go to <output_dir>/<name>")
    data: DataConfig = Field(description="input files and how to split them")
    model: ModelConfig = Field(description="base model to fine-tune")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training settings")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation settings and gates")
    review: ReviewConfig = Field(default_factory=ReviewConfig, description="human review: batches, overlap, minimum sample")
    output_dir: str = Field("runs", description="folder for run outputs")

    _output_inside = field_validator("output_dir")(classmethod(lambda cls, v: inside_project(v)))

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it becomes a folder name)")
        return name

    # Resolved paths: set by load_config, relative to the config file.
    _root: Path = Path(".")

    @property
    def root(self) -> Path:
        return self._root

    def path(self, value: str) -> Path:
        """A config path resolved against the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._root / p

    @property
    def data_dir(self) -> Path:
        return self.path(self.data.output_dir)

    @property
    def run_dir(self) -> Path:
        return self.path(self.output_dir) / self.name

    def model_path(self) -> str:
        """What every command loads: a local folder relative to the config; for a `.gguf` file or an
        offline short name (smollm2-135m-instruct) the folder it was converted into, once, in sftflow's
        cache (model/resolve.py); else the hub id unchanged."""
        from sftflow.model.resolve import resolve_model

        return resolve_model(self.model.name_or_path, self.path(self.model.name_or_path))


def parse_config(data: Any, source: str = "config", root: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise SftflowError(f"{source}: the config must be a YAML mapping of keys, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise SftflowError(format_validation_error(err, source, Config)) from err
    cfg._root = (root or Path(".")).resolve()
    for w in guardrail_warnings(cfg):
        warnings.warn(w, stacklevel=2)
    return cfg


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.exists():
        raise SftflowError(f"{path}: config file not found (create one with `sftflow init DIR`)")
    if path.is_dir():
        cand = path / "sftflow.yaml"
        if not cand.exists():
            raise SftflowError(f"{path}: is a folder without sftflow.yaml; pass the config file")
        path = cand
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SftflowError(f"{path}{where}: invalid YAML: {problem}") from err
    except UnicodeDecodeError as err:
        raise SftflowError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return parse_config(data, str(path), root=path.parent)


def dump_config(cfg: Config) -> str:
    """The resolved config (defaults filled in), as saved in every run folder."""
    data = cfg.model_dump(mode="json")
    data["train"]["learning_rate"] = cfg.train.lr
    return yaml.safe_dump(data, sort_keys=False)
