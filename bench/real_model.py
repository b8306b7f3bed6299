"""The real-model project end to end, stage by stage, timed, with the figures the README states.

    python bench/real_model.py [--dir /tmp/smol] [--convert]

Runs what `sftflow init DIR --model smollm2-135m-instruct && sftflow run DIR/sftflow.yaml` runs,
one command per stage (init, prepare, train, eval, report) so each has its own time and peak
memory (RSS of the command), and records the load average before and after each stage: on a
shared machine other jobs slow every stage, so a figure without its load is not comparable.
`--convert` converts SmolLM2 into a fresh cache (the GGUF wheel is taken from the normal cache's
`offline/` folder, so no download) to time the conversion too; without it, the cached folder is used.
Prints a Markdown table and writes DIR.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SFTFLOW = str(Path(sys.executable).parent / "sftflow")
MODEL = "smollm2-135m-instruct"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def stage(name: str, args: list[str], env: dict) -> dict:
    before, started = load(), time.monotonic()
    # peak RSS of this command alone: a fresh helper process waits for just this child
    probe = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    peak_kib = int(r.stderr.strip().splitlines()[-1]) if r.stderr.strip() else 0
    print(r.stdout, end="")
    if r.returncode not in (0, 1):  # eval exits 1 when a gate fails: still a result
        sys.exit(f"{name} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return {"stage": name, "seconds": round(seconds, 1), "peak_rss_gib": round(peak_kib / 2**20, 2),
            "load_before": before, "load_after": load(), "rc": r.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "sftflow-real-model"))
    ap.add_argument("--convert", action="store_true", help="time the GGUF conversion in a fresh cache")
    a = ap.parse_args()
    root = Path(a.dir)
    shutil.rmtree(root, ignore_errors=True)
    env = dict(os.environ)
    stages = []
    if a.convert:
        cache = Path(env.get("SFTFLOW_CACHE", Path.home() / ".cache" / "sftflow"))
        fresh = Path(tempfile.mkdtemp(prefix="sftflow-cache-"))
        shutil.copytree(cache / "offline", fresh / "offline")
        env["SFTFLOW_CACHE"] = str(fresh)
    config = str(root / "sftflow.yaml")
    stages.append(stage("init (with conversion)" if a.convert else "init", [SFTFLOW, "init", str(root), "--model",
                                                                            MODEL], env))
    for name in ("prepare", "train", "eval", "report"):
        stages.append(stage(name, [SFTFLOW, name, config], env))
    estimate = subprocess.run([SFTFLOW, "estimate", config], capture_output=True, text=True, env=env).stdout
    cpu_line = next((x for x in estimate.splitlines() if x.startswith("this machine (CPU")), "")
    metrics = json.loads((root / "runs" / "smollm2-support-json" / "eval" / "metrics.json").read_text())
    summary = json.loads((root / "runs" / "smollm2-support-json" / "train_summary.json").read_text())
    out = {"stages": stages, "total_seconds": round(sum(s["seconds"] for s in stages), 1), "cpu_count": os.cpu_count(),
           "estimate": cpu_line, "headline": metrics.get("headline"),
           "gates": [{k: g.get(k) for k in ("gate", "value", "rule", "passed")} for g in metrics["gates"]],
           "train_steps": summary.get("steps"), "ru_self_maxrss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    Path(str(root) + ".json").write_text(json.dumps(out, indent=1))
    print("\n| stage | seconds | peak RSS GiB | load average before → after |\n|---|---:|---:|---|")
    for s in stages:
        print(f"| {s['stage']} | {s['seconds']:.0f} | {s['peak_rss_gib']:.2f} | {s['load_before']} → {s['load_after']} |")
    print(f"| total | {out['total_seconds']:.0f} | | |")
    print(f"\nestimate: {cpu_line}\nverdict: {out['headline']}")
    for g in out["gates"]:
        print(f"  {g['gate']}: {g['value']} ({g['rule']}): {'pass' if g['passed'] else 'FAIL'}")


if __name__ == "__main__":
    main()
