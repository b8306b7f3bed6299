"""A real run folder in seconds, for the serve and review tests.

Training is not what these tests are about, and even a few steps cost ~40 s on two cores,
so the run's LoRA adapter is built with the trainer's own `peft_config` and given small
random weights instead of trained ones (so tuned and base answer differently). Everything
else is what `sftflow train` and `sftflow eval` write: model/ (adapter + tokenizer + chat
template), config.yaml, chat_template.jinja, and eval/predictions.jsonl + metrics.json from
the real `evaluate` on a hand-written test split.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

MESSAGES = [
    ("my laptop keeps disconnecting from the wifi, please help asap", "technical_issue", "laptop", "high"),
    ("can I return the headphones I bought last week?", "return_request", "headphones", "low"),
    ("the router arrived broken. I need a replacement today!", "technical_issue", "router", "high"),
    ("is the tablet compatible with older chargers? no rush", "product_question", "tablet", "low"),
    ("I moved house, please send my phone to the new address", "change_address", "phone", "medium"),
    ("the camera battery dies after ten minutes", "technical_issue", "camera", "medium"),
    ("how long is the warranty on the smartwatch?", "product_question", "smartwatch", "low"),
    ("I was charged twice for my keyboard order", "billing", "keyboard", "high"),
    ("does the printer support wireless printing?", "product_question", "printer", "low"),
    ("my monitor flickers when I turn it on", "technical_issue", "monitor", "medium"),
]
SYSTEM = 'Read the customer message and answer with JSON: {"intent": ..., "product": ..., "urgency": ...}'


def test_records() -> list[dict]:
    rows = []
    for text, intent, product, urgency in MESSAGES:
        answer = json.dumps({"intent": intent, "product": product, "urgency": urgency})
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
                    {"role": "assistant", "content": answer}]
        rid = hashlib.sha256(json.dumps(messages).encode()).hexdigest()[:16]
        rows.append({"id": rid, "messages": messages, "source": {"file": "handwritten", "line": 0}})
    return rows


def make_run(root: Path, tiny_model_dir: Path, *, method: str = "lora", evaluate: bool = True) -> Path:
    """A project at `root` with a finished run; returns the run folder (root/runs/tiny)."""
    import torch
    import yaml

    from sftflow.config import dump_config, load_config
    from sftflow.io import atomic_write_text, write_jsonl
    from sftflow.model.load import load_chat, load_model

    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny_model_dir, root / "tiny-model", dirs_exist_ok=True)
    write_jsonl(root / "data" / "test.jsonl", test_records())
    config = {
        "name": "tiny",
        "data": {"sources": [{"path": "data/test.jsonl"}]},
        "model": {"name_or_path": "tiny-model"},
        "train": {"method": method, "learning_rate": 2e-5 if method == "full" else 1e-4},
        # a random adapter, not a fine-tune: the playbook's default gates would (rightly) fail it
        "eval": {"max_new_tokens": 24, "batch_size": 16, "metrics": ["exact_match", "json_valid"],
                 "default_gates": False},
    }
    (root / "sftflow.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(root / "sftflow.yaml")
    run_dir = cfg.run_dir
    model_dir = run_dir / "model"
    template = load_chat(cfg.model_path())
    tok = template.tokenizer
    model = load_model(cfg.model_path(), template, method="full")
    torch.manual_seed(0)
    if method == "lora":
        from peft import get_peft_model

        from sftflow.train.build import peft_config

        model = get_peft_model(model, peft_config(cfg, template.added_token_ids))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)  # LoRA starts with B = 0: make the adapter change something
    model.save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    atomic_write_text(run_dir / "chat_template.jinja", tok.chat_template)
    if evaluate:
        from sftflow.eval.evaluate import evaluate as run_eval

        run_eval(cfg, log=lambda m: None)
    return run_dir


_BUILT: dict[str, Path] = {}


def shared_run(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """One run per test session, shared by test_serve and test_review (read-only: copy it
    before writing into it)."""
    if "lora" not in _BUILT:
        _BUILT["lora"] = make_run(tmp_path_factory.mktemp("tiny-run") / "proj", tiny_model_dir)
    return _BUILT["lora"]
