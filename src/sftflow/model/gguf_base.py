"""A `.gguf` file as the base model: converted once into a plain Hugging Face folder in sftflow's cache.

    model: {name_or_path: models/SmolLM2-135M-Instruct.Q4_1.gguf}     # in sftflow.yaml
    python -c "from sftflow.model.gguf_base import gguf_folder; print(gguf_folder('x.Q4_1.gguf'))"

transformers reads GGUF (`from_pretrained(folder, gguf_file=name)`) and dequantizes the weights, but
the model it returns keeps a GGUF quantizer attached: `save_pretrained` refuses it ("quantized with
gguf and is not serializable") and so does `Trainer`. So the conversion builds the same architecture
again from the config without its `quantization_config`, loads the dequantized weights into it strictly
and checks that both give the same logits; then it saves fp32 safetensors, the tokenizer with the
file's chat template, a generation_config whose eos is the end-of-turn token, and `sftflow_gguf.json`
(source, sha256, quantization, "dequantized to fp32", versions). Every command then reads that folder
like any local model. Architectures are those transformers' GGUF loader reads (llama, mistral, qwen2,
qwen3, gemma3, phi3, ...), nothing here is specific to one model.

The folder is `$SFTFLOW_CACHE/gguf-<file stem>-<sha256[:16]>`: keyed by the file's content, built in a
temporary folder and renamed into place, so a killed conversion never leaves a half folder behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sftflow.errors import SftflowError
from sftflow.io import cache_root
from sftflow.progress import note, phase

PROVENANCE = "sftflow_gguf.json"  # written last: naming the file's sha256, it marks a complete folder
CONVERTER_VERSION = 1  # bump when the folder's contents change: every cached conversion is redone
DEQUANTIZED = "dequantized to fp32"
SAME_LOGITS = 1e-4  # the rebuilt model must match transformers' own GGUF load this closely
INSTALL = "reading a .gguf model needs the gguf package: pip install gguf"


@dataclass(frozen=True)
class GgufHeader:
    """What the file says about itself, read without loading a tensor."""

    architecture: str
    name: str
    quantization: str  # the file type llama.cpp wrote, e.g. Q4_1 (the type of most tensors)
    tensor_types: dict[str, int]  # tensors per type, e.g. {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    end_of_turn: int | None  # tokenizer.ggml.eot_token_id, where the file names one


def read_header(path: Path) -> GgufHeader:
    """The file's architecture and quantization, or one line saying it is not a GGUF file."""
    try:
        from gguf import GGUFReader, LlamaFileType
    except ImportError as err:
        raise SftflowError(INSTALL) from err
    try:
        reader = GGUFReader(path)
        fields = {k: f.contents() for k, f in reader.fields.items()
                  if k.startswith("general.") or k == "tokenizer.ggml.eot_token_id"}
        types = Counter(t.tensor_type.name for t in reader.tensors)
    except Exception as err:  # noqa: BLE001 - gguf raises ValueError, struct.error, IndexError... on a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SftflowError(f"{path}: not a readable GGUF file ({first}); download it again or point "
                           "model.name_or_path at another file") from err
    if "general.architecture" not in fields or not types:
        raise SftflowError(f"{path}: a GGUF file without an architecture or tensors; download it again")
    try:
        quantization = LlamaFileType(fields["general.file_type"]).name.removeprefix("MOSTLY_")
    except (KeyError, ValueError):  # not written by every tool: name the commonest tensor type
        quantization = types.most_common(1)[0][0]
    eot = fields.get("tokenizer.ggml.eot_token_id")
    return GgufHeader(architecture=str(fields["general.architecture"]), name=str(fields.get("general.name", "")),
                      quantization=quantization, tensor_types=dict(types.most_common()),
                      end_of_turn=int(eot) if eot is not None else None)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Keyed by size and mtime as well: an edited file is hashed again, an unchanged one once per process."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _is_complete(folder: Path, sha: str) -> bool:
    info = source_of(folder)
    return bool(info) and info.get("sha256") == sha and info.get("converter_version") == CONVERTER_VERSION and all(
        (folder / f).is_file() for f in info.get("files", []))


def source_of(folder: str | Path) -> dict | None:
    """The provenance of a folder this module converted (what the run card records), else None."""
    try:
        info = json.loads((Path(folder) / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def base_source(folder: str | Path) -> dict | None:
    """For the run card: where a converted folder came from, or None for any other model."""
    info = source_of(folder)
    if not info:
        return None
    return {"from": f"{Path(info['source']).name} ({info['quantization']}, {info['dequantized']})",
            **{k: info[k] for k in ("source", "sha256", "quantization", "tensor_types", "dequantized")}}


UNQUANTIZED = {"F32", "F16", "BF16", "ALL_F32"}


def requantization_warning(folder: str | Path) -> str | None:
    """QLoRA quantizes the base to NF4 again. A base converted from an already quantized GGUF then
    carries two rounding errors: measured on SmolLM2-135M-Instruct (Q4_1), validation loss before
    training 1.81 in NF4 against 1.19 in fp32, and after the same 14 steps 0.53 against LoRA's 0.04."""
    info = source_of(folder)
    if not info or str(info.get("quantization", "")).upper() in UNQUANTIZED:
        return None
    return (f"train.method qlora on {Path(info['source']).name}: its weights were already quantized "
            f"({info['quantization']}); NF4 rounds them again (measured on SmolLM2-135M-Instruct Q4_1: validation "
            "loss 1.81 before training vs 1.19 in fp32, 0.53 vs LoRA's 0.04 after 14 steps); use method lora")


def gguf_folder(path: str | Path) -> Path:
    """The Hugging Face folder converted from the `.gguf` file at `path`: from the cache, or converted
    now (once; a line says so)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SftflowError(f"model.name_or_path {str(path)!r}: no such .gguf file (a path is read relative to "
                           "the config file)")
    sha = file_sha256(path)
    entry = cache_root() / f"gguf-{path.stem.lower()}-{sha[:16]}"
    if _is_complete(entry, sha):
        return entry
    header = read_header(path)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        with phase(f"model: converting {path.name} ({header.quantization}) into a Hugging Face folder"):
            start = time.perf_counter()
            facts = _convert(path, tmp, header)
            seconds = time.perf_counter() - start
        _write_provenance(tmp, path, sha, header, facts, seconds)
        tmp.chmod(0o755)  # mkdtemp's 0700 would keep a shared cache from other users
        if not _is_complete(entry, sha):  # else another process finished first: theirs is as good
            if entry.exists():  # a broken leftover
                shutil.rmtree(entry)
            try:
                os.rename(tmp, entry)  # atomic: nobody sees a half-written folder
            except OSError:
                if not _is_complete(entry, sha):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    note(f"model: converted {path.name} ({header.quantization}, {DEQUANTIZED}) into {entry} in {seconds:.0f}s")
    return entry


def _convert(src: Path, dest: Path, header: GgufHeader) -> dict:
    """Write the plain Hugging Face folder for `src` into `dest` (an empty folder); returns facts for
    the provenance file."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    where, name = str(src.parent), src.name
    try:
        config = AutoConfig.from_pretrained(where, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError) as err:
        if header.architecture not in GGUF_SUPPORTED_ARCHITECTURES:  # "... architecture X is not supported yet."
            raise SftflowError(
                f"{src}: transformers {transformers.__version__} cannot read {header.architecture!r} models from "
                f"GGUF (it reads {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}); use the model's Hugging Face "
                "folder instead") from err
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SftflowError(f"{src}: transformers {transformers.__version__} cannot load it ({first}); use the "
                           "model's Hugging Face folder instead") from err
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.tie_weights()
    diff = _logit_difference(quantized, model, tokenizer)
    del quantized
    if diff > SAME_LOGITS:
        raise SftflowError(f"{src}: the converted model does not match transformers' own GGUF load (logits differ "
                           f"by {diff:.2g}); this architecture cannot be converted yet, use its Hugging Face folder")

    end_of_turn = list(dict.fromkeys(i for i in (header.end_of_turn, tokenizer.eos_token_id) if i is not None))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=end_of_turn[0] if len(end_of_turn) == 1 else end_of_turn)
    if tokenizer.model_max_length > 10**8 and getattr(config, "max_position_embeddings", None):
        tokenizer.model_max_length = config.max_position_embeddings  # GGUF has no model_max_length
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return {"parameters": sum(p.numel() for p in model.parameters()), "logits_max_difference": diff}


def _write_provenance(dest: Path, src: Path, sha: str, header: GgufHeader, facts: dict, seconds: float) -> None:
    import torch
    import transformers

    info = {
        "source": str(src.resolve()),
        "sha256": sha,
        "architecture": header.architecture,
        "name": header.name,
        "quantization": header.quantization,
        "tensor_types": header.tensor_types,
        "dequantized": DEQUANTIZED,
        **facts,
        "seconds": round(seconds, 1),
        "converter_version": CONVERTER_VERSION,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "files": sorted(p.name for p in dest.iterdir()),
    }
    (dest / PROVENANCE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _logit_difference(a, b, tokenizer) -> float:
    """Largest absolute logit difference between two models on a short text."""
    import torch

    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        return float((a(ids).logits - b(ids).logits).abs().max())
