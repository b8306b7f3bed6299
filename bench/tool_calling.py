"""Tool calling on a real model: SmolLM2-135M-Instruct LoRA-tuned on a few hundred tool conversations.

    python bench/tool_calling.py --dir /tmp/smol-tools             # write, run (prepare, train, eval), score
    python bench/tool_calling.py --dir /tmp/smol-tools --score-only   # score an existing run again

The data is examples/tool_calling/make_data.py's task (the weather or the local time in a city, or
no tool at all) over 40 cities, rendered by examples/tool_calling/smollm2_tools.jinja (SmolLM2's own
template with Hermes-style tools: its template renders none). `sftflow run` prepares, trains with
LoRA and evaluates base and tuned on the held-out test split; this script then scores both models'
answers on their own, from eval/predictions.jsonl, with a reader of its own (not sftflow's parser):

- right call: on test prompts whose reference calls a tool, the answer calls exactly that tool, once,
  with arguments that are a JSON object valid against the tool's schema (jsonschema) — the target
  is >= 80% for the tuned model;
- right arguments: the same, and the arguments equal the reference's;
- no call when none is needed: on test prompts whose reference answers without a tool, the share
  of answers that call none.

Prints a table and writes DIR/tool_calling.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "tool_calling"
sys.path.insert(0, str(EXAMPLE))
from make_data import TOOLS, write_data  # noqa: E402

CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Rome", "Tokyo", "London", "Berlin", "Madrid", "Vienna", "Prague",
          "Dublin", "Lisbon", "Athens", "Warsaw", "Helsinki", "Nairobi", "Lagos", "Accra", "Dakar", "Delhi",
          "Mumbai", "Seoul", "Manila", "Hanoi", "Bangkok", "Jakarta", "Sydney", "Perth", "Auckland", "Toronto",
          "Denver", "Chicago", "Boston", "Havana", "Bogota", "Quito", "Santiago", "Montevideo", "Reykjavik"]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)

CONFIG = {
    "name": "smollm2-tools",
    "data": {"sources": [{"path": "raw/tools_chat.jsonl", "format": "auto"}], "output_dir": "data",
             "split": {"train": 0.7, "val": 0.1, "test": 0.2}, "seed": 42},
    "model": {"name_or_path": "smollm2-135m-instruct", "chat_template": "smollm2_tools.jinja"},
    "train": {"method": "lora", "learning_rate": 5e-4, "epochs": 2, "batch_size": 8, "grad_accum": 1,
              "max_length": 512},
    "eval": {"max_new_tokens": 48, "batch_size": 16, "probes": False, "forgetting": False,
             "gates": {"task_gain": ">= 0.3"}},
    "output_dir": "runs",
}


def calls_in(answer: str) -> list | None:
    """The calls an answer makes, as [(name, arguments)], read independently of sftflow: Hermes
    `<tool_call>` blocks, or a bare JSON call object / list (a reply whose tags were stripped as
    special tokens). None: the answer tries to call but its call is not JSON."""
    blocks = CALL.findall(answer)
    if not blocks:
        text = answer.strip()
        if not text.startswith(("{", "[")):
            return []
        blocks = [text]
    calls = []
    for block in blocks:
        try:
            value = json.loads(block)
        except ValueError:
            return None
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or "name" not in item:
                return None
            calls.append((item["name"], item.get("arguments")))
    return calls


def valid(name: str, args) -> bool:
    if name not in SCHEMAS or not isinstance(args, dict):
        return False
    try:
        jsonschema.validate(args, SCHEMAS[name])
    except jsonschema.ValidationError:
        return False
    return True


def score(predictions: list[dict], model: str) -> dict:
    """The three shares for one model's answers ("base" or "tuned")."""
    call_rows = no_call_rows = right_call = right_args = no_call = unreadable = 0
    for p in predictions:
        expected = calls_in(p["reference"])
        got = calls_in(p[model])
        if got is None:
            unreadable += 1
        if expected:
            call_rows += 1
            (want_name, want_args), = expected
            if got and len(got) == 1 and got[0][0] == want_name and valid(*got[0]):
                right_call += 1
                right_args += got[0][1] == want_args
        else:
            no_call_rows += 1
            no_call += got == []
    return {"call_prompts": call_rows, "right_call": right_call / max(call_rows, 1),
            "right_arguments": right_args / max(call_rows, 1), "no_call_prompts": no_call_rows,
            "no_call_when_none_needed": no_call / max(no_call_rows, 1), "unreadable_calls": unreadable}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="project folder (replaced unless --score-only)")
    ap.add_argument("--rows", type=int, default=300, help="conversations written (split 70/10/20)")
    ap.add_argument("--score-only", action="store_true", help="score DIR's existing run")
    args = ap.parse_args(argv)

    stages = {}
    if not args.score_only:
        shutil.rmtree(args.dir, ignore_errors=True)
        args.dir.mkdir(parents=True)
        write_data(args.dir / "raw", args.rows, seed=1, cities=CITIES)
        shutil.copy(EXAMPLE / "smollm2_tools.jinja", args.dir)
        (args.dir / "sftflow.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
        sftflow = str(Path(sys.executable).parent / "sftflow")
        for stage in ("prepare", "train", "eval"):
            start = time.perf_counter()
            proc = subprocess.run([sftflow, stage, str(args.dir / "sftflow.yaml")], text=True)
            stages[stage] = round(time.perf_counter() - start, 1)
            print(f"{stage}: {stages[stage]} s, exit {proc.returncode}", flush=True)
            if proc.returncode not in (0, 1):  # eval exits 1 when a gate fails: still scored
                return proc.returncode
    run = args.dir / "runs" / CONFIG["name"]
    predictions = [json.loads(line) for line in (run / "eval" / "predictions.jsonl").open()]
    result = {"stages_s": stages, "test_prompts": len(predictions),
              "base": score(predictions, "base"), "tuned": score(predictions, "tuned"),
              "sftflow_metrics": json.loads((run / "eval" / "metrics.json").read_text()).get("task", {})}
    print(f"\n{len(predictions)} held-out test prompts ({result['tuned']['call_prompts']} need a call, "
          f"{result['tuned']['no_call_prompts']} need none)\n")
    print("| model | right tool, once, schema-valid arguments | and the reference's arguments | "
          "no call where none is needed | unreadable calls |\n|---|---:|---:|---:|---:|")
    for model in ("base", "tuned"):
        s = result[model]
        print(f"| {model} | {s['right_call']:.1%} | {s['right_arguments']:.1%} | {s['no_call_when_none_needed']:.1%} "
              f"| {s['unreadable_calls']} |")
    (args.dir / "tool_calling.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
