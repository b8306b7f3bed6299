"""Attention for padding-free rows that costs each example's own length squared, not the row's.

TRL's padding-free batches concatenate a micro-batch into one row with `position_ids` that
restart at every example. Under SDPA, transformers keeps the examples apart with a
block-diagonal mask over the whole row, so attention is computed (then masked) across all of
it: (sum of lengths)^2 instead of sum(length^2), 4x the work for four equal examples.
FlashAttention-2 avoids that with variable-length kernels, but it is GPU-only and optional.
Here SDPA runs once per example, causal and unmasked, with the same boundaries transformers
derives from `position_ids` (wherever they do not go up by one). Anything else (padded
batches, a single sequence, generation with a cache, sliding windows, softcapping, attention
sinks) goes to transformers' own SDPA with its mask, unchanged.

Measured on this 2-core CPU (bench/packed_attention.py, bench/train_throughput.py): see
bench/README.md. On a GPU one launch per example costs more than the masked work it saves
(bench/packed_attention.py --device cuda on an H100: 0.78-0.83x), so there the row keeps
transformers' masked SDPA (FlashAttention-2's variable-length kernels, where installed, are
the GPU's way to skip the masked work).
"""

from __future__ import annotations

NAME = "sftflow_packed_sdpa"


def _example_bounds(query, key, is_causal: bool, kwargs: dict) -> list[int] | None:
    """[0, start of example 2, ..., row length] for a packed training row, else None."""
    position_ids = kwargs.get("position_ids")
    if position_ids is None or position_ids.dim() != 2 or query.shape[0] != 1 or position_ids.shape[0] != 1:
        return None
    length = query.shape[2]
    if length < 2 or key.shape[2] != length or position_ids.shape[1] != length or not is_causal:
        return None
    if any(kwargs.get(k) is not None for k in ("sliding_window", "softcap", "s_aux", "position_bias")):
        return None
    pos = position_ids[0]
    starts = ((pos[1:] - pos[:-1]) != 1).nonzero().flatten() + 1
    if starts.numel() == 0:
        return None  # one sequence: plain SDPA is already exact and cheapest
    if int(pos[0]) != 0 or bool((pos[starts] != 0).any()):
        return None  # not examples back to back (e.g. a left-padded prompt): the mask decides
    return [0, *starts.tolist(), length]


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                          is_causal=None, **kwargs):
    """An `AttentionInterface` function: per-example SDPA on packed rows, transformers' SDPA otherwise."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    # On a GPU the one masked kernel beats a launch per example (0.78-0.83x measured on an H100, bf16)
    bounds = _example_bounds(query, key, causal, kwargs) if query.device.type == "cpu" else None
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    outs = [
        F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=dropout,
                                       scale=scaling, is_causal=True)
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def use_packed_attention(model) -> bool:
    """Switch a model that runs on SDPA to the per-example version; others (eager, FlashAttention,
    models without the attention interface) are left alone. Returns whether it switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa" or not model._can_set_attn_implementation():
        return False
    AttentionInterface.register(NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # the fallback keeps transformers' exact masks
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME
