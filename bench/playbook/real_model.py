"""The playbook's claims on a real pretrained model: SmolLM2-135M-Instruct, through `sftflow run`.

    python bench/playbook/real_model.py --work /tmp/playbook-135m          # 5 runs, ~40-60 min on 2 CPU cores
    python bench/playbook/real_model.py --work /tmp/playbook-135m --only full-2e-5,full-2e-4

Every arm is the real-model project (`sftflow init DIR --model smollm2-135m-instruct`: support
tickets → JSON, ~260 training examples, general chat mixed in at 25%, English prose for
perplexity, facts the base model knows) with one setting changed, run as a user types it
(`sftflow run ARM.yaml`, timed). The base model is evaluated on the test prompts once (first arm);
every arm measures its own forgetting (general-text perplexity, facts, probes) against the base.

  lora-5e-4      the project as written: LoRA r16, lr 5e-4, 2 epochs, 25% general data
  full-2e-5      full fine-tuning at 2e-5 (the playbook's full-FT rate), otherwise the same
  full-2e-4      full fine-tuning at 2e-4 (the rate the playbook warns makes a model forget)
  full-2e-4-nomix  the same without general data mixed in
  lora-early     LoRA 5e-4 for up to 4 epochs, stopping when validation loss stops dropping

Writes RESULTS_135M.md (a table and the verdicts) and results_135m.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SFTFLOW = str(Path(sys.executable).parent / "sftflow")

ARMS = {
    "lora-5e-4": {},
    "full-2e-5": {"train": {"method": "full", "learning_rate": 2e-5}},
    "full-2e-4": {"train": {"method": "full", "learning_rate": 2e-4}},
    "full-2e-4-nomix": {"train": {"method": "full", "learning_rate": 2e-4}, "data": {"mix": None}},
    "lora-early": {"train": {"epochs": 4, "early_stopping_patience": 1}},
}


def merged(base: dict, change: dict) -> dict:
    out = json.loads(json.dumps(base))
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def write_arm(project: Path, name: str, first: bool) -> Path:
    from sftflow.real_project import CONFIG

    cfg = merged(CONFIG, ARMS[name])
    cfg["name"] = name
    cfg["data"]["output_dir"] = "data" if cfg["data"].get("mix") else "data-nomix"
    cfg["eval"]["compare_base"] = first  # the base's test answers are the same for every arm: measured once
    if not first:
        cfg["eval"]["gates"] = {}  # task_gain needs the base's answers; it is read from the first arm
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _value(metric):
    """A metric as one number: eval writes {mean, ci95, n} where it has an interval."""
    return metric["mean"] if isinstance(metric, dict) else metric


def run_arm(project: Path, name: str, first: bool) -> dict:
    run = project / "runs" / name
    path = project / f"{name}.yaml"
    if (run / "eval" / "metrics.json").exists():  # finished by an earlier, interrupted call: its file times
        seconds = (run / "eval" / "metrics.json").stat().st_mtime - (run / ".sftflow.lock").stat().st_mtime
    elif (run / "train_summary.json").exists():  # trained, eval interrupted: evaluate it now, time the parts
        start = time.perf_counter()
        proc = subprocess.run([SFTFLOW, "eval", str(path)], text=True, capture_output=True)
        seconds = json.loads((run / "train_summary.json").read_text())["seconds"] + time.perf_counter() - start
    else:
        path = write_arm(project, name, first)
        start = time.perf_counter()
        proc = subprocess.run([SFTFLOW, "run", str(path)], text=True, capture_output=True)
        seconds = time.perf_counter() - start
    if not (run / "eval" / "metrics.json").exists():  # exit 1 is a failed gate only when eval wrote its metrics
        raise SystemExit(f"{name}: sftflow exited {proc.returncode} without eval metrics:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    forgetting = metrics.get("forgetting") or {}
    general, facts = forgetting.get("general_text") or {}, forgetting.get("facts") or {}
    return {
        "arm": name, "seconds": round(seconds, 1), "train_seconds": summary.get("seconds"),
        "method": summary["method"], "learning_rate": summary["learning_rate"],
        "train_examples": summary["train_examples"], "epochs_configured": summary["epochs_configured"],
        "epochs_done": summary["epochs_done"], "early_stopped": summary["early_stopped"],
        "val_loss_initial": summary["val_loss_initial"], "val_losses": summary["val_losses"],
        "exact_match": _value(metrics["tuned"]["exact_match"]), "json_valid": _value(metrics["tuned"]["json_valid"]),
        "base_exact_match": _value((metrics.get("base") or {}).get("exact_match")),
        "ppl_base": general.get("base_ppl"), "ppl_tuned": general.get("tuned_ppl"),
        "ppl_increase": forgetting.get("ppl_increase"),
        "facts_base": facts.get("base_accuracy"), "facts_tuned": facts.get("tuned_accuracy"),
        "probes_failed": (metrics.get("probes") or {}).get("failures"),
        "probes": len((metrics.get("probes") or {}).get("results") or []),
        "hallucination_rate": _value(metrics["tuned"].get("hallucination_rate")),
    }


def verdicts(rows: dict) -> list[tuple[str, str, str]]:
    """(claim, what was measured, holds / does not hold here), only for arms that ran."""
    out = []
    lora, f5, f4, nomix, early = (rows.get(k) for k in ARMS)
    if lora and f5 and f4:
        best_full = max(f5["exact_match"], f4["exact_match"])
        share = lora["exact_match"] / best_full if best_full else float("nan")
        out.append(("LoRA reaches 95-98% of full fine-tuning",
                    f"LoRA exact match {lora['exact_match']:.2f} vs best full FT {best_full:.2f} ({share:.0%})",
                    "holds" if share >= 0.95 else "does not hold here"))
    if f5 and f4:
        ppl = f4["ppl_increase"] > f5["ppl_increase"] and f4["ppl_increase"] > 0.10
        facts = f5["facts_tuned"] - f4["facts_tuned"] >= 0.05 and f4["facts_tuned"] < f4["facts_base"]
        verdict = ("holds" if ppl and facts else "holds on facts, not on perplexity" if facts
                   else "holds on perplexity, not on facts" if ppl else "does not hold here")
        out.append(("Full-FT learning rates well above 2e-5 make the model forget",
                    f"general-text perplexity {f5['ppl_increase']:+.1%} at 2e-5 vs {f4['ppl_increase']:+.1%} at 2e-4; "
                    f"facts {f5['facts_tuned']:.0%} vs {f4['facts_tuned']:.0%} (base {f4['facts_base']:.0%}); "
                    f"exact match {f5['exact_match']:.2f} vs {f4['exact_match']:.2f}", verdict))
    if f4 and nomix:
        holds = nomix["ppl_increase"] > f4["ppl_increase"] and abs(nomix["exact_match"] - f4["exact_match"]) <= 0.05
        out.append(("Mixing in general data limits forgetting",
                    f"full FT 2e-4: perplexity {nomix['ppl_increase']:+.1%} without general data vs "
                    f"{f4['ppl_increase']:+.1%} with 25%; facts {nomix['facts_tuned']:.0%} vs {f4['facts_tuned']:.0%}; "
                    f"exact match {nomix['exact_match']:.2f} vs {f4['exact_match']:.2f}",
                    "holds" if holds else "does not hold here"))
    if early and lora:
        losses = ", ".join(f"{v:.3f}" for v in early["val_losses"])
        holds = early["early_stopped"] and early["exact_match"] >= lora["exact_match"] - 0.05
        # Never triggered (validation loss fell at every epoch) is not a failed claim: the stop was not needed.
        verdict = ("holds" if holds else "does not hold here" if early["early_stopped"]
                   else "not reached: validation loss fell at every epoch")
        out.append(("Stop when validation loss stops dropping",
                    f"up to {early['epochs_configured']:g} epochs: validation loss by epoch {losses}; stopped after "
                    f"{early['epochs_done']:g} epochs (early_stopped={early['early_stopped']}), exact match "
                    f"{early['exact_match']:.2f} vs {lora['exact_match']:.2f} after 2 fixed epochs; perplexity "
                    f"{early['ppl_increase']:+.1%} vs {lora['ppl_increase']:+.1%}, facts {early['facts_tuned']:.0%} vs "
                    f"{lora['facts_tuned']:.0%}", verdict))
    return out


def markdown(rows: dict, meta: dict) -> str:
    lines = ["# The playbook's claims on SmolLM2-135M-Instruct", "",
             f"Written by `python bench/playbook/real_model.py` on {meta['date']} ({meta['machine']}; load average "
             f"{meta['load_before']} before, {meta['load_after']} after: the machine was shared, so times are upper "
             "bounds). Every number below was measured by that run; each arm is `sftflow run` on the real-model "
             "project with one setting changed.", "",
             "| arm | method, lr | epochs run | val loss first → last | exact match (base "
             f"{next((r['base_exact_match'] for r in rows.values() if r['base_exact_match'] is not None), float('nan')):.2f}) "
             "| general-text ppl | facts | probes failed | run time |", "|---|---|---:|---|---:|---|---|---:|---:|"]
    for r in rows.values():
        lines.append(f"| {r['arm']} | {r['method']} {r['learning_rate']:g} | {r['epochs_done']:g} | "
                     f"{r['val_loss_initial']:.3f} → {r['val_losses'][-1]:.3f} | {r['exact_match']:.2f} | "
                     f"{r['ppl_base']:.2f} → {r['ppl_tuned']:.2f} ({r['ppl_increase']:+.1%}) | "
                     f"{r['facts_base']:.0%} → {r['facts_tuned']:.0%} | {r['probes_failed']}/{r['probes']} | "
                     f"{r['seconds']:.0f} s |")
    lines += ["", "| claim | what we measured | here |", "|---|---|---|"]
    lines += [f"| {c} | {m} | **{v}** |" for c, m, v in verdicts(rows)]
    return "\n".join(lines) + "\n"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="project folder (kept; finished arms are reused)")
    ap.add_argument("--only", default=None, help=f"comma-separated arms, from: {', '.join(ARMS)}")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    wanted = args.only.split(",") if args.only else list(ARMS)
    unknown = [a for a in wanted if a not in ARMS]
    if unknown:
        ap.error(f"unknown arm(s): {', '.join(unknown)}")

    from sftflow.real_project import MODEL, write_model_project

    if not (args.work / "sftflow.yaml").exists():
        write_model_project(args.work, MODEL, log=lambda m: None)
    cache = args.out / "results_135m.json"
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    rows = cached.get("arms", {})
    meta = cached.get("meta") or {"date": str(date.today()), "load_before": load(),
                                  "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores"}
    ran = False
    for i, name in enumerate(wanted):
        if name in rows:
            continue
        rows[name] = run_arm(args.work, name, first=i == 0 and not rows)
        ran, r = True, rows[name]
        print(f"{name}: {r['seconds']:.0f} s, exact match {r['exact_match']:.2f}, ppl {r['ppl_increase']:+.1%}, "
              f"facts {r['facts_tuned']:.0%}, epochs {r['epochs_done']:g}", flush=True)
        cache.write_text(json.dumps({"meta": meta, "arms": rows}, indent=1) + "\n")
    if ran or "load_after" not in meta:
        meta["load_after"] = load()
    ordered = {k: rows[k] for k in ARMS if k in rows}
    cache.write_text(json.dumps({"meta": meta, "arms": ordered}, indent=1) + "\n")
    (args.out / "RESULTS_135M.md").write_text(markdown(ordered, meta))
    print(markdown(ordered, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
