"""The data: section: sources and how prepare reads, scores, deduplicates, splits and synthesises them."""

from __future__ import annotations

import codecs
import difflib
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sftflow.config.strict import Strict, inside_project
from sftflow.formats import FORMAT_NAMES, MAPPABLE_FIELDS

FORMATS = ("auto", *FORMAT_NAMES)  # the row formats are listed once, in formats.py


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
