"""End to end on the tiny model, for real: the CLI as a user types it, then QLoRA on CPU."""

import json
import re
import shutil

import pytest
import yaml

from tests.support import foreign_lines, sftflow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    """The README's first command, as a user types it: `sftflow init quickstart`, config untouched."""
    root = tmp_path_factory.mktemp("e2e") / "quickstart"
    r = sftflow("init", str(root))
    assert r.returncode == 0 and foreign_lines(r.stderr) == [], r.stderr  # only sftflow's own lines on stderr
    assert (root / "tiny-model" / "model.safetensors").exists()
    return root


@pytest.fixture(scope="module")
def quickstart_run(project):
    """... and `sftflow run quickstart/sftflow.yaml`: one trained run shared by the tests below."""
    return sftflow("run", str(project / "sftflow.yaml"), timeout=3600)


def test_quickstart_passes_every_default_gate_and_learns_the_task(project, quickstart_run):
    from sftflow.eval.gates import DEFAULT_GATES

    r = quickstart_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "warning:" not in r.stderr, r.stderr  # no guardrail warning on the quickstart's own config
    assert foreign_lines(r.stderr) == [], r.stderr  # no library line either (they go to logs/sftflow.log)
    assert "Setting accelerator" not in r.stdout + r.stderr  # DeepSpeed's chatter stays out (--debug shows it)
    assert re.search(r"^eval: tuned model: test answers \(\d+\) …$", r.stdout, re.M)  # no silent stretch in eval
    metrics = json.loads((project / "runs" / "quickstart" / "eval" / "metrics.json").read_text())
    gates = {g["gate"]: g for g in metrics["gates"]}
    applicable = set(DEFAULT_GATES) - {"benchmark_drop"}  # that one needs eval.benchmarks, which the quickstart has not
    assert set(gates) == applicable and metrics["gates_off"] == {}
    for name in applicable:
        assert gates[name]["passed"] and gates[name]["value"] is not None, gates[name]
        assert f"eval: gate {name}" in r.stdout
    assert metrics["passed"] is True
    # the task is clearly learned: exact match at least 0.3 above the base model's
    tuned, base = metrics["tuned"]["exact_match"]["mean"], metrics["base"]["exact_match"]["mean"]
    assert tuned >= base + 0.3, (tuned, base)
    assert gates["task_gain"]["metric"] == "exact_match" and gates["task_gain"]["value"] == pytest.approx(tuned - base)
    # ... and what the base model knew is kept, as the gates measured it
    assert metrics["forgetting"]["ppl_increase"] <= 0.10 and metrics["probes"]["failures"] <= 2
    # the verdict: one sentence, printed, in metrics.json and at the top of both reports
    verdict = metrics["headline"]
    assert verdict.startswith("learned the task (+") and verdict.endswith(": pass"), verdict
    assert f"eval: verdict: {verdict}" in r.stdout
    html = (project / "runs" / "quickstart" / "eval" / "report.html").read_text()
    assert html.index("Verdict: learned the task") < html.index("Run summary")
    assert f"**Verdict: {verdict}**" in (project / "runs" / "quickstart" / "eval" / "report.md").read_text()


def test_run_folder_and_test_split(project, quickstart_run):
    assert quickstart_run.returncode == 0
    run = project / "runs" / "quickstart"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["val_loss_best"] < 0.6 * summary["val_loss_initial"], summary
    assert summary["guardrail_warnings"] == []
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["tuned"]["json_valid"]["mean"] >= 0.9 > metrics["base"]["json_valid"]["mean"]
    assert metrics["tuned"]["answer_perplexity"]["perplexity"] < metrics["base"]["answer_perplexity"]["perplexity"] / 5

    # the test split, and only it, was evaluated
    test_ids = [json.loads(line)["id"] for line in (project / "data" / "test.jsonl").read_text().splitlines()]
    pred_ids = [json.loads(line)["id"] for line in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert pred_ids == test_ids and metrics["test_examples"] == len(test_ids)
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
    html = (run / "eval" / "report.html").read_text()
    assert "data:image/png;base64" in html and "<script" not in html


def test_full_fine_tuning_at_a_high_lr_without_general_data_fails_on_forgetting(project, tmp_path):
    """The deliberately bad config: full fine-tuning at lr 1e-3 and no general data (the old
    quickstart, one epoch to keep the test short) learns the task and forgets: exit 1, the
    forgetting gate named in the one error line."""
    shutil.copytree(project / "raw", tmp_path / "raw")
    shutil.copytree(project / "tiny-model", tmp_path / "tiny-model")
    cfg = yaml.safe_load((project / "sftflow.yaml").read_text())
    cfg["data"].pop("mix")
    cfg["train"].update({"method": "full", "learning_rate": 1e-3, "epochs": 1})
    cfg["eval"].update({"max_examples": 40})
    cfg["eval"]["gates"].pop("task_gain")  # the default task gate (the quickstart raises it to +0.3)
    (tmp_path / "sftflow.yaml").write_text(yaml.safe_dump(cfg))
    r = sftflow("run", str(tmp_path / "sftflow.yaml"), timeout=3600)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "warning: train.learning_rate 0.001 > 0.0003" in r.stderr  # the guardrail said so up front
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert errors[0].startswith("error: gates failed: ") and "forgetting_ppl_increase (" in errors[0], errors[0]
    verdict = json.loads((tmp_path / "runs" / "quickstart" / "eval" / "metrics.json").read_text())["headline"]
    assert verdict.startswith("learned the task (+") and "but" in verdict and "forgot general knowledge" in verdict
    assert verdict.endswith(": fail") and f"eval: verdict: {verdict}" in r.stdout
    assert "report:" in r.stdout


def test_report_and_eval_rerun_alone(project, quickstart_run):
    run = project / "runs" / "quickstart"
    (run / "eval" / "report.html").unlink()
    r = sftflow("report", str(project / "sftflow.yaml"))
    assert r.returncode == 0 and (run / "eval" / "report.html").exists()


def test_qlora_trains_on_cpu(project, tmp_path):
    import bitsandbytes  # noqa: F401  (the dev extra installs it; its 4-bit layers run on CPU)

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


def test_export_merged_loads_without_peft_and_matches(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftflow.model.load import load_tuned
    from tests.tiny_run import make_run

    # a LoRA run folder (the quickstart fully fine-tunes): the adapter is what --merge folds in
    run = make_run(tmp_path / "proj", tiny_model_dir, evaluate=False)
    out = tmp_path / "merged"
    r = sftflow("export", str(tmp_path / "proj" / "sftflow.yaml"), "--merge", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (run / "model" / "adapter_config.json").exists() and not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    tuned, _ = load_tuned(run, str(tmp_path / "proj" / "tiny-model"), method="lora")
    ids = tok("<|im_start|>user\nmy phone is broken<|im_end|>\n", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert not torch.allclose(merged(**ids).logits, AutoModelForCausalLM.from_pretrained(
            tmp_path / "proj" / "tiny-model")(**ids).logits, atol=1e-4)  # the adapter changed something
        assert torch.allclose(merged(**ids).logits, tuned(**ids).logits, atol=1e-4)
    again = sftflow("export", str(tmp_path / "proj" / "sftflow.yaml"), "--merge", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_qlora_on_cpu_with_unaligned_widths_fails_clearly(project, tmp_path):
    import bitsandbytes  # noqa: F401  (the dev extra installs it; its 4-bit layers run on CPU)
    import torch

    from sftflow.errors import SftflowError
    from sftflow.model.load import load_chat, load_model

    if torch.cuda.is_available():
        pytest.skip("the GPU kernels accept any width")
    template = load_chat(str(project / "tiny-model"))
    with pytest.raises(SftflowError, match=r"layer .* is 160 wide, not a multiple of 64"):
        load_model(str(project / "tiny-model"), template, method="qlora")
