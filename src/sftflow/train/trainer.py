"""The training stage: TRL `SFTTrainer` + PEFT, configured the way an expert would by hand.

    sftflow train sftflow.yaml

What sftflow changes from TRL's defaults, and why:
- examples are tokenized here with an answer-only mask built from the rendered template
  (`model/chat.py`), so loss falls on assistant tokens (and their eos) only, for any template;
- padding-free batches (`padding_free=True`, `max_length=None`; truncation happens here):
  no pad tokens computed and no attention across examples (2.07x TRL's padded tokens/s on
  long-tailed data on CPU, as measured in DESIGN.md; re-measure per hardware);
- validation loss is measured before training and `evals_per_epoch` times per epoch; early
  stopping on it, and the best checkpoint (not the last) is what gets saved;
- a run folder that describes itself: resolved config, versions, chat template, metrics.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from pathlib import Path

import sftflow
from sftflow.config import Config, dump_config
from sftflow.errors import SftflowError
from sftflow.io import atomic_write_text, read_jsonl, write_json
from sftflow.model.chat import tokenize_record


def tokenize_split(tokenizer, records: list[dict], max_length: int) -> tuple[list[dict], dict]:
    rows, truncated, empty = [], 0, 0
    for r in records:
        t = tokenize_record(tokenizer, r, max_length)
        if not any(t.assistant_masks):
            empty += 1  # truncation cut every answer token: nothing to learn, counted and reported
            continue
        truncated += t.truncated
        rows.append({"input_ids": t.input_ids, "assistant_masks": t.assistant_masks, "id": r["id"]})
    return rows, {"examples": len(records), "used": len(rows), "truncated": truncated, "no_answer_left": empty}


def _callbacks(run_dir: Path, patience: int, log):
    from transformers import EarlyStoppingCallback, TrainerCallback

    metrics_path = run_dir / "metrics.jsonl"

    class MetricsLog(TrainerCallback):
        """Appends every log (train loss, eval loss, lr) as one JSON line to metrics.jsonl,
        and prints one short progress line per log."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not (state.is_world_process_zero and logs):
                return
            row = {"step": state.global_step, "epoch": state.epoch, **logs}
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            where = (f"step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f}"
                     if state.max_steps else "before training:")
            if "eval_loss" in logs:
                log(f"train: {where} val loss {logs['eval_loss']:.4f}")
            elif "loss" in logs:
                log(f"train: {where} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e}")

    callbacks = [MetricsLog()]
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


def peft_config(cfg: Config, new_token_ids: list[int]):
    from peft import LoraConfig

    lora = cfg.train.lora
    kwargs = {}
    if new_token_ids:
        # Tokens added for the chat template/pad must be learned, but only their rows.
        kwargs["trainable_token_indices"] = {"embed_tokens": new_token_ids}
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def build_trainer(cfg: Config, log=print):
    """The configured SFTTrainer and what was measured while building it (tests inspect its batches)."""
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from sftflow.model.load import bf16_supported, has_cuda, load_model, load_tokenizer

    run_dir = cfg.run_dir
    t = cfg.train
    train_records = list(read_jsonl(cfg.data_dir / "train.jsonl"))
    val_records = list(read_jsonl(cfg.data_dir / "val.jsonl"))
    if not train_records:
        raise SftflowError(f"{cfg.data_dir / 'train.jsonl'}: no training examples; check `sftflow prepare` output")
    if not val_records:
        raise SftflowError(
            f"{cfg.data_dir / 'val.jsonl'}: empty validation split; early stopping needs one (raise data.split.val)"
        )

    set_seed(t.seed)
    bf16 = bf16_supported() if t.bf16 == "auto" else bool(t.bf16)
    model_path = cfg.model_path()
    template = str(cfg.path(cfg.model.chat_template)) if cfg.model.chat_template else None
    tokenizer = load_tokenizer(model_path, chat_template=template, revision=cfg.model.revision,
                               trust_remote_code=cfg.model.trust_remote_code, padding_side="right")
    model = load_model(model_path, tokenizer, method=t.method, bf16=bf16, revision=cfg.model.revision,
                       trust_remote_code=cfg.model.trust_remote_code)
    new_token_ids = tokenizer.sftflow_added_token_ids
    if t.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # fp32 norms/embeddings, input grads on, gradient checkpointing: the QLoRA recipe
        # (TRL 1.x no longer does this itself).
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )

    train_rows, train_tok = tokenize_split(tokenizer, train_records, t.max_length)
    val_rows, val_tok = tokenize_split(tokenizer, val_records, t.max_length)
    for name, s in (("train", train_tok), ("val", val_tok)):
        if s["truncated"] or s["no_answer_left"]:
            log(f"train: {name}: {s['truncated']} examples truncated to {t.max_length} tokens, "
                f"{s['no_answer_left']} skipped (no answer token left); raise train.max_length to keep them")
    answer_tokens = sum(sum(r["assistant_masks"]) for r in train_rows)
    total_tokens = sum(len(r["input_ids"]) for r in train_rows)

    effective_batch = t.batch_size * t.grad_accum
    steps_per_epoch = max(1, math.ceil(len(train_rows) / effective_batch))
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
        report_to=[],
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    settings.update(t.extra)  # the user's pass-through SFTConfig arguments win
    args = SFTConfig(**settings)
    # Padding-free rows are only isolated under SDPA/eager when the model sees position_ids
    # and no attention mask, and with the KV cache off (DESIGN.md).
    model.config.use_cache = False

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows),
        processing_class=tokenizer,
        peft_config=peft_config(cfg, new_token_ids) if t.method in ("lora", "qlora") else None,
        callbacks=_callbacks(run_dir, t.early_stopping_patience, log),
    )
    trainer.remove_callback(PrinterCallback)  # raw dict prints; MetricsLog prints one short line instead
    trainable, total = count_parameters(trainer.model)
    log(f"train: {t.method} on {model_path}: {trainable:,} of {total:,} parameters trainable "
        f"({100 * trainable / total:.2f}%), {len(train_rows)} examples, {answer_tokens:,} answer tokens of "
        f"{total_tokens:,}, effective batch {effective_batch}, lr {t.lr:g}")

    info = {
        "method": t.method,
        "base_model": model_path,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "train_examples": len(train_rows),
        "val_examples": len(val_rows),
        "tokenization": {"train": train_tok, "val": val_tok},
        "answer_tokens": answer_tokens,
        "total_tokens": total_tokens,
        "effective_batch": effective_batch,
        "learning_rate": t.lr,
        "bf16": bf16,
        "device": "cpu" if use_cpu else "cuda",
        "seed": t.seed,
    }
    return trainer, info


def data_fingerprint(data_dir: Path) -> str:
    """sha256 of the train and val files: which exact data a run learned from."""
    h = hashlib.sha256()
    for name in ("train.jsonl", "val.jsonl"):
        with open(data_dir / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def record_run_in_ledger(cfg: Config) -> tuple[str, str]:
    """Append this run and the ids it trains on to the provenance ledger (one transaction)."""
    from sftflow.data.ledger import Ledger

    fingerprint = data_fingerprint(cfg.data_dir)
    run_id = f"{cfg.name}-{time.strftime('%Y%m%dT%H%M%S')}-{fingerprint[:6]}"
    ids = [r["id"] for r in read_jsonl(cfg.data_dir / "train.jsonl")]
    ledger_path = cfg.data_dir / "ledger.sqlite"
    if ledger_path.exists():
        ledger = Ledger(ledger_path)
        try:
            ledger.record_run(run_id, cfg.name, fingerprint, ids, method=cfg.train.method,
                              model=cfg.model.name_or_path, config=cfg.model_dump(mode="json"))
        finally:
            ledger.close()
    return run_id, fingerprint


def train(cfg: Config, *, resume: bool = False, log=print) -> dict:
    import peft
    import torch
    import transformers
    import trl

    run_dir = cfg.run_dir
    t = cfg.train
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.jsonl"
    if not resume:
        metrics_path.unlink(missing_ok=True)
    trainer, info = build_trainer(cfg, log)
    tokenizer = trainer.processing_class
    info["run_id"], info["data_fingerprint"] = record_run_in_ledger(cfg)

    start = time.time()
    initial_eval = None
    resume_from = None
    if resume:
        ckpts = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        resume_from = str(ckpts[-1]) if ckpts else None
        log(f"train: resuming from {resume_from}" if resume_from else "train: nothing to resume, starting fresh")
    if resume_from is None:
        initial_eval = trainer.evaluate()["eval_loss"]  # the baseline the curve must beat (logged at step 0)
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.time() - start

    history = trainer.state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    train_losses = [h["loss"] for h in history if "loss" in h]
    best_ckpt = trainer.state.best_model_checkpoint
    model_dir = run_dir / "model"
    trainer.save_model(str(model_dir))  # the best checkpoint: load_best_model_at_end restored it
    tokenizer.save_pretrained(str(model_dir))

    summary = {
        **info,
        "epochs_configured": t.epochs,
        "epochs_done": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "early_stopped": trainer.state.global_step < trainer.state.max_steps,
        "val_loss_initial": initial_eval,
        "val_losses": evals,
        "val_loss_best": trainer.state.best_metric,
        "best_checkpoint": best_ckpt,
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "train_loss_mean": result.training_loss,
        "seconds": round(seconds, 1),
        "answer_tokens_per_second": round(info["answer_tokens"] * (trainer.state.epoch or 0) / max(seconds, 1e-9), 1),
    }
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
    best = f"{summary['val_loss_best']:.4f}" if summary["val_loss_best"] is not None else "n/a"
    log(f"train: done in {seconds:.0f}s, {summary['steps']} steps, val loss {initial_eval or float('nan'):.4f} → "
        f"best {best}; model saved to {model_dir}")
    return summary
