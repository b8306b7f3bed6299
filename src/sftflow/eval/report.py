"""The run report: one self-contained HTML page a person would rather look at than read.

    sftflow report sftflow.yaml

Shows the run summary, gate results, the loss curves, base vs tuned metrics with confidence
intervals and deltas in words, regression probes side by side, forgetting, hallucinations and
wrong values (defined on the page), the worst test examples, the data card and side-by-side
predictions, green only where an answer is identical to the reference. Plots are inline PNGs:
the file can be mailed. `report.md` next to it holds the same in Markdown, its plots as files
in `report_images/`. How numbers become words and colours: eval/present.py.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from jinja2 import Environment

from sftflow.data_folder import CARD, LEDGER, REJECTS, STATS
from sftflow.errors import SftflowError
from sftflow.eval.charts import forgetting_plot, loss_plot, metric_plot
from sftflow.eval.gates import badge, headline
from sftflow.eval.present import (
    card_html,
    change_direction,
    delta_words,
    duplicate_text,
    is_exact_task,
    judge_answer,
    ratio_words,
    same_per_example,
)
from sftflow.eval.report_md import render_markdown
from sftflow.io import atomic_write_bytes, atomic_write_text, read_jsonl
from sftflow.task_metrics import lower_is_better, note

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sftflow report · {{ name }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.pass{color:#0a7a0a;font-weight:bold}.fail{color:#b00;font-weight:bold}
.muted{color:#777}pre{white-space:pre-wrap;margin:0;font-size:90%}img{max-width:100%}
.ok{background:#eefbee}.bad{background:#fdeeee}.better{color:#0a7a0a;font-weight:bold}.worse{color:#b36b00;font-weight:bold}
.unmet{color:#b36b00;font-weight:bold}.badge{font-size:60%;padding:2px 10px;border-radius:4px;color:#fff;vertical-align:middle}
.badge.pass{background:#0a7a0a}.badge.fail{background:#b00}.badge.no-gates{background:#777}
ul.fields{list-style:none;margin:.3em 0 0;padding:0;font-size:85%}ul.fields li{margin:1px 0;padding:0 4px}
li.field-ok{background:#dff5df}li.field-bad{background:#fbdede}
.legend span{padding:0 6px;margin-right:.6em}.card table{font-size:90%}
dl.defs dt{font-weight:bold;margin-top:.4em}dl.defs dd{margin-left:1.5em}
</style></head><body>
{% macro answer(p, who) %}{% set j = p[who + "_judged"] %}<td class="{{ j.css }}">{% if p[who + "_reasoning"] %}<details><summary>reasoning</summary><pre>{{ p[who + "_reasoning"] }}</pre></details>{% endif %}<pre>{{ p[who] }}</pre>
{% if j.fields and not j.json_object %}<ul class="fields"><li class="field-bad">✗ not a JSON object</li></ul>
{% elif j.fields %}<ul class="fields">{% for f in j.fields %}{% if f.ok %}<li class="field-ok">✓ {{ f.field }}</li>{% else %}<li class="field-bad">✗ {{ f.field }}: {{ f.value if f.value is not none else "missing" }} <span class="muted">({{ "reference " ~ f.expected if f.expected is not none else "a key the reference does not have" }})</span></li>{% endif %}{% endfor %}</ul>
{% elif not j.css and p[who + "_metrics"] and main_metric in p[who + "_metrics"] %}<span class="muted">{{ main_metric }} {{ "%.2f"|format(p[who + "_metrics"][main_metric]) }}</span>{% endif %}</td>{% endmacro %}
<h1>sftflow report · {{ name }} <span id="badge" class="badge {{ badge|lower|replace(' ', '-') }}">{{ badge }}</span></h1>
<p id="headline" class="{{ ('pass' if metrics.passed else 'fail') if metrics.gates else 'muted' }}">Verdict: {{ headline }}</p>
<p class="muted">Evaluated on {{ metrics.test_examples }} held-out test examples only (never trained on).
<a href="#summary">Run summary</a> · <a href="#probes">probes</a> · <a href="#forgetting">forgetting</a> ·
<a href="#hallucination">hallucinations and wrong values</a> · <a href="#predictions">predictions</a> below.</p>
<h2 id="verdict">Gates</h2>
{% if metrics.gates %}
<table id="gates"><tr><th>gate</th><th>rule</th><th>value</th><th>result</th></tr>
{% for g in metrics.gates %}<tr><td>{{ g.gate }}{% if g.metric %} ({{ g.metric }}){% endif %}</td><td>{{ g.rule }}</td>
<td>{{ gate_value(g) }}</td>
<td class="{{ 'pass' if g.passed else 'fail' }}">{{ g.status or ("pass" if g.passed else "FAIL") }}</td></tr>{% endfor %}
</table>
{% else %}<p>No gates configured.</p>{% endif %}
{% if metrics.gates_off %}<p class="muted">Default gates off: {% for n, why in metrics.gates_off.items() %}{{ n }} ({{ why }}){{ ", " if not loop.last }}{% endfor %}.</p>{% endif %}
<h2 id="metrics">Metrics: base vs tuned</h2>
<table><tr><th>metric</th><th>base</th><th>tuned</th><th>Δ tuned − base</th>{% if metrics.tuned_sampled %}<th>tuned, sampled</th>{% endif %}</tr>
{% for r in metric_rows %}<tr><td>{{ r.name }}{% if r.note %} <span class="muted">({{ r.note }})</span>{% endif %}</td>
<td>{{ r.base }}</td><td>{{ r.tuned }}</td><td class="{{ r.delta_class }}">{{ r.delta }}</td>{% if metrics.tuned_sampled %}<td>{{ r.sampled }}</td>{% endif %}</tr>{% endfor %}
</table>
<p class="muted">Mean [95% bootstrap interval] over the test examples. Δ is tuned − base on the same examples
(paired bootstrap): "better" or "worse" only where its interval excludes 0, taking the metric's direction into
account (hallucination rate and perplexity: lower is better). Metrics: {{ metrics.task.reason if metrics.task else "configured" }}.
{% for n in dropped %}<br>{{ n }}{% endfor %}</p>
{% if metric_plot %}<img alt="metrics" src="data:image/png;base64,{{ metric_plot }}">{% endif %}
{{ human_section|safe }}
<h2 id="summary">Run summary</h2>
<table>{% for label, text in summary %}<tr><th>{{ label }}</th><td>{{ text }}</td></tr>{% endfor %}</table>
<h2 id="training">Training</h2>
{% if train %}<p>{{ train.method }} on <code>{{ train.base_model }}</code>: {{ "{:,}".format(train.trainable_parameters) }} of
{{ "{:,}".format(train.total_parameters) }} parameters trained ({{ "%.2f"|format(100 * train.trainable_parameters / train.total_parameters) }}%),
{{ train.train_examples }} examples, {{ train.steps }} steps, {{ "%.2f"|format(train.epochs_done or 0) }} epochs{% if train.early_stopped %} (early stopped){% endif %},
{{ train.seconds }} s. Validation loss {{ "%.4f"|format(train.val_loss_initial) if train.val_loss_initial is not none else "?" }}
→ best {{ "%.4f"|format(train.val_loss_best) if train.val_loss_best is not none else "?" }}.</p>{% endif %}
{% if loss_plot %}<img alt="loss curves" src="data:image/png;base64,{{ loss_plot }}">{% endif %}
<h2 id="probes">Regression probes: base vs tuned</h2>
{% if metrics.probes %}<p><span class="{{ 'fail' if metrics.probes.failures else 'pass' }}">{{ metrics.probes.failures }} of
{{ metrics.probes.probes }} probes failed</span>{% for c, n in metrics.probes.failed_by_check.items() if n %} · {{ c }}: {{ n }}{% endfor %}{% if metrics.probes.unmet %};
<span class="unmet">{{ metrics.probes.unmet }} unmet</span> (an expectation neither model meets, such as a refusal neither
gives: not a regression, not a pass){% endif %}.
<span class="muted">Prompts outside the task; each is checked for tone, refusal, language, length, format and (where
it has an expected answer) fact regressions against the base model's answer.</span></p>
<table><tr><th>probe</th><th>prompt</th><th>base</th><th>tuned</th><th>result</th><th>evidence</th></tr>
{% for r in metrics.probes.results %}<tr><td>{{ r.id }}</td><td><pre>{{ r.prompt }}</pre></td><td><pre>{{ r.base }}</pre></td>
<td class="{{ '' if r.passed else 'bad' }}"><pre>{{ r.tuned }}</pre></td>{% set st = probe_status(r) %}<td class="{{ st|lower }}">{{ st }}</td>
<td>{% for c in r.checks if not c.passed or c.unmet %}<b>{{ c.check }}</b>: {{ c.evidence }}<br>{% else %}{% for c in r.checks if c.check == "fact" or "shorter" in c.evidence %}{{ c.check }}: {{ c.evidence }}<br>{% endfor %}<span class="muted">{{ r.checks|map(attribute="check")|join(", ") }}: ok</span>{% endfor %}</td></tr>{% endfor %}
</table>{% else %}<p class="muted">Not run (eval.probes: false).</p>{% endif %}
<h2 id="forgetting">Forgetting</h2>
{% if forgetting %}<p>General-text perplexity {{ "%.2f"|format(forgetting.general_text.base_ppl) }} (base) →
{{ "%.2f"|format(forgetting.general_text.tuned_ppl) }} (tuned):
<span id="ppl-change" class="{{ forgetting_css }}">{{ pct(forgetting.ppl_increase) }}</span>
<span class="muted">(flagged from {{ pct(forgetting.threshold) }}; {{ forgetting.general_text.records }} records of the {{ forgetting.general_text.source }})</span>.
General facts answered correctly: {{ "%.0f"|format(100 * forgetting.facts.base_accuracy) }}% →
{{ "%.0f"|format(100 * forgetting.facts.tuned_accuracy) }}% of {{ forgetting.facts.n }} questions.</p>
{% if forgetting_plot %}<img alt="forgetting" src="data:image/png;base64,{{ forgetting_plot }}">{% endif %}
{% if lost_facts %}<table><tr><th>fact the tuned model lost</th><th>expected</th><th>base</th><th>tuned</th></tr>
{% for r in lost_facts %}<tr><td>{{ r.prompt }}</td><td>{{ r.expect }}</td><td><pre>{{ r.base }}</pre></td><td class="bad"><pre>{{ r.tuned }}</pre></td></tr>{% endfor %}</table>{% endif %}
{% else %}<p class="muted">Not measured (eval.forgetting: false).</p>{% endif %}
{% if metrics.benchmarks %}{% set b = metrics.benchmarks %}<h3 id="benchmarks">Benchmarks (lm-eval-harness {{ b.lm_eval }})</h3>
<table><tr><th>task</th><th>metric</th><th>examples</th><th>base</th><th>tuned</th><th>tuned − base</th></tr>
{% for task, r in b.tasks.items() %}<tr><td>{{ task }}</td><td>{{ r.metric }}</td><td>{{ r.n }}</td><td>{{ "%.3f"|format(r.base) if r.base is not none else "–" }}</td>
<td>{{ "%.3f"|format(r.tuned) }}</td><td class="{{ 'fail' if r.drop and r.drop > 0 else 'pass' }}">{{ "%+.3f"|format(r.delta) if r.delta is not none else "–" }}</td></tr>{% endfor %}
</table><p class="muted">{{ "first %d examples per task" % b.limit if b.limit else "all examples" }}{{ ", %d-shot" % b.num_fewshot if b.num_fewshot is not none else "" }}; the gate benchmark_drop checks the largest drop.</p>{% endif %}
<h2 id="hallucination">Hallucination checks and wrong values</h2>
<dl class="defs"><dt>hallucination</dt><dd>the output states something that neither the prompt nor the reference
supports: a number or a name found in neither, a JSON key the task never uses, a value outside a field's allowed set,
or a free-text value found in neither. Hallucination rate: the share of outputs with at least one.</dd>
<dt>wrong value</dt><dd>a JSON field holds one of the field's allowed values, but not the reference's
(<code>"urgency": "low"</code> where the reference says <code>"high"</code>): an error of choice, not an invention.
Counted apart from hallucinations; it also lowers field accuracy and exact match.</dd></dl>
{% if hall %}{% set wt = hall.tuned.wrong_values %}{% set wb = hall.base.wrong_values if hall.base else none %}
<table id="hallucination-counts"><tr><th>outputs</th>{% if hall.base %}<th>base</th>{% endif %}<th>tuned</th></tr>
<tr><td>with a hallucination</td>{% if hall.base %}<td>{{ hall.base.flagged }} of {{ hall.base.n }}</td>{% endif %}
<td>{{ hall.tuned.flagged }} of {{ hall.tuned.n }}{% if hall.tuned.by_kind %} <span class="muted">({% for k, n in hall.tuned.by_kind.items() %}{{ k }} {{ n }}{{ ", " if not loop.last }}{% endfor %})</span>{% endif %}</td></tr>
{% if wt %}<tr><td>with a wrong value</td>{% if hall.base %}<td>{{ wb.outputs if wb else "–" }} of {{ hall.base.n }}</td>{% endif %}
<td>{{ wt.outputs }} of {{ wt.n }}</td></tr>
{% for field in wrong_fields %}<tr><td class="muted">&nbsp;&nbsp;wrong {{ field }}</td>{% if hall.base %}<td>{{ wb.by_field.get(field, 0) if wb else "–" }}</td>{% endif %}
<td>{{ wt.by_field.get(field, 0) }}</td></tr>{% endfor %}{% endif %}
</table>
{% if hall.examples %}<table><tr><th>prompt</th><th>reference</th><th>tuned output</th><th>hallucination flags</th></tr>
{% for x in hall.examples %}<tr><td><pre>{{ x.prompt }}</pre></td><td><pre>{{ x.reference }}</pre></td><td class="bad"><pre>{{ x.output }}</pre></td>
<td>{% for f in x.flags %}<b>{{ f.kind }}</b> {{ f.text }} <span class="muted">{{ f.detail }}</span><br>{% endfor %}</td></tr>{% endfor %}</table>
{% else %}<p>No tuned output was flagged as hallucinating.</p>{% endif %}{% endif %}
<h2 id="worst">Worst test examples <span class="muted">(lowest {{ main_metric }})</span></h2>
<table><tr><th>prompt</th><th>reference</th>{% if has_base %}<th>base</th>{% endif %}<th>tuned</th><th>tuned metrics</th></tr>
{% for p in worst %}<tr><td><pre>{{ p.prompt[-1].content }}</pre></td><td><pre>{{ p.reference }}</pre></td>
{% if has_base %}{{ answer(p, "base") }}{% endif %}{{ answer(p, "tuned") }}
<td class="muted">{% for k, v in p.tuned_metrics.items() if k not in hidden_metrics %}{{ k }}&nbsp;{{ "%.2f"|format(v) }}{{ " · " if not loop.last }}{% endfor %}</td></tr>{% endfor %}
</table>
<h2 id="data">Data</h2>
{% if data %}<p>{{ data.rows_read }} rows read → {{ data.kept }} kept, {{ data.rejected }} rejected, {{ duplicates }}{% if data.filtered %},
{{ data.filtered }} filtered by quality{% endif %}{% if data.unused %}, {{ data.unused }} unused{% endif %}.
Split train/val/test = {{ data.splits.train }}/{{ data.splits.val }}/{{ data.splits.test }}.</p>
{% if data.reject_reasons %}<table><tr><th>reject reason</th><th>rows</th></tr>
{% for r, n in data.reject_reasons.items() %}<tr><td>{{ r }}</td><td>{{ n }}</td></tr>{% endfor %}</table>{% endif %}
{% else %}<p class="muted">No data stats found.</p>{% endif %}
<p>Data card: <a href="{{ links.card }}">data_card.md</a> · provenance ledger: <a href="{{ links.ledger }}">ledger.sqlite</a>
(every row's source and fate) · rejected rows: <a href="{{ links.rejects }}">rejects.jsonl</a></p>
{% if data_card %}<details id="data-card"><summary>data card</summary><div class="card">{{ data_card|safe }}</div></details>{% endif %}
<h2 id="predictions">Predictions ({{ shown|length }} of {{ total_predictions }})</h2>
<p class="legend muted"><span class="ok">green</span> identical to the reference (JSON compared as values: key order and
spacing ignored){% if exact_task %} · <span class="bad">red</span> anything else{% else %} · uncoloured: worded
differently ({{ main_metric }} shown){% endif %}{% if has_fields %} · per field: <span class="field-ok">✓</span> same value
as the reference, <span class="field-bad">✗</span> different or missing{% endif %}.</p>
<table id="predictions-table"><tr><th>prompt</th><th>reference</th>{% if has_base %}<th>base</th>{% endif %}<th>tuned</th></tr>
{% for p in shown %}<tr><td><pre>{{ p.prompt[-1].content }}</pre></td><td><pre>{{ p.reference }}</pre></td>
{% if has_base %}{{ answer(p, "base") }}{% endif %}{{ answer(p, "tuned") }}</tr>{% endfor %}
</table>
<p class="muted">All predictions: eval/predictions.jsonl · metrics: eval/metrics.json · generated by sftflow {{ version }}</p>
</body></html>
"""


WORST_ROWS = 10


def _ci(m: dict, digits: int = 3) -> str:
    ci = m.get("ci95")
    return f"{m['mean']:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def metric_rows(metrics: dict, names: list[str]) -> list[dict]:
    """One row per metric: base, tuned, delta in numbers and words (all with intervals),
    sampled, plus perplexity, JSON fields and per-label accuracy."""
    tuned, base, sampled = metrics["tuned"], metrics.get("base") or {}, metrics.get("tuned_sampled") or {}
    deltas = metrics.get("delta") or {}
    rows = []
    for n in names:
        delta, cls = delta_words(deltas.get(n), lower_is_better(n))
        rows.append({"name": n, "note": note(n), "base": _ci(base[n]) if n in base else "–",
                     "tuned": _ci(tuned[n]), "delta": delta, "delta_class": cls,
                     "sampled": _ci(sampled[n]) if n in sampled else "–"})
    ppl_t, ppl_b = tuned.get("answer_perplexity"), base.get("answer_perplexity")
    if ppl_t:
        show = lambda p: f"{p['perplexity']:.2f}" + (f" [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]" if p.get("ci95") else "")  # noqa: E731
        delta, cls = ratio_words(ppl_b, ppl_t)
        rows.append({"name": "answer perplexity", "base": show(ppl_b) if ppl_b else "–", "tuned": show(ppl_t),
                     "note": f"answer tokens only, lower is better; reference point < "
                             f"{metrics.get('perplexity_reference', 15):g} for conversational data",
                     "delta": delta, "delta_class": cls, "sampled": "–"})
    for field, m in (tuned.get("json_fields") or {}).items():
        b = (base.get("json_fields") or {}).get(field)
        rows.append({"name": f"field {field}", "note": "JSON field accuracy", "base": _ci(b) if b else "–",
                     "tuned": _ci(m), "delta": "–", "delta_class": "", "sampled": "–"})
    for label, m in ((tuned.get("classification") or {}).get("by_label") or {}).items():
        b = ((base.get("classification") or {}).get("by_label") or {}).get(label)
        rows.append({"name": f"label {label}", "note": f"accuracy, n={m['n']}",
                     "base": f"{b['accuracy']:.3f}" if b else "–", "tuned": f"{m['accuracy']:.3f}",
                     "delta": "–", "delta_class": "", "sampled": "–"})
    return rows


def probe_status(r: dict) -> str:
    """pass, FAIL (a regression), or unmet (an expectation neither model meets: not a pass)."""
    return r.get("status") or ("pass" if r["passed"] else "FAIL")


def forgetting_css(forgetting: dict | None) -> str:
    """The perplexity change's colour: red where the gate flagged it, else better/worse/same."""
    if not forgetting:
        return ""
    g = forgetting["general_text"]
    return "fail" if forgetting["flagged"] else change_direction(g["base_ppl"], g["tuned_ppl"], True)


def gate_text(g: dict) -> str:
    if g["value"] is None:
        return "missing"
    return f"{g['value']:.1%}" if str(g["rule"]).rstrip().endswith("%") else f"{g['value']:.4g}"


def run_summary(run_dir: Path, metrics: dict, train: dict | None, data: dict | None) -> list[tuple[str, str]]:
    """Data, method, hyperparameters, trainable fraction and time, one line each."""
    import yaml

    rows = []
    if data:
        s = data.get("splits", {})
        rows.append(("data", f"{s.get('train', '?')}/{s.get('val', '?')}/{s.get('test', '?')} train/val/test examples "
                             f"from {data.get('rows_read', '?')} rows read ({data.get('rejected', '?')} rejected, "
                             f"{duplicate_text(data)})"))
    config_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    t = cfg.get("train") or {}
    if train:
        method = f"{train['method']} on {train['base_model']}"
        if train.get("base_model_source"):
            method += f" (from {train['base_model_source']['from']})"
        if train["method"] in ("lora", "qlora") and t.get("lora"):
            method += f" (LoRA r {t['lora']['r']}, alpha {t['lora']['alpha']}, {t['lora']['target_modules']})"
        rows.append(("method", method))
    if t:
        rows.append(("hyperparameters", f"lr {t.get('learning_rate')}, {t.get('epochs')} epochs, batch "
                                        f"{t.get('batch_size')} x {t.get('grad_accum')} accumulation, max length "
                                        f"{t.get('max_length')}, seed {t.get('seed')}"))
    if train:
        rows.append(("trainable", f"{train['trainable_parameters']:,} of {train['total_parameters']:,} parameters "
                                  f"({100 * train['trainable_parameters'] / train['total_parameters']:.2f}%)"))
        rows.append(("time", f"training {train.get('seconds')} s ({train.get('steps')} steps"
                             f"{', early stopped' if train.get('early_stopped') else ''}), evaluation "
                             f"{metrics.get('seconds', '?')} s"))
    task = metrics.get("task") or {}
    rows.append(("evaluation", f"{metrics['test_examples']} test examples; metrics {task.get('reason', 'configured')}"
                               + (f"; {metrics['probes']['probes']} regression probes" if metrics.get("probes") else "")
                               + ("; forgetting measured" if metrics.get("forgetting") else "")))
    return rows


def worst_examples(predictions: list[dict], main_metric: str, n: int = WORST_ROWS) -> list[dict]:
    scored = [p for p in predictions if main_metric in p.get("tuned_metrics", {})]
    scored.sort(key=lambda p: (p["tuned_metrics"][main_metric], -p["tuned_metrics"].get("hallucination_rate", 0)))
    return [p for p in scored if p["tuned_metrics"][main_metric] < 1][:n]


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _shown_metrics(metrics: dict, predictions: list[dict]) -> tuple[list[str], list[str]]:
    """The metrics worth a row, and a note for each left out because it repeats another."""
    names = [n for n, v in metrics["tuned"].items() if isinstance(v, dict) and "mean" in v]
    dropped = []
    if {"json_match", "exact_match"} <= set(names) and same_per_example(predictions, "json_match", "exact_match"):
        names.remove("json_match")
        dropped.append("json_match (same JSON value, key order and spacing ignored) is not shown: it equals "
                       "exact_match on every example, so no answer differed only in key order or spacing.")
    return names, dropped


def _judged(predictions: list[dict], exact_task: bool) -> list[dict]:
    """Predictions with each answer judged against the reference (colour and field marks)."""
    out = []
    for p in predictions:
        p = dict(p)
        for who in ("base", "tuned"):
            if who in p:
                p[f"{who}_judged"] = judge_answer(p[who], p["reference"], exact_task=exact_task)
        out.append(p)
    return out


IMAGE_DIR = "report_images"  # beside report.md: its plots as files, not inline base64


def write_report(run_dir: Path, data_dir: Path, name: str, max_rows: int = 50) -> Path:
    import sftflow
    from sftflow.eval.human import human_report_html, human_report_md
    from sftflow.stats import win_rate_interval

    metrics = _read_json(run_dir / "eval" / "metrics.json")
    if metrics is None:
        raise SftflowError(f"{run_dir / 'eval' / 'metrics.json'}: not found; run `sftflow eval` first")
    predictions = list(read_jsonl(run_dir / "eval" / "predictions.jsonl"))
    history = list(read_jsonl(run_dir / "metrics.jsonl")) if (run_dir / "metrics.jsonl").exists() else []
    names, dropped = _shown_metrics(metrics, predictions)
    main_metric = (metrics.get("task") or {}).get("main_metric") or ("exact_match" if "exact_match" in names else
                                                                     (names[0] if names else ""))
    train, data = _read_json(run_dir / "train_summary.json"), _read_json(data_dir / STATS)
    forgetting = metrics.get("forgetting")
    hall = metrics.get("hallucination")
    exact_task = is_exact_task(metrics.get("task"))
    judged = _judged(predictions, exact_task)
    card = data_dir / CARD
    plots = {"metrics": metric_plot(metrics, names), "loss": loss_plot(history),
             "forgetting": forgetting_plot(forgetting)}
    wrong = [(hall or {}).get(who, {}) or {} for who in ("base", "tuned")]
    extra = dict(
        name=name, metrics=metrics, data=data, main_metric=main_metric, version=sftflow.__version__,
        headline=headline(metrics),
        badge=badge(metrics),
        probe_status=probe_status,
        forgetting_css=forgetting_css(forgetting),
        summary=run_summary(run_dir, metrics, train, data),
        metric_rows=metric_rows(metrics, names),
        dropped=dropped,
        hidden_metrics={"json_match"} if dropped else set(),
        gate_value=gate_text,
        pct=lambda x: "–" if x is None else f"{x:+.1%}",
        forgetting=forgetting,
        lost_facts=[r for r in (forgetting or {}).get("facts", {}).get("results", [])
                    if r["base_correct"] and not r["tuned_correct"]],
        hall=hall,
        wrong_fields=sorted({f for w in wrong for f in (w.get("wrong_values") or {}).get("by_field", {})}),
        worst=worst_examples(judged, main_metric),
        duplicates=duplicate_text(data or {}),
        links={k: _rel(data_dir / f, run_dir / "eval") for k, f in
               (("card", CARD), ("ledger", LEDGER), ("rejects", REJECTS))},
        win_rate_interval=win_rate_interval,
        human_md=human_report_md(metrics),
    )
    b64 = {k: base64.b64encode(v).decode() if v else None for k, v in plots.items()}
    html = Environment(autoescape=True).from_string(TEMPLATE).render(
        **extra,
        train=train,
        loss_plot=b64["loss"],
        metric_plot=b64["metrics"],
        forgetting_plot=b64["forgetting"],
        data_card=card_html(card.read_text(encoding="utf-8"), data_dir) if card.exists() else None,
        shown=judged[:max_rows],
        total_predictions=len(predictions),
        has_base=bool(predictions and "base" in predictions[0]),
        exact_task=exact_task,
        has_fields=any((p.get("tuned_judged") or {}).get("fields") for p in judged[:max_rows]),
        human_section=human_report_html(metrics, run_dir),
    )
    path = run_dir / "eval" / "report.html"
    atomic_write_text(path, html)
    images = _write_images(run_dir / "eval" / IMAGE_DIR, plots)
    atomic_write_text(run_dir / "eval" / "report.md", render_markdown(extra, images))
    return path


def _write_images(folder: Path, plots: dict[str, bytes | None]) -> dict[str, str]:
    """The plots as PNG files for report.md; returns their paths relative to it. Plots of an
    earlier report that this one does not have are removed, so no stale chart is linked."""
    images = {}
    for key, png in plots.items():
        path = folder / f"{key}.png"
        if png:
            atomic_write_bytes(path, png)
            images[key] = f"{folder.name}/{path.name}"
        else:
            path.unlink(missing_ok=True)
    return images
