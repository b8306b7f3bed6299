"""Memory estimate before a run: will this config fit on this GPU?

    sftflow estimate sftflow.yaml [--model meta-llama/Llama-2-7b-hf]

The model is built on the `meta` device from its config (no weights loaded), so parameter
counts and the LoRA-adapted layers are exact; memory is then the sum of
weights + trainable-parameter gradients + AdamW state + activations, with activations from
the standard per-layer transformer estimate (Korthikanti et al. 2022: ~34·s·b·h bytes in
16-bit without recomputation, ~2·s·b·h with gradient checkpointing) plus the logits.
It is an estimate: real use adds the CUDA context (~0.5 GiB) and allocator fragmentation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 2**30
NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8 * 4  # 4-bit weights + double-quantised absmax constants (~0.127 bit/param)


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


def estimate_memory(model_config, *, method: str, r: int = 16, target_modules="all-linear", batch_size: int = 4,
                    seq_len: int = 1024, bf16: bool = True, gradient_checkpointing: bool = False) -> MemoryEstimate:
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
    per_layer = (2 if gradient_checkpointing or method == "qlora" else 34) * seq_len * batch_size * hidden
    logits = batch_size * seq_len * vocab * 4 * 2  # fp32 logits and their gradient
    activations = layers * per_layer + logits
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
