"""Load a tokenizer and model for training or inference, with the fixes SFT needs.

- One chat template: the model's own, a file from the config, or sftflow's ChatML default.
- pad != eos: when the pad is missing or equal to eos (padding would teach the model to stop,
  or mask real eos tokens) an existing unused token becomes the pad (`special_tokens.py`); a
  new one is added only where the vocabulary has none, and it is never trained.
- generation stops on the template's end-of-turn token(s), written into generation_config.
- padding side set explicitly: right for training, left for batched generation.
- qlora loads the base in 4-bit NF4 with double quantisation (bitsandbytes).
"""

from __future__ import annotations

from pathlib import Path

from sftflow.errors import SftflowError
from sftflow.model.chat_template import ChatTemplate
from sftflow.model.special_tokens import choose_pad
from sftflow.model.template import (
    DEFAULT_CHAT_TEMPLATE,
    DEFAULT_TEMPLATE_DATE,
    EOS_TOKEN,
    PAD_TOKEN,
    TURN_START_TOKEN,
    pin_date,
)
from sftflow.progress import phase


def _from_pretrained(cls, path: str, **kwargs):
    try:
        return cls.from_pretrained(path, **kwargs)
    except OSError as err:
        if not Path(path).exists():
            raise SftflowError(
                f"model {path!r}: not a local folder and not loadable from the Hugging Face hub "
                f"(offline or wrong id?): {str(err).splitlines()[0]}"
            ) from err
        if kwargs.get("use_safetensors") and not any(Path(path).glob("*.safetensors")):
            raise SftflowError(f"model {path!r}: no .safetensors weights; sftflow does not load pickled weights "
                               "(.bin/.pt can run code when loaded) — convert them with save_pretrained first") from err
        raise SftflowError(f"model {path!r}: cannot load ({str(err).splitlines()[0]})") from err


def load_chat(path: str, *, chat_template: str | None = None, revision: str | None = None,
              trust_remote_code: bool = False, padding_side: str = "right",
              template_date: str = DEFAULT_TEMPLATE_DATE) -> ChatTemplate:
    """The tokenizer (`.tokenizer`) with a chat template (today's date pinned to `template_date` where it
    writes one; a tokenizer saved with a run keeps its own), a pad token distinct from eos and an explicit
    padding side, in the ChatTemplate that holds its template's facts (built here, passed on from here)."""
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, path, revision=revision, trust_remote_code=trust_remote_code)
    size_before = len(tok)
    if chat_template:
        template_path = Path(chat_template)
        if not template_path.exists():
            raise SftflowError(f"model.chat_template: {template_path} not found")
        tok.chat_template = template_path.read_text(encoding="utf-8")
    elif not tok.chat_template:
        # A base model without a template: sftflow's ChatML, whose turn end is the eos the
        # model must learn to emit.
        tok.add_special_tokens({"additional_special_tokens": [TURN_START_TOKEN, EOS_TOKEN]})
        tok.eos_token = EOS_TOKEN
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
    tok.chat_template = pin_date(tok.chat_template, template_date)
    # Rows of the template tokens added to a base model are untrained: LoRA must train them too.
    chat = ChatTemplate(tok, added_token_ids=list(range(size_before, len(tok))))
    pad = choose_pad(tok, chat.reply_enders)
    if pad is None:
        tok.add_special_tokens({"pad_token": PAD_TOKEN})  # its row is never trained: pad carries no loss
        chat = ChatTemplate(tok, chat.added_token_ids)  # a new special token: the facts are read again
    else:
        tok.pad_token = pad
    tok.padding_side = padding_side
    return chat


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16_supported() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return False  # CPU autocast in bf16 is measured in bench/, not on by default


def quantization_config(compute_bf16: bool):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise SftflowError("train.method qlora needs bitsandbytes: pip install 'sftflow[qlora]'") from err
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if compute_bf16 else torch.float32,
    )


def attention_kernel(requested: str = "auto", bf16: bool = False) -> str | None:
    """The attention implementation to load with. FlashAttention-2 is used when it can run (a CUDA
    GPU, the flash-attn package, 16-bit weights) and never required; asked for where it cannot
    run, it is a clear error rather than a crash inside transformers."""
    import importlib.util

    gpu, installed = has_cuda(), importlib.util.find_spec("flash_attn") is not None
    usable = gpu and installed and bf16
    if requested == "auto":  # None: transformers' own choice (sdpa where the model supports it)
        return "flash_attention_2" if usable else None
    if requested == "flash_attention_2" and not usable:
        why = ("no CUDA GPU" if not gpu else "the flash-attn package is not installed (pip install flash-attn)"
               if not installed else "it needs bf16 weights (train.bf16)")
        raise SftflowError(f"model.attention flash_attention_2: {why}; use auto or sdpa")
    return requested


def load_model(path: str, chat: ChatTemplate, *, method: str = "lora", bf16: bool = False, revision: str | None = None,
               trust_remote_code: bool = False, attention: str = "auto"):
    """The base model, quantised for qlora, with embeddings sized to the tokenizer and pad/eos ids synced."""
    import torch
    from transformers import AutoModelForCausalLM

    # safetensors only: a pickled .bin checkpoint can run code when loaded
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code, "use_safetensors": True}
    kwargs["dtype"] = torch.bfloat16 if bf16 else torch.float32
    if (kernel := attention_kernel(attention, bf16)) is not None:
        kwargs["attn_implementation"] = kernel
    if method == "qlora":
        kwargs["quantization_config"] = quantization_config(bf16)
        kwargs["device_map"] = {"": 0} if has_cuda() else {"": "cpu"}
    with phase(f"loading model {path}" + (" in 4-bit" if method == "qlora" else "")):
        model = _from_pretrained(AutoModelForCausalLM, path, **kwargs)
    if method == "qlora" and not has_cuda():
        _check_cpu_4bit_widths(model)
    if len(chat.tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(chat.tokenizer))
    sync_special_tokens(model, chat)
    return model


def weight_bytes(model, unquantised_dtype_bytes: int) -> tuple[int, int]:
    """(bytes the loaded weights take, bytes they would take unquantised): the measured 4-bit saving."""
    actual = model.get_memory_footprint()
    plain = 0
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        plain += (qs.shape.numel() * unquantised_dtype_bytes) if qs is not None else p.numel() * p.element_size()
    for b in model.buffers():
        plain += b.numel() * b.element_size()
    return actual, plain


def _check_cpu_4bit_widths(model, block: int = 64) -> None:
    """bitsandbytes' CPU 4-bit matmul fails inside training on widths not divisible by its
    quantisation block; say so before any work is done (the GPU kernels fall back instead)."""
    for name, module in model.named_modules():
        width = getattr(module, "in_features", None)
        if type(module).__name__ == "Linear4bit" and width % block:
            raise SftflowError(
                f"train.method qlora on CPU: layer {name} is {width} wide, not a multiple of {block}, which "
                "bitsandbytes' CPU 4-bit kernels need; use method lora here, or a GPU"
            )


def sync_special_tokens(model, chat: ChatTemplate) -> None:
    """Generation must stop where training taught the model to (the template's end-of-turn token,
    and the tokenizer's eos) and pad with the tokenizer's pad."""
    tokenizer = chat.tokenizer
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    eos = gen.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    stops = chat.stop_token_ids if tokenizer.chat_template else [tokenizer.eos_token_id]
    eos_ids = stops + [i for i in eos_ids if i not in stops]
    gen.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id


def _check_adapter_file(model_dir: Path) -> None:
    """Without adapter_model.safetensors, PEFT falls back to adapter_model.bin through torch.load:
    a pickle, which can run code. sftflow loads adapters from safetensors only, like models."""
    if (model_dir / "adapter_model.safetensors").exists():
        return
    pickled = sorted(p for p in model_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt"))
    if pickled:
        raise SftflowError(
            f"{pickled[0]}: a pickled adapter (loading it can run code); sftflow loads adapters from safetensors "
            "only. Where you trust the file, convert it: PeftModel.from_pretrained(base_model, "
            f"'{model_dir}').save_pretrained('{model_dir}', safe_serialization=True)"
        )
    raise SftflowError(f"{model_dir}: adapter_config.json but no adapter_model.safetensors; re-run `sftflow train`")


def load_tuned(run_dir: Path, base_path: str, *, method: str, bf16: bool = False, trust_remote_code: bool = False):
    """The fine-tuned model of a run (base + adapter, or the full model saved by train) and its ChatTemplate."""
    model_dir = run_dir / "model"
    if not model_dir.exists():
        raise SftflowError(f"{model_dir}: no trained model; run `sftflow train` first")
    chat = load_chat(str(model_dir), padding_side="left", trust_remote_code=trust_remote_code)
    with phase(f"loading the tuned model {model_dir}"):
        if (model_dir / "adapter_config.json").exists():
            from peft import PeftModel

            _check_adapter_file(model_dir)
            base = load_model(base_path, chat, method=method, bf16=bf16, trust_remote_code=trust_remote_code)
            model = PeftModel.from_pretrained(base, str(model_dir))
            if method == "lora":
                model = model.merge_and_unload()  # same outputs, faster generation (not for a 4-bit base)
        else:
            model = load_model(str(model_dir), chat, method="full", bf16=bf16, trust_remote_code=trust_remote_code)
    model.eval()
    return model, chat
