"""The real-model project as a user types it, and SmolLM2's quirks on the real model (issue 27).

    sftflow init smol --model smollm2-135m-instruct && sftflow run smol/sftflow.yaml

SmolLM2-135M-Instruct comes from a PyPI wheel and is converted once into ~/.cache/sftflow (43 s the
first time, then instant). The tests share one run of the project cut to CI size (module fixture);
the whole project, with its gates and time target, is measured by `python bench/real_model.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support import SFTFLOW, sftflow

pytestmark = pytest.mark.slow

SMOLLM2 = "smollm2-135m-instruct"
TEMPLATE_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# Peak RSS of the child a command waited for, in KiB (Linux: ru_maxrss is KiB), printed last.
PEAK_RSS = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


@pytest.fixture(scope="session")
def smollm2_folder():
    from sftflow.model.gguf_base import gguf_folder
    from sftflow.model.offline import offline_gguf

    return gguf_folder(offline_gguf(SMOLLM2))


@pytest.fixture(scope="module")
def project(tmp_path_factory, smollm2_folder):
    """`sftflow init DIR --model smollm2-135m-instruct`, then `sftflow run` cut to CI size (160 tickets, 2 epochs,
    8 test prompts, no probes or forgetting: the whole project is bench/real_model.py's measurement),
    with the run's peak memory (training is its peak: eval holds one model at a time)."""
    import yaml

    root = tmp_path_factory.mktemp("real-model") / "smol"
    init = sftflow("init", root, "--model", SMOLLM2)
    assert init.returncode == 0, init.stderr
    config = root / "sftflow.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["sources"][0]["max_rows"] = 160
    cfg["data"].pop("mix")
    cfg["train"] |= {"epochs": 2, "learning_rate": 5e-4}
    cfg["eval"] |= {"max_examples": 8, "probes": False, "forgetting": False, "default_gates": False, "gates": {}}
    config.write_text(yaml.safe_dump(cfg))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", PEAK_RSS, SFTFLOW, "run", str(config)], capture_output=True,
                         text=True, timeout=3600, env={**os.environ, "NO_COLOR": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    peak_gib = int(run.stdout.splitlines()[-1]) / 2**20
    metrics = json.loads((root / "runs" / "smollm2-support-json" / "eval" / "metrics.json").read_text())
    return {"root": root, "config": config, "run": run, "peak_gib": peak_gib, "seconds": time.monotonic() - started,
            "metrics": metrics}


def test_a_short_lora_run_on_the_real_model_learns_the_answer_format(project):
    """160 tickets, two epochs: not the project's targets (bench/real_model.py measures those), but the
    real model's answer loss falls and its answers become the task's JSON."""
    metrics = project["metrics"]
    summary = json.loads((project["root"] / "runs" / "smollm2-support-json" / "train_summary.json").read_text())
    assert summary["val_loss_best"] < 0.8 * summary["val_loss_initial"], summary
    assert metrics["tuned"]["json_valid"]["mean"] > metrics["base"]["json_valid"]["mean"], metrics["tuned"]


def test_rows_without_a_system_prompt_get_the_templates_default_in_training_eval_and_serve(project, processes):
    """The data card says it; eval's prompt renders it; `sftflow serve` answers a request without a system
    prompt exactly as eval's greedy prediction for the same test prompt."""
    import openai

    root = project["root"]
    card = (root / "data" / "data_card.md").read_text()
    assert f"get the chat template's default system prompt {TEMPLATE_DEFAULT!r}" in card
    run_dir = root / "runs" / "smollm2-support-json"
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert not summary["system_prompt"]["default"]  # serve adds no prompt of its own: the template's default it is

    rows = [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]
    picked = rows[:3]
    assert all(not any(m["role"] == "system" for m in r["prompt"]) for r in picked)
    proc = processes.sftflow("serve", run_dir, "--port", "0", "--api-key", "k")
    url, deadline = None, time.monotonic() + 180
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "/v1 (model" in line:
            url = line.split()[1]
    assert url, proc.communicate()[1] if proc.poll() is not None else "no URL printed"
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=300)
    for r in picked:
        reply = client.chat.completions.create(model="smollm2-support-json", messages=r["prompt"], temperature=0,
                                               max_tokens=32)
        assert reply.choices[0].message.content == r["tuned"]


def test_pad_is_a_token_the_tokenizer_has_apart_from_eos_and_the_end_of_turn_is_trained(smollm2_folder):
    from transformers import AutoTokenizer

    from sftflow.model.chat import tokenize_chat
    from sftflow.model.load import load_chat

    raw = AutoTokenizer.from_pretrained(smollm2_folder)
    assert raw.pad_token == raw.eos_token == "<|im_end|>"  # the quirk
    template = load_chat(str(smollm2_folder))
    tok = template.tokenizer
    assert tok.pad_token != tok.eos_token and tok.pad_token in raw.get_vocab() and len(tok) == len(raw)
    assert tok.pad_token_id != tok.convert_tokens_to_ids("<|im_end|>")

    chat = [{"role": "user", "content": "Turn this ticket into JSON: my laptop broke"},
            {"role": "assistant", "content": '{"intent": "technical_issue"}'}]
    enc = tokenize_chat(template, chat)
    trained = [t for t, m in zip(enc.input_ids, enc.assistant_masks, strict=True) if m]
    assert tok.decode(trained) == '{"intent": "technical_issue"}<|im_end|>'  # the answer and its end of turn
    text = tok.decode(enc.input_ids)
    assert text.startswith(f"<|im_start|>system\n{TEMPLATE_DEFAULT}<|im_end|>")  # the default, rendered in training


def test_the_memory_estimate_is_within_25_percent_of_the_measured_peak(project):
    out = sftflow("estimate", project["config"])
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("this machine (CPU"))
    estimated = float(line.split("~")[1].split()[0])
    measured = project["peak_gib"]
    assert abs(estimated - measured) <= 0.25 * measured, (estimated, measured)
