"""The data card: what went into training, in one page a reviewer or auditor can read.

Written by `prepare` from stats.json: sources (with licences), counts and fates, formats,
the quality filter (score histogram as quality_hist.png and the lowest-scoring examples),
duplicates, splits, leakage report, general-data mix and origins (human / synthetic /
general-mix), the human/synthetic mix per split with the synthetic rules applied, and the
LLM judge's scores and its agreement with human review. Every number here can be traced to
rows in ledger.sqlite (`sftflow audit`).
"""

from __future__ import annotations

from pathlib import Path

from sftflow.data_folder import CARD, QUALITY_HIST
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


def _cell(text: str, width: int = 120) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:width]


def _examples_table(title: str, examples: list[dict]) -> list[str]:
    if not examples:
        return []
    lines = [title, "", "| score | where | reasons | answer |", "|---:|---|---|---|"]
    for ex in examples:
        lines.append(f"| {ex['score']:.2f} | {ex['where']} | {', '.join(ex['reasons']) or '–'} | {_cell(ex['answer'])} |")
    return lines + [""]


def _conflict_lines(c: dict | None) -> list[str]:
    """Prompts with different answers, each group's members side by side."""
    if not c or not c["groups"]:
        return []
    action = {"report": "all kept (synthetic answers that contradict a human one are unused)",
              "best": "the best answer kept (human first, then score)", "drop": "every member unused"}[c["policy"]]
    lines = ["", "## Conflicting labels", "",
             f"{c['groups']} prompts (or near-duplicate prompts) have different answers: {c['rows']} examples; "
             f"`data.conflicts: {c['policy']}`: {action}; {c['unused']} unused. Each group in the ledger: "
             "decision `conflict`.", ""]
    for k, group in enumerate(c["shown"], start=1):
        lines += [f"{k}. prompt: {_cell(group['prompt'])}", "", "   | answer | origin | score | fate | where |",
                  "   |---|---|---:|---|---|"]
        for m in group["members"]:
            lines.append(f"   | {_cell(m['answer'], 100)} | {m['origin']} | {m['score']:.2f} | {m['fate']} | {m['where']} |")
        lines.append("")
    return lines


def _semantic_lines(sem: dict | None) -> list[str]:
    """data.semantic: what the embeddings filtered, and the first near-duplicate clusters side by side."""
    if not sem:
        return []
    lines = ["", "## Semantic signals", "",
             f"{sem['embedded']} examples embedded with {sem['model']} in {sem['seconds']:.0f} s. Filtered: "
             f"{sem['unrelated_answer']} `unrelated_answer` (far less similar to its prompt than its task's median), "
             f"{sem['semantic_outlier']} `semantic_outlier` (far from its task's centroid). "
             f"{sem['clusters']} semantic clusters (cosine ≥ {sem['settings']['duplicate_threshold']:g}) hold "
             f"{sem['rows_in_clusters']} examples; {sem['duplicates']} were left out as duplicates that only the "
             "embeddings saw (ledger: `semantic duplicate of <id>`), the best-scored member of each cluster kept.", ""]
    for k, members in enumerate(sem["clusters_shown"], start=1):
        lines += [f"{k}. cluster of {len(members)}", "", "   | fate | prompt | answer | score | where |",
                  "   |---|---|---|---:|---|"]
        for m in members:
            lines.append(f"   | {m['fate']} | {_cell(m['prompt'], 80)} | {_cell(m['answer'], 80)} | {m['score']:.2f} | "
                         f"{m['where']} |")
        lines.append("")
    if sem["flagged_shown"]:
        lines += ["Filtered by the embeddings:", "", "| reason | prompt | answer | why | where |", "|---|---|---|---|---|"]
        for m in sem["flagged_shown"]:
            lines.append(f"| {m['reason']} | {_cell(m['prompt'], 80)} | {_cell(m['answer'], 80)} | {m['detail']} | "
                         f"{m['where']} |")
        lines.append("")
    return lines


def _synthetic_section(stats: dict) -> list[str]:
    """The human/synthetic mix per split, the rules applied, and who wrote the synthetic rows."""
    syn = stats.get("synthetic")
    if not syn or not (sum(syn["by_split"].values()) or syn["over_cap"] or syn["left_out_of_test"]):
        return []
    lines = ["", "## Synthetic data", "", "| split | examples | synthetic | share |", "|---|---:|---:|---:|"]
    for name, n in stats["splits"].items():
        k = syn["by_split"][name]
        lines.append(f"| {name} | {n} | {k} | {k / n:.0%} |" if n else f"| {name} | 0 | 0 | – |")
    lines.append("")
    if syn["in_test"]:
        lines.append("Synthetic examples may be in the test split (`data.synth.in_test: true`).")
    else:
        lines.append(f"Kept out of the test split (evaluation reflects real usage): {syn['moved_out_of_test']} re-split "
                     f"into train/val, {syn['left_out_of_test']} unused because their group has human test examples.")
    if syn["max_train_share"] is not None:
        lines.append(f"Cap: synthetic ≤ {syn['max_train_share']:.0%} of train; {syn['over_cap']} lowest-scored "
                     "synthetic examples over it are unused.")
    if syn["teachers"]:
        lines.append("Teachers: " + ", ".join(f"{k} ({v})" for k, v in syn["teachers"].items())
                     + "; templates: " + ", ".join(f"{k} ({v})" for k, v in syn["templates"].items())
                     + ". Seeds, parameters and timestamps per example: `ledger.sqlite` table `synthetic`.")
    return lines


def _judge_lines(j: dict) -> list[str]:
    lines = ["", f"LLM judge `{j['model']}` (rubric `{j['rubric']}`), 1-5 for correctness, helpfulness and format, "
             f"combined as (1 - {j['weight']:g}) x rules + {j['weight']:g} x (mean - 1) / 4: {j['scored']} examples "
             f"scored, {j['filtered']} filtered by the combined score, {j['malformed']} malformed verdicts, "
             f"{j['failed'] + j['budget']} not judged. Reasons per example: `sftflow audit --example ID`."]
    if j["means"]:
        lines.append("Mean scores: " + ", ".join(f"{k} {v:.2f}" for k, v in j["means"].items()) + ".")
    a = j.get("agreement")
    if a:
        if a["pairs"]:
            kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.2f}"
            lines.append(f"Agreement with human review (correctness, {a['pairs']} rated outputs): exact "
                         f"{a['exact']:.0%}, within one point {a['within_one']:.0%}, Cohen's kappa {kappa}; mean "
                         f"human {a['human_mean']:.2f} vs judge {a['judge_mean']:.2f}.")
        else:
            lines.append(f"Human review ratings found ({a['source']}), but none could be compared yet.")
    return lines


def _pii_lines(pii: dict | None) -> list[str]:
    """What the personal-data scan found, and what the configured mode did with it."""
    if pii is None:  # stats.json from before this section existed
        return []
    lines = ["", "## Personal data", ""]
    kinds = ", ".join(f"{k} {v}" for k, v in pii["kinds"].items())
    lines.append(f"Rule-based scan for emails, phone numbers and card numbers (Luhn-checked): **{pii['rows']}** "
                 f"rows with personal data" + (f" ({kinds})" if kinds else "") + f", {pii['kept']} of them kept.")
    if pii["mode"] == "redact":
        lines.append("`data.quality.pii: redact`: replaced by [EMAIL], [PHONE] and [CARD_NUMBER] before anything was "
                     "written (splits, rejects.jsonl with rejected rows' raw text, ledger, this card).")
    elif pii["mode"] == "drop":
        lines.append("`data.quality.pii: drop`: examples with personal data are filtered.")
    elif pii["rows"]:
        lines.append("`data.quality.pii: flag`: kept as written; set `redact` to replace them before training, or `drop`.")
    return lines


def _source_lines(sources: list[dict] | None) -> list[str]:
    """Per data.sources entry, when one has a weight or max_rows: how much of it reached train."""
    if not sources or not any(o["weight"] or o["max_rows"] for o in sources):
        return []
    lines = ["", "Per source (`data.sources`): rows past `max_rows` and training rows beyond a source's `weight` are "
             "unused (ledger reasons `source_max_rows`, `source_weight`); weights apply to train only, after the "
             "split, so val/test do not depend on them.", "",
             "| source | weight | max_rows | read | kept | in train | unused: max_rows | unused: weight | train share |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in sources:
        target = f" (target {o['target_share']:.0%})" if o["target_share"] is not None else ""
        lines.append(f"| {_cell(o['path'])} | {o['weight'] if o['weight'] is not None else '–'} | "
                     f"{o['max_rows'] or '–'} | {o['read']} | {o['kept']} | {o['train']} | {o['source_max_rows']} | "
                     f"{o['source_weight']} | {o['share']:.1%}{target} |")
    return lines


def write_data_card(folder: Path, stats: dict) -> Path:
    """data_card.md (and quality_hist.png) in `folder`, from stats.json's contents, section by section."""
    q = stats["quality"]
    _histogram_png(folder / QUALITY_HIST, q["histogram"], q["threshold"])
    lines = _header_and_sources(stats)
    lines += _quality_lines(stats)
    lines += _conflict_lines(stats.get("conflicts"))
    lines += _semantic_lines(stats.get("semantic"))
    lines += _pii_lines(stats.get("pii"))
    lines += _split_lines(stats)
    lines += _synthetic_section(stats)
    lines += _leakage_lines(stats["leakage"])
    lines += ["", "## Rejected rows", ""]
    if stats["reject_reasons"]:
        lines += [f"- {reason}: {n}" for reason, n in stats["reject_reasons"].items()]
        lines += ["", "Every rejected row, with file, line and field, is in `rejects.jsonl`."]
    else:
        lines.append("None.")
    if stats["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in stats["warnings"]]
    lines.append("")
    path = folder / CARD
    atomic_write_text(path, "\n".join(lines))
    return path


def _header_and_sources(stats: dict) -> list[str]:
    """The fates in one line, then per file: counts, formats and licence; system prompts and the length check."""
    lines = [
        "# Data card",
        "",
        f"Rows read: **{stats['rows_read']}** · kept **{stats['kept']}** · rejected **{stats['rejected']}** · "
        f"duplicates **{stats['duplicates']}** ({stats['exact_duplicates']} exact, {stats['near_duplicates']} near) · "
        f"filtered **{stats['filtered']}**" + (f" · unused **{stats['unused']}**" if stats["unused"] else ""),
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
    lines += _source_lines(stats.get("sources"))
    lines += ["", "All rows are converted to chat messages and rendered by one chat template."]
    if stats.get("template_date"):
        lines.append(f"The template writes today's date; every rendering (train, eval, serve, the export) uses "
                     f"{stats['template_date']} instead (model.template_date), so it does not change from day to day.")
    sp = stats["system_prompts"]
    if sp["distinct"]:
        top = "; ".join(f"{n}× {text[:80]!r}" for text, n in sp["top"])
        lines.append(f"System prompts: {sp['distinct']} distinct (most common: {top}).")
    default = stats.get("template_default_system")
    if default:
        bare = next((n for text, n in sp["top"] if text == ""), 0)
        lines.append(f"Rows without a system prompt ({bare} of the task rows) get the chat template's default system "
                     f"prompt {default[:120]!r}: the template renders it in training, eval, serve and the GGUF export "
                     "alike (give the rows a system prompt of their own, or set data.system_prompt, to train "
                     "without it).")
    lines += ["", f"Length check: {stats['length_check']}."]
    if stats["truncated"]:
        lines.append(f"{stats['truncated']} kept examples are longer than the limit and will be truncated in training.")
    return lines


def _quality_lines(stats: dict) -> list[str]:
    """The threshold, the judge, the histogram, filtered records by kind and the lowest-scored examples."""
    q = stats["quality"]
    lines = ["", "## Quality filter", ""]
    if q["threshold"] is None:
        lines.append("Scores computed, filter off (`data.quality.enabled: false`).")
    else:
        lines.append(f"Rule-based score in [0, 1]; below {q['threshold']:g} an example is filtered.")
    if stats.get("judge"):
        lines += _judge_lines(stats["judge"])
    lines += ["", "![quality score histogram](quality_hist.png)", ""]
    if stats["filter_reasons"]:
        lines += [f"- {reason}: {n}" for reason, n in stats["filter_reasons"].items()]
        lines.append("")
    lines += _examples_table("Lowest-scoring examples (check what the rules did):", q["lowest"])
    lines += _examples_table("Lowest-scored examples that were kept (what the filter let through):",
                             q.get("lowest_kept", []))
    return lines


def _split_lines(stats: dict) -> list[str]:
    """How splits are assigned, their sizes, the general-data mix and the origins."""
    s = stats["splits"]
    lines = [
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
    return lines


def _leakage_lines(lk: dict) -> list[str]:
    lines = [
        "",
        "## Leakage report",
        "",
        f"- val/test prompts also in train: **{lk['exact_prompt_leaks']}** (must be 0)",
        f"- train examples sharing a {lk['ngram']}-word sequence with val/test: {lk['train_with_shared_ngram']} "
        f"(touching {lk['eval_with_shared_ngram']} of {lk['eval_examples']} val/test examples)",
    ]
    if lk["examples"]:
        lines.append("- e.g. " + ", ".join(f"train {e['train']} ~ eval {e['eval']}" for e in lk["examples"][:3]))
    return lines
