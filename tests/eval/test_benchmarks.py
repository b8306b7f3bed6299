"""`eval.benchmarks` for real: lm-eval-harness scores a small local multiple-choice task
(tests/eval/lmeval/, 24 generated rows) on the base and the tuned tiny model. The oracle scores
the same task here, from the model files and the JSONL, with plain transformers + PEFT."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from sftflow.config import load_config, parse_config
from sftflow.config.eval import EvalConfig
from sftflow.errors import SftflowError
from sftflow.eval.benchmarks import benchmark_specs, check_benchmarks
from sftflow.eval.gates import check_gates, resolve_gates
from sftflow.eval.report import write_report
from tests.tiny_run import make_run

TASK_DIR = Path(__file__).parent / "lmeval"
MINIMAL = {"data": {"sources": [{"path": "raw.jsonl"}]}, "model": {"name_or_path": "m"}}


def oracle_accuracy(model, tok, rows) -> float:
    """lm-eval's multiple-choice acc, recomputed: the choice whose tokens (after the prompt and a
    space) the model finds likeliest, against the answer index."""
    import torch

    right = 0
    for r in rows:
        context = f"Question: {r['question']}\nAnswer:"
        scores = []
        for choice in r["choices"]:
            ctx = tok.encode(context)
            whole = tok.encode(context + " " + choice)
            with torch.no_grad():
                logits = model(torch.tensor([whole])).logits[0].float().log_softmax(-1)
            scores.append(sum(logits[i - 1, whole[i]].item() for i in range(len(ctx), len(whole))))
        right += scores.index(max(scores)) == r["answer"]
    return right / len(rows)


def test_benchmark_gate_is_on_only_with_benchmarks_and_missing_lm_eval_names_the_extra(monkeypatch, tmp_path):
    assert "benchmark_drop" not in resolve_gates(EvalConfig())[0]
    assert "benchmark_drop" not in resolve_gates(EvalConfig())[1]  # opt-in: not even reported as off
    assert resolve_gates(EvalConfig(benchmarks=["arc_easy"]))[0]["benchmark_drop"] == "<= 5%"
    cfg = parse_config({**MINIMAL, "eval": {"benchmarks": ["arc_easy", "missing/task.yaml"]}}, root=tmp_path)
    with pytest.raises(SftflowError, match=r"^eval.benchmarks: .*missing/task.yaml not found"):
        benchmark_specs(cfg)
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # how Python marks a module that cannot be imported
    with pytest.raises(SftflowError, match=r"^eval.benchmarks: lm-eval-harness is not installed; "
                                           r"pip install 'sftflow\[lmeval\]'"):
        check_benchmarks(cfg)


@pytest.mark.slow
def test_lm_eval_local_task_on_base_and_tuned(tmp_path, tiny_model_dir, monkeypatch):
    if not os.environ.get("SFTFLOW_REQUIRE_LMEVAL"):  # CI sets it: there a missing lm-eval is a failure
        pytest.importorskip("lm_eval", reason="pip install 'sftflow[lmeval]'")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftflow.eval.evaluate import evaluate

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    run_dir = make_run(tmp_path / "proj", tiny_model_dir, evaluate=False)  # a random LoRA adapter: tuned != base
    shutil.copytree(TASK_DIR, tmp_path / "proj" / "tasks")
    cfg_path = tmp_path / "proj" / "sftflow.yaml"
    config = yaml.safe_load(cfg_path.read_text())
    config["eval"].update({"probes": False, "forgetting": False, "benchmarks": ["tasks/tiny_mc.yaml"],
                           "gates": {"benchmark_drop": "< -1"}})  # tuned must gain over 100 points: impossible
    cfg_path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)  # the task's data file is found next to its YAML, not in the cwd
    metrics = evaluate(load_config(cfg_path), log=lambda m: None)

    saved = json.loads((run_dir / "eval" / "metrics.json").read_text())
    task = saved["benchmarks"]["tasks"]["sftflow_tiny_mc"]
    rows = [json.loads(line) for line in (TASK_DIR / "tiny_mc.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "proj" / "tiny-model", dtype=torch.float32).eval()
    assert task["base"] == pytest.approx(oracle_accuracy(base, tok, rows))
    tuned = PeftModel.from_pretrained(base, run_dir / "model").eval()
    assert task["tuned"] == pytest.approx(oracle_accuracy(tuned, tok, rows))
    assert (task["metric"], task["n"]) == ("acc", 24)
    assert task["delta"] == pytest.approx(task["tuned"] - task["base"]) and task["drop"] == pytest.approx(-task["delta"])
    assert saved["benchmarks"]["max_drop"] == pytest.approx(task["drop"])

    gate = next(g for g in saved["gates"] if g["gate"] == "benchmark_drop")
    assert (gate["value"], gate["passed"], saved["passed"]) == (pytest.approx(task["drop"]), False, False)
    assert "fell short on benchmarks (worst: sftflow_tiny_mc acc" in saved["headline"]
    assert check_gates(metrics, {"benchmark_drop": "<= 1"})[0]["passed"]  # no drop exceeds 100 points

    cfg = load_config(cfg_path)
    html = write_report(run_dir, cfg.data_dir, cfg.name).read_text()
    cells = f"<td>sftflow_tiny_mc</td><td>acc</td><td>24</td><td>{task['base']:.3f}</td>"
    assert cells in html and f"{task['delta']:+.3f}" in html
    md = (run_dir / "eval" / "report.md").read_text()
    assert f"| sftflow_tiny_mc | acc | 24 | {task['base']:.3f} | {task['tuned']:.3f} | {task['delta']:+.3f} |" in md
