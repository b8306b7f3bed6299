"""The evaluation stage: base vs tuned on the held-out test split, and what tuning broke elsewhere.

    sftflow eval sftflow.yaml

Writes `<run>/eval/predictions.jsonl` (prompt, reference, base and tuned output, per-example
metrics and hallucination flags) and `<run>/eval/metrics.json`: answer-token perplexity, task
metrics with 95% bootstrap intervals and paired base→tuned deltas, regression probes,
forgetting, lm-eval benchmark scores (`eval.benchmarks`), hallucination rates and gate results. Task metrics come from `eval.metrics`, or
are inferred from the answers (JSON, labels or free text). Only test.jsonl is scored; the
other splits' answers are read for the task's label set and JSON vocabulary, never scored.

Each model is loaded once and does all of its work (test answers, perplexity, probes,
general text, facts) before the next is loaded, so only one model is in memory at a time.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from sftflow.config import Config
from sftflow.data_folder import TEST, TRAIN, VAL
from sftflow.errors import SftflowError
from sftflow.eval.benchmarks import check_benchmarks, compare_benchmarks, run_benchmarks, task_manager
from sftflow.eval.gates import check_gates, headline, resolve_gates, value_text
from sftflow.eval.generate import generate
from sftflow.eval.hallucination import (
    hallucination_flags,
    json_task_vocabulary,
    prompt_text,
    wrong_value_summary,
    wrong_values,
)
from sftflow.eval.metrics import (
    TASK_METRICS,
    answer_perplexity,
    check_schema,
    corpus_summary,
    infer_metrics,
    is_label_like,
    json_field_accuracy,
    json_fields,
    json_schema_valid,
    label_breakdown,
)
from sftflow.eval.probes import (
    compare_forgetting,
    compare_probes,
    fact_probes,
    load_general_text,
    load_probes,
    probe_messages,
)
from sftflow.example import Example
from sftflow.io import read_jsonl, write_json, write_jsonl
from sftflow.model.chat import prompt_messages
from sftflow.model.output import Reply, parse_reply
from sftflow.model.reasoning import answer_only
from sftflow.model.system_prompt import training_system_prompt, with_system
from sftflow.progress import phase
from sftflow.stats import paired_delta, summarise
from sftflow.task_metrics import METRICS, first_metric

# Reference point from practice for conversational data; shown beside the number, not a gate.
PPL_REFERENCE = 15.0
MAX_HALLUCINATION_EXAMPLES = 25
FACT_MAX_NEW_TOKENS = 32  # fact answers are one short sentence


def load_schema(cfg: Config) -> dict | None:
    value = cfg.eval.json_schema
    if value is None:
        return None
    if isinstance(value, str):
        path = cfg.path(value)
        if not path.exists():
            raise SftflowError(f"eval.json_schema: {path} not found")
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SftflowError(f"eval.json_schema: {path}:{err.lineno}: invalid JSON ({err.msg})") from err
    check_schema(value, "eval.json_schema")
    return value


def _answers(path) -> list[str]:
    if not path.exists():
        return []
    return [answer_only(e.answer_text) for e in map(Example.of, read_jsonl(path)) if not e.is_text]


def plan_task(cfg: Config, test_refs: list[str], schema: dict | None, calls: int = 0) -> dict:
    """Which metrics, and what the task's answers look like (labels, JSON keys and enums). `calls`:
    test answers that call tools (then the tool-call metrics are inferred)."""
    all_refs = test_refs + _answers(cfg.data_dir / TRAIN) + _answers(cfg.data_dir / VAL)
    inferred, reason = infer_metrics(test_refs, has_schema=schema is not None, calls=calls)
    if cfg.eval.metrics is None:
        names = inferred
    else:
        names, reason = list(cfg.eval.metrics), "from eval.metrics"
        if "json_schema_valid" in names and schema is None:
            raise SftflowError("eval.metrics: json_schema_valid needs eval.json_schema (a schema file or mapping)")
        if "json_valid" in names:  # JSON answers: also compare parsed values and fields, key order ignored
            names += [m for m in ("json_match", "json_field_accuracy") if m not in names]
    is_json = any(m in names for m in ("json_valid", "json_match", "json_field_accuracy"))
    keys, enums = json_task_vocabulary(all_refs, schema) if is_json else (set(), {})
    labels = sorted({r.strip() for r in all_refs}) if is_label_like(all_refs) and not calls else []
    main = first_metric(names, "main") or (names[0] if names else "")
    return {"metrics": names, "reason": reason, "main_metric": main, "json_keys": sorted(keys),
            "enums": {k: sorted(map(str, v)) for k, v in enums.items()}, "labels": labels[:100]}


def model_outputs(model, chat, cfg: Config, *, test: list[dict] | None, probes: list[dict], facts: list[dict],
                  general: list[dict], perplexity: bool, sample: bool, log, who: str = "tuned",
                  system: str | None = None, benchmarks=None) -> dict:
    """Everything one model has to produce: generations and perplexities, no scoring. Each
    stretch is a progress phase (count and ETA on a terminal). A `<think>` block is split off
    every output (kept in `test_reasoning`); `system` is the training data's system prompt, given
    to test prompts without one as `serve` does. `chat`: the model's ChatTemplate (the run's tokenizer)."""
    e = cfg.eval
    out: dict = {}

    def raw_gen(what: str, prompts: list, n: int = e.max_new_tokens, **sampling) -> list[str]:
        with phase(f"eval: {who} model: {what}", len(prompts)) as update:
            return generate(model, chat, prompts, max_new_tokens=n, batch_size=e.batch_size, progress=update,
                            **sampling)

    def gen(what: str, prompts: list, n: int = e.max_new_tokens, **sampling) -> list[str]:
        return [answer_only(o) for o in raw_gen(what, prompts, n, **sampling)]

    def ppl(what: str, records: list[dict]) -> dict:
        with phase(f"eval: {who} model: {what}", len(records)) as update:
            return answer_perplexity(model, chat, records, max_length=cfg.train.max_length, progress=update)

    if test is not None:
        t0 = time.time()
        prompts = [with_system(prompt_messages(r), system) for r in test]
        each = [Example.of(r).template_tools() for r in test]  # the tool list each example was trained with
        tools = each if any(each) else None
        syntax = chat.call_syntax if tools else None
        # the one reading of a reply (model/output.py): reasoning apart, calls read where tools were offered
        read = lambda outputs: [parse_reply(o, syntax, tools=bool(t)) for o, t in zip(outputs, each, strict=True)]  # noqa: E731
        replies = read(raw_gen("test answers", prompts, tools=tools))
        out["test_replies"] = replies
        out["test_reasoning"], out["test"] = [r.reasoning for r in replies], [r.answer_text for r in replies]
        if perplexity:
            out["perplexity"] = ppl("answer perplexity", test)
        if sample and e.sample:
            s = e.sample
            out["sampled_replies"] = read(raw_gen("sampled test answers", prompts, do_sample=True,
                                                  temperature=s.temperature, top_p=s.top_p, seed=s.seed, tools=tools))
            out["sampled"] = [r.answer_text for r in out["sampled_replies"]]
        out["test_seconds"] = time.time() - t0
    if probes:
        out["probes"] = gen("regression probes", [probe_messages(p) for p in probes])
    if facts:
        out["facts"] = gen("general facts", [probe_messages(f) for f in facts], min(e.max_new_tokens, FACT_MAX_NEW_TOKENS))
    if general:
        out["general"] = ppl("general-text perplexity", general)
    if benchmarks is not None:  # lm-eval's task manager, built once for both models
        out["benchmarks"] = run_benchmarks(model, chat.tokenizer, cfg, benchmarks, who)
    return out


def score(outputs: list[str], refs: list[str], task: dict, schema: dict | None, replies: list[Reply] | None = None,
          examples: list[Example] | None = None) -> dict[str, list[float]]:
    """Per-example value of every task metric: text metrics on (output, reference) text, tool-call metrics
    on the calls parsed from each reply against the example's reference answer and tools."""
    fields = list(schema["properties"]) if schema and isinstance(schema.get("properties"), dict) else None
    per: dict[str, list[float]] = {}
    for name in task["metrics"]:
        metric = METRICS[name]
        if name == "perplexity":
            continue
        if metric.on == "calls":
            if replies is None or examples is None:
                raise SftflowError(f"{name} scores tool calls: give the replies and the examples")
            per[name] = [metric.fn(r.message(), e.answer or e.messages[-1], e.tools)
                         for r, e in zip(replies, examples, strict=True)]
        elif name == "json_schema_valid":
            per[name] = [json_schema_valid(o, schema) for o in outputs]
        elif name == "json_field_accuracy":
            per[name] = [json_field_accuracy(o, r, fields) for o, r in zip(outputs, refs, strict=True)]
        else:
            per[name] = [TASK_METRICS[name](o, r) for o, r in zip(outputs, refs, strict=True)]
    return per


def summarise_block(per: dict[str, list[float]], outputs: list[str], refs: list[str], task: dict,
                    schema: dict | None, base_outputs: list[str] | None = None) -> dict:
    block = {}
    for name, values in per.items():
        corpus = name in METRICS and METRICS[name].corpus
        block[name] = corpus_summary(name, outputs, refs, base_outputs) if corpus else summarise(values)
    if "json_field_accuracy" in per:
        fields = list(schema["properties"]) if schema and isinstance(schema.get("properties"), dict) else None
        by_field: dict[str, list[float]] = {}
        for o, r in zip(outputs, refs, strict=True):
            for k, v in json_fields(o, r, fields).items():
                by_field.setdefault(k, []).append(v)
        block["json_fields"] = {k: summarise(v) for k, v in by_field.items()}
    if "classification_accuracy" in per:
        block["classification"] = label_breakdown(outputs, refs)
    return block


def hallucinations(test: list[dict], outputs: list[str], task: dict) -> list[list[dict]]:
    keys = set(task["json_keys"]) or None
    enums = {k: set(v) for k, v in task["enums"].items()}
    return [hallucination_flags(o, prompt_text(prompt_messages(r)), Example.of(r).answer_text,
                                json_keys=keys, enums=enums)
            for r, o in zip(test, outputs, strict=True)]


def hallucination_summary(flags: list[list[dict]], outputs: list[str], refs: list[str], task: dict) -> dict:
    """Outputs flagged as hallucinating, by kind, and (counted apart) wrong allowed JSON values."""
    kinds = Counter(f["kind"] for fl in flags for f in fl)
    enums = {k: set(v) for k, v in task["enums"].items()}
    wrong = [wrong_values(o, r, enums) for o, r in zip(outputs, refs, strict=True)]
    return {"flagged": sum(bool(f) for f in flags), "n": len(flags), "by_kind": dict(kinds.most_common()),
            "wrong_values": wrong_value_summary(wrong)}


def _on_accelerator(model, method: str):
    """Generate and score on the GPU when there is one (a 4-bit model is placed when loaded)."""
    import torch

    return model.to("cuda") if method != "qlora" and torch.cuda.is_available() else model


def _log_block(log, label: str, block: dict, seconds: float | None) -> None:
    shown = ", ".join(f"{k} {v['mean']:.3f}" for k, v in block.items() if isinstance(v, dict) and "mean" in v)
    ppl = block.get("answer_perplexity", {}).get("perplexity")
    log(f"eval: {label}: {shown}" + (f", answer perplexity {ppl:.2f}" if ppl else "")
        + (f" ({seconds:.0f}s)" if seconds is not None else ""))


def evaluate(cfg: Config, log=print) -> dict:
    """The evaluation recipe: load the test split and plan the task, generate with each model, score,
    compare probes and forgetting, check the gates, write predictions.jsonl and metrics.json."""
    from sftflow.data_folder import check_published

    check_published(cfg.data_dir)  # a half-published folder may pair a new train split with a stale test split
    started = time.time()
    e = cfg.eval
    test, refs = _test_split(cfg)
    schema = load_schema(cfg)
    task = plan_task(cfg, refs, schema, calls=sum(bool(_answer(r).tool_calls) for r in test))
    log(f"eval: {len(test)} test examples; metrics {', '.join(task['metrics'])} ({task['reason']})")
    probes = load_probes(cfg.path(e.probe_file) if e.probe_file else None) if e.probes else []
    facts = (fact_probes(probes if e.probes else [], cfg.path(e.facts_file) if e.facts_file else None)
             if e.forgetting else [])
    general, general_source = (load_general_text(cfg.path(e.general_text) if e.general_text else None)
                               if e.forgetting else ([], None))
    check_benchmarks(cfg)
    system = training_system_prompt(cfg.run_dir)
    work = {"probes": probes, "facts": facts, "general": general, "perplexity": "perplexity" in task["metrics"],
            "log": log, "system": system, "benchmarks": task_manager(cfg) if e.benchmarks else None}
    tuned, base = _generate_both(cfg, test, work)

    scored = _score_models(test, refs, task, schema, tuned, base, log)
    sampled_block = None
    if "sampled" in tuned:
        sampled_per = score(tuned["sampled"], refs, task, schema, tuned["sampled_replies"], [Example.of(r) for r in test])
        sampled_block = summarise_block(sampled_per, tuned["sampled"], refs, task, schema)
        _log_block(log, f"tuned, sampled at temperature {e.sample.temperature:g}", sampled_block, None)
    probe_result = _compare_probes(probes, base, tuned, log) if probes else None
    forgetting = (_compare_forgetting(cfg, general, general_source, facts, base, tuned, log) if general else None)
    bench = compare_benchmarks(base["benchmarks"], tuned["benchmarks"], cfg) if e.benchmarks else None
    if bench:
        log("eval: benchmarks: " + ", ".join(f"{k} {v['metric']} {v['base']:.3f} → {v['tuned']:.3f}"
                                             for k, v in bench["tasks"].items()))
    rows, hall = _predictions(test, refs, system, tuned, base, scored, task, log)

    metrics = {
        "test_examples": len(test),
        "task": task,
        "tuned": scored["tuned_block"],
        "base": scored["base_block"],
        "delta": scored["delta"],
        "tuned_sampled": sampled_block,
        "sampling": e.sample.model_dump() if e.sample else None,
        "perplexity_reference": PPL_REFERENCE,
        "probes": probe_result,
        "forgetting": forgetting,
        "benchmarks": bench,
        "hallucination": hall,
    }
    _gate(metrics, e)
    metrics["seconds"] = round(time.time() - started, 1)
    out_dir = cfg.run_dir / "eval"
    write_jsonl(out_dir / "predictions.jsonl", rows)
    write_json(out_dir / "metrics.json", metrics)
    _log_gates(log, metrics)
    return metrics


def _test_split(cfg: Config) -> tuple[list[dict], list[str]]:
    """The chat examples of test.jsonl (at most eval.max_examples) and their answers without reasoning."""
    test = [r for r in read_jsonl(cfg.data_dir / TEST) if not Example.of(r).is_text]
    if not test:
        raise SftflowError(f"{cfg.data_dir / TEST}: no chat examples to evaluate on (raise data.split.test)")
    if cfg.eval.max_examples:
        test = test[: cfg.eval.max_examples]
    return test, [answer_only(Example.of(r).answer_text) for r in test]  # metrics score answers, not reasoning


def _answer(record: dict):
    ex = Example.of(record)
    return ex.answer or ex.messages[-1]


def _generate_both(cfg: Config, test: list[dict], work: dict) -> tuple[dict, dict | None]:
    """The tuned model's outputs, then (when anything compares) the base model's: one in memory at a time."""
    from sftflow.model.load import load_chat, load_model, load_tuned

    e = cfg.eval
    run_dir, method, base_path = cfg.run_dir, cfg.train.method, cfg.model_path()
    model, chat = load_tuned(run_dir, base_path, method=method, trust_remote_code=cfg.model.trust_remote_code)
    model = _on_accelerator(model, method)
    tuned = model_outputs(model, chat, cfg, test=test, sample=True, **work)
    del model
    if not (e.compare_base or work["probes"] or work["facts"] or work["general"] or e.benchmarks):
        return tuned, None
    # The base sees the very same rendered prompts: the run's tokenizer and template.
    base_chat = load_chat(str(run_dir / "model"), padding_side="left")
    base_model = load_model(base_path, base_chat, method=method, trust_remote_code=cfg.model.trust_remote_code)
    base_model = _on_accelerator(base_model.eval(), method)
    base = model_outputs(base_model, base_chat, cfg, test=test if e.compare_base else None, sample=False, who="base",
                         **work)
    del base_model
    return tuned, base


def _score_models(test: list[dict], refs: list[str], task: dict, schema: dict | None, tuned: dict,
                  base: dict | None, log) -> dict:
    """Per-example metrics and hallucination flags of each model, their summaries and the paired deltas."""
    has_base = base is not None and "test" in base
    tuned_per, tuned_flags = _per_example(test, tuned, refs, task, schema)
    tuned_block = summarise_block(tuned_per, tuned["test"], refs, task, schema, base["test"] if has_base else None)
    base_block, base_per, base_flags = None, None, None
    if has_base:
        base_per, base_flags = _per_example(test, base, refs, task, schema)
        base_block = summarise_block(base_per, base["test"], refs, task, schema)
    if "perplexity" in task["metrics"]:
        tuned_block["answer_perplexity"] = tuned["perplexity"]
        if has_base:
            base_block["answer_perplexity"] = base["perplexity"]
    delta = {}
    if has_base:
        for name in tuned_per:
            corpus_delta = tuned_block[name].pop("delta", None)
            delta[name] = corpus_delta or paired_delta(tuned_per[name], base_per[name])
    _log_block(log, "tuned", tuned_block, tuned.get("test_seconds"))
    if has_base:
        _log_block(log, "base", base_block, base.get("test_seconds"))
    return {"has_base": has_base, "tuned_per": tuned_per, "tuned_flags": tuned_flags, "tuned_block": tuned_block,
            "base_per": base_per, "base_flags": base_flags, "base_block": base_block, "delta": delta}


def _per_example(test: list[dict], model_out: dict, refs: list[str], task: dict,
                 schema: dict | None) -> tuple[dict[str, list[float]], list[list[dict]]]:
    outputs = model_out["test"]
    per = score(outputs, refs, task, schema, model_out.get("test_replies"), [Example.of(r) for r in test])
    flags = hallucinations(test, outputs, task)
    per["hallucination_rate"] = [float(bool(f)) for f in flags]
    return per, flags


def _compare_probes(probes: list[dict], base: dict, tuned: dict, log) -> dict:
    result = compare_probes(probes, base["probes"], tuned["probes"])
    failed = [f"{r['id']} ({', '.join(r['failed_checks'])})" for r in result["results"] if not r["passed"]]
    log(f"eval: regression probes: {result['failures']} of {result['probes']} failed"
        + (f": {'; '.join(failed)}" if failed else ""))
    return result


def _compare_forgetting(cfg: Config, general: list[dict], general_source, facts: list[dict], base: dict,
                        tuned: dict, log) -> dict:
    forgetting = compare_forgetting(
        {"source": general_source, "records": len(general), "base": base["general"], "tuned": tuned["general"]},
        facts, base.get("facts", []), tuned.get("facts", []), cfg.eval.forgetting_threshold)
    g, f = forgetting["general_text"], forgetting["facts"]
    log(f"eval: forgetting: general-text perplexity {g['base_ppl']:.2f} → {g['tuned_ppl']:.2f} "
        f"({forgetting['ppl_increase']:+.1%}), general facts {f['base_accuracy']:.0%} → {f['tuned_accuracy']:.0%}"
        + (" — above the forgetting threshold" if forgetting["flagged"] else ""))
    return forgetting


def _predictions(test: list[dict], refs: list[str], system: str | None, tuned: dict, base: dict | None,
                 scored: dict, task: dict, log) -> tuple[list[dict], dict]:
    """One predictions.jsonl row per test example, and the hallucination summary with examples."""
    has_base, tuned_flags = scored["has_base"], scored["tuned_flags"]
    rows, examples = [], []
    for i, r in enumerate(test):
        row = {
            "id": r["id"],
            "prompt": with_system(prompt_messages(r), system),
            "reference": refs[i],
            "tuned": tuned["test"][i],
            "tuned_metrics": {k: v[i] for k, v in scored["tuned_per"].items()},
            "tuned_hallucinations": tuned_flags[i],
        }
        if tuned["test_reasoning"][i] is not None:
            row["tuned_reasoning"] = tuned["test_reasoning"][i]
        if tuned["test_replies"][i].tool_calls:  # the calls read from the output (model/output.py)
            row["tuned_tool_calls"] = [c.to_dict() for c in tuned["test_replies"][i].tool_calls]
        if "sampled" in tuned:
            row["tuned_sampled"] = tuned["sampled"][i]
        if has_base:
            row["base"] = base["test"][i]
            if base["test_reasoning"][i] is not None:
                row["base_reasoning"] = base["test_reasoning"][i]
            if base["test_replies"][i].tool_calls:
                row["base_tool_calls"] = [c.to_dict() for c in base["test_replies"][i].tool_calls]
            row["base_metrics"] = {k: v[i] for k, v in scored["base_per"].items()}
            row["base_hallucinations"] = scored["base_flags"][i]
        rows.append(row)
        if tuned_flags[i] and len(examples) < MAX_HALLUCINATION_EXAMPLES:
            examples.append({"id": r["id"], "prompt": row["prompt"][-1]["content"], "reference": refs[i],
                             "output": tuned["test"][i], "flags": tuned_flags[i]})
    hall = {"tuned": hallucination_summary(tuned_flags, tuned["test"], refs, task),
            "base": hallucination_summary(scored["base_flags"], base["test"], refs, task) if has_base else None,
            "examples": examples}
    wrong = hall["tuned"]["wrong_values"]["outputs"]
    log(f"eval: hallucination: {hall['tuned']['flagged']} of {len(test)} tuned outputs flagged"
        + (f" (base {hall['base']['flagged']})" if has_base else "")
        + (f"; {wrong} hold a wrong value from a field's allowed set (an error, counted apart)" if wrong else ""))
    return rows, hall


def _gate(metrics: dict, e) -> None:
    """The gates' results, the ones left out, the verdict."""
    gates, gates_off = resolve_gates(e)
    metrics["gates"] = check_gates(metrics, gates)
    metrics["gates_off"] = gates_off
    metrics["passed"] = all(g["passed"] for g in metrics["gates"])
    metrics["headline"] = headline(metrics)


def _log_gates(log, metrics: dict) -> None:
    for g in metrics["gates"]:
        value = value_text(g)
        about = f" ({g['metric']})" if g.get("metric") else ""
        log(f"eval: gate {g['gate']}{about} {g['rule']}: {value} → {'pass' if g['passed'] else 'FAIL'}")
    for name, why in metrics["gates_off"].items():
        log(f"eval: gate {name} off ({why})")
    log(f"eval: verdict: {metrics['headline']}")
