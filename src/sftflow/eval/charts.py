"""The report's charts as PNG bytes: loss curves, base vs tuned metrics, forgetting.

    png = metric_plot(metrics, ["exact_match", "hallucination_rate"])

A tuned bar's colour says whether the tuned model did better or worse than the base
(present.CHANGE_COLOURS: green better, amber worse, red what a gate failed, blue no clear
change); panels are titled with their direction, so a taller bar is never silently bad.
"""

from __future__ import annotations

import io

from sftflow.eval.present import BASE_COLOUR, CHANGE_COLOURS, change_direction, delta_direction
from sftflow.task_metrics import lower_is_better


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def loss_plot(history: list[dict]) -> bytes | None:
    from sftflow.plots import loss_figure

    fig = loss_figure(history)
    return None if fig is None else _png(fig)


def tuned_colours(metrics: dict, names: list[str]) -> list[str]:
    """Per metric, the tuned bar's colour: better or worse than the base where the paired interval
    says so (the metric's direction taken into account), else 'no clear change'."""
    deltas = metrics.get("delta") or {}
    out = []
    for n in names:
        if n == "answer_perplexity":
            b, t = (metrics.get("base") or {}).get(n), metrics["tuned"].get(n)
            way = change_direction(b["perplexity"] if b else None, t["perplexity"] if t else None, True)
        else:
            way = delta_direction(deltas.get(n), lower_is_better(n))
        out.append(CHANGE_COLOURS[way])
    return out


def _bars(ax, metrics: dict, names: list[str], value) -> None:
    """Base and tuned side by side per metric, with their 95% intervals as error bars."""
    width = 0.38
    for k, (label, color) in enumerate((("base", BASE_COLOUR), ("tuned", tuned_colours(metrics, names)))):
        block = metrics.get(label)
        if not block or not all(n in block for n in names):
            continue
        means, cis = zip(*(value(block[n]) for n in names), strict=True)
        errs = [[max(0.0, m - c[0]) for m, c in zip(means, cis, strict=True)],
                [max(0.0, c[1] - m) for m, c in zip(means, cis, strict=True)]]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=label, color=color)
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right")


def metric_panels(metrics: dict, names: list[str]) -> list[tuple[str, list[str]]]:
    """Higher-is-better metrics in one panel, lower-is-better rates in another and answer
    perplexity (its own scale) in a third: a bar that grows is never good in one and bad in
    the next panel without the title saying so."""
    higher = [n for n in names if not lower_is_better(n)]
    lower = [n for n in names if lower_is_better(n)]
    ppl = ["answer_perplexity"] if (metrics.get("tuned") or {}).get("answer_perplexity") else []
    return [p for p in (("higher", higher), ("lower", lower), ("ppl", ppl)) if p[1]]


def metric_plot(metrics: dict, names: list[str]) -> bytes | None:
    """The metric panels side by side, each titled with its direction."""
    panels = metric_panels(metrics, names)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [max(1.2, 0.9 * len(ns)) for _, ns in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(min(11, 1.5 + sum(widths)), 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    mean_ci = lambda m: (m["mean"], m.get("ci95") or [m["mean"]] * 2)  # noqa: E731
    for ax, (kind, ns) in zip(axes[0], panels, strict=True):
        if kind == "ppl":
            _bars(ax, metrics, ns, lambda p: (p["perplexity"], p.get("ci95") or [p["perplexity"]] * 2))
            ax.set_title("answer perplexity\n(lower is better)", fontsize=9)
            values = [b["answer_perplexity"]["perplexity"] for b in (metrics.get("base"), metrics["tuned"])
                      if b and b.get("answer_perplexity")]
            if max(values) / max(min(values), 1e-9) > 20:
                ax.set_yscale("log")
            continue
        _bars(ax, metrics, ns, mean_ci)
        ax.set_ylim(0, 1.05)
        ax.set_title("higher is better" if kind == "higher" else "lower is better", fontsize=9)
    axes[0][0].set_ylabel("mean (95% CI)")
    axes[0][0].legend(fontsize=8)
    return _png(fig)


def forgetting_colours(forgetting: dict) -> tuple[str, str]:
    """The tuned bars' colours: general-text perplexity (lower is better; red where the gate flagged
    it) and general facts answered right (higher is better)."""
    g, f = forgetting["general_text"], forgetting["facts"]
    ppl = "failed" if forgetting["flagged"] else change_direction(g["base_ppl"], g["tuned_ppl"], True)
    facts = change_direction(f["base_accuracy"], f["tuned_accuracy"], False)
    return CHANGE_COLOURS[ppl], CHANGE_COLOURS[facts]


def forgetting_plot(forgetting: dict | None) -> bytes | None:
    """General-text perplexity (lower is better) and general-fact accuracy (higher is better),
    base vs tuned, side by side."""
    if not forgetting:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g, f = forgetting["general_text"], forgetting["facts"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
    ppl_colour, facts_colour = forgetting_colours(forgetting)
    colors = [BASE_COLOUR, ppl_colour]
    values = [g["base_ppl"], g["tuned_ppl"]]
    cis = [g.get("base_ci95") or [v, v] for v in values[:1]] + [g.get("tuned_ci95") or [values[1]] * 2]
    errs = [[max(0.0, v - c[0]) for v, c in zip(values, cis, strict=True)],
            [max(0.0, c[1] - v) for v, c in zip(values, cis, strict=True)]]
    ax1.bar(["base", "tuned"], values, yerr=errs, capsize=3, color=colors)
    ax1.set_title(f"general-text perplexity ({forgetting['ppl_increase']:+.1%})\nlower is better", fontsize=9)
    if max(values) / max(min(values), 1e-9) > 20:
        ax1.set_yscale("log")
    ax2.bar(["base", "tuned"], [f["base_accuracy"], f["tuned_accuracy"]], color=[BASE_COLOUR, facts_colour])
    ax2.set_ylim(0, 1.05)
    ax2.set_title(f"general facts correct (n={f['n']})\nhigher is better", fontsize=9)
    return _png(fig)


