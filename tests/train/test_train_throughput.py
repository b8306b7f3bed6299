"""The training fast path: per-example attention on packed rows is exact, and the throughput
harness runs and writes its JSON (the speed itself is measured by bench/train_throughput.py, not here)."""

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _packed_row(lengths, vocab):
    import torch

    torch.manual_seed(0)
    ids = torch.randint(5, vocab, (1, sum(lengths)))
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    return ids, pos


def test_packed_attention_is_exact_and_falls_back(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from sftflow.train.packed_attention import NAME, use_packed_attention

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ids, pos = _packed_row([12, 40, 3, 25], model.config.vocab_size)
    padded = torch.randint(5, model.config.vocab_size, (2, 16))
    mask = torch.ones_like(padded)
    mask[1, 10:] = 0

    # A batch of one, left-padded as for generation: its position ids also jump, but it is no packed row.
    left = torch.randint(5, model.config.vocab_size, (1, 9))
    left_mask = torch.ones_like(left)
    left_mask[0, :3] = 0
    left_pos = (left_mask.cumsum(-1) - 1).masked_fill(left_mask == 0, 1)  # as generate() derives them

    def run():
        model.zero_grad()
        out = model(input_ids=ids, position_ids=pos, labels=ids, use_cache=False)
        out.loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        with torch.no_grad():
            pad_logits = model(input_ids=padded, attention_mask=mask, use_cache=False).logits
            left_logits = model(input_ids=left, attention_mask=left_mask, position_ids=left_pos, use_cache=False).logits[:, 3:]
        return out.logits.detach(), grads, pad_logits, left_logits

    masked = run()
    assert use_packed_attention(model) and model.config._attn_implementation == NAME
    packed = run()
    for a, b in zip(masked, packed, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


@pytest.mark.slow  # trains (bench/train_throughput.py --quick)
def test_harness_quick_run_writes_results(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import train_throughput
    finally:
        sys.path.remove(str(BENCH))

    out = tmp_path / "tt.json"
    rc = train_throughput.main(["--quick", "--models", "tiny", "--data", "longtail", "--repeats", "1",
                                "--train-examples", "96", "--threads", "1", "--work", str(tmp_path / "work"),
                                "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert {"device", "torch", "transformers", "trl", "repeats", "warmup"} <= set(result["meta"])
    rows = {r["variant"]: r for r in result["summary"]}
    assert set(rows) == {"baseline", "sftflow"} and len(result["runs"]) == 2
    for r in rows.values():
        assert r["tokens_per_second"] > 0 and r["peak_rss_mib"] > 0 and r["steps"] == 6
        assert r["final_val_loss"] == pytest.approx(rows["baseline"]["final_val_loss"], rel=0.05)
    assert rows["baseline"]["padding_share"] > 0.2 and rows["sftflow"]["padding_share"] == 0
    assert "| sftflow |" in out.with_suffix(".md").read_text()


def test_flash_attention_is_used_only_where_it_can_run(monkeypatch):
    import importlib.util

    import sftflow.model.load as load
    from sftflow.errors import SftflowError

    assert load.attention_kernel("auto") is None and load.attention_kernel("sdpa") == "sdpa"
    with pytest.raises(SftflowError, match="flash_attention_2: no CUDA GPU; use auto or sdpa"):
        load.attention_kernel("flash_attention_2", bf16=True)
    # a GPU with flash-attn installed: auto picks it for 16-bit weights, and says what is missing otherwise
    monkeypatch.setattr(load, "has_cuda", lambda: True)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn" else real_find(name, *a))
    assert load.attention_kernel("auto", bf16=True) == "flash_attention_2"
    assert load.attention_kernel("auto", bf16=False) is None
    with pytest.raises(SftflowError, match="needs bf16 weights"):
        load.attention_kernel("flash_attention_2", bf16=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real_find(name, *a))
    with pytest.raises(SftflowError, match="pip install flash-attn"):
        load.attention_kernel("flash_attention_2", bf16=True)
