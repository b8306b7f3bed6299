"""Batched evaluation generation vs one prompt at a time, on the tiny model, same greedy outputs.

    python bench/eval_generate.py                # 96 prompts, batch 32, 48 new tokens
    python bench/eval_generate.py --threads 1    # on a machine where another job holds a core

Both paths go through `sftflow.eval.generate.generate` (the one-at-a-time path with batch
size 1), on the same prompts: half general chat (short answers that stop at eos), half the
quickstart task with its system prompt (the base model rambles to the token budget, as it
does in a real base-vs-tuned evaluation). Each path runs `--repeat` times, interleaved, and
the best time counts: other jobs on a shared machine only ever make a run slower. Exits 1 if
any output differs.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time


def prompts(n: int) -> list[list[dict]]:
    from sftflow.model.corpus import general_corpus
    from sftflow.quickstart import SYSTEM_PROMPT, make_example

    conversations, _ = general_corpus(n_conversations=n, seed=99)
    general = [c[:-1] for c in conversations if c[-1]["role"] == "assistant"][: n - n // 2]
    rng = random.Random(1)
    task = [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": make_example(rng)[0]}]
            for _ in range(n // 2)]
    return general + task


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each path; the fastest counts")
    args = ap.parse_args()

    import torch

    from sftflow.eval.generate import generate
    from sftflow.model.load import load_chat, load_model
    from sftflow.model.tiny import build_tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(f"{tmp}/tiny", log=lambda m: None)
        template = load_chat(str(path), padding_side="left")
        model = load_model(str(path), template, method="full").eval()
    chats = prompts(args.prompts)
    generate(model, template, chats[:4], max_new_tokens=4, batch_size=4)  # warm-up: first-call overheads

    t_batched, t_single = float("inf"), float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        batched = generate(model, template, chats, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        t_batched = min(t_batched, time.perf_counter() - t0)
        t0 = time.perf_counter()
        single = [generate(model, template, [c], max_new_tokens=args.max_new_tokens, batch_size=1)[0] for c in chats]
        t_single = min(t_single, time.perf_counter() - t0)

    same = sum(a == b for a, b in zip(batched, single, strict=True))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(chats)} prompts, "
          f"max_new_tokens {args.max_new_tokens}, best of {args.repeat}")
    print(f"one at a time: {t_single:.2f} s ({len(chats) / t_single:.1f} prompts/s)")
    print(f"batched ({args.batch_size}): {t_batched:.2f} s ({len(chats) / t_batched:.1f} prompts/s)")
    print(f"speed-up: {t_single / t_batched:.1f}x; identical outputs: {same}/{len(chats)}")
    if same != len(chats):
        for c, a, b in zip(chats, batched, single, strict=True):
            if a != b:
                print(f"differs: {c[-1]['content'][:60]!r}: batched {a!r} vs single {b!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
