"""End to end on the tiny model, for real: the CLI as a user types it, then QLoRA on CPU."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SFTFLOW = str(Path(sys.executable).parent / "sftflow")
pytestmark = pytest.mark.slow


def sftflow(*args, timeout=900):
    return subprocess.run([SFTFLOW, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("e2e") / "proj"
    r = sftflow("init", str(root), "--examples", "700")
    assert r.returncode == 0, r.stderr
    assert (root / "tiny-model" / "model.safetensors").exists()
    cfg_path = root / "sftflow.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["train"].update({"epochs": 2, "evals_per_epoch": 2})
    cfg["eval"].update({"max_examples": 40, "gates": {"json_valid": ">= 0.5", "exact_match": ">= 0.99"}})
    cfg_path.write_text(yaml.safe_dump(cfg))
    return root


def test_run_end_to_end(project):
    r = sftflow("run", str(project / "sftflow.yaml"))
    # the impossible exact-match gate must fail the run, with one readable line
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: gates failed: exact_match" in r.stderr and "Traceback" not in r.stderr
    assert "report:" in r.stdout

    run = project / "runs" / "quickstart"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["val_loss_best"] < 0.6 * summary["val_loss_initial"], summary
    assert summary["trainable_parameters"] < 0.1 * summary["total_parameters"]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    tuned, base = metrics["tuned"], metrics["base"]
    assert metrics["test_examples"] == 40
    assert tuned["json_valid"]["mean"] >= 0.5 > base["json_valid"]["mean"]
    assert tuned["exact_match"]["mean"] >= base["exact_match"]["mean"]
    assert tuned["answer_perplexity"]["perplexity"] < base["answer_perplexity"]["perplexity"] / 5
    assert {g["gate"]: g["passed"] for g in metrics["gates"]} == {"json_valid": True, "exact_match": False}

    # the test split, and only it, was evaluated
    test_ids = [json.loads(line)["id"] for line in (project / "data" / "test.jsonl").read_text().splitlines()]
    pred_ids = [json.loads(line)["id"] for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert pred_ids == test_ids[:40]
    train_ids = {json.loads(line)["id"] for line in (project / "data" / "train.jsonl").read_text().splitlines()}
    assert not train_ids & set(pred_ids)

    # a self-describing run folder
    assert sorted(p.name for p in run.iterdir()) == sorted([
        "chat_template.jinja", "checkpoints", "config.yaml", "eval", "metrics.jsonl", "model",
        "train_summary.json", "versions.json"])
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["metrics.json", "predictions.jsonl", "report.html"]
    assert (run / "model" / "adapter_config.json").exists()
    html = (run / "eval" / "report.html").read_text()
    assert "FAIL" in html and "data:image/png;base64" in html and "<script" not in html


def test_report_and_eval_rerun_alone(project):
    run = project / "runs" / "quickstart"
    (run / "eval" / "report.html").unlink()
    r = sftflow("report", str(project / "sftflow.yaml"))
    assert r.returncode == 0 and (run / "eval" / "report.html").exists()


def test_qlora_trains_on_cpu(project, tmp_path):
    pytest.importorskip("bitsandbytes")
    from sftflow.config import load_config
    from sftflow.train.trainer import train

    shutil.copytree(project / "data", tmp_path / "data")
    cfg_data = yaml.safe_load((project / "sftflow.yaml").read_text())
    cfg_data["model"]["name_or_path"] = str(project / "tiny-model")
    cfg_data["train"].update({"method": "qlora", "epochs": 1, "extra": {"max_steps": 8, "eval_steps": 4, "save_steps": 4}})
    (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(cfg_data))
    cfg = load_config(tmp_path / "sftflow.yaml")
    summary = train(cfg, log=lambda m: None)
    assert summary["method"] == "qlora" and summary["steps"] == 8
    assert summary["val_loss_best"] < summary["val_loss_initial"]
    adapter = json.loads((cfg.run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["r"] == 16


def test_export_merged_loads_without_peft_and_matches(project, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftflow.model.load import load_tuned

    out = tmp_path / "merged"
    r = sftflow("export", str(project / "sftflow.yaml"), "--merge", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    tuned, _ = load_tuned(project / "runs" / "quickstart", str(project / "tiny-model"), method="lora")
    ids = tok("<|im_start|>user\nmy phone is broken<|im_end|>\n", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert torch.allclose(merged(**ids).logits, tuned(**ids).logits, atol=1e-4)
    again = sftflow("export", str(project / "sftflow.yaml"), "--merge", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
