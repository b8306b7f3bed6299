"""Batched generation with left padding and the training chat template.

Decoder-only models continue from the last position, so batches are padded on the left;
prompts are sorted by length to keep padding small, and results returned in input order.
Greedy batched output equals one-at-a-time output (tests/eval/test_eval_generate.py), and is
several times faster (bench/eval_generate.py). Sampling is optional and seeded; sampled
outputs depend on the batch composition, so they are reproducible only with the same batches.

This is `model.generate`, not the streaming engine `serve` and `chat` use (model/engine.py):
generate applies the model's generation_config (e.g. a repetition_penalty that some hub
models ship) and samples from one seeded generator per batch; eval's outputs would change
with the engine. On a model without such settings greedy outputs agree (tests/serve/test_serve.py).
"""

from __future__ import annotations

from sftflow.model.chat import render


def generate(model, chat, prompts: list[list[dict]], *, max_new_tokens: int = 128, batch_size: int = 16,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             progress=None, padding_side: str = "left", tools: list[list[dict] | None] | None = None) -> list[str]:
    """`padding_side="right"` exists only to demonstrate the breakage (bench/playbook); keep the default.
    `tools`: each prompt's tool definitions, rendered as training rendered them (None: no tools).
    `chat`: the model's ChatTemplate (its tokenizer and template facts)."""
    import torch

    tokenizer = chat.tokenizer
    tokenizer.padding_side = padding_side
    tools = tools or [None] * len(prompts)
    texts = [render(chat, p, add_generation_prompt=True, tools=t) for p, t in zip(prompts, tools, strict=True)]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    device = next(model.parameters()).device
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
    if do_sample:
        torch.manual_seed(seed)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=model.generation_config.eos_token_id,
                **sampling,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        for i, ids in zip(idx, new_tokens, strict=True):
            outputs[i] = decode_reply(chat, ids, texts[i])
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return outputs


def decode_reply(chat, ids, prompt: str = "") -> str:
    """The text of generated ids: special tokens (end of turn, pad after it) dropped, whitespace trimmed; the
    reasoning, read apart for the family (`reasoning.reply_parts`: gpt-oss's analysis channel), as a leading
    `<think>` block that `split_reasoning` takes off again."""
    from sftflow.model.reasoning import joined, reply_parts

    return joined(*reply_parts(chat, ids, prompt)).strip()
