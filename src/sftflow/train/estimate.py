"""Memory estimate before a run: will this config fit on this GPU?

    sftflow estimate sftflow.yaml [--model meta-llama/Llama-2-7b-hf]

The model is built on the `meta` device from its config (no weights loaded), so parameter
counts and the LoRA-adapted layers are exact; memory is then the sum of
weights + trainable-parameter gradients + AdamW state + activations, with activations from
a count of the tensors a Llama-style layer keeps for backward (`layer_activation_bytes`, checked
against a measured GPU peak) plus the logits; on CPU, coefficients measured on this machine.
It is an estimate: real use adds the CUDA context (~0.5 GiB) and allocator fragmentation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sftflow.data_folder import TRAIN

GIB = 2**30
NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8 * 4  # 4-bit weights + double-quantised absmax constants (~0.127 bit/param)
GPU_SIZES_GIB = (8, 16, 24, 40, 80)
CUDA_OVERHEAD_GIB = 0.5  # CUDA context + kernels, before any tensor
# CPU (fp32, eager PyTorch, glibc allocator): bytes kept per token per hidden unit per layer at the
# peak, *measured* here as peak RSS growth over three training steps of Llama models 256-768 wide
# (2-8 layers, batch 2-4, 256-512 tokens): ~150 for full fine-tuning, ~230 with LoRA (PEFT keeps
# the adapted layers' inputs and outputs); they include allocator slack that freed memory leaves.
CPU_ACTIVATION_BYTES = {"full": 150, "lora": 230, "qlora": 230}


@dataclass
class MemoryEstimate:
    method: str
    total_parameters: int
    trainable_parameters: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    total_gib: float

    def as_dict(self) -> dict:
        return asdict(self)


def _meta_model(model_config):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(model_config)


def lora_parameters(model, r: int, target_modules) -> int:
    """r·(in + out) for every adapted Linear layer (all-linear skips the output head, as PEFT does)."""
    import torch

    head = model.get_output_embeddings()
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        short = name.rsplit(".", 1)[-1]
        if target_modules == "all-linear" or short in target_modules:
            total += r * (module.in_features + module.out_features)
    return total


def layer_activation_bytes(hidden: int, intermediate: int, dtype_bytes: int, *, lora: bool,
                           lora_dropout: float) -> int:
    """Bytes one decoder layer keeps per token for backward (Llama-style block, fused attention):
    two norms' inputs and outputs, q/k/v after RoPE and the attention output (~9·h), and the
    SwiGLU MLP's gate, up, activation and product (4·i). LoRA with dropout adds a dropped-out copy
    of the input of every adapted projection (q, k, v, o, gate, up: 6·h; down: i) and its mask.
    Measured on an H200 (bench/gpu_estimate_check.py): a 0.83B Llama with LoRA kept 66 bytes per
    token per hidden unit per layer; this count gives 40 + 26 = 66."""
    elements = 9 * hidden + 4 * intermediate
    out = elements * dtype_bytes
    if lora and lora_dropout > 0:
        out += (6 * hidden + intermediate) * (dtype_bytes + 1)  # copies plus boolean masks
    return out


def estimate_memory(model_config, *, method: str, r: int = 16, target_modules="all-linear", batch_size: int = 4,
                    seq_len: int = 1024, bf16: bool = True, gradient_checkpointing: bool = False,
                    lora_dropout: float = 0.0, device: str = "cuda") -> MemoryEstimate:
    """GPU (default): 16-bit weights when bf16, activations from `layer_activation_bytes`. CPU: fp32
    throughout, activations from the coefficients measured on this kind of machine (CPU_ACTIVATION_BYTES)."""
    if device == "cpu":
        bf16 = False
    model = _meta_model(model_config)
    total = sum(p.numel() for p in model.parameters())
    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    hidden, layers = text.hidden_size, text.num_hidden_layers
    vocab = text.vocab_size
    half = 2 if bf16 else 4

    if method == "full":
        trainable = total
        weights = total * (4 if not bf16 else 2)
        # fp32 master weights in mixed precision, fp32 gradients, AdamW's two fp32 moments
        gradients = trainable * 4
        optimizer = trainable * 8 + (trainable * 4 if bf16 else 0)
    else:
        trainable = lora_parameters(model, r, target_modules)
        weights = total * (NF4_BYTES_PER_PARAM if method == "qlora" else half) + trainable * 4
        gradients = trainable * 4
        optimizer = trainable * 8
    tokens = seq_len * batch_size
    checkpointing = gradient_checkpointing or method == "qlora"  # sftflow always checkpoints QLoRA
    if device == "cpu":
        per_token = 2 * 4 if checkpointing else CPU_ACTIVATION_BYTES[method]
        logits = tokens * vocab * 4 * 3  # fp32 logits, log-softmax and their gradient
        activations = layers * per_token * tokens * hidden + logits
    else:
        layer = layer_activation_bytes(hidden, getattr(text, "intermediate_size", 4 * hidden), half,
                                       lora=method != "full", lora_dropout=lora_dropout)
        logits = tokens * vocab * 4 * 2  # fp32 logits and their gradient
        if checkpointing:  # each layer keeps its input; one layer at a time is recomputed in full
            activations = layers * tokens * hidden * half + tokens * layer + logits
        else:
            activations = layers * tokens * layer + logits
    parts = [weights, gradients, optimizer, activations]
    return MemoryEstimate(
        method=method,
        total_parameters=total,
        trainable_parameters=trainable,
        weights_gib=round(weights / GIB, 3),
        gradients_gib=round(gradients / GIB, 3),
        optimizer_gib=round(optimizer / GIB, 3),
        activations_gib=round(activations / GIB, 3),
        total_gib=round(sum(parts) / GIB, 3),
    )


BATCH_SPREAD = 2.5  # standard deviations above the mean: the largest of a few dozen random batches


def padding_free_length(cfg, model_path: str, batch_size: int) -> tuple[int, str] | None:
    """Padding-free batches hold the examples' own tokens, not batch x max_length: the tokens per row
    of the largest batch to expect (mean + 2.5 sd of a batch's sum, capped at max_length), from the
    prepared train split. None when padding is on or the data is not prepared yet."""
    import json
    import statistics

    t = cfg.train
    train_file = cfg.data_dir / TRAIN
    if not t.padding_free or not train_file.exists():
        return None
    from sftflow.model.chat import tokenize_chat, tokenize_text
    from sftflow.model.load import load_chat

    template = str(cfg.path(cfg.model.chat_template)) if cfg.model.chat_template else None
    chat = load_chat(model_path, chat_template=template, trust_remote_code=cfg.model.trust_remote_code)
    lengths = []
    for line in train_file.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        enc = (tokenize_chat(chat, row["messages"], t.max_length) if "messages" in row
               else tokenize_text(chat.tokenizer, row.get("text", ""), t.max_length))
        lengths.append(len(enc.input_ids))
    if len(lengths) < 2:
        return None
    mean, sd = statistics.mean(lengths), statistics.stdev(lengths)
    largest = min(batch_size * t.max_length, mean * batch_size + BATCH_SPREAD * sd * batch_size**0.5)
    per_row = max(1, round(largest / batch_size))
    return per_row, (f"padding-free batches: {len(lengths)} train examples of {mean:.0f} tokens on average (sd "
                     f"{sd:.0f}), so the largest batch of {batch_size} holds ~{largest:.0f} tokens, {per_row} a row "
                     f"(not {t.max_length})")


def gpu_verdict(total_gib: float, gpu_gib: float) -> str:
    """fits / tight (within 10% of the card) / no, counting the CUDA context."""
    need = total_gib + CUDA_OVERHEAD_GIB
    if need <= 0.9 * gpu_gib:
        return "fits"
    return "tight" if need <= gpu_gib else "no"


def machine_memory_gib() -> float:
    """Total RAM of this machine (for the CPU verdict)."""
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def measure_warmup(cfg, steps: int = 5, log=print) -> dict:
    """Time a few real optimizer steps of the configured run on the prepared data (in a scratch
    folder, nothing kept), then extrapolate to the whole run: the honest time estimate."""
    import math
    import tempfile
    import time

    from transformers import TrainerCallback

    from sftflow.train.build import build_trainer

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="sftflow-warmup-") as scratch:
        t = cfg.train
        train = t.model_copy(update={"early_stopping_patience": 0, "extra": {
            **t.extra, "max_steps": steps + 1, "eval_strategy": "no", "save_strategy": "no",
            "load_best_model_at_end": False}})
        probe = cfg.model_copy(update={"train": train, "output_dir": scratch})
        probe._root = cfg.root
        trainer, info = build_trainer(probe, log=lambda m: None)
        clock = StepClock()
        trainer.add_callback(clock)
        trainer.train()
    per_step = (clock.times[-1] - clock.times[0]) / max(1, len(clock.times) - 1)  # first step excluded
    steps_per_epoch = math.ceil(info["train_examples"] / info["effective_batch"])
    total_steps = math.ceil(steps_per_epoch * t.epochs)
    tokens_per_step = info["total_tokens"] / steps_per_epoch
    return {"seconds_per_step": per_step, "steps": total_steps, "train_tokens": info["total_tokens"],
            "tokens_per_second": tokens_per_step / per_step, "estimated_seconds": per_step * total_steps}


def per_gpu(e: MemoryEstimate, strategy: str, world: int, zero_stage: int = 2) -> float:
    """GiB per GPU when `world` GPUs share the run: DDP replicates everything; ZeRO-2 shards gradients
    and optimizer states; ZeRO-3 and FSDP full-shard also shard the weights. Activations stay per GPU
    (each GPU holds its own micro-batch)."""
    shard = max(1, world)
    weights, grads, optim = e.weights_gib, e.gradients_gib, e.optimizer_gib
    if strategy == "deepspeed" and zero_stage == 2:
        grads, optim = grads / shard, optim / shard
    elif strategy in ("fsdp", "deepspeed"):
        weights, grads, optim = weights / shard, grads / shard, optim / shard
    return round(weights + grads + optim + e.activations_gib, 3)


def estimate_report(cfg, *, model: str | None = None, seq_len: int | None = None, warmup: int = 0, gpus: int = 1,
                    log=print) -> None:
    """`sftflow estimate`: the table of full, lora and qlora memory per GPU size, per-GPU memory under
    each strategy on `gpus` GPUs, this machine's verdict and (warmup) the measured time per step."""
    from transformers import AutoConfig

    from sftflow.errors import SftflowError
    from sftflow.model.resolve import resolve_model

    t = cfg.train
    path = resolve_model(model, Path(model).expanduser()) if model else cfg.model_path()  # a .gguf: converted once
    try:
        model_config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    except OSError as err:
        raise SftflowError(f"model {path!r}: cannot read its config ({str(err).splitlines()[0]})") from err
    length = seq_len or t.max_length
    padding_free = None if seq_len else padding_free_length(cfg, path, t.batch_size)
    if padding_free:
        length, note = padding_free
        log(note)
    kwargs = dict(r=t.lora.r, target_modules=t.lora.target_modules, batch_size=t.batch_size, seq_len=length,
                  gradient_checkpointing=t.gradient_checkpointing, lora_dropout=t.lora.dropout)
    log(f"{path}: batch {t.batch_size} x {length} tokens, LoRA r {t.lora.r}; GPU figures in bf16")
    header = "".join(f"{f'{g}GB':>7}" for g in GPU_SIZES_GIB)
    log(f"{'method':<7}{'params':>10}{'trainable':>12}{'weights':>9}{'grads':>7}{'optim':>7}{'activ':>7}"
        f"{'GiB':>7} {header}")
    for method in ("full", "lora", "qlora"):
        e = estimate_memory(model_config, method=method, **kwargs)
        verdicts = "".join(f"{gpu_verdict(e.total_gib, g):>7}" for g in GPU_SIZES_GIB)
        mark = "  <- configured" if method == t.method else ""
        log(f"{method:<7}{e.total_parameters / 1e6:>9.1f}M{e.trainable_parameters / 1e6:>11.2f}M"
            f"{e.weights_gib:>9.2f}{e.gradients_gib:>7.2f}{e.optimizer_gib:>7.2f}{e.activations_gib:>7.2f}"
            f"{e.total_gib:>7.2f} {verdicts}{mark}")
    if gpus > 1:
        e = estimate_memory(model_config, method=t.method, **kwargs)
        shown = [("ddp", "ddp", 2), ("zero2", "deepspeed", 2), ("zero3", "deepspeed", 3), ("fsdp", "fsdp", 2)]
        log(f"{t.method} on {gpus} GPUs, GiB per GPU: " + ", ".join(
            f"{label} {per_gpu(e, strategy, gpus, stage):.2f}" for label, strategy, stage in shown))
    cpu = estimate_memory(model_config, method=t.method, device="cpu", **kwargs)
    ram = machine_memory_gib()
    fits = "fits" if cpu.total_gib + 0.5 < 0.8 * ram else "does not fit"
    log(f"this machine (CPU, fp32, {t.method}): ~{cpu.total_gib:.2f} GiB of {ram:.0f} GiB RAM: {fits}")
    if warmup:
        w = measure_warmup(cfg, warmup, log=log)
        log(f"warm-up: {w['seconds_per_step']:.2f} s/step over {warmup} steps, {w['tokens_per_second']:,.0f} tok/s; "
            f"{w['steps']} steps over {w['train_tokens']:,} training tokens x {t.epochs:g} epochs "
            f"≈ {w['estimated_seconds'] / 60:.1f} min (early stopping may end sooner)")
