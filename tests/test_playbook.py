"""bench/playbook/run.py in its smoke mode: the harness runs through sftflow and writes a well-formed report.

The smoke sizes are far too small for the verdicts to mean anything; this only checks the plumbing
(a subset of claims, to stay under a minute). The real figures come from `run.py --quick`.
"""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
RUN = Path(__file__).resolve().parents[1] / "bench" / "playbook" / "run.py"


def test_playbook_smoke(tmp_path, tiny_model_dir):
    spec = importlib.util.spec_from_file_location("playbook_run", RUN)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run.main(["--smoke", "--out", str(tmp_path), "--only", "quality,padding"]) == 0

    text = (tmp_path / "RESULTS.md").read_text()
    assert "| claim | setting | what we measured | here |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("** |")]
    assert len(rows) == 2
    assert all(("**holds**" in r) != ("**does not hold here**" in r) for r in rows)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    for claim in results["claims"]:
        assert (tmp_path / claim["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "_work-smoke").exists()  # the scratch folder is removed
