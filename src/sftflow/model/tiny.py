"""A tiny pre-trained Llama-style chat model, built offline, for tests, examples and the quickstart.

    python -c "from sftflow.model.tiny import build_tiny_model; build_tiny_model('tiny-model')"

Nothing here downloads anything. We generate a small "general knowledge" corpus (greetings,
capitals, colours, animals, calendar, opposites, small sums, short prose), train a byte-level
BPE tokenizer on it, and pre-train a ~1.8M parameter Llama for about two minutes on one CPU thread.
The result loads with `AutoModelForCausalLM` / `AutoTokenizer` like any hub model, and it has
real behaviour to preserve: "Hello" gets a polite greeting, "What is 2 + 3?" gets "2 + 3 = 5.".
Fine-tuning tests measure forgetting against exactly that behaviour.

The quickstart task (customer-support message -> JSON intent) is deliberately NOT in the
pre-training corpus: the tokenizer sees JSON-like and support-like text so that `{"`, `":`,
`"}` are single tokens, but the model has to learn the task from fine-tuning.

Builds are cached by a key over everything that changes the weights (see `_cache_key`):
`$SFTFLOW_CACHE/tiny-model-<key>`, default `~/.cache/sftflow/tiny-model-<key>`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sftflow.io import cache_root
from sftflow.model.corpus import N_CONVERSATIONS, general_corpus, tokenizer_extra_text
from sftflow.model.template import (
    BOS_TOKEN,
    DEFAULT_CHAT_TEMPLATE,
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
)

# Bump when the corpus, tokenizer or training recipe changes: it invalidates every cached build.
BUILDER_VERSION = 3  # 3: the chat template renders tools (issue 28)

VOCAB_SIZE = 2048
# Hidden 160 rather than the usual 256: on one CPU thread it fits the ~450 steps the model needs
# into about two minutes (0.3 s a step). Measured over seeds: after 450 steps widths 128-192 get
# (nearly) all capitals and sums right; after 300-350 steps, all a 256-wide model can afford, they
# still mix up capitals: they have not yet learnt to copy "France" or "2 + 3" into the answer.
MODEL_CONFIG = {
    "hidden_size": 160,
    "intermediate_size": 432,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
MODEL_MAX_LENGTH = 1024

# Pre-training recipe: 450 steps x 16 rows x 128 tokens is ~0.9M tokens, about two epochs.
DEFAULT_PRETRAIN_STEPS = 450
SEQ_LEN = 128  # every generated document is far shorter; rows are packed with whole documents
BATCH_SIZE = 16
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.1
LOG_EVERY = 10

META_FILE = "sftflow_tiny.json"
SAMPLE_PROMPTS = ["Hello", "What is 2 + 3?", "What is the capital of France?"]


# ---------------------------------------------------------------------------------------------
# Tokenizer and model
# ---------------------------------------------------------------------------------------------


def _train_tokenizer(texts: Iterator[str]):
    """Byte-level BPE: every unicode string round-trips, and no unknown token is ever needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,  # ids 0..3, in template order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # No post-processor: the chat template writes bos itself, so `add_special_tokens` adds nothing
    # and a rendered chat never gets a second bos.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=DEFAULT_CHAT_TEMPLATE,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
        clean_up_tokenization_spaces=False,  # otherwise decode("a .") == "a." and round trips break
    )


def _tokenizer_texts(conversations: list[list[dict]], docs: list[str], seed: int) -> Iterator[str]:
    for messages in conversations:
        for m in messages:
            yield f"{m['role']}\n{m['content']}\n"
    yield from docs
    yield from tokenizer_extra_text(seed)


def _new_model(tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MODEL_CONFIG,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def _pack(sequences: list[list[int]], seq_len: int, pad_id: int, rng: random.Random) -> list[list[int]]:
    """Greedy packing of whole documents into rows of seq_len, right-padded; no document is split.

    The few documents longer than a row are dropped: a chat cut before its answer teaches nothing.
    """
    order = [i for i in range(len(sequences)) if len(sequences[i]) <= seq_len]
    rng.shuffle(order)
    rows, row = [], []
    for i in order:
        seq = sequences[i]
        if len(row) + len(seq) > seq_len:
            rows.append(row + [pad_id] * (seq_len - len(row)))
            row = []
        row = row + seq
    if row:
        rows.append(row + [pad_id] * (seq_len - len(row)))
    return rows


def _positions(batch, bos_id: int):
    """Position ids that restart at 0 at every bos token in each packed row."""
    import torch

    idx = torch.arange(batch.shape[1]).expand_as(batch)
    starts = torch.where(batch == bos_id, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - starts


def _pretrain(
    model, rows: list[list[int]], pad_id: int, bos_id: int, *, steps: int, seed: int, log: Callable
) -> float:
    """Plain next-token pre-training with AdamW and warmup + cosine decay; loss on every real token."""
    import torch

    data = torch.tensor(rows, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]  # matrices; not norms
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
        betas=(0.9, 0.95),
    )
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return LEARNING_RATE * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    model.train()
    order = torch.randperm(len(data), generator=gen)
    cursor, recent, t0 = 0, [], time.perf_counter()
    for step in range(steps):
        if cursor + BATCH_SIZE > len(order):  # next epoch
            order, cursor = torch.randperm(len(data), generator=gen), 0
        batch = data[order[cursor : cursor + BATCH_SIZE]]
        cursor += BATCH_SIZE
        labels = batch.masked_fill(batch == pad_id, -100)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        # Positions restart at every bos. With no attention_mask and no cache, transformers reads
        # that as packed sequences (masking_utils.find_packed_sequence_indices) and masks attention
        # across documents, so each chat is learnt exactly as it is seen at inference: alone, from
        # position 0. Facts from the chat packed before it cannot leak in ("The capital of Egypt is
        # New Delhi."). Measured (one seed, 400 steps): sums right went from 60% to 100%.
        loss = model(
            input_ids=batch, labels=labels, position_ids=_positions(batch, bos_id), use_cache=False
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [loss.item()])[-LOG_EVERY:]
        if (step + 1) % LOG_EVERY == 0 or step + 1 == steps:
            log(
                f"tiny model: step {step + 1}/{steps} loss {loss.item():.3f} "
                f"lr {lr_at(step):.2e} {time.perf_counter() - t0:.0f}s"
            )
    model.eval()
    return sum(recent) / max(1, len(recent))


def _reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 24) -> tuple[str, bool]:
    """Greedy reply to a chat; returns (text, stopped_at_eos)."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, ids.shape[1] :].tolist()
    stopped = tokenizer.eos_token_id in new
    if stopped:
        new = new[: new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new), stopped


# ---------------------------------------------------------------------------------------------
# Build and cache
# ---------------------------------------------------------------------------------------------


def _params(seed: int, pretrain_steps: int) -> dict:
    return {
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "pretrain_steps": pretrain_steps,
        "vocab_size": VOCAB_SIZE,
        "model": MODEL_CONFIG,
        "n_conversations": N_CONVERSATIONS,
        "seq_len": SEQ_LEN,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "torch_threads": 1,
    }


def _cache_key(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _is_complete(path: Path, key: str) -> bool:
    """A folder holds a usable build if its meta file names our key and every file it lists exists."""
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("key") == key and all((path / f).is_file() for f in meta.get("files", []))


@contextmanager
def one_torch_thread():
    """Run torch on one thread inside the block; see `_build` for why."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _build(dest: Path, params: dict, key: str, log: Callable) -> None:
    """Train tokenizer and model from scratch and save everything into dest (an empty folder).

    Runs torch on one thread. On a shared 2-core machine two OpenMP threads spin-wait whenever
    another process holds a core: measured 5.9 s a step instead of 0.4 s. One thread also makes
    the weights independent of the machine's core count.
    """
    with one_torch_thread():
        _build_single_threaded(dest, params, key, log)


def _build_single_threaded(dest: Path, params: dict, key: str, log: Callable) -> None:
    import torch
    import transformers

    t0 = time.perf_counter()
    seed, steps = params["seed"], params["pretrain_steps"]
    conversations, docs = general_corpus(N_CONVERSATIONS, seed=seed)
    tokenizer = _train_tokenizer(_tokenizer_texts(conversations, docs, seed))
    log(f"tiny model: tokenizer trained, {len(tokenizer)} tokens ({time.perf_counter() - t0:.1f}s)")

    texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in conversations]
    texts += [BOS_TOKEN + d + EOS_TOKEN for d in docs]
    # The model also reads the tokenizer's extra lines (unpaired support messages, generic JSON),
    # as every real LLM has seen all of its vocabulary: a token that is never a training target
    # gets its output row pushed down during pre-training, and LoRA (which leaves lm_head alone)
    # cannot lift it again — fine-tuning then plateaus with the right argmax but a flat,
    # low-confidence distribution. These lines pair no message with a label: the base model
    # still cannot do the quickstart task.
    texts += [BOS_TOKEN + line + EOS_TOKEN for line in tokenizer_extra_text(seed)]
    sequences = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = _pack(sequences, SEQ_LEN, tokenizer.pad_token_id, random.Random(seed))
    n_tokens = sum(len(s) for s in sequences)
    log(
        f"tiny model: corpus {len(conversations)} chats + {len(docs)} docs, {n_tokens} tokens in {len(rows)} rows"
    )

    model = _new_model(tokenizer, seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"tiny model: {n_params / 1e6:.2f}M params, pre-training {steps} steps of {BATCH_SIZE}x{SEQ_LEN} tokens"
    )
    final_loss = (
        _pretrain(
            model, rows, tokenizer.pad_token_id, tokenizer.bos_token_id, steps=steps, seed=seed, log=log
        )
        if steps
        else None
    )

    samples = {p: _reply(model, tokenizer, [{"role": "user", "content": p}])[0] for p in SAMPLE_PROMPTS}
    for prompt, reply in samples.items():
        log(f"tiny model: {prompt!r} -> {reply!r}")

    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    seconds = round(time.perf_counter() - t0, 1)
    (dest / "README.md").write_text(
        _model_card(params, key, n_params, n_tokens, final_loss, seconds, samples)
    )
    meta = {
        "key": key,
        "params": params,
        "n_params": n_params,
        "corpus_tokens": n_tokens,
        "final_loss": final_loss,
        "seconds": seconds,
        "samples": samples,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "files": sorted(p.name for p in dest.iterdir()),
    }
    # Written last: its presence with our key is what marks the folder as complete.
    (dest / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log(f"tiny model: built in {seconds}s, final loss {final_loss}")


def _model_card(params, key, n_params, n_tokens, final_loss, seconds, samples) -> str:
    m = params["model"]
    loss = "n/a (no pre-training)" if final_loss is None else f"{final_loss:.3f}"
    sample_lines = "\n".join(f"| {p} | {r} |" for p, r in samples.items())
    return f"""# sftflow tiny model

A toy Llama-architecture chat model built offline by `sftflow.model.tiny.build_tiny_model`,
for tests, examples and the quickstart. It knows a handful of greetings and facts; it is not
useful for anything else.

- Architecture: `LlamaForCausalLM`, {n_params:,} parameters; hidden {m["hidden_size"]},
  {m["num_hidden_layers"]} layers, {m["num_attention_heads"]} heads ({m["num_key_value_heads"]} key/value heads),
  MLP {m["intermediate_size"]}, context {m["max_position_embeddings"]}.
- Tokenizer: byte-level BPE, {params["vocab_size"]} tokens, ChatML template (`<|im_start|>` ... `<|im_end|>`),
  `<|im_end|>` is eos, `<|pad|>` is pad, `<|bos|>` is bos.
- Corpus: generated, seed {params["seed"]}. {params["n_conversations"]} chats (greetings, capitals, colours,
  animals, days and months, opposites, sums and differences up to 12) and plain prose docs, {n_tokens:,} tokens.
  Tokenizer and model also saw unpaired JSON-like and support-like lines, never a message with its label.
- Pre-training: {params["pretrain_steps"]} steps of {params["batch_size"]}x{params["seq_len"]} tokens, AdamW
  lr {params["learning_rate"]}, cosine decay. Final loss {loss}. Built in {seconds}s.
- Cache key: `{key}` (builder version {params["builder_version"]}).

Greedy replies after pre-training:

| prompt | reply |
|---|---|
{sample_lines}
"""


def _install(src: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = json.loads((src / META_FILE).read_text())["files"]
    for name in files:
        shutil.copy2(src / name, out_dir / name)
    shutil.copy2(src / META_FILE, out_dir / META_FILE)  # last, see _build


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    pretrain_steps: int | None = None,
    cache: bool = True,
    log: Callable[[str], object] = print,
) -> Path:
    """Create (or reuse from cache) the pre-trained tiny model in out_dir; returns out_dir.

    With cache=True an out_dir that already holds this exact build is left alone, and otherwise
    the build comes from (or goes into) the shared cache. cache=False neither reads nor writes
    the cache: it always trains from scratch, which is what determinism tests want.
    """
    out_dir = Path(out_dir).expanduser()
    steps = DEFAULT_PRETRAIN_STEPS if pretrain_steps is None else int(pretrain_steps)
    params = _params(seed, steps)
    key = _cache_key(params)

    if not cache:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=out_dir.parent))
        try:
            _build(tmp, params, key, log)
            _install(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out_dir

    if _is_complete(out_dir, key):
        log(f"tiny model: reusing {out_dir} ({key})")
        return out_dir

    entry = cache_root() / f"tiny-model-{key}"
    if not _is_complete(entry, key):
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tiny-model-{key}-", dir=entry.parent))
        try:
            _build(tmp, params, key, log)
            if entry.exists():  # a broken leftover; a complete one would have been used above
                shutil.rmtree(entry)
            try:
                os.rename(tmp, entry)  # atomic: readers never see a half-written cache entry
            except OSError:
                if not _is_complete(entry, key):  # lost a race to another builder: use theirs
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"tiny model: using cached {entry}")

    if out_dir.resolve() != entry.resolve():
        _install(entry, out_dir)
    return out_dir
