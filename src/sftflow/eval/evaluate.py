"""The evaluation stage: base vs tuned on the held-out test split, and nothing else.

    sftflow eval sftflow.yaml

Writes `<run>/eval/predictions.jsonl` (prompt, reference, base and tuned output, per-example
metrics) and `<run>/eval/metrics.json` (answer-token perplexity, task metrics with 95%
bootstrap intervals, gate results). Only test.jsonl is read: the model never saw it.
"""

from __future__ import annotations

import time

from sftflow.config import Config
from sftflow.errors import SftflowError
from sftflow.eval.gates import check_gates
from sftflow.eval.generate import generate
from sftflow.eval.metrics import TASK_METRICS, answer_perplexity, summarise
from sftflow.io import read_jsonl, write_json, write_jsonl
from sftflow.model.chat import prompt_messages

# Reference point from practice for conversational data; shown beside the number, not a gate.
PPL_REFERENCE = 15.0


def _score(model, tok, records, cfg: Config, label: str, log) -> tuple[list[str], dict]:
    e = cfg.eval
    t0 = time.time()
    prompts = [prompt_messages(r) for r in records]
    outputs = generate(model, tok, prompts, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size)
    refs = [r["messages"][-1]["content"] for r in records]
    per_metric = {name: [TASK_METRICS[name](o, ref) for o, ref in zip(outputs, refs, strict=True)]
                  for name in _task_metric_names(cfg)}
    result = {name: summarise(vals) for name, vals in per_metric.items()}
    if "perplexity" in e.metrics:
        result["answer_perplexity"] = answer_perplexity(model, tok, records, max_length=cfg.train.max_length)
    ppl = result.get("answer_perplexity", {}).get("perplexity")
    shown = ", ".join(f"{k} {v['mean']:.3f}" for k, v in result.items() if "mean" in v)
    log(f"eval: {label}: {shown}" + (f", answer perplexity {ppl:.2f}" if ppl else "") + f" ({time.time() - t0:.0f}s)")
    return outputs, {"metrics": result, "per_example": per_metric}


def _task_metric_names(cfg: Config) -> list[str]:
    names = [m for m in cfg.eval.metrics if m in TASK_METRICS]
    if "json_valid" in names and "json_match" not in names:
        names.append("json_match")  # JSON answers: also compare parsed values, key order ignored
    return names


def evaluate(cfg: Config, log=print) -> dict:
    from sftflow.model.load import load_model, load_tokenizer, load_tuned

    run_dir = cfg.run_dir
    test = [r for r in read_jsonl(cfg.data_dir / "test.jsonl") if "messages" in r]
    if not test:
        raise SftflowError(f"{cfg.data_dir / 'test.jsonl'}: no chat examples to evaluate on (raise data.split.test)")
    if cfg.eval.max_examples:
        test = test[: cfg.eval.max_examples]
    method = cfg.train.method
    base_path = cfg.model_path()

    model, tok = load_tuned(run_dir, base_path, method=method, trust_remote_code=cfg.model.trust_remote_code)
    tuned_out, tuned = _score(model, tok, test, cfg, "tuned", log)
    del model

    base = None
    if cfg.eval.compare_base:
        # The base sees the very same rendered prompts: the run's tokenizer and template.
        base_tok = load_tokenizer(str(run_dir / "model"), padding_side="left")
        base_model = load_model(base_path, base_tok, method=method, trust_remote_code=cfg.model.trust_remote_code)
        base_model.eval()
        base_out, base = _score(base_model, base_tok, test, cfg, "base", log)
        del base_model

    rows = []
    for i, r in enumerate(test):
        row = {
            "id": r["id"],
            "prompt": prompt_messages(r),
            "reference": r["messages"][-1]["content"],
            "tuned": tuned_out[i],
            "tuned_metrics": {k: v[i] for k, v in tuned["per_example"].items()},
        }
        if base is not None:
            row["base"] = base_out[i]
            row["base_metrics"] = {k: v[i] for k, v in base["per_example"].items()}
        rows.append(row)

    metrics = {
        "test_examples": len(test),
        "tuned": tuned["metrics"],
        "base": base["metrics"] if base else None,
        "perplexity_reference": PPL_REFERENCE,
    }
    metrics["gates"] = check_gates(metrics, cfg.eval.gates)
    metrics["passed"] = all(g["passed"] for g in metrics["gates"])
    out_dir = run_dir / "eval"
    write_jsonl(out_dir / "predictions.jsonl", rows)
    write_json(out_dir / "metrics.json", metrics)
    for g in metrics["gates"]:
        value = "missing" if g["value"] is None else f"{g['value']:.4g}"
        log(f"eval: gate {g['gate']} {g['rule']}: {value} → {'pass' if g['passed'] else 'FAIL'}")
    return metrics
