"""The loss mask, checked on the label tensors the trainer actually receives."""

import json

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.model.chat import tokenize_chat
from sftflow.model.load import load_chat
from sftflow.train.build import build_trainer

CHATS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "Hi! How can I help?"}],
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."},
     {"role": "user", "content": "And 4 + 4?"}, {"role": "assistant", "content": "4 + 4 = 8."}],
    [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "my laptop is broken, urgent"},
     {"role": "assistant", "content": '{"intent": "technical_issue", "product": "laptop", "urgency": "high"}'}],
]


def _project(tmp_path, model_dir, **train):
    raw = tmp_path / "raw.jsonl"
    rows = [{"messages": c} for c in CHATS for _ in range(1)]
    # enough distinct rows for every split; the split is by prompt, so vary the user text
    rows += [{"messages": [{"role": "user", "content": f"note {i}"}, {"role": "assistant", "content": f"ok {i}"}]}
             for i in range(40)]
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = parse_config({
        "data": {"sources": [{"path": str(raw)}], "split": {"train": 1.0, "val": 0.0, "test": 0.0}},
        "model": {"name_or_path": str(model_dir)},
        "train": {"batch_size": 64, "grad_accum": 1, **train},
    }, root=tmp_path)
    prepare(cfg, log=lambda m: None)
    (cfg.data_dir / "val.jsonl").write_text((cfg.data_dir / "train.jsonl").read_text())
    return cfg


def _label_runs(ids, labels):
    runs, current = [], []
    for tok, lab in zip(ids, labels, strict=True):
        if lab != -100:
            assert lab == tok
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


@pytest.mark.parametrize("padding_free", [True, False])
def test_trainer_labels_are_exactly_the_assistant_turns(tiny_model_dir, tmp_path, padding_free):
    cfg = _project(tmp_path, tiny_model_dir, padding_free=padding_free)
    trainer, info = build_trainer(cfg, log=lambda m: None)
    tok = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"], batch["labels"]
    if padding_free:
        assert ids.shape[0] == 1 and "attention_mask" not in batch and "position_ids" in batch
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
        seqs = [(ids[0, a:b].tolist(), labels[0, a:b].tolist()) for a, b in zip(starts, starts[1:], strict=False)]
    else:
        assert (ids == tok.pad_token_id).any(), "a padded batch should contain pad tokens"
        assert (labels[ids == tok.pad_token_id] == -100).all()
        seqs = [(i.tolist(), lab.tolist()) for i, lab in zip(ids, labels, strict=True)]
    seen = 0
    for seq_ids, seq_labels in seqs:
        seq_ids = [t for t in seq_ids if t != tok.pad_token_id] if not padding_free else seq_ids
        seq_labels = seq_labels[: len(seq_ids)]
        text = tok.decode(seq_ids, skip_special_tokens=False)
        chat = next((c for c in CHATS if c[-2]["content"] in text and c[-1]["content"] in text), None)
        if chat is None:
            continue
        seen += 1
        got = [tok.decode(run, skip_special_tokens=False) for run in _label_runs(seq_ids, seq_labels)]
        want = [m["content"] + tok.eos_token for m in chat if m["role"] == "assistant"]
        assert got == want
    assert seen == len(CHATS)


def test_pad_differs_from_eos_and_masks_stop_at_eos(tiny_model_dir):
    template = load_chat(str(tiny_model_dir))
    tok = template.tokenizer
    assert tok.pad_token_id != tok.eos_token_id and tok.padding_side == "right"
    assert load_chat(str(tiny_model_dir), padding_side="left").tokenizer.padding_side == "left"
    t = tokenize_chat(template, CHATS[1])
    masked = [i for i, m in zip(t.input_ids, t.assistant_masks, strict=True) if m]
    assert masked.count(tok.eos_token_id) == 2  # one eos per assistant turn, so the model learns to stop
    assert t.input_ids[-1] != tok.eos_token_id or t.assistant_masks[-1] == 1
    short = tokenize_chat(template, CHATS[1], max_length=8)
    assert short.truncated and len(short.input_ids) == 8


def test_tokenizer_without_pad_or_template_gets_both(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    raw.chat_template = None
    raw.pad_token = raw.eos_token  # the common mistake: pad == eos
    raw.save_pretrained(str(tmp_path / "tok"))
    template = load_chat(str(tmp_path / "tok"))
    tok = template.tokenizer
    assert tok.chat_template and tok.pad_token_id != tok.eos_token_id
    assert tok.eos_token == "<|im_end|>"


def test_the_tiny_models_template_trains_tool_calls_and_not_their_results(tiny_model_dir):
    """Tool rows work on the quickstart model: its template (model/template.py) renders tools (issue 28)."""
    template = load_chat(str(tiny_model_dir))
    tok = template.tokenizer
    assert template.tool_support is None
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order": 12}'}}
    chat = [{"role": "user", "content": "Where is order 12?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
            {"role": "assistant", "content": "It has shipped."}]
    t = tokenize_chat(template, chat, tools=tools)
    runs = [tok.decode(r) for r in _label_runs(t.input_ids, [i if m else -100 for i, m in
                                                             zip(t.input_ids, t.assistant_masks, strict=True)])]
    assert runs == ['<tool_call>{"name": "lookup_order", "arguments": {"order": 12}}</tool_call><|im_end|>',
                    "It has shipped.<|im_end|>"]
