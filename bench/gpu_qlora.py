"""QLoRA on a real GPU, measured through sftflow's own pipeline.

    python bench/gpu_qlora.py --out results/          # needs CUDA, bitsandbytes

Part 1 — the quickstart (tiny pre-trained Llama, customer-support → JSON) trained with
qlora and with lora in the same process: wall time, val loss, test exact match of base and
tuned, peak GPU memory.
Part 2 — a larger randomly initialised Llama (~0.8B parameters, the tiny tokenizer) trained
for a fixed number of steps with lora (bf16 base) and qlora (NF4 base): peak GPU memory and
answer tokens/s, the ratio QLoRA/LoRA measured side by side.
Writes results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _cfg(root: Path, model: str, method: str, name: str, **train):
    from sftflow.config import parse_config

    return parse_config({
        "name": name,
        "data": {"sources": [{"path": "raw/support_alpaca.jsonl"}, {"path": "raw/support_chat.jsonl"}]},
        "model": {"name_or_path": model},
        "train": {"method": method, "learning_rate": 2e-3, "epochs": 3, "batch_size": 16, "grad_accum": 1,
                  "max_length": 256, **train},
        "eval": {"max_new_tokens": 48, "batch_size": 64, "metrics": ["exact_match", "json_valid", "perplexity"]},
    }, root=root)


def _peak_reset():
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def tiny_model(root: Path, prebuilt: str | None, log) -> None:
    """The tiny model (and its tokenizer, which part 2 uses) in root/tiny-model: built, or copied."""
    import shutil

    from sftflow.model.tiny import build_tiny_model

    t0 = time.time()
    if prebuilt:
        shutil.copytree(prebuilt, root / "tiny-model", dirs_exist_ok=True)
    else:
        build_tiny_model(root / "tiny-model", log=log)
    log(f"tiny model ready in {time.time() - t0:.0f}s")


def quickstart_data(root: Path, log) -> None:
    """The quickstart's raw files, prepared once (both parts train on root/data)."""
    from sftflow.data.prepare import prepare
    from sftflow.quickstart import write_quickstart_data

    write_quickstart_data(root / "raw", n=2000, seed=0)
    prepare(_cfg(root, "tiny-model", "lora", "data"), log=log)


def quickstart(root: Path, log) -> list[dict]:
    """Part 1 on the data quickstart_data prepared."""
    from sftflow.eval.evaluate import evaluate
    from sftflow.train.trainer import train

    rows = []
    for method in ("qlora", "lora"):
        cfg = _cfg(root, "tiny-model", method, f"quickstart-{method}")
        _peak_reset()
        summary = train(cfg, overwrite=True, log=log)  # a re-run of the bench measures again
        train_peak = _peak_gib()
        metrics = evaluate(cfg, log=log)
        rows.append({
            "part": "quickstart", "method": method, "train_seconds": summary["seconds"],
            "steps": summary["steps"], "val_loss_initial": summary["val_loss_initial"],
            "val_loss_best": summary["val_loss_best"], "train_peak_gib": train_peak,
            "answer_tokens_per_s": summary["answer_tokens_per_second"],
            "base_exact_match": metrics["base"]["exact_match"]["mean"],
            "tuned_exact_match": metrics["tuned"]["exact_match"]["mean"],
            "tuned_json_valid": metrics["tuned"]["json_valid"]["mean"],
            "tuned_answer_ppl": metrics["tuned"]["answer_perplexity"]["perplexity"],
            "base_answer_ppl": metrics["base"]["answer_perplexity"]["perplexity"],
        })
    return rows


def larger_model(root: Path, steps: int, log) -> list[dict]:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from sftflow.train.trainer import train

    tok = AutoTokenizer.from_pretrained(root / "tiny-model")
    big = root / "llama-0.8b"
    config = LlamaConfig(vocab_size=len(tok), hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(big)
    tok.save_pretrained(big)
    del model
    log(f"larger model: {n_params / 1e6:.0f}M parameters saved")
    rows = []
    for method in ("lora", "qlora"):
        cfg = _cfg(root, str(big), method, f"big-{method}", learning_rate=2e-4, bf16=True,
                   early_stopping_patience=0, extra={"max_steps": steps, "save_strategy": "no",
                                                     "load_best_model_at_end": False})
        _peak_reset()
        summary = train(cfg, overwrite=True, log=log)  # a re-run of the bench measures again
        rows.append({"part": "llama-0.8b", "method": method, "parameters": n_params, "steps": summary["steps"],
                     "train_seconds": summary["seconds"], "train_peak_gib": _peak_gib(),
                     "answer_tokens_per_s": summary["answer_tokens_per_second"],
                     "val_loss_initial": summary["val_loss_initial"], "val_loss_best": summary["val_loss_best"]})
    return rows


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu-results")
    ap.add_argument("--work", default="/tmp/sftflow-gpu")
    ap.add_argument("--big-steps", type=int, default=40)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-quickstart", action="store_true")
    ap.add_argument("--tiny", help="a tiny model folder built before (sftflow.model.tiny), instead of building it here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark measures GPU memory and speed; run it on a GPU machine", file=sys.stderr)
        return 2
    out, root = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    log(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    tiny_model(root, args.tiny, log)
    quickstart_data(root, log)
    rows = [] if args.skip_quickstart else quickstart(root, log)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    if not args.skip_big:
        rows += larger_model(root, args.big_steps, log)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    keys = sorted({k for r in rows for k in r})
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
