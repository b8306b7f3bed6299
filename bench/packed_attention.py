"""Per-example attention on packed rows vs transformers' SDPA with a block-diagonal row mask.

    python bench/packed_attention.py            # the 25M Llama of train_throughput.py, 1 torch thread
    python bench/packed_attention.py --device cuda    # on a GPU, in bf16

One forward + backward of a single packed row (what a padding-free micro-batch is) through
the same model twice: as loaded (SDPA over the whole row, examples kept apart by the mask) and
switched to `sftflow.train.packed_attention` (SDPA over each example). Row shapes: a long-tail
row, four 256-token examples, four 1000-token examples. Median of 3 timed repeats after one
warm-up, the two paths interleaved. Also prints the largest difference in logits between the
two paths (0 up to float rounding: the speed-up must not change the model's output).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROWS = ([40, 25, 60, 900], [256, 256, 256, 256], [1000, 1000, 1000, 1000])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sftflow-bench-train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda runs the model in bf16")
    args = ap.parse_args(argv)

    import torch
    from train_throughput import build_llama_25m
    from transformers import AutoModelForCausalLM

    from sftflow.model.tiny import build_tiny_model
    from sftflow.train.packed_attention import use_packed_attention

    torch.set_num_threads(args.threads)
    path = build_llama_25m(args.work, build_tiny_model(args.work / "tiny-model", log=lambda m: None))
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    paths = {name: AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(args.device)
             for name in ("row mask", "per example")}
    assert use_packed_attention(paths["per example"])
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    print(f"{args.device} ({torch.cuda.get_device_name(0) if args.device == 'cuda' else 'CPU'}), {dtype}")
    print("| packed row (example lengths) | row mask, s | per example, s | speed-up | max logit diff |\n"
          "|---|---:|---:|---:|---:|")
    for lengths in ROWS:
        torch.manual_seed(0)
        ids = torch.randint(5, paths["row mask"].config.vocab_size, (1, sum(lengths)), device=args.device)
        pos = torch.cat([torch.arange(n) for n in lengths])[None].to(args.device)
        with torch.no_grad():
            a, b = (m(input_ids=ids, position_ids=pos, use_cache=False).logits.float() for m in paths.values())
            diff = (a - b).abs().max().item()
        times: dict[str, list[float]] = {k: [] for k in paths}
        for rep in range(4):
            for name, model in paths.items():
                sync()
                t = time.perf_counter()
                model(input_ids=ids, position_ids=pos, labels=ids, use_cache=False).loss.backward()
                sync()
                if rep:  # the first pass is warm-up
                    times[name].append(time.perf_counter() - t)
                model.zero_grad()
        row, ex = (statistics.median(times[k]) for k in paths)
        print(f"| {' + '.join(map(str, lengths))} | {row:.4f} | {ex:.4f} | **{row / ex:.2f}x** | {diff:.2g} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
