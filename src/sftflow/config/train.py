"""The model: and train: sections: the base model and how it is fine-tuned."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sftflow.config.strict import Strict

METHODS = ("lora", "qlora", "full")
LORA_DEFAULT_LR = 2e-4
FULL_DEFAULT_LR = 2e-5


class ModelConfig(Strict):
    name_or_path: str = Field(
        description="Hugging Face model id, local folder or .gguf file, or an offline short name (smollm2-135m-instruct)"
    )
    chat_template: str | None = Field(
        None, description="Jinja chat template file; default: the tokenizer's own, else sftflow's ChatML"
    )
    revision: str | None = Field(None, description="model revision (branch, tag or commit) on the hub")
    template_date: str = Field(
        "2025-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="the date a template that writes today's (gpt-oss, Llama 3.2) renders, so a rendering is "
        "the same every day in train, eval, serve and the export"
    )
    trust_remote_code: bool = Field(False, description="allow custom model code from the hub (only if you trust it)")
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="attention kernel; auto = FlashAttention-2 on a CUDA GPU where flash-attn is installed, else sdpa"
    )


class LoraSettings(Strict):
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r)")
    # 0 by default: on CPU the dropout masks took 17-32% of a LoRA step (bench/train_throughput.py,
    # variant sftflow-lora-dropout) and each adapted layer keeps a dropped-out copy of its input.
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input (0: none, the fast path)")
    target_modules: str | list[str] = Field(
        "all-linear", description="modules to adapt: all-linear or a list of names (q_proj, v_proj, ...)"
    )


class DistributedConfig(Strict):
    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp", description="with several processes: ddp (replicas), fsdp (full shard) or deepspeed (ZeRO)"
    )
    zero_stage: Literal[2, 3] = Field(2, description="DeepSpeed ZeRO stage: 2 shards grads+optimizer, 3 also weights")
    cpu_offload: bool = Field(False, description="offload parameters/optimizer to CPU RAM (fsdp, deepspeed)")
    deepspeed_config: str | None = Field(None, description="your own DeepSpeed JSON instead of the generated one")


class TrainConfig(Strict):
    method: Literal[METHODS] = Field("lora", description="lora (default), qlora (4-bit base) or full fine-tuning")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA settings (lora and qlora)")
    learning_rate: float | None = Field(
        None, gt=0, description=f"peak learning rate; default {LORA_DEFAULT_LR:g} for LoRA, {FULL_DEFAULT_LR:g} for full"
    )
    epochs: float = Field(3, gt=0, description="passes over the training split (early stopping may end sooner)")
    batch_size: int = Field(4, ge=1, description="examples per device per step")
    grad_accum: int = Field(4, ge=1, description="gradient accumulation steps (effective batch = batch_size x grad_accum)")
    max_length: int = Field(1024, ge=8, description="longest example in tokens; longer ones are truncated and counted")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    early_stopping_patience: int = Field(1, ge=0, description="evals without val-loss improvement before stopping; 0 = off")
    evals_per_epoch: int = Field(1, ge=1, description="validation passes per epoch")
    seed: int = Field(42, description="training seed (init of LoRA weights, data order)")
    bf16: Literal["auto", True, False] = Field("auto", description="bf16 mixed precision; auto = on where supported")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (on by default for qlora)")
    padding_free: bool = Field(True, description="concatenate examples without pad tokens or cross-attention")
    reasoning: Literal["keep", "drop", "template"] = Field(
        "keep", description="reasoning in answers (a <think> block, or a reasoning / thinking field): keep (trained "
        "as the model writes it, also where the template drops it, like the R1 distills'), drop it, or template "
        "(refuse rows whose trained reasoning the template drops)"
    )
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, description="multi-GPU / multi-node strategy (torchrun, accelerate)"
    )
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="experiment trackers: tensorboard, mlflow (file store in the run dir), "
        "wandb (in the run dir, offline unless WANDB_MODE or a W&B key is set)"
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="more trl.SFTConfig arguments passed through unchanged"
    )

    @model_validator(mode="after")
    def _known_good_combinations(self) -> TrainConfig:
        d = self.distributed
        if self.method == "qlora" and d.strategy == "fsdp":
            raise ValueError("distributed.strategy fsdp with method qlora is not supported here; use ddp "
                             "(QLoRA's 4-bit base fits per GPU) or method lora")
        if self.method == "qlora" and d.strategy == "deepspeed" and d.zero_stage == 3:
            raise ValueError("ZeRO-3 cannot shard bitsandbytes 4-bit weights; use zero_stage 2 or ddp with qlora")
        return self

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return FULL_DEFAULT_LR if self.method == "full" else LORA_DEFAULT_LR
