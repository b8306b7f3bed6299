"""On a GPU: train a larger random Llama through sftflow (LoRA and QLoRA, under torchrun when
several GPUs are present) and compare the measured peak GPU memory with `sftflow estimate`.

    python bench/gpu_estimate_check.py --out gpu-check/        # needs CUDA and bitsandbytes
    python bench/gpu_estimate_check.py --out gpu-check/ --ddp  # plus QLoRA + DDP on all GPUs (the CLI's --nproc)

For each method: the estimator's total for the run's batch and length (bf16, the GPU path),
then 20 real training steps of sftflow's trainer on quickstart data, recording
`torch.cuda.max_memory_allocated` (which excludes the CUDA context the estimate also leaves
out). Writes results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 2048, 16, 16, 5504


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu-check"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ddp", action="store_true",
                    help="also train QLoRA + DDP on every visible GPU via `sftflow train --nproc N`")
    ap.add_argument("--one", choices=["lora", "qlora"], help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.one:
        return one(args.one, args.out.resolve(), args.steps)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from sftflow.model.tiny import build_tiny_model
    from sftflow.quickstart import write_quickstart_data

    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    tiny = build_tiny_model(root / "tiny-model", log=lambda m: None)
    write_quickstart_data(root / "raw", n=1200, seed=0)
    tok = AutoTokenizer.from_pretrained(tiny)
    big_config = LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                             num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    big = root / "big-model"
    if not (big / "config.json").exists():
        torch.manual_seed(0)
        LlamaForCausalLM(big_config).to(torch.bfloat16).save_pretrained(big)
        tok.save_pretrained(big)

    results = []
    for method in ("lora", "qlora"):  # one process each: a model left in memory would inflate the next peak
        out = subprocess.run([sys.executable, __file__, "--one", method, "--out", str(root), "--steps",
                              str(args.steps)], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return out.returncode
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.ddp:
        results.append(qlora_ddp(root, torch.cuda.device_count(), args.steps))
    (root / "results.json").write_text(json.dumps({"device": torch.cuda.get_device_name(0), "results": results},
                                                  indent=1))
    print(f"device: {torch.cuda.get_device_name(0)}; Llama {HIDDEN}x{LAYERS} random init, batch 16 packed rows")
    print("| method | estimated GiB | measured peak GiB | estimate / measured | 20 steps |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        if r["method"] == "qlora+ddp":
            print(f"QLoRA + DDP on {r['gpus']} GPU(s) via `sftflow train --nproc`: {r}")
            continue
        print(f"| {r['method']} | {r['estimated_gib']:.2f} | {r['measured_peak_gib']:.2f} | {r['ratio']:.2f} | "
              f"{r['seconds']:.1f} s |")
    return 0


def qlora_ddp(root: Path, gpus: int, steps: int) -> dict:
    """QLoRA with DDP through the CLI a user types: one process per GPU, rank 0 writes the run."""
    import yaml

    config = {
        "name": "check-qlora-ddp",
        "data": {"sources": [{"path": "raw/support_alpaca.jsonl"}, {"path": "raw/support_chat.jsonl"}]},
        "model": {"name_or_path": str(root / "big-model")},
        "train": {"method": "qlora", "learning_rate": 2e-4, "epochs": 1, "batch_size": 16, "grad_accum": 1,
                  "max_length": 256, "early_stopping_patience": 0, "distributed": {"strategy": "ddp"},
                  "extra": {"max_steps": steps, "eval_steps": steps, "save_steps": steps}},
    }
    path = root / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    start = time.time()
    run = subprocess.run([sys.executable, "-m", "sftflow", "train", str(path), "--nproc", str(gpus), "--overwrite"],
                         capture_output=True, text=True)
    seconds = time.time() - start
    if run.returncode:
        print(run.stderr[-3000:], file=sys.stderr)
        return {"method": "qlora+ddp", "gpus": gpus, "error": run.returncode}
    summary = json.loads((root / "runs" / "check-qlora-ddp" / "train_summary.json").read_text())
    return {"method": "qlora+ddp", "gpus": gpus, "seconds": round(seconds, 1), "steps": summary["steps"],
            "effective_batch": summary["effective_batch"], "val_loss_initial": summary["val_loss_initial"],
            "val_loss_best": summary["val_loss_best"]}


def one(method: str, root: Path, steps: int) -> int:
    """Train one method for `steps` steps and print its measurement as one JSON line."""
    import torch
    from transformers import AutoConfig

    from sftflow.config import parse_config
    from sftflow.data.prepare import prepare
    from sftflow.train.build import build_trainer
    from sftflow.train.estimate import estimate_memory

    big = root / "big-model"
    cfg = parse_config({
        "name": f"check-{method}",
        "data": {"sources": [{"path": "raw/support_alpaca.jsonl"}, {"path": "raw/support_chat.jsonl"}]},
        "model": {"name_or_path": str(big)},
        "train": {"method": method, "learning_rate": 2e-4, "epochs": 1, "batch_size": 16, "grad_accum": 1,
                  "max_length": 256, "early_stopping_patience": 0,
                  "extra": {"max_steps": steps, "eval_strategy": "no", "save_strategy": "no",
                            "load_best_model_at_end": False}},
    }, root=root)
    prepare(cfg, log=lambda m: None)
    torch.cuda.reset_peak_memory_stats()
    trainer, info = build_trainer(cfg, log=lambda m: print(m, file=sys.stderr))
    start = time.time()
    trainer.train()
    seconds = time.time() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    # padding-free rows: 16 examples of the mean length make the tokens a step holds
    mean_len = info["total_tokens"] / info["train_examples"]
    est = estimate_memory(AutoConfig.from_pretrained(big), method=method, batch_size=16, seq_len=int(mean_len),
                          gradient_checkpointing=method == "qlora", lora_dropout=cfg.train.lora.dropout)
    print(json.dumps({"method": method, "measured_peak_gib": round(peak, 3), "estimated_gib": est.total_gib,
                      "ratio": round(est.total_gib / peak, 3), "seconds": round(seconds, 1), "steps": steps,
                      "mean_tokens": round(mean_len, 1),
                      "trainable_fraction": info["trainable_parameters"] / info["total_parameters"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
