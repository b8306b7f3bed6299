"""Export a trained run as a standalone model folder.

    sftflow export sftflow.yaml --merge --out merged/

With --merge the LoRA adapter is folded into the base weights (`merge_and_unload`), so the
result loads with plain `AutoModelForCausalLM.from_pretrained` — no PEFT needed — and
carries the exact training tokenizer and chat template.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sftflow.errors import SftflowError


def export_model(run_dir: Path, base_path: str, out_dir: Path, *, merge: bool, method: str,
                 trust_remote_code: bool = False) -> Path:
    model_dir = run_dir / "model"
    if not model_dir.exists():
        raise SftflowError(f"{model_dir}: no trained model; run `sftflow train` first")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SftflowError(f"{out_dir}: not empty; choose another --out folder")
    is_adapter = (model_dir / "adapter_config.json").exists()
    if not merge or not is_adapter:
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)
        return out_dir
    if method == "qlora":
        raise SftflowError(
            "cannot merge into a 4-bit base exactly; export the adapter (without --merge) or retrain with method lora"
        )
    from sftflow.model.load import load_tuned

    model, tok = load_tuned(run_dir, base_path, method="lora", trust_remote_code=trust_remote_code)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.padding_side = "right"
    tok.save_pretrained(str(out_dir))
    return out_dir
