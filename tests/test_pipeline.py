"""The pipeline entry point (`sftflow.pipeline.run_pipeline`): one call runs prepare → train →
evaluate → report, and the failed gates of eval and of the report (human_*) end in one result."""

import json

import pytest
import yaml

pytestmark = pytest.mark.slow

# exact_match can never reach 2 and json_valid is always >= 0; nobody has rated, so the human gate fails
GATES = {"exact_match": ">= 2", "json_valid": ">= 0", "human_win_rate": ">= 0.5"}


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    import shutil

    from sftflow.quickstart import write_quickstart_data

    root = tmp_path_factory.mktemp("pipeline") / "proj"
    shutil.copytree(tiny_model_dir, root / "tiny-model")
    write_quickstart_data(root / "raw", n=240, seed=0)
    config = {
        "name": "tiny",
        "data": {"sources": [{"path": "raw/support_chat.jsonl"}], "split": {"train": 0.7, "val": 0.15, "test": 0.15}},
        "model": {"name_or_path": "tiny-model"},
        "train": {"extra": {"max_steps": 2}},
        "eval": {"max_examples": 4, "max_new_tokens": 8, "probes": False, "forgetting": False,
                 "metrics": ["exact_match", "json_valid"], "default_gates": False, "gates": GATES},
    }
    (root / "sftflow.yaml").write_text(yaml.safe_dump(config))
    return root


def test_one_call_runs_every_stage_and_aggregates_the_gates_of_eval_and_report(project):
    from sftflow.config import load_config
    from sftflow.pipeline import run_pipeline

    cfg = load_config(project / "sftflow.yaml")
    lines = []
    result = run_pipeline(cfg, log=lines.append)

    # every stage ran and handed back what it wrote
    train_rows = (project / "data" / "train.jsonl").read_text().splitlines()
    assert result.prepare["splits"]["train"] == len(train_rows), result.prepare["splits"]
    assert result.train["steps"] == 2 == json.loads((cfg.run_dir / "train_summary.json").read_text())["steps"]
    written = json.loads((cfg.run_dir / "eval" / "metrics.json").read_text())
    test_rows = (project / "data" / "test.jsonl").read_text().splitlines()
    assert result.eval["test_examples"] == min(4, len(test_rows)) and result.eval["tuned"] == written["tuned"]
    assert result.report == cfg.run_dir / "eval" / "report.html" and result.report.exists()

    # the oracle: each configured gate checked by hand on what eval measured
    exact, valid = written["tuned"]["exact_match"]["mean"], written["tuned"]["json_valid"]["mean"]
    assert exact < 2 and valid >= 0  # so exact_match fails and json_valid passes
    expected_failed = ["exact_match", "human_win_rate"]  # ... and without ratings the human gate cannot pass
    assert [f.split(" ")[0] for f in result.failed] == expected_failed, result.failed
    assert result.failed[0].startswith("exact_match (") and result.failed[0].endswith(", needs >= 2)")
    assert result.passed is False
    assert result.failure().startswith("gates failed: exact_match (") and "), human_win_rate (not enough ratings) (see " in result.failure()
    # the report stage merged the human gate into metrics.json: the failed verdict covers both stages
    written = json.loads((cfg.run_dir / "eval" / "metrics.json").read_text())
    assert written["passed"] is False
    assert {g["gate"]: g["passed"] for g in written["gates"]} == {"exact_match": False, "json_valid": True,
                                                                  "human_win_rate": False}
    assert lines[-1].startswith("run: finished in ") and any(line.startswith("report: ") for line in lines)


def test_sftflow_run_exits_1_with_every_failed_gate_on_one_line(project):
    from typer.testing import CliRunner

    from sftflow.cli import app

    r = CliRunner().invoke(app, ["run", str(project / "sftflow.yaml"), "--overwrite"])
    assert r.exit_code == 1, r.output
    assert "run: finished in " in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("error: gates failed: ")]
    assert len(failed) == 1 and "exact_match (" in failed[0] and "needs >= 2), human_win_rate (not enough ratings) (see " in failed[0]

    r = CliRunner().invoke(app, ["report", str(project / "sftflow.yaml")])  # the report stage alone: its gate only
    assert r.exit_code == 1 and "error: gates failed: human_win_rate (not enough ratings) (see " in r.output, r.output
