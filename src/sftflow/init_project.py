"""`sftflow init DIR --model ID --data FILE ...`: a project for your data and your model.

    sftflow init my-project --model Qwen/Qwen2.5-0.5B-Instruct --data questions.csv
    sftflow prepare my-project/sftflow.yaml && sftflow run my-project/sftflow.yaml

Each file is read as `prepare` will read it (data/read/, formats.py, the model's tokenizer and
chat template through data/rows.py), and the config written suits that data and that model:
- each file's format, and a `mapping` when its columns name no format (question,answer → prompt,
  completion: formats.guess_mapping, the same guess a reject reason offers);
- LoRA at 5e-4 below a billion parameters (measured on SmolLM2-135M, real_project.py: 2 epochs at
  5e-4 gained 0.94 exact match, 1 epoch at 2e-4 0.19), else the LoRA default 2e-4;
- `train.max_length`: the longest example as the model's template renders it, plus a fifth, rounded
  up to 64 tokens (prepare rejects longer ones and says so); `eval.max_new_tokens`: the longest
  answer plus a quarter, rounded up to 16;
- `eval.metrics`: what eval would infer from these answers (eval/metrics.infer_metrics): the JSON
  metrics only when the answers are JSON;
- below 500 examples, an effective batch of 8 and a fifth of them held out for the test metrics;
- no general data mixed in unless asked (`mix_general`: real_project.py's general conversations).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sftflow.config.commented import commented_yaml
from sftflow.config.data import MixConfig
from sftflow.config.train import LORA_DEFAULT_LR
from sftflow.errors import SftflowError
from sftflow.io import atomic_write_text

SAMPLE_ROWS = 10_000  # rows read per file to detect its format and measure lengths
SMALL_MODEL = 1_000_000_000  # parameters below which LoRA gets SMALL_MODEL_LR
SMALL_MODEL_LR = 5e-4
LENGTH_MARGIN = 1.2  # train.max_length = longest example x this, rounded up to LENGTH_STEP
LENGTH_STEP = 64
ANSWER_MARGIN = 1.25  # eval.max_new_tokens = longest answer x this, rounded up to ANSWER_STEP
ANSWER_STEP = 16
# Below this many rows: an effective batch of 8 (more updates per epoch) instead of 16, and a fifth of the
# rows held out for the test metrics instead of a tenth (real_project.py holds out a quarter of 400).
SMALL_DATA = 500
SMALL_DATA_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}
GENERAL_FILE = "general_chat.jsonl"


@dataclass
class FileRead:
    """What one data file holds, read as prepare reads it."""

    path: Path
    shown: str  # the path as written in the config: relative to the project folder where it can be
    rows: int = 0
    formats: Counter = field(default_factory=Counter)
    mapping: dict[str, str] = field(default_factory=dict)
    rejects: Counter = field(default_factory=Counter)
    records: list[dict] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    def describe(self) -> str:
        kind = self.path.suffix.lstrip(".").upper() or "folder"
        fmts = ", ".join(f"{name} ({n})" if len(self.formats) > 1 else name for name, n in self.formats.most_common())
        how = f" with mapping {{{', '.join(f'{k}: {v}' for k, v in self.mapping.items())}}}" if self.mapping else ""
        bad = f"; {sum(self.rejects.values())} rows unreadable (first: {self.rejects.most_common(1)[0][0]})" \
            if self.rejects else ""
        return f"init: {self.shown}: {self.rows} rows of {kind} → {fmts}{how}{bad}"


def _relative(path: Path, directory: Path) -> str:
    """A path as the config in `directory` should name it (configs resolve paths against their folder)."""
    path = path.resolve()
    try:
        return os.path.relpath(path, directory.resolve())
    except ValueError:  # another drive (Windows)
        return str(path)


def read_file(path: Path, directory: Path, processor) -> FileRead:
    """One file's rows converted and measured; when no row names a format, read again with the guessed mapping."""
    from sftflow.data.read import read_rows
    from sftflow.data.signals.rows import SourceSpec
    from sftflow.formats.mapping import guess_mapping

    if not path.is_file():
        raise SftflowError(f"--data {path}: no such file")
    raws = list(islice(read_rows(path), SAMPLE_ROWS))
    found = FileRead(path, _relative(path, directory), rows=len(raws))
    chunk = processor.process(raws, SourceSpec(found.shown))
    if not any(r.reject is None for r in chunk.rows):
        first = next((r.row for r in raws if isinstance(r.row, dict)), None)
        mapping = guess_mapping(first) if first is not None else None
        if mapping:
            found.mapping = mapping
            chunk = processor.process(raws, SourceSpec(found.shown, mapping=mapping))
    for r in chunk.rows:
        if r.reject is not None:
            where, reason = r.reject
            found.rejects[f"{where}: {reason}" if where else reason] += 1
        else:
            found.formats[r.format] += 1
            found.records.append(r.record)
            found.tokens.append(r.tokens)
    if not found.records:
        reason = found.rejects.most_common(1)[0][0] if found.rejects else "the file has no rows"
        raise SftflowError(f"{found.shown}: no row reads as a training example ({reason})")
    return found


def learning_rate(model_path: str) -> tuple[float, str]:
    """LoRA's learning rate for this model, and why."""
    from transformers import AutoConfig

    from sftflow.train.estimate import estimate_memory

    try:
        params = estimate_memory(AutoConfig.from_pretrained(model_path), method="lora").total_parameters
    except Exception as err:  # noqa: BLE001 - an architecture transformers cannot build on the meta device
        return LORA_DEFAULT_LR, f"parameter count unknown ({type(err).__name__}; the LoRA default rate)"
    size = f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"
    if params < SMALL_MODEL:
        return SMALL_MODEL_LR, f"{size} parameters (under {SMALL_MODEL / 1e9:g}B: a higher rate)"
    return LORA_DEFAULT_LR, f"{size} parameters (the LoRA default rate)"


def _round_up(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


def _project_name(directory: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", directory.resolve().name).strip("-._")
    return name or "run"


def _model_value(model: str, directory: Path) -> str:
    """model.name_or_path as the config must say it: a local folder or .gguf relative to the project."""
    local = Path(model).expanduser()
    return _relative(local, directory) if local.exists() else model


@dataclass
class DataProject:
    config_path: Path
    example: tuple  # (header, rich Text) of the first example as it will be trained


def write_data_project(directory: str | Path, model: str, data: list[Path], *, mix_general: bool = False,
                       force: bool = False, log=print) -> DataProject:
    """A project for the user's files and model; each step says what it found."""
    from sftflow.data.signals.rows import RowProcessor, RowSettings
    from sftflow.model.resolve import require_model, resolve_model

    directory = Path(directory)
    config_path = directory / "sftflow.yaml"
    if config_path.exists() and not force:
        raise SftflowError(f"{config_path} already exists; pass --force to overwrite it")
    model_path = resolve_model(model, Path(model).expanduser())  # a .gguf or offline short name: converted once
    require_model(model_path)  # not here and no hub: one line naming the download command, before any work
    processor = RowProcessor(RowSettings(model_path=model_path))  # prepare's own row code, the model's template
    files = [read_file(Path(p), directory, processor) for p in data]
    for f in files:
        log(f.describe())
    mix, general = _general_mix(directory, processor, log) if mix_general else (None, None)
    lengths = [n for f in (*files, *([general] if general else [])) for n in f.tokens]
    max_length = _round_up(max(lengths) * LENGTH_MARGIN, LENGTH_STEP)

    rows = sum(len(f.records) for f in files)
    small = rows < SMALL_DATA
    batch = {"batch_size": 4, "grad_accum": 2 if small else 4}
    split = SMALL_DATA_SPLIT if small else None
    lr, lr_why = learning_rate(model_path)
    log(f"init: model {model}: {lr_why} → LoRA r16, learning rate {lr:g}, effective batch "
        f"{batch['batch_size'] * batch['grad_accum']} ({rows} examples"
        + (f"; split {'/'.join(f'{v:.0%}' for v in split.values())} for more test examples)" if small else ")"))
    metrics, why, longest_answer = _answers(files, processor.tokenizer)
    max_new = _round_up(longest_answer * ANSWER_MARGIN, ANSWER_STEP)
    log(f"init: token lengths with the model's chat template: longest {max(lengths)}, median "
        f"{sorted(lengths)[len(lengths) // 2]} → train.max_length {max_length}; longest answer {longest_answer} → "
        f"eval.max_new_tokens {max_new}")
    log(f"init: {why} → eval.metrics: {', '.join(metrics)}")

    sources = [{"path": f.shown, "format": f.formats.most_common(1)[0][0] if len(f.formats) == 1 else "auto",
                **({"mapping": f.mapping} if f.mapping else {})} for f in files]
    config = {
        "name": _project_name(directory),
        "data": {"sources": sources, "output_dir": "data", **({"split": split} if split else {}),
                 **({"mix": mix} if mix else {})},
        "model": {"name_or_path": _model_value(model, directory)},
        "train": {"method": "lora", "learning_rate": lr, "epochs": 3, **batch, "max_length": max_length,
                  "early_stopping_patience": 1},
        "eval": {"max_new_tokens": max_new, "metrics": metrics},
        "output_dir": "runs",
    }
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, commented_yaml(config))
    return DataProject(config_path, _first_example(processor.chat, files[0].records[0]))


def _general_mix(directory: Path, processor, log) -> tuple[dict, FileRead]:
    """General conversations written into the project and its data.mix entry (--mix-general)."""
    from sftflow.io import write_jsonl
    from sftflow.real_project import general_conversations

    (directory / "raw").mkdir(parents=True, exist_ok=True)
    write_jsonl(directory / "raw" / GENERAL_FILE, general_conversations())
    general = read_file(directory / "raw" / GENERAL_FILE, directory, processor)
    mix = {"path": general.shown, "ratio": MixConfig.model_fields["ratio"].default}
    log(f"init: {general.shown}: {len(general.records)} general conversations mixed into training "
        f"(data.mix, {mix['ratio']:.0%} of train) against forgetting")
    return mix, general


def _answers(files: list[FileRead], tok) -> tuple[list[str], str, int]:
    """The metrics eval would infer from these answers, why, and the longest answer in tokens (with its end)."""
    from sftflow.eval.metrics import infer_metrics
    from sftflow.example import Example
    from sftflow.model.reasoning import answer_only

    examples = [Example.of(r) for f in files for r in f.records]
    answers = [answer_only(e.answer_text) for e in examples if not e.is_text]
    calls = sum(1 for e in examples if e.answer is not None and e.answer.tool_calls)
    metrics, why = infer_metrics(answers, calls=calls)
    longest = max((len(tok(a, add_special_tokens=False)["input_ids"]) + 1 for a in answers), default=ANSWER_STEP)
    return metrics, why, longest


def _first_example(chat, record: dict) -> tuple:
    """(header, highlighted text) of an example as training will see it: prepare --show's rendering.
    `chat`: the model's ChatTemplate."""
    from sftflow.data.show import highlight
    from sftflow.model.chat import tokenize_record

    t = tokenize_record(chat, record)
    src = record["source"]
    header = (f"── the first example as it will be trained: {src['file']}:{src['line']} ({src['format']}), "
              f"{len(t.input_ids)} tokens, {sum(t.assistant_masks)} trained")
    return header, highlight(chat, record)
