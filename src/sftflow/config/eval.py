"""The eval: section: what evaluation measures, and the gates (thresholds) that fail a run."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from sftflow.config.strict import Strict
from sftflow.task_metrics import CHOOSABLE

METRICS = CHOOSABLE  # the task metrics are listed once, in task_metrics.py
GATE_OFF = "off"  # eval.gates: {name: off} switches a (default) gate off
GATE_RE = re.compile(r"^\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*(%|failures?)?\s*$")


def parse_gate(name: str, rule: str) -> tuple[str, float]:
    """'>= 0.8', '< 15', '< 10%' (= 0.10) or '== 0 failures' (a count)."""
    m = GATE_RE.match(str(rule))
    if not m:
        raise ValueError(f"gate {name}: {rule!r} is not a comparison like '>= 0.8', '< 10%' or '== 0 failures' "
                         "(or off)")
    value = float(m.group(2))
    return m.group(1), value / 100 if m.group(3) == "%" else value


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
