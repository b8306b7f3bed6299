"""The configured TRL `SFTTrainer`: trainer settings, model load, tokenized splits, callbacks.

    trainer, info = build_trainer(load_config("sftflow.yaml"))   # what `sftflow train` runs

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
  stopping on it, and the best checkpoint (not the last) is what gets saved.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from sftflow.config import Config
from sftflow.data_folder import TRAIN, VAL
from sftflow.errors import SftflowError, SftflowWarning
from sftflow.io import read_jsonl
from sftflow.model.chat import tokenize_record
from sftflow.progress import phase
from sftflow.train.distributed import is_main_process, trainer_settings, world_size
from sftflow.train.trackers import trainer_trackers


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


def _callbacks(run_dir: Path, patience: int, tokens_per_step: float, trackers: list, log):
    from transformers import EarlyStoppingCallback

    from sftflow.train.metrics_log import MetricsLog

    callbacks = [MetricsLog(run_dir / "metrics.jsonl", tokens_per_step, log), *trackers]
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


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
        log = silent
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
    from sftflow.config.guardrails import guardrail_warnings
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


def silent(message: str) -> None:
    """The log of a process other than rank 0: it says nothing (rank 0 speaks for the run)."""
