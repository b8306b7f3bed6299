"""bench/playbook/run.py in its smoke mode: the harness runs through sftflow and writes a well-formed report.

The smoke sizes are far too small for the verdicts to mean anything; this only checks the plumbing
(a subset of claims, to stay under a minute). The real figures come from `run.py --quick`.
"""

import importlib.util
import json
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "bench" / "playbook" / "run.py"


def load_run():
    spec = importlib.util.spec_from_file_location("playbook_run", RUN)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return run


def test_beats_asks_for_twice_the_standard_error():
    run = load_run()
    holds, line = run.beats([0.5], [0.4], "a vs b")
    assert holds and "one seed: no spread measured" in line
    holds, line = run.beats([0.50, 0.60, 0.70], [0.45, 0.55, 0.65], "a vs b")  # diff 0.05, 2 SE ~0.163
    assert not holds and "difference within the seed spread (diff +0.050, 2 SE 0.163)" in line
    holds, line = run.beats([0.60, 0.61, 0.62], [0.40, 0.41, 0.42], "a vs b")
    assert holds and "beyond the seed spread" in line
    holds, _ = run.beats([0.0, 0.0], [0.0, 0.0], "a vs b")  # a tie does not count
    assert not holds


@pytest.mark.slow
def test_playbook_smoke(tmp_path, tiny_model_dir):
    run = load_run()
    assert run.main(["--smoke", "--out", str(tmp_path), "--only", "quality,padding"]) == 0

    text = (tmp_path / "RESULTS.md").read_text()
    assert "| claim | setting | what we measured | here |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("** |")]
    assert len(rows) == 2
    assert all(("**holds**" in r) != ("**does not hold here**" in r) for r in rows)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert results["task_metric"] == "json_field_accuracy"
    assert "| field accuracy | exact match |" in text  # the Runs table shows both
    for claim in results["claims"]:
        assert (tmp_path / claim["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "_work-smoke").exists()  # the scratch folder is removed
