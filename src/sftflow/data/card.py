"""The data card: what went into training, in one page a reviewer or auditor can read.

Written by `prepare` from stats.json: sources (with licences), counts and fates, formats,
the quality filter (score histogram as quality_hist.png and the lowest-scoring examples),
duplicates, splits, leakage report, general-data mix and origins (human / synthetic /
general-mix). Every number here can be traced to rows in ledger.sqlite (`sftflow audit`).
"""

from __future__ import annotations

from pathlib import Path

from sftflow.io import atomic_write_text


def _histogram_png(path: Path, counts: list[int], threshold: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=100)
    edges = [i / 10 for i in range(10)]
    ax.bar(edges, counts, width=0.1, align="edge", color="#4c72b0", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:g}")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("quality score")
    ax.set_ylabel("examples")
    ax.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_data_card(folder: Path, stats: dict) -> Path:
    q = stats["quality"]
    _histogram_png(folder / "quality_hist.png", q["histogram"], q["threshold"])
    s = stats["splits"]
    lines = [
        "# Data card",
        "",
        f"Rows read: **{stats['rows_read']}** · kept **{stats['kept']}** · rejected **{stats['rejected']}** · "
        f"duplicates **{stats['duplicates']}** ({stats['exact_duplicates']} exact, {stats['near_duplicates']} near) · "
        f"filtered **{stats['filtered']}**" + (f" · unused general rows **{stats['unused']}**" if stats["unused"] else ""),
        "",
        "Every input row has exactly one fate; the counts above sum to the rows read (checked). "
        "`sftflow audit` shows the fate of any row or example from `ledger.sqlite`.",
        "",
        "## Sources",
        "",
        "| file | read | kept | rejected | duplicates | filtered | formats | licence |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    licences = stats.get("licenses", {})
    for f, c in stats["files"].items():
        fmts = ", ".join(f"{k} {v}" for k, v in stats["formats"].get(f, {}).items()) or "–"
        lic = next((v for k, v in licences.items() if f.startswith(k.split("*")[0])), "–")
        lines.append(f"| {f} | {c.get('read', 0)} | {c.get('kept', 0)} | {c.get('rejected', 0)} | "
                     f"{c.get('duplicates', 0)} | {c.get('filtered', 0)} | {fmts} | {lic} |")
    lines += ["", "All rows are converted to chat messages and rendered by one chat template."]
    sp = stats["system_prompts"]
    if sp["distinct"]:
        top = "; ".join(f"{n}× {text[:80]!r}" for text, n in sp["top"])
        lines.append(f"System prompts: {sp['distinct']} distinct (most common: {top}).")
    lines += ["", f"Length check: {stats['length_check']}."]
    if stats["truncated"]:
        lines.append(f"{stats['truncated']} kept examples are longer than the limit and will be truncated in training.")

    lines += ["", "## Quality filter", ""]
    if q["threshold"] is None:
        lines.append("Scores computed, filter off (`data.quality.enabled: false`).")
    else:
        lines.append(f"Rule-based score in [0, 1]; below {q['threshold']:g} an example is filtered.")
    lines += ["", "![quality score histogram](quality_hist.png)", ""]
    if stats["filter_reasons"]:
        lines += [f"- {reason}: {n}" for reason, n in stats["filter_reasons"].items()]
        lines.append("")
    if q["lowest"]:
        lines += ["Lowest-scoring examples (check what the rules did):", "", "| score | where | reasons | answer |",
                  "|---:|---|---|---|"]
        for ex in q["lowest"]:
            answer = ex["answer"].replace("|", "\\|").replace("\n", " ")[:120]
            lines.append(f"| {ex['score']:.2f} | {ex['where']} | {', '.join(ex['reasons']) or '–'} | {answer} |")

    lines += [
        "",
        "## Splits",
        "",
        f"Deterministic by group hash with seed {stats['seed']}; groups join examples with the same or a "
        "near-duplicate prompt" + (f" or the same `{stats['group_field']}`" if stats["group_field"] else "")
        + (f"; stratified by `{stats['stratify_field']}`" if stats["stratify_field"] else "") + ".",
        "",
        "| split | examples |",
        "|---|---:|",
        f"| train | {s['train']} |",
        f"| val | {s['val']} |",
        f"| test | {s['test']} |",
    ]
    if stats["general_mix_in_train"]:
        share = stats["general_mix_in_train"] / max(1, s["train"])
        lines += ["", f"General-data mix: {stats['general_mix_in_train']} of the {s['train']} training examples "
                      f"({share:.0%}) are general conversation data (`origin: general-mix`), in train only."]
    lines += ["", "Origins: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["origins"].items())) + "."]

    lk = stats["leakage"]
    lines += [
        "",
        "## Leakage report",
        "",
        f"- val/test prompts also in train: **{lk['exact_prompt_leaks']}** (must be 0)",
        f"- train examples sharing a {lk['ngram']}-word sequence with val/test: {lk['train_with_shared_ngram']} "
        f"(touching {lk['eval_with_shared_ngram']} of {lk['eval_examples']} val/test examples)",
    ]
    if lk["examples"]:
        lines.append("- e.g. " + ", ".join(f"train {e['train']} ~ eval {e['eval']}" for e in lk["examples"][:3]))

    lines += ["", "## Rejected rows", ""]
    if stats["reject_reasons"]:
        lines += [f"- {reason}: {n}" for reason, n in stats["reject_reasons"].items()]
        lines += ["", "Every rejected row, with file, line and field, is in `rejects.jsonl`."]
    else:
        lines.append("None.")
    if stats["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in stats["warnings"]]
    lines.append("")
    path = folder / "data_card.md"
    atomic_write_text(path, "\n".join(lines))
    return path
