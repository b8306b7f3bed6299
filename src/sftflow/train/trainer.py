"""The training stage: TRL `SFTTrainer` + PEFT, configured the way an expert would by hand.

    sftflow train sftflow.yaml

What sftflow changes from TRL's defaults, and why:
- examples are tokenized here with an answer-only mask built from the rendered template
  (`model/chat.py`), so loss falls on assistant tokens (and their eos) only, for any template;
- padding-free batches (`padding_free=True`, `max_length=None`; truncation happens here):
  no pad tokens computed and no attention across examples, and under SDPA that attention is
  computed per example rather than over the whole packed row (`packed_attention.py`);
- LoRA without dropout (`train.lora.dropout: 0`) and no gradient checkpointing unless asked
  (QLoRA always checkpoints), fp32 on CPU: together 1.5-3x the tokens/s of a plain TRL
  script on the same data and model (`bench/train_throughput.py`, figures in bench/README.md);
- validation loss is measured before training and `evals_per_epoch` times per epoch; early
  stopping on it, and the best checkpoint (not the last) is what gets saved;
- a run folder that describes itself: resolved config, versions, chat template, metrics.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import sftflow
from sftflow.config import Config, dump_config
from sftflow.data_folder import LEDGER, TRAIN, VAL
from sftflow.errors import SftflowError, SftflowWarning
from sftflow.io import atomic_write_text, read_jsonl, write_json
from sftflow.model.chat import tokenize_record
from sftflow.progress import phase
from sftflow.train.distributed import is_main_process, trainer_settings, world_size
from sftflow.train.trackers import finish_wandb, start_wandb, trainer_trackers


def tokenize_split(chat, records: list[dict], max_length: int, reasoning: bool | str = True) -> tuple[list[dict], dict]:
    """Rows tokenized with the answer-only mask (`chat`: the tokenizer's ChatTemplate) and what was cut."""
    rows, truncated, empty, lengths = [], 0, 0, []
    for r in records:
        t = tokenize_record(chat, r, max_length, reasoning)
        lengths.append(t.full_length)
        if not any(t.assistant_masks):
            empty += 1  # truncation cut every answer token: nothing to learn, counted and reported
            continue
        truncated += t.truncated
        rows.append({"input_ids": t.input_ids, "assistant_masks": t.assistant_masks, "id": r["id"]})
    return rows, {"examples": len(records), "used": len(rows), "truncated": truncated, "no_answer_left": empty,
                  "lengths": lengths}


class NonFiniteLoss(SftflowError):
    pass


def _callbacks(run_dir: Path, patience: int, tokens_per_step: float, trackers: list, log):
    from transformers import EarlyStoppingCallback

    from sftflow.train.metrics_log import MetricsLog

    callbacks = [MetricsLog(run_dir / "metrics.jsonl", tokens_per_step, log), *trackers]
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


def overfitting(history: list[dict]) -> dict | None:
    """Train loss still falling while validation loss rose for two evaluations in a row after its best."""
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    trains = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if len(evals) < 3:
        return None
    best = min(range(len(evals)), key=lambda i: evals[i][1])
    after = evals[best:]
    rising = len(after) >= 3 and all(b[1] > a[1] for a, b in zip(after, after[1:], strict=False))
    train_after = [loss for step, loss in trains if step >= evals[best][0]]
    train_falling = len(train_after) >= 2 and train_after[-1] < train_after[0]
    if rising and train_falling:
        return {"best_step": evals[best][0], "val_loss_best": evals[best][1], "val_loss_last": after[-1][1],
                "train_loss_at_best": train_after[0], "train_loss_last": train_after[-1]}
    return None


def save_loss_curve(history: list[dict], path: Path) -> Path | None:
    from sftflow.plots import loss_figure

    fig = loss_figure(history)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def peft_config(cfg: Config, new_token_ids: list[int], model=None):
    """LoRA on the configured layers. Chat tokens added to a base model without a template must be
    learned as inputs and as outputs (to stop): the embeddings and the head are then trained in full
    (PEFT's per-row trainable tokens break TRL's fused LM head on a tied head and leave an untied
    head's rows untrained). A pad is never added to them: it carries no loss."""
    from peft import LoraConfig

    lora = cfg.train.lora
    kwargs = {}
    if new_token_ids:
        kwargs["modules_to_save"] = embedding_module_names(model) if model is not None else ["embed_tokens", "lm_head"]
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


def embedding_module_names(model) -> list[str]:
    """The names of the input embedding and output head modules (`embed_tokens`, `lm_head`, ...)."""
    wanted = {id(model.get_input_embeddings()): None, id(model.get_output_embeddings()): None}
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if id(m) in wanted})


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


@dataclass
class Splits:
    """The tokenized train and val splits and what was measured on them."""

    train_rows: list[dict]
    val_rows: list[dict]
    train_tok: dict
    val_tok: dict
    systems: dict
    checks: list[str]

    @property
    def answer_tokens(self) -> int:
        return sum(sum(r["assistant_masks"]) for r in self.train_rows)

    @property
    def total_tokens(self) -> int:
        return sum(len(r["input_ids"]) for r in self.train_rows)


def build_trainer(cfg: Config, log=print, strict: bool = False):
    """The configured SFTTrainer and what was measured while building it (tests inspect its batches).

    The recipe: read the splits, load model and tokenizer, tokenize and check the data, trainer
    arguments, then TRL's SFTTrainer with our callbacks."""
    if not is_main_process():
        log = _silent
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    from sftflow.model.load import bf16_supported

    t = cfg.train
    train_records, val_records = _read_splits(cfg)
    set_seed(t.seed)
    bf16 = bf16_supported() if t.bf16 == "auto" else bool(t.bf16)
    model, chat, memory_note = _load_model(cfg, bf16, log)
    splits = _tokenize_splits(cfg, chat, train_records, val_records, strict, log)
    report_to, trackers = trainer_trackers(cfg, cfg.run_dir)
    args, plan = _trainer_arguments(cfg, model, bf16, len(splits.train_rows), report_to)
    # Padding-free rows are only isolated under SDPA/eager when the model sees position_ids
    # and no attention mask, and with the KV cache off (DESIGN.md).
    model.config.use_cache = False
    new_token_ids = chat.added_token_ids
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(splits.train_rows),
        eval_dataset=Dataset.from_list(splits.val_rows),
        processing_class=chat.tokenizer,
        peft_config=peft_config(cfg, new_token_ids, model) if t.method in ("lora", "qlora") else None,
        callbacks=_callbacks(cfg.run_dir, t.early_stopping_patience, splits.total_tokens / plan["steps_per_epoch"],
                             trackers, log),
    )
    trainer.remove_callback(PrinterCallback)  # raw dict prints; MetricsLog prints one short line instead
    info = _run_info(cfg, trainer, splits, plan, bf16, log)
    if t.method == "qlora":
        info["qlora_memory"] = memory_note
    return trainer, info


def _read_splits(cfg: Config) -> tuple[list[dict], list[dict]]:
    train_records = list(read_jsonl(cfg.data_dir / TRAIN))
    val_records = list(read_jsonl(cfg.data_dir / VAL))
    if not train_records:
        raise SftflowError(f"{cfg.data_dir / TRAIN}: no training examples; check `sftflow prepare` output")
    if not val_records:
        raise SftflowError(
            f"{cfg.data_dir / VAL}: empty validation split; early stopping needs one (raise data.split.val)"
        )
    return train_records, val_records


def _load_model(cfg: Config, bf16: bool, log):
    """Model and ChatTemplate (its tokenizer: right padding, sftflow's chat template where the model has
    none), made ready for the method: packed attention for padding-free rows, the QLoRA preparation."""
    from sftflow.model.load import load_chat, load_model

    t = cfg.train
    model_path = cfg.model_path()
    template = str(cfg.path(cfg.model.chat_template)) if cfg.model.chat_template else None
    chat = load_chat(model_path, chat_template=template, revision=cfg.model.revision,
                     trust_remote_code=cfg.model.trust_remote_code, padding_side="right",
                     template_date=cfg.model.template_date)
    tokenizer = chat.tokenizer
    model = load_model(model_path, chat, method=t.method, bf16=bf16, revision=cfg.model.revision,
                       trust_remote_code=cfg.model.trust_remote_code, attention=cfg.model.attention)
    new_token_ids = chat.added_token_ids
    if new_token_ids and t.method in ("lora", "qlora"):
        added = ", ".join(tokenizer.convert_ids_to_tokens(new_token_ids))
        tied = " (its tied head is untied)" if getattr(model.config, "tie_word_embeddings", False) else ""
        log(f"train: the base model has no chat template, so sftflow's adds {added}; LoRA also trains the input "
            f"embeddings and the output head in full{tied} so the model learns to read and end turns")
    if t.padding_free:
        # SDPA would attend across the whole packed row and mask most of it; attend per example instead
        # (same result, each example's length squared instead of the row's; packed_attention.py).
        from sftflow.train.packed_attention import use_packed_attention

        use_packed_attention(model)
    memory_note = None
    if t.method == "qlora":
        from peft import prepare_model_for_kbit_training

        from sftflow.model.gguf_base import requantization_warning
        from sftflow.model.load import weight_bytes

        if (twice := requantization_warning(cfg.model_path())) is not None:
            warnings.warn(twice, SftflowWarning, stacklevel=2)

        actual, plain = weight_bytes(model, 2 if bf16 else 4)
        log(f"train: qlora: base weights take {actual / 2**20:,.1f} MiB in 4-bit NF4 vs {plain / 2**20:,.1f} MiB "
            f"unquantised ({'bf16' if bf16 else 'fp32'}), measured: {plain / actual:.1f}x smaller")
        memory_note = {"weights_mib_4bit": actual / 2**20, "weights_mib_unquantised": plain / 2**20}
        # fp32 norms/embeddings, input grads on, gradient checkpointing: the QLoRA recipe
        # (TRL 1.x no longer does this itself).
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    return model, chat, memory_note


def _tokenize_splits(cfg: Config, chat, train_records: list[dict], val_records: list[dict], strict: bool,
                     log) -> Splits:
    """Tokenize with the answer-only mask, say what was cut or folded, and run the data guardrails
    (under --strict the settings warnings, already shown at config load, count as failures too)."""
    from sftflow.config import guardrail_warnings
    from sftflow.model.system_prompt import describe, system_prompts
    from sftflow.model.system_role import FOLD_NOTE
    from sftflow.train.guardrails import data_warnings, enforce, hardware_warnings

    t = cfg.train
    keep_reasoning = t.reasoning  # keep, drop, or template (refuse what the template would drop)
    with phase(f"train: tokenizing {len(train_records) + len(val_records):,} train and val examples"):
        train_rows, train_tok = tokenize_split(chat, train_records, t.max_length, keep_reasoning)
        val_rows, val_tok = tokenize_split(chat, val_records, t.max_length, keep_reasoning)
    if chat.refuses_system:
        log(f"train: {FOLD_NOTE}")
    systems = system_prompts(train_records, cfg.data.system_prompt)
    if describe(systems):
        log(f"train: {describe(systems)}")
    for name, s in (("train", train_tok), ("val", val_tok)):
        if s["truncated"] or s["no_answer_left"]:
            log(f"train: {name}: {s['truncated']} examples truncated to {t.max_length} tokens, "
                f"{s['no_answer_left']} skipped (no answer token left); raise train.max_length to keep them")
    lengths = train_tok.pop("lengths")
    val_tok.pop("lengths")
    checks = data_warnings(cfg, lengths, len(val_rows)) + hardware_warnings(cfg)
    enforce(([str(w) for w in guardrail_warnings(cfg)] if strict else []) + checks, strict, log)
    return Splits(train_rows, val_rows, train_tok, val_tok, systems, checks)


def _trainer_arguments(cfg: Config, model, bf16: bool, n_train: int, report_to: list[str]):
    """TRL's SFTConfig as sftflow sets it (module docstring), then the distributed settings, then
    the user's train.extra; and the batch plan it implies."""
    from trl import SFTConfig

    from sftflow.model.load import has_cuda

    t = cfg.train
    run_dir = cfg.run_dir
    world = world_size()
    effective_batch = t.batch_size * t.grad_accum * world  # the data is sharded across the processes
    steps_per_epoch = max(1, math.ceil(n_train / effective_batch))
    eval_steps = max(1, steps_per_epoch // t.evals_per_epoch)
    use_cpu = not has_cuda()
    settings = dict(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=max(t.batch_size, 8),
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type="cosine",
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        logging_steps=max(1, min(10, steps_per_epoch // 4)),
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        seed=t.seed,
        data_seed=t.seed,
        bf16=bf16,
        max_length=None,  # truncated above; padding-free batches need it unset
        padding_free=t.padding_free,
        gradient_checkpointing=t.gradient_checkpointing or t.method == "qlora",
        gradient_checkpointing_kwargs={"use_reentrant": False},
        report_to=report_to or "none",  # TensorBoard and MLflow come as callbacks (trackers.py)
        run_name=cfg.name,  # one name in every tracker (MLflow's run, W&B's run)
        logging_nan_inf_filter=False,  # a NaN must surface (and stop the run), not be averaged away
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    settings.update(trainer_settings(cfg, model, use_cpu))  # DDP / FSDP / DeepSpeed under torchrun
    settings.update(t.extra)  # the user's pass-through SFTConfig arguments win
    return SFTConfig(**settings), {"world": world, "effective_batch": effective_batch,
                                   "steps_per_epoch": steps_per_epoch, "use_cpu": use_cpu}


def _run_info(cfg: Config, trainer, splits: Splits, plan: dict, bf16: bool, log) -> dict:
    """What the run is, logged in one line and kept in train_summary.json."""
    from sftflow.model.gguf_base import base_source

    t = cfg.train
    trainable, total = count_parameters(trainer.model)
    world, effective_batch = plan["world"], plan["effective_batch"]
    answer_tokens, total_tokens = splits.answer_tokens, splits.total_tokens
    source = base_source(cfg.model_path())  # a base converted from a .gguf file: which, and how
    origin = f" (from {source['from']})" if source else ""
    log(f"train: {t.method} on {cfg.model_path()}{origin}: {trainable:,} of {total:,} parameters trainable "
        f"({100 * trainable / total:.2f}%), {len(splits.train_rows)} examples, {answer_tokens:,} answer tokens of "
        f"{total_tokens:,}, effective batch {effective_batch}"
        + (f" ({world} processes, {t.distributed.strategy})" if world > 1 else "") + f", lr {t.lr:g}")
    return {
        "method": t.method,
        "base_model": cfg.model_path(),
        "base_model_source": source,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "train_examples": len(splits.train_rows),
        "val_examples": len(splits.val_rows),
        "tokenization": {"train": splits.train_tok, "val": splits.val_tok},
        "answer_tokens": answer_tokens,
        "total_tokens": total_tokens,
        "effective_batch": effective_batch,
        "learning_rate": t.lr,
        "bf16": bf16,
        "device": "cpu" if plan["use_cpu"] else "cuda",
        "seed": t.seed,
        "guardrail_warnings": splits.checks,
        "system_prompt": splits.systems,  # serve, chat and eval add the default to conversations without one
    }


def data_fingerprint(data_dir: Path) -> str:
    """sha256 of the train and val files: which exact data a run learned from."""
    h = hashlib.sha256()
    for name in (TRAIN, VAL):
        with open(data_dir / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def record_run_in_ledger(cfg: Config) -> tuple[str, str]:
    """Append this run and the ids it trains on to the provenance ledger (one transaction)."""
    from sftflow.data.account.ledger import Ledger

    fingerprint = data_fingerprint(cfg.data_dir)
    run_id = f"{cfg.name}-{time.strftime('%Y%m%dT%H%M%S')}-{fingerprint[:6]}"
    ids = [r["id"] for r in read_jsonl(cfg.data_dir / TRAIN)]
    ledger_path = cfg.data_dir / LEDGER
    if ledger_path.exists():
        ledger = Ledger(ledger_path)
        try:
            ledger.record_run(run_id, cfg.name, fingerprint, ids, method=cfg.train.method,
                              model=cfg.model.name_or_path, config=cfg.model_dump(mode="json"))
        finally:
            ledger.close()
    return run_id, fingerprint


def _silent(message: str) -> None:
    pass


RUN_OUTPUTS = ("model", "checkpoints", "eval", "metrics.jsonl", "train_summary.json", "loss_curve.png", "config.yaml",
               "chat_template.jinja", "versions.json", "tensorboard", "mlruns", "wandb")


def train(cfg: Config, *, resume: bool = False, strict: bool = False, overwrite: bool = False, log=print) -> dict:
    """`sftflow train` under the run folder's lock: one run writes a folder at a time, a previous run
    is only replaced with overwrite, and a full disk stops with the last good checkpoint named."""
    from sftflow.data_folder import check_published
    from sftflow.lock import hold

    check_published(cfg.data_dir)
    if not is_main_process():  # rank 0 holds the lock and owns the folder for all ranks
        return _train(cfg, resume=resume, strict=strict, log=_silent)
    if resume and overwrite:
        raise SftflowError("give --resume (continue this run) or --overwrite (start it again), not both")
    with hold(cfg.run_dir, "train"):
        _claim_run_dir(cfg.run_dir, resume, overwrite, log)
        try:
            return _train(cfg, resume=resume, strict=strict, log=log)
        except Exception as err:
            if not disk_full(err):
                raise
            raise SftflowError(disk_full_message(cfg.run_dir)) from err


def disk_full_message(run_dir: Path) -> str:
    """One line for a full disk: which checkpoint was being saved, where, and the one to --resume from."""
    import shutil

    ckpts = _checkpoints(run_dir)
    cut = ckpts[-1] if ckpts and checkpoint_problem(ckpts[-1]) else None  # the save the disk cut short
    where = f"saving {cut.name} in {cut.parent}" if cut else f"writing {run_dir}"
    free = shutil.disk_usage(run_dir).free / 2**20
    good = pick_checkpoint(run_dir, log=_silent, move_aside=False)  # --resume says which it skips
    kept = f"the last good checkpoint is {good}" if good else "no checkpoint was complete"
    return (f"train: no space left on the device while {where} ({free:,.0f} MiB free there now); {kept}: free "
            "some space and continue with --resume")


# What an interrupted training writes before its first checkpoint; cleared when the folder is used again.
INTERRUPTED_OUTPUTS = ("checkpoints", "metrics.jsonl", "loss_curve.png")


def _claim_run_dir(run_dir: Path, resume: bool, overwrite: bool, log) -> None:
    """A folder with a previous run's model or a complete checkpoint is continued (--resume) or replaced
    (--overwrite), never trained into silently: its checkpoints would mix with the new ones. A run
    interrupted before its first checkpoint left nothing to continue: its folder is simply used again."""
    previous = (["model"] if (run_dir / "model").exists() else []) + (
        ["checkpoints"] if any(c.joinpath("trainer_state.json").is_file() for c in _checkpoints(run_dir)) else [])
    if previous and not (resume or overwrite):
        raise SftflowError(f"{run_dir} already holds a run ({' and '.join(previous)}); pass --resume to continue "
                           "it, --overwrite to replace it, or set another `name` in the config")
    if overwrite:
        if _remove(run_dir, RUN_OUTPUTS):
            log(f"train: --overwrite: removed the previous run's outputs from {run_dir}")
    elif not previous and _remove(run_dir, INTERRUPTED_OUTPUTS):
        log(f"train: {run_dir} holds a run interrupted before its first checkpoint; starting it again")


def _remove(run_dir: Path, names: tuple[str, ...]) -> bool:
    import shutil

    found = [run_dir / name for name in names if (run_dir / name).exists()]
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return bool(found)


def disk_full(err: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception chain; torch and safetensors re-wrap it in their own errors."""
    import errno

    seen = 0
    while err is not None and seen < 10:
        if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err)
        if "No space left on device" in text or "Disk quota exceeded" in text or "file write failed" in text:
            return True
        # torch's zip writer (torch.save) drops the errno of a failed write: it says "[enforce fail at
        # inline_container.cc:672] . unexpected pos 704 vs 598", caused by "basic_ios::clear: iostream error"
        # (what torch.save to /dev/full, where every write fails with ENOSPC, raises)
        if "inline_container.cc" in text and "unexpected pos" in text:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why a checkpoint folder must not be resumed from, or None when it is complete and intact.

    The Trainer writes trainer_state.json last, so its absence means a save was cut short. The
    weights (safetensors) must be as long as their header says; optimizer, scheduler and RNG
    states (torch zip archives) must pass their CRC check. Nothing is unpickled to find out.
    """
    import zipfile

    state = ckpt / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was cut short)"
    try:
        step = json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        return f"trainer_state.json unreadable ({type(err).__name__})"
    if not isinstance(step, int):
        return "trainer_state.json has no step"
    for f in sorted(ckpt.iterdir()):
        if f.suffix == ".safetensors":
            problem = _safetensors_problem(f)
        elif f.suffix in (".pt", ".pth", ".bin"):
            try:
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                problem = f"member {bad} fails its CRC check" if bad else None
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                problem = f"not a complete torch archive ({err})"
        else:
            continue
        if problem:
            return f"{f.name}: {problem}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "truncated"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return "truncated header"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return "corrupt header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + n + max(ends, default=0) != size:
        return f"{size} bytes, header says {8 + n + max(ends, default=0)} (truncated?)"
    return None


def _checkpoints(run_dir: Path) -> list[Path]:
    """The Trainer's checkpoint folders, oldest step first."""
    found = [p for p in (run_dir / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def pick_checkpoint(run_dir: Path, log=print, move_aside: bool = True) -> str | None:
    """The newest intact checkpoint. Broken ones (a kill or full disk mid-save) are named, moved aside
    to checkpoints/broken-checkpoint-N so the Trainer's own rotation never picks them, and skipped.
    Under torchrun only rank 0 moves them; the other ranks reach the same choice without moving."""
    for ckpt in reversed(_checkpoints(run_dir)):
        try:
            problem = checkpoint_problem(ckpt)
        except FileNotFoundError:  # moved aside by rank 0 meanwhile
            continue
        if problem is None:
            return str(ckpt)
        log(f"train: skipping {ckpt.name}: {problem}" + (f"; moved to broken-{ckpt.name}" if move_aside else ""))
        if move_aside:
            _move_aside(ckpt)
    return None


def _move_aside(ckpt: Path) -> None:
    """Rename a broken checkpoint to broken-checkpoint-N, replacing the broken copy of the same step an
    earlier failure left there: one step can fail to save again and again (a kill or a full disk each
    time), and its failed copies must neither block the rename nor pile up on a disk that may be full."""
    import shutil

    target = ckpt.with_name(f"broken-{ckpt.name}")
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    os.replace(ckpt, target)


def _metrics_until(path: Path, step: int) -> float | None:
    """Keep metrics.jsonl's rows up to the checkpoint resumed from (the steps after it are trained and
    logged again) and return the validation loss measured before training, for the summary. A line cut
    short by a kill is dropped rather than merged with the next one."""
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                rows.append(row)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return next((r["eval_loss"] for r in rows if r["step"] == 0 and "eval_loss" in r), None)


def _train(cfg: Config, *, resume: bool = False, strict: bool = False, log=print) -> dict:
    """The training recipe: build the trainer, record the run, measure the baseline (or resume),
    train, stop on a non-finite loss, save the best model and describe the run folder."""
    run_dir = cfg.run_dir
    main = is_main_process()  # under torchrun only rank 0 logs and writes the run folder and ledger
    if not main:
        log = _silent
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer, info = build_trainer(cfg, log, strict=strict)
    info["run_id"], info["data_fingerprint"] = record_run_in_ledger(cfg) if main else ("", "")
    # Before the first evaluate, or the trainer's W&B callback opens its own run in the cwd; if
    # training fails W&B's exit hook closes it.
    tracker = start_wandb(cfg, run_dir, info) if main and "wandb" in cfg.train.report_to else None

    start = time.time()
    resume_from, initial_eval = _start_point(trainer, run_dir, resume, info, main, log)
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    finally:
        finish_wandb(tracker, log)
    seconds = time.time() - start

    if main:
        save_loss_curve(trainer.state.log_history, run_dir / "loss_curve.png")
    _stop_on_bad_loss(trainer, run_dir)
    model_dir = run_dir / "model"
    trainer.save_model(str(model_dir))  # the best checkpoint (load_best_model_at_end); every rank takes part
    if not main:
        return {"steps": trainer.state.global_step, "rank": int(os.environ.get("RANK", "0"))}
    trainer.processing_class.save_pretrained(str(model_dir))
    summary = _summary(cfg, trainer, info, result, initial_eval, seconds)
    _write_run_files(cfg, summary, trainer.processing_class)
    _log_done(summary, initial_eval, seconds, model_dir, log)
    return summary


def _start_point(trainer, run_dir: Path, resume: bool, info: dict, main: bool, log) -> tuple[str | None, float | None]:
    """The checkpoint to resume from (None: a fresh start) and the validation loss before training:
    measured now on a fresh start (logged at step 0), read back from metrics.jsonl on a resume."""
    metrics_path = run_dir / "metrics.jsonl"
    resume_from = None
    if resume:
        resume_from = pick_checkpoint(run_dir, log, move_aside=main)
        log(f"train: resuming from {resume_from}" if resume_from else "train: nothing to resume, starting fresh")
    if resume_from is not None:
        # the baseline was measured by the run that wrote the checkpoint
        initial_eval = _metrics_until(metrics_path, int(Path(resume_from).name.split("-")[-1])) if main else None
        return resume_from, initial_eval
    if main:
        metrics_path.unlink(missing_ok=True)  # a fresh start: a new history
    with phase(f"train: validation loss before training ({info['val_examples']:,} examples)"):
        return None, trainer.evaluate()["eval_loss"]  # the baseline the curve must beat


def _stop_on_bad_loss(trainer, run_dir: Path) -> None:
    """A non-finite loss seen by the run's MetricsLog (found by its type: another callback may carry
    an attribute of the same name) stops here, before the broken weights are saved."""
    from sftflow.train.metrics_log import MetricsLog

    guard = next(c for c in trainer.callback_handler.callbacks if isinstance(c, MetricsLog))
    if guard.bad_loss is not None:
        step, value = guard.bad_loss
        ckpts = _checkpoints(run_dir)
        kept = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was saved before it"
        raise NonFiniteLoss(f"loss became {value} at step {step}; training stopped and no model was saved "
                            f"({kept}); lower train.learning_rate or check the data")


def _summary(cfg: Config, trainer, info: dict, result, initial_eval: float | None, seconds: float) -> dict:
    history = trainer.state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    train_losses = [h["loss"] for h in history if "loss" in h]
    return {
        **info,
        "epochs_configured": cfg.train.epochs,
        "epochs_done": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "early_stopped": trainer.state.global_step < trainer.state.max_steps,
        "val_loss_initial": initial_eval,
        "val_losses": evals,
        "val_loss_best": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "train_loss_mean": result.training_loss,
        "overfitting": overfitting(history),
        "seconds": round(seconds, 1),
        "answer_tokens_per_second": round(info["answer_tokens"] * (trainer.state.epoch or 0) / max(seconds, 1e-9), 1),
    }


def _write_run_files(cfg: Config, summary: dict, tokenizer) -> None:
    """The run folder describes itself: summary, resolved config, chat template, versions."""
    import peft
    import torch
    import transformers
    import trl

    run_dir = cfg.run_dir
    write_json(run_dir / "train_summary.json", summary)
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    atomic_write_text(run_dir / "chat_template.jinja", tokenizer.chat_template)
    write_json(run_dir / "versions.json", {
        "sftflow": sftflow.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    })


def _log_done(summary: dict, initial_eval: float | None, seconds: float, model_dir: Path, log) -> None:
    if summary["overfitting"]:
        o = summary["overfitting"]
        log(f"warning: overfitting: validation loss rose from {o['val_loss_best']:.4f} (step {o['best_step']}) to "
            f"{o['val_loss_last']:.4f} while train loss fell to {o['train_loss_last']:.4f}; the best checkpoint "
            "was kept — fewer epochs or more data would help")
    best = f"{summary['val_loss_best']:.4f}" if summary["val_loss_best"] is not None else "n/a"
    log(f"train: done in {seconds:.0f}s, {summary['steps']} steps, val loss {initial_eval or float('nan'):.4f} → "
        f"best {best}; model saved to {model_dir}")
