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
    # LoRA here (the quickstart itself uses full fine-tuning): the end-to-end test covers the default path
    cfg["train"].update({"method": "lora", "learning_rate": 2e-3, "epochs": 3, "evals_per_epoch": 2,
                         "lora": {"r": 16, "alpha": 32}})
    cfg["eval"].update({"max_examples": 40, "gates": {"json_valid": ">= 0.5", "exact_match": ">= 0.99"}})
    cfg_path.write_text(yaml.safe_dump(cfg))
    return root


def test_run_end_to_end(project):
    r = sftflow("run", str(project / "sftflow.yaml"))
    # the impossible exact-match gate must fail the run, with one readable line
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: gates failed: exact_match" in r.stderr and "Traceback" not in r.stderr
    assert "report:" in r.stdout
    assert "Setting accelerator" not in r.stdout + r.stderr  # DeepSpeed's chatter stays out (--debug shows it)
    assert "eval: tuned model: test answers (40) …" in r.stdout  # no silent stretch before eval's first result

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
        ".sftflow.lock", "chat_template.jinja", "checkpoints", "config.yaml", "eval", "loss_curve.png",
        "metrics.jsonl", "model", "train_summary.json", "versions.json"])
    assert sorted(p.name for p in (run / "eval").iterdir()) == [
        "metrics.json", "predictions.jsonl", "report.html", "report.md", "report_images"]
    assert sorted(p.name for p in (run / "eval" / "report_images").iterdir()) == [
        "forgetting.png", "loss.png", "metrics.png"]  # report.md's plots, beside it
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
    from sftflow.data.prepare import prepare
    from sftflow.train.trainer import train

    shutil.copytree(project / "raw", tmp_path / "raw")
    cfg_data = yaml.safe_load((project / "sftflow.yaml").read_text())
    # bitsandbytes' CPU 4-bit matmul needs layer widths divisible by its block size (64); the tiny
    # model is 160 wide, so QLoRA gets a 128-wide Llama with the same tokenizer (random init is fine:
    # the test is that 4-bit training runs and the loss falls).
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(project / "tiny-model")
    small = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    small.save_pretrained(tmp_path / "small-model")
    tok.save_pretrained(tmp_path / "small-model")
    cfg_data["model"]["name_or_path"] = str(tmp_path / "small-model")
    cfg_data["train"].update({"method": "qlora", "epochs": 1, "extra": {"max_steps": 8, "eval_steps": 4, "save_steps": 4}})
    (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(cfg_data))
    cfg = load_config(tmp_path / "sftflow.yaml")
    prepare(cfg, log=lambda m: None)
    summary = train(cfg, log=lambda m: None)
    assert summary["method"] == "qlora" and summary["steps"] == 8
    assert summary["val_loss_best"] < summary["val_loss_initial"]
    mem = summary["qlora_memory"]  # measured on the loaded model: 4-bit linears, fp32 embeddings and norms
    assert mem["weights_mib_4bit"] < 0.75 * mem["weights_mib_unquantised"]  # embeddings dominate this toy
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


def test_qlora_on_cpu_with_unaligned_widths_fails_clearly(project, tmp_path):
    pytest.importorskip("bitsandbytes")
    import torch

    from sftflow.errors import SftflowError
    from sftflow.model.load import load_model, load_tokenizer

    if torch.cuda.is_available():
        pytest.skip("the GPU kernels accept any width")
    tok = load_tokenizer(str(project / "tiny-model"))
    with pytest.raises(SftflowError, match=r"layer .* is 160 wide, not a multiple of 64"):
        load_model(str(project / "tiny-model"), tok, method="qlora")
