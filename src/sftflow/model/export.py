"""Export a trained run: one registry of exporters that `sftflow export --format NAME` reads.

    sftflow export sftflow.yaml --format merged --out merged/
    sftflow export sftflow.yaml --format vllm --out served/ && vllm serve served/

Each `Exporter` carries its facts: its name, what it writes (shown by `--help` and in errors), the
options it takes, the extra it needs, and the function that writes it. Adding an export format is
one entry in `EXPORTERS` and its test.

A merged folder has the LoRA adapter folded into the base weights (`merge_and_unload`), so it loads
with plain `AutoModelForCausalLM.from_pretrained` — no PEFT needed — and carries the exact training
tokenizer, chat template and generation config (the stop tokens training taught).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sftflow.errors import SftflowError


@dataclass(frozen=True)
class ExportOptions:
    merge: bool = False  # hf: fold the adapter in (the same as --format merged)
    quantize: str = "f16"  # gguf: weight type
    verify: int = 5  # gguf: test prompts answered by both the HF model and llama.cpp


@dataclass(frozen=True)
class Exporter:
    name: str
    writes: str  # what the folder holds, in a few words
    run: Callable  # (cfg, out_dir, ExportOptions, log) -> the line that says what was written
    options: tuple[str, ...] = ()  # the ExportOptions fields it reads beside the folder
    require: Callable[[], None] | None = None  # fails with the pip command when its extra is missing


def _check_out(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SftflowError(f"{out_dir}: not empty; choose another --out folder")


def export_model(run_dir: Path, base_path: str, out_dir: Path, *, merge: bool, method: str,
                 trust_remote_code: bool = False) -> Path:
    """The run's model folder as it is (an adapter, or a full fine-tune), or merged into its base."""
    model_dir = run_dir / "model"
    if not model_dir.exists():
        raise SftflowError(f"{model_dir}: no trained model; run `sftflow train` first")
    _check_out(out_dir)
    is_adapter = (model_dir / "adapter_config.json").exists()
    if not merge or not is_adapter:
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)
        return out_dir
    if method == "qlora":
        raise SftflowError(
            "cannot merge into a 4-bit base exactly; export the adapter (--format hf) or retrain with method lora"
        )
    from sftflow.model.load import load_tuned

    model, chat = load_tuned(run_dir, base_path, method="lora", trust_remote_code=trust_remote_code)
    tok = chat.tokenizer
    model.save_pretrained(str(out_dir), safe_serialization=True)  # with generation_config.json (its stop tokens)
    model.generation_config.save_pretrained(str(out_dir))  # also for a model class that does not save it itself
    tok.padding_side = "right"
    tok.save_pretrained(str(out_dir))
    return out_dir


def _hf(cfg, out_dir: Path, options: ExportOptions, log) -> str:
    path = export_model(cfg.run_dir, cfg.model_path(), out_dir, merge=options.merge, method=cfg.train.method,
                        trust_remote_code=cfg.model.trust_remote_code)
    return f"exported {'merged model' if options.merge else 'model'}: {path}"


def _merged(cfg, out_dir: Path, options: ExportOptions, log) -> str:
    path = export_model(cfg.run_dir, cfg.model_path(), out_dir, merge=True, method=cfg.train.method,
                        trust_remote_code=cfg.model.trust_remote_code)
    return f"exported merged model: {path} (loads with AutoModelForCausalLM.from_pretrained, no PEFT)"


VLLM_README = """# {name}: a merged model for vLLM

Exported by `sftflow export --format vllm` from the run `{run}`: the LoRA adapter merged into
`{base}`, with the training tokenizer, chat template and generation config (the stop tokens
the model was trained to end its answers with; vLLM reads generation_config.json by default).

Serve it with an OpenAI-compatible API:

    vllm serve {out} --served-model-name {name}

then ask it like any OpenAI endpoint (base_url http://localhost:8000/v1, model "{name}").
{system}"""


def _vllm(cfg, out_dir: Path, options: ExportOptions, log) -> str:
    """A merged folder plus the README that says how vLLM serves it (and with which system prompt)."""
    from sftflow.model.system_prompt import training_system_prompt

    path = export_model(cfg.run_dir, cfg.model_path(), out_dir, merge=True, method=cfg.train.method,
                        trust_remote_code=cfg.model.trust_remote_code)
    system = training_system_prompt(cfg.run_dir)
    note = (f"\nThe model was trained with this system prompt in every conversation; send it as the first "
            f"message (vLLM does not add it):\n\n    {system}\n" if system else "")
    (path / "README.md").write_text(VLLM_README.format(name=cfg.name, run=cfg.run_dir, base=cfg.model.name_or_path,
                                                       out=path.resolve(), system=note), encoding="utf-8")
    return f"exported for vLLM: {path}; serve it with `vllm serve {path} --served-model-name {cfg.name}`"


def _gguf(cfg, out_dir: Path, options: ExportOptions, log) -> str:
    from sftflow.model.gguf import export_gguf

    result = export_gguf(cfg, out_dir, quantize_to=options.quantize, n_verify=options.verify, log=log)
    if result.get("prompts"):
        log(f"llama.cpp gave the Hugging Face model's greedy answer on {result['identical']} of "
            f"{result['prompts']} test prompts and its tokenizer the same prompt tokens on "
            f"{result['tokenizer_identical']} (each answer: {out_dir / 'verify.json'})")
    return f"exported GGUF: {out_dir / 'model.gguf'}; Ollama: cd {out_dir} && ollama create NAME -f Modelfile"


def _gguf_extra() -> None:
    from sftflow.model.gguf import require_extra

    require_extra()


EXPORTERS = (
    Exporter("hf", "the run's model folder as trained (a LoRA adapter, or the full model; --merge folds "
             "the adapter in)", _hf, options=("merge",)),
    Exporter("merged", "a standalone Hugging Face model: the adapter merged into the base, with tokenizer "
             "and generation config", _merged),
    Exporter("vllm", "a merged model folder and a README with its `vllm serve` command", _vllm),
    Exporter("gguf", "one GGUF file (llama.cpp, Ollama, LM Studio) and an Ollama Modelfile; needs "
             "pip install 'sftflow[gguf]'", _gguf, options=("quantize", "verify"), require=_gguf_extra),
)


def find_exporter(name: str) -> Exporter:
    for e in EXPORTERS:
        if e.name == name.lower():
            return e
    raise SftflowError(f"--format {name}: choose one of {', '.join(e.name for e in EXPORTERS)}")


def check_options(exporter: Exporter, options: ExportOptions) -> None:
    """An option given to a format that does not read it is a mistake, said before any work."""
    defaults = ExportOptions()
    for field in ("merge", "quantize"):
        if getattr(options, field) != getattr(defaults, field) and field not in exporter.options:
            takers = [e.name for e in EXPORTERS if field in e.options]
            raise SftflowError(f"--{field} applies to --format {' or '.join(takers)} only")
