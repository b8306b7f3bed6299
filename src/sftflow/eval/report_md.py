"""report.md: the report in Markdown, its plots as files beside it (report_images/), for a pull
request or a wiki; the same facts as report.html (eval/report.py), first screen first.

    render_markdown(facts, images)   # facts: what write_report gives both templates
"""

from __future__ import annotations

import re
from html import escape as escape_html

from jinja2 import Environment

MD_ESCAPED = re.compile(r"([\\`\[\]|])")


def _cell(text) -> str:
    """A Markdown table cell that shows `text` (a prompt, a model's output) as text: HTML as
    entities, so viewers that pass HTML through never run a `<script>` from it; backslashes,
    backticks, brackets and pipes escaped (no code spans, links or images from it, no extra
    columns); line breaks as <br>, so the row holds."""
    text = MD_ESCAPED.sub(r"\\\1", escape_html(str(text), quote=False))
    return re.sub(r"\r\n|\r|\n", "<br>", text)


MD_TEMPLATE = """# sftflow report · {{ name }} · {{ badge }}

**Verdict: {{ headline }}**

Evaluated on {{ metrics.test_examples }} held-out test examples only (never trained on).

## Gates

{% if metrics.gates %}| gate | rule | value | result |
|---|---|---|---|
{% for g in metrics.gates %}| {{ g.gate }}{% if g.metric %} ({{ g.metric }}){% endif %} | {{ g.rule }} | {{ gate_value(g) }} | {{ g.status or ("pass" if g.passed else "**FAIL**") }} |
{% endfor %}{% else %}No gates configured.
{% endif %}{% if metrics.gates_off %}
Default gates off: {% for n, why in metrics.gates_off.items() %}{{ n }} ({{ why }}){{ ", " if not loop.last }}{% endfor %}.
{% endif %}
## Metrics: base vs tuned

| metric | base | tuned | Δ tuned − base |{% if metrics.tuned_sampled %} tuned, sampled |{% endif %}
|---|---|---|---|{% if metrics.tuned_sampled %}---|{% endif %}
{% for r in metric_rows %}| {{ r.name }}{% if r.note %} ({{ r.note }}){% endif %} | {{ r.base }} | {{ r.tuned }} | {{ r.delta }} |{% if metrics.tuned_sampled %} {{ r.sampled }} |{% endif %}
{% endfor %}
Mean [95% bootstrap interval]; Δ is tuned − base on the same examples (paired bootstrap): "better" or "worse"
only where its interval excludes 0 (hallucination rate and perplexity: lower is better).
{% for n in dropped %}{{ n }}
{% endfor %}

{% if images.metrics %}![metrics]({{ images.metrics }})
{% endif %}
## Run summary

| | |
|---|---|
{% for label, text in summary %}| {{ label }} | {{ text|cell }} |
{% endfor %}
## Training

{% if images.loss %}![loss curves]({{ images.loss }})
{% else %}No training log found.
{% endif %}
{{ human_md }}## Regression probes: base vs tuned

{% if metrics.probes %}**{{ metrics.probes.failures }} of {{ metrics.probes.probes }} probes failed.**{% if metrics.probes.unmet %} {{ metrics.probes.unmet }} unmet (an expectation neither model meets: not a regression, not a pass).{% endif %}

| probe | prompt | base | tuned | result | evidence |
|---|---|---|---|---|---|
{% for r in metrics.probes.results %}| {{ r.id }} | {{ r.prompt|cell }} | {{ r.base|cell }} | {{ r.tuned|cell }} | {{ "**FAIL**" if probe_status(r) == "FAIL" else probe_status(r) }} | {% for c in r.checks if not c.passed or c.unmet %}{{ c.check }}: {{ c.evidence|cell }}<br>{% else %}{% for c in r.checks if c.check == "fact" or "shorter" in c.evidence %}{{ c.check }}: {{ c.evidence|cell }}<br>{% endfor %}{% endfor %} |
{% endfor %}{% else %}Not run.
{% endif %}
## Forgetting

{% if forgetting %}General-text perplexity {{ "%.2f"|format(forgetting.general_text.base_ppl) }} → {{ "%.2f"|format(forgetting.general_text.tuned_ppl) }} (**{{ pct(forgetting.ppl_increase) }}**, flagged from {{ pct(forgetting.threshold) }}{{ ", FLAGGED" if forgetting.flagged }}); general facts correct {{ "%.0f"|format(100 * forgetting.facts.base_accuracy) }}% → {{ "%.0f"|format(100 * forgetting.facts.tuned_accuracy) }}% of {{ forgetting.facts.n }}.

{% if images.forgetting %}![forgetting]({{ images.forgetting }})
{% endif %}{% else %}Not measured.
{% endif %}{% if metrics.benchmarks %}
| benchmark (lm-eval {{ metrics.benchmarks.lm_eval }}) | metric | examples | base | tuned | tuned − base |
|---|---|---|---|---|---|
{% for task, r in metrics.benchmarks.tasks.items() %}| {{ task }} | {{ r.metric }} | {{ r.n }} | {{ "%.3f"|format(r.base) if r.base is not none else "–" }} | {{ "%.3f"|format(r.tuned) }} | {{ "%+.3f"|format(r.delta) if r.delta is not none else "–" }} |
{% endfor %}
{% endif %}
## Hallucination checks and wrong values

*Hallucination*: the output states something neither the prompt nor the reference supports (a number or name found
in neither, a JSON key the task never uses, a value outside a field's allowed set, free text found in neither).
*Wrong value*: a JSON field holds an allowed value that is not the reference's (`"urgency": "low"` for `"high"`): an
error, counted apart.

{% if hall %}Tuned outputs with a hallucination: **{{ hall.tuned.flagged }} of {{ hall.tuned.n }}**{% if hall.base %} (base {{ hall.base.flagged }}){% endif %}.
{% if hall.tuned.wrong_values %}{% set wt = hall.tuned.wrong_values %}Tuned outputs with a wrong value: **{{ wt.outputs }} of {{ wt.n }}**{% if wt.by_field %} ({% for f, n in wt.by_field.items() %}{{ f }} {{ n }}{{ ", " if not loop.last }}{% endfor %}){% endif %}{% if hall.base and hall.base.wrong_values %} (base {{ hall.base.wrong_values.outputs }}){% endif %}.
{% endif %}
{% if hall.examples %}| prompt | reference | tuned output | flags |
|---|---|---|---|
{% for x in hall.examples %}| {{ x.prompt|cell }} | {{ x.reference|cell }} | {{ x.output|cell }} | {% for f in x.flags %}{{ f.kind }} {{ f.text|cell }}<br>{% endfor %} |
{% endfor %}{% endif %}{% endif %}
## Worst test examples (lowest {{ main_metric }})

| prompt | reference | tuned | {{ main_metric }} |
|---|---|---|---|
{% for p in worst %}| {{ p.prompt[-1].content|cell }} | {{ p.reference|cell }} | {{ p.tuned|cell }} | {{ "%.2f"|format(p.tuned_metrics[main_metric]) }} |
{% endfor %}
## Data

{% if data %}{{ data.rows_read }} rows read → {{ data.kept }} kept, {{ data.rejected }} rejected, {{ duplicates }}{% if data.filtered %}, {{ data.filtered }} filtered by quality{% endif %}{% if data.unused %}, {{ data.unused }} unused{% endif %}.
{% endif %}Data card: [data_card.md]({{ links.card }}) · ledger: [ledger.sqlite]({{ links.ledger }}) · rejects: [rejects.jsonl]({{ links.rejects }})

All predictions: eval/predictions.jsonl · metrics: eval/metrics.json · generated by sftflow {{ version }}
"""



def render_markdown(facts: dict, images: dict[str, str]) -> str:
    env = Environment(autoescape=False, trim_blocks=False)
    env.filters["cell"] = _cell
    return env.from_string(MD_TEMPLATE).render(**facts, images=images)
