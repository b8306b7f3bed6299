"""Reproduce the fine-tuning playbook's claims with sftflow's own pipeline, on the tiny model.

    python bench/playbook/run.py --quick             # <= 15 minutes on 2 CPU cores
    python bench/playbook/run.py --quick --seeds 3   # quick sizes, 3 seeds for the small effects (~25 min)
    python bench/playbook/run.py                     # full mode: more data, sizes and seeds

Writes RESULTS.md (claim · setting · what we measured · holds / does not hold here) and one
PNG per claim next to this file (or in --out). Every experiment is a sftflow project: a
config written to YAML, then `run_pipeline` (prepare, train, evaluate: the API behind `sftflow run`; the
memory runs train with the `sftflow train` CLI itself, so each run's peak memory is its own
process's). Every run is evaluated on one shared test split, prepared once from the
quickstart task; no number in RESULTS.md is written by hand. Verdicts use JSON field accuracy
(TASK_METRIC); exact match is reported next to it. `--seeds N` runs the seed-looped claims (quality,
template) over seeds 0..N-1 in any mode; with two or more seeds their verdicts also ask the difference
to exceed twice its standard error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread per process: on 2 shared cores, 2 OpenMP threads ran the tiny model 5-10x slower
# (measured here); set OMP_NUM_THREADS yourself on a machine of your own.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
SFTFLOW = str(Path(sys.executable).parent / "sftflow")

# Sizes per mode. pool: examples written by write_quickstart_data (shared test split = 10%).
MODES = {
    "smoke": dict(pool=300, variety=0.05, test=16, n_train=64, epochs=1, max_new_tokens=40, seeds=[0],
                  quality_small=24, quality_factor=3, quality_steps=3,
                  lrs_full=[3e-5, 1e-3], lrs_lora=[2e-3], mix=[0.0, 0.25],
                  template_sizes=[40, 64], template_seeds=[0], epoch_n=40, epoch_list=[1, 2],
                  mem_width=128, mem_layers=2, mem_steps=2),
    "quick": dict(pool=1000, variety=0.05, test=80, n_train=400, epochs=2, max_new_tokens=40, seeds=[0],
                  quality_small=100, quality_factor=5, quality_steps=80,
                  lrs_full=[3e-5, 1e-4, 1e-3], lrs_lora=[2e-4, 2e-3], mix=[0.0, 0.10, 0.25],
                  template_sizes=[100, 200, 400], template_seeds=[0], epoch_n=100, epoch_list=[1, 3, 10],
                  mem_width=512, mem_layers=6, mem_steps=3),
    "full": dict(pool=2500, variety=0.2, test=200, n_train=1200, epochs=3, max_new_tokens=40, seeds=[0, 1, 2],
                 quality_small=300, quality_factor=6, quality_steps=150,
                 lrs_full=[2e-5, 3e-5, 1e-4, 1e-3], lrs_lora=[1e-4, 2e-4, 2e-3], mix=[0.0, 0.05, 0.10, 0.25],
                 template_sizes=[100, 200, 400, 800, 1600], template_seeds=[0, 1, 2], epoch_n=300,
                 epoch_list=[1, 3, 10], mem_width=1024, mem_layers=8, mem_steps=3),
}
BASE_TRAIN = dict(method="full", learning_rate=1e-3, batch_size=8, grad_accum=1, max_length=256)
EVAL_METRICS = ["exact_match", "token_f1", "json_valid"]  # json_valid adds json_match, json_field_accuracy
# The primary task metric (verdicts, thresholds, plots): the share of intent, product and urgency right. Exact
# match sits near its floor on the tiny model; field accuracy scores three decisions per test example.
TASK_METRIC = "json_field_accuracy"
FORGETTING_FLAG = 0.10  # relative general-text perplexity increase counted as forgetting (sftflow's default)


def quiet(message: str) -> None:
    pass


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    """Work folder, mode settings, the base model, the shared test split and a cache of finished runs."""

    def __init__(self, mode: str, work: Path, seeds: int | None = None):
        from sftflow.model.tiny import build_tiny_model

        self.mode, self.s, self.work = mode, dict(MODES[mode]), work
        if seeds is not None:  # --seeds N: the seed-looped claims (quality, template) run seeds 0..N-1
            self.s["seeds"] = list(range(seeds))
            self.s["template_seeds"] = list(range(seeds))
        work.mkdir(parents=True, exist_ok=True)
        self.model = build_tiny_model(work / "tiny-model", log=quiet)
        self.runs: dict[str, dict] = {}
        self.ref_dir = self._reference_project()
        from sftflow.io import read_jsonl

        self.train_records = list(read_jsonl(self.ref_dir / "data" / "train.jsonl"))
        self.test_records = list(read_jsonl(self.ref_dir / "data" / "test.jsonl"))[: self.s["test"]]

    def _reference_project(self) -> Path:
        """The quickstart task prepared once: its train split feeds every variant, its test split scores them all."""
        from sftflow.data.prepare import prepare
        from sftflow.quickstart import write_quickstart_data

        root = self.work / "ref"
        write_quickstart_data(root / "raw", n=self.s["pool"], seed=0, variety=self.s["variety"])
        cfg = self.config(root, "ref", sources=["raw/support_alpaca.jsonl", "raw/support_chat.jsonl"],
                          split={"train": 0.8, "val": 0.1, "test": 0.1}, data_dir="data", split_seed=42)
        self.ref_stats = prepare(cfg, log=quiet)
        return root

    def config(self, root: Path, name: str, *, sources: list[str], data_dir: str, split: dict | None = None,
               data: dict | None = None, train: dict | None = None, eval: dict | None = None,
               model: str | None = None, output_dir: str = "runs", split_seed: int = 7):
        """Write root/sftflow.yaml and load it like the CLI does."""
        from sftflow.config import load_config

        cfg = {
            "name": name,
            # Variants split with a seed other than the reference's (42): under the reference's seed all of
            # its train rows hash to "train" again.
            # Near-duplicate prompt grouping off: on this low-variety task its unverified LSH pairs chained
            # almost every prompt into one group, so one split took everything (measured; see README).
            "data": {"sources": [{"path": p} for p in sources], "output_dir": data_dir, "seed": split_seed,
                     "split": split or {"train": 0.85, "val": 0.15, "test": 0.0}, "dedup": {"near": False},
                     **(data or {})},
            "model": {"name_or_path": str(model or self.model)},
            "train": {**BASE_TRAIN, "epochs": self.s["epochs"], **(train or {})},
            "eval": {"max_examples": self.s["test"], "max_new_tokens": self.s["max_new_tokens"],
                     "metrics": EVAL_METRICS, "compare_base": False, "probes": False, "forgetting": False,
                     **(eval or {})},
            "output_dir": output_dir,
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "sftflow.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        return load_config(root / "sftflow.yaml")

    def run(self, name: str, *, records: list[dict] | None = None, data: dict | None = None,
            train: dict | None = None, forgetting: bool = False, cli: bool = False) -> dict:
        """Prepare (when given its own records), train and evaluate one variant on the shared test split.

        Without records the variant trains on the base set (the first n_train reference train rows). Cached by name.
        """
        from sftflow.pipeline import run_pipeline

        if name in self.runs:
            return self.runs[name]
        t0 = time.time()
        root = self.work / "runs" / name
        ref_sources = [str(self.ref_dir / "raw" / f) for f in ("support_alpaca.jsonl", "support_chat.jsonl")]
        if records is None:
            records = [chat(r) for r in self.train_records[: self.s["n_train"]]]
        write_raw(root / "raw" / "train.jsonl", records)
        cfg = self.config(root, name, sources=["raw/train.jsonl"], data_dir="data", data=data, train=train)
        peak = {}

        def train_in_own_process(cfg) -> dict:
            summary, peak["rss_mib"] = train_cli(root / "sftflow.yaml")
            return summary

        # evaluation reads the shared test split: the same config, pointed at the reference data folder
        extra_eval = {"probes": True, "forgetting": True} if forgetting else {}
        eval_cfg = self.config(root / "eval-config", name, sources=ref_sources, data_dir=str(self.ref_dir / "data"),
                               train=train, eval=extra_eval, output_dir=str(root / "runs"))
        out = run_pipeline(cfg, log=quiet, train=train_in_own_process if cli else None, eval_cfg=eval_cfg,
                           report=False)
        summary = out.train
        result = {"name": name, "prepare": out.prepare, "train": summary, "eval": out.eval,
                  "peak_rss_mib": peak.get("rss_mib"), "run_dir": str(cfg.run_dir),
                  "seconds": round(time.time() - t0, 1)}
        self.runs[name] = result
        say(f"{name}: field accuracy {task(result):.3f}, exact match {em(result):.3f}, {summary['steps']} steps, "
            f"{result['seconds']:.0f}s")
        return result


def write_raw(path: Path, records: list[dict]) -> None:
    """Rows as a user would hand them to sftflow: raw JSONL in whatever format each row has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            row = {k: v for k, v in r.items() if k in ("messages", "system", "instruction", "input", "output", "prompt",
                                                        "completion")}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def train_cli(cfg_path: Path) -> tuple[dict, float]:
    """`sftflow train` in its own process: the summary it wrote and that process's peak RSS in MiB."""
    log_path = cfg_path.parent / "train.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen([SFTFLOW, "train", str(cfg_path)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_COLOR": "1"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"sftflow train {cfg_path} failed:\n{log_path.read_text()[-2000:]}")
    cfg = yaml.safe_load(cfg_path.read_text())
    summary = json.loads((cfg_path.parent / "runs" / cfg["name"] / "train_summary.json").read_text())
    return summary, usage.ru_maxrss / 1024


def em(result: dict) -> float:
    return result["eval"]["tuned"]["exact_match"]["mean"]


def task(result: dict) -> float:
    """The primary task metric (TASK_METRIC) on the shared test split."""
    return result["eval"]["tuned"][TASK_METRIC]["mean"]


def both(result: dict) -> str:
    """'field accuracy 0.587 (EM 0.125)'."""
    return f"field accuracy {task(result):.3f} (EM {em(result):.3f})"


def chat(record: dict) -> dict:
    return {"messages": record["messages"]}


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def mean_sd(values: list[float]) -> str:
    """'0.412' for one value, '0.412 ± 0.015 (n=3)' for several (sample standard deviation)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{mean(values):.3f} ± {sd(values):.3f} (n={len(values)})"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def sd(values: list[float]) -> float:
    """Sample standard deviation (0 for one value)."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def beats(a: list[float], b: list[float], what: str) -> tuple[bool, str]:
    """Whether arm a (one value per seed) beats arm b, and a detail line saying how sure that is.

    With two or more seeds the mean difference must exceed twice its standard error, sqrt(sd_a²/n + sd_b²/n);
    with one seed any positive difference counts, and no spread is measured.
    """
    diff = mean(a) - mean(b)
    if len(a) < 2 or len(b) < 2:
        return diff > 0, f"{what}: diff {diff:+.3f}; one seed: no spread measured."
    two_se = 2 * (sd(a) ** 2 / len(a) + sd(b) ** 2 / len(b)) ** 0.5
    if diff > two_se:
        return True, f"{what}: difference beyond the seed spread (diff {diff:+.3f}, 2 SE {two_se:.3f})."
    if diff > 0:
        return False, f"{what}: difference within the seed spread (diff {diff:+.3f}, 2 SE {two_se:.3f})."
    return False, f"{what}: no gain (diff {diff:+.3f}, 2 SE {two_se:.3f})."


def plt_figure(width=6.0, height=3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return plt, fig, ax


def save(plt, fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name)
    plt.close(fig)
    return name


# --- 1. quality over quantity -----------------------------------------------------------------

BOILERPLATE = ["As an AI language model, I cannot help with that request.",
               "I'm sorry, but I cannot assist with this. Please contact customer support."]


def add_noise(records: list[dict], rng: random.Random) -> tuple[list[dict], dict]:
    """Realistic noise: 20% wrong labels, 10% truncated answers, 10% boilerplate answers, 25% duplicated."""
    from sftflow.quickstart import INTENTS, PRODUCTS, URGENCIES

    out, counts = [], {"wrong_label": 0, "truncated": 0, "boilerplate": 0, "duplicates": 0}
    for r in records:
        msgs = [dict(m) for m in r["messages"]]
        answer = msgs[-1]["content"]
        roll = rng.random()
        if roll < 0.20:
            label = json.loads(answer)
            key = rng.choice(["intent", "product", "urgency"])
            choices = {"intent": INTENTS, "product": PRODUCTS, "urgency": URGENCIES}[key]
            label[key] = rng.choice([c for c in choices if c != label[key]])
            msgs[-1]["content"] = json.dumps(label)
            counts["wrong_label"] += 1
        elif roll < 0.30:
            msgs[-1]["content"] = answer[: rng.randint(8, len(answer) // 2)]
            counts["truncated"] += 1
        elif roll < 0.40:
            msgs[-1]["content"] = rng.choice(BOILERPLATE)
            counts["boilerplate"] += 1
        out.append({"messages": msgs})
    for r in rng.sample(out, k=len(out) // 4):
        out.append({"messages": [dict(m) for m in r["messages"]]})
        counts["duplicates"] += 1
    rng.shuffle(out)
    return out, counts


def claim_quality(b: Bench, out: Path) -> dict:
    s = b.s
    n_small, n_big, steps = s["quality_small"], s["quality_small"] * s["quality_factor"], s["quality_steps"]
    pool = b.train_records[:n_big]
    same_steps = {"epochs": 1000, "early_stopping_patience": 0, "extra": {"max_steps": steps}}
    rows = []
    for seed in s["seeds"]:
        rng = random.Random(seed)
        noisy, noise = add_noise(pool, rng)
        small = [chat(r) for r in rng.sample(pool, n_small)]
        train = {**same_steps, "seed": seed}
        curated = b.run(f"quality-curated-s{seed}", records=small, train=train)
        raw = b.run(f"quality-noisy-unfiltered-s{seed}", records=noisy, train=train,
                    data={"quality": {"enabled": False}})
        filtered = b.run(f"quality-noisy-filtered-s{seed}", records=noisy, train=train)
        rows.append((curated, raw, filtered, noise))
    curated_task = [task(r[0]) for r in rows]
    raw_task = [task(r[1]) for r in rows]
    filt_task = [task(r[2]) for r in rows]
    curated_em = [em(r[0]) for r in rows]
    raw_em = [em(r[1]) for r in rows]
    filt_em = [em(r[2]) for r in rows]
    stats = rows[0][2]["prepare"]
    removed = {k: stats[k] for k in ("rejected", "filtered", "exact_duplicates", "near_duplicates")}
    noise = rows[0][3]
    # a tie (both 0) does not count; with several seeds the gain must exceed twice its standard error
    holds, spread = beats(curated_task, raw_task, "Curated vs noisy unfiltered, field accuracy")
    plt, fig, ax = plt_figure()
    labels = [f"curated\n{rows[0][0]['train']['train_examples']} trained",
              f"noisy, unfiltered\n{rows[0][1]['train']['train_examples']} trained",
              f"noisy, sftflow filters\n{rows[0][2]['train']['train_examples']} trained"]
    for i, values in enumerate([curated_task, raw_task, filt_task]):
        ax.bar(i, mean(values), color=["#228833", "#ee6677", "#4477aa"][i])
        ax.plot([i] * len(values), values, "k.")
    ax.set_xticks(range(3), labels)
    ax.set_ylabel("test field accuracy")
    ax.set_title(f"Same budget: {steps} steps of batch {BASE_TRAIN['batch_size']}")
    plot = save(plt, fig, out, "quality.png")
    measured = (f"field accuracy: curated {mean_sd(curated_task)}, noisy unfiltered {mean_sd(raw_task)}, noisy "
                f"after sftflow's filters {mean_sd(filt_task)}; exact match {mean_sd(curated_em)} / "
                f"{mean_sd(raw_em)} / {mean_sd(filt_em)}; token F1 "
                f"{rows[0][0]['eval']['tuned']['token_f1']['mean']:.3f}"
                f" / {rows[0][1]['eval']['tuned']['token_f1']['mean']:.3f} / "
                f"{rows[0][2]['eval']['tuned']['token_f1']['mean']:.3f}")
    detail = [
        f"Noise injected into {len(pool)} clean examples (seed {s['seeds'][0]}): " +
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in noise.items()) + ".",
        f"What `prepare` removed from the noisy set (quality filter on, dedup on): {json.dumps(removed)}; "
        f"filter reasons: {json.dumps(stats['filter_reasons'])}.",
        "Wrong labels pass every rule-based filter (the answer is well-formed JSON); only the "
        "duplicates, truncated and boilerplate answers can be caught.",
        "sftflow always removes exact duplicates, so the 'unfiltered' arm still lost its exact copies "
        "(quality filter and near-dedup were off).",
        "Holds means: the curated set's field accuracy beats the noisy unfiltered set's (with two or more seeds, "
        "by more than twice the standard error of the difference).",
        spread,
    ]
    return {"claim": "Quality beats quantity", "setting": f"{n_small} curated vs {len(noisy)} noisy rows, "
            f"{steps} steps each, full FT lr 1e-3, {len(s['seeds'])} seed(s)", "measured": measured,
            "verdict": "holds" if holds else "does not hold here", "detail": detail, "plot": plot}


# --- 2. LoRA vs full fine-tuning ----------------------------------------------------------------


def memory_model(b: Bench) -> Path:
    """A randomly initialised Llama with the tiny tokenizer, wide enough (multiple of 64) for CPU 4-bit layers."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    dest = b.work / f"mem-model-{b.s['mem_width']}x{b.s['mem_layers']}"
    if (dest / "config.json").exists():
        return dest
    tok = AutoTokenizer.from_pretrained(b.model)
    w = b.s["mem_width"]
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=w, intermediate_size=3 * w, num_hidden_layers=b.s["mem_layers"],
        num_attention_heads=max(2, w // 64), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id))
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def memory_runs(b: Bench) -> list[dict]:
    """LoRA fp32, LoRA bf16 and QLoRA (NF4) on the same model and data through `sftflow train`: peak RSS each."""
    model = memory_model(b)
    records = [chat(r) for r in b.train_records[:120]]
    rows = []
    for label, method, bf16 in (("LoRA, 32-bit base", "lora", False), ("LoRA, 16-bit base", "lora", True),
                                ("QLoRA, 4-bit NF4 base", "qlora", False)):
        name = f"memory-{method}-{'bf16' if bf16 else 'fp32'}"
        root = b.work / "runs" / name
        write_raw(root / "raw" / "train.jsonl", records)
        cfg = b.config(root, name, sources=["raw/train.jsonl"], data_dir="data", model=str(model),
                       split={"train": 0.8, "val": 0.2, "test": 0.0},
                       train={"method": method, "learning_rate": 2e-4, "bf16": bf16, "batch_size": 4,
                              "early_stopping_patience": 0, "extra": {"max_steps": b.s["mem_steps"]}})
        from sftflow.data.prepare import prepare

        prepare(cfg, log=quiet)
        summary, rss = train_cli(root / "sftflow.yaml")
        rows.append({"label": label, "rss_mib": rss, "summary": summary})
        say(f"{name}: peak RSS {rss:.0f} MiB")
    return rows


def estimator_7b() -> dict:
    from transformers import LlamaConfig

    from sftflow.train.estimate import estimate_memory

    llama2_7b = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                            num_attention_heads=32, num_key_value_heads=32)
    shape = dict(batch_size=1, seq_len=512)
    return {
        "full": estimate_memory(llama2_7b, method="full", gradient_checkpointing=True, **shape).total_gib,
        "lora": estimate_memory(llama2_7b, method="lora", gradient_checkpointing=True, **shape).total_gib,
        "qlora": estimate_memory(llama2_7b, method="qlora", **shape).total_gib,
    }


def claim_lora(b: Bench, out: Path) -> dict:
    full = b.run("full-lr0.001", train={"learning_rate": 1e-3}, forgetting=True, cli=True)
    lora = b.run("lora-lr0.002", train={"method": "lora", "learning_rate": 2e-3}, forgetting=True, cli=True)
    share = task(lora) / task(full) if task(full) else None
    frac = lora["train"]["trainable_parameters"] / lora["train"]["total_parameters"]
    mem = memory_runs(b)
    est = estimator_7b()
    q = mem[2]["summary"]["qlora_memory"]
    plt, fig, _ = plt_figure()
    plt.close(fig)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    ax1.bar([0, 1], [task(full), task(lora)], color=["#4477aa", "#ee6677"])
    ax1.set_xticks([0, 1], ["full FT", f"LoRA r16\n({pct(frac)} trainable)"])
    ax1.set_ylabel("test field accuracy")
    ax2.bar(range(3), [m["rss_mib"] for m in mem], color=["#4477aa", "#66ccee", "#228833"])
    ax2.set_xticks(range(3), [m["label"].replace(", ", "\n") for m in mem])
    ax2.set_ylabel("peak RSS of `sftflow train` (MiB)")
    ax2.set_title(f"{b.s['mem_width']}-wide, {b.s['mem_layers']}-layer Llama, CPU", fontsize=9)
    plot = save(plt, fig, out, "lora_vs_full.png")
    holds = share is not None and share >= 0.95
    measured = (f"LoRA {both(lora)} vs full {both(full)} = {pct(share)} of full; trainable "
                f"{pct(frac)}; peak RSS full {full['peak_rss_mib']:.0f} MiB, LoRA {lora['peak_rss_mib']:.0f} MiB")
    detail = [
        f"Tiny model ({full['train']['total_parameters']:,} parameters): full FT trains all of them, LoRA r16 "
        f"{lora['train']['trainable_parameters']:,}.",
        "Holds means: LoRA's field accuracy is at least 95% of full fine-tuning's.",
        "Peak memory on CPU is the RSS of the whole `sftflow train` process (Python, torch, data), so at "
        "this size the runtime dominates and the methods differ little.",
        "Memory by base precision, measured on a randomly initialised Llama (the tiny model's width is not a "
        "multiple of 64, which bitsandbytes' CPU 4-bit kernels need): " + "; ".join(
            f"{m['label']} {m['rss_mib']:.0f} MiB" for m in mem) +
        f". Weights alone: {q['weights_mib_4bit']:.1f} MiB in NF4 vs {q['weights_mib_unquantised']:.1f} MiB "
        f"unquantised ({q['weights_mib_unquantised'] / q['weights_mib_4bit']:.1f}x smaller, embeddings stay fp32).",
        f"sftflow's estimator for Llama-2-7B (batch 1 x 512 tokens, gradient checkpointing): full FT "
        f"{est['full']:.1f} GiB, LoRA (16-bit base) {est['lora']:.1f} GiB, QLoRA {est['qlora']:.1f} GiB; the "
        "playbook says about 14 GB for LoRA and about 6 GB for QLoRA.",
    ]
    verdict = "holds" if holds else "does not hold here"
    if not holds:
        detail.append(f"Why not here (not established): in {lora['train']['steps']} steps LoRA r16 has only begun "
                      "to learn the task on this ~2M-parameter model, where full fine-tuning at 1e-3 has; the "
                      "quickstart's own LoRA run, with several times the steps, does learn it. Whether more steps "
                      "close the gap is not measured here; the 95-98% figure is for billion-parameter models.")
    return {"claim": "LoRA reaches 95-98% of full fine-tuning at a fraction of the memory",
            "setting": f"tiny model, {b.s['epochs']:g} epochs; full lr 1e-3, LoRA r16 lr 2e-3",
            "measured": measured, "verdict": verdict, "detail": detail, "plot": plot,
            "extra": {"memory": [{k: v for k, v in m.items() if k != "summary"} for m in mem], "estimator_7b": est}}


# --- 3. learning rate and forgetting; 4. mixing general data -------------------------------------


def forgetting_of(r: dict) -> dict:
    f = r["eval"]["forgetting"]
    hello = next(p for p in r["eval"]["probes"]["results"] if p["id"] == "greeting-hello")
    return {"ppl_increase": f["ppl_increase"], "base_ppl": f["general_text"]["base_ppl"],
            "tuned_ppl": f["general_text"]["tuned_ppl"], "facts_base": f["facts"]["base_accuracy"],
            "facts_tuned": f["facts"]["tuned_accuracy"], "probe_failures": r["eval"]["probes"]["failures"],
            "probes": r["eval"]["probes"]["probes"], "hello_passed": hello["passed"], "hello_base": hello["base"],
            "hello_tuned": hello["tuned"]}


def claim_learning_rate(b: Bench, out: Path) -> dict:
    runs = []
    for lr in b.s["lrs_full"]:
        runs.append(("full", lr, b.run(f"full-lr{lr:g}", train={"learning_rate": lr}, forgetting=True)))
    for lr in b.s["lrs_lora"]:
        runs.append(("lora", lr, b.run(f"lora-lr{lr:g}", train={"method": "lora", "learning_rate": lr},
                                       forgetting=True)))
    table = ["| method | lr | field accuracy | exact match | general-text ppl (base → tuned) | general facts | "
             "probes failed | \"Hello\" → tuned answer |", "|---|---:|---:|---:|---|---|---:|---|"]
    for method, lr, r in runs:
        f = forgetting_of(r)
        table.append(f"| {method} | {lr:g} | {task(r):.3f} | {em(r):.3f} | {f['base_ppl']:.2f} → "
                     f"{f['tuned_ppl']:.2f} "
                     f"({f['ppl_increase']:+.1%}) | {f['facts_base']:.0%} → {f['facts_tuned']:.0%} | "
                     f"{f['probe_failures']}/{f['probes']} | {json.dumps(f['hello_tuned'][:60])} "
                     f"{'(pass)' if f['hello_passed'] else '(FAIL)'} |")
    full = [(lr, r) for m, lr, r in runs if m == "full"]
    low = [forgetting_of(r)["ppl_increase"] for lr, r in full if lr <= 3e-5]
    high = [forgetting_of(r)["ppl_increase"] for lr, r in full if lr > 3e-5]
    holds = bool(low and high) and max(low) < FORGETTING_FLAG <= max(high)
    plt, fig, ax = plt_figure()
    ax2 = ax.twinx()
    xs = [lr for lr, _ in full]
    ax.plot(xs, [task(r) for _, r in full], "o-", color="#4477aa", label="test field accuracy")
    ax2.plot(xs, [100 * forgetting_of(r)["ppl_increase"] for _, r in full], "s--", color="#ee6677",
             label="general-text ppl change (%)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (full fine-tuning)")
    ax.set_ylabel("test field accuracy", color="#4477aa")
    ax2.set_ylabel("general-text perplexity change (%)", color="#ee6677")
    ax.axvline(3e-5, color="grey", lw=0.8, ls=":")
    plot = save(plt, fig, out, "learning_rate.png")
    measured = "; ".join(f"{m} {lr:g}: {both(r)}, ppl {forgetting_of(r)['ppl_increase']:+.1%}, facts "
                         f"{forgetting_of(r)['facts_tuned']:.0%}" for m, lr, r in runs)
    detail = ["\n".join(table),
              f"Forgetting is flagged at a {FORGETTING_FLAG:.0%} rise of general-text perplexity (sftflow's default "
              "`eval.forgetting_threshold`). The task metric at each rate is part of the trade-off: a rate that "
              "forgets nothing but learns nothing in this budget is no recipe."]
    return {"claim": "Full-FT learning rates above 3e-5 make the model forget",
            "setting": f"full FT at {', '.join(f'{x:g}' for x in b.s['lrs_full'])}; LoRA at "
                       f"{', '.join(f'{x:g}' for x in b.s['lrs_lora'])}; {b.s['epochs']:g} epochs",
            "measured": measured, "verdict": "holds" if holds else "does not hold here", "detail": detail,
            "plot": plot}


def general_data(b: Bench) -> Path:
    """General conversations from the tiny model's pre-training generator (a seed eval does not use)."""
    from sftflow.model.corpus import general_corpus

    path = b.work / "general" / "general.jsonl"
    if not path.exists():
        conversations, _ = general_corpus(n_conversations=2000, seed=777)
        write_raw(path, [{"messages": c} for c in conversations])
    return path


def claim_mixing(b: Bench, out: Path) -> dict:
    general = general_data(b)
    runs = []
    for ratio in b.s["mix"]:
        if ratio == 0:
            runs.append((ratio, b.run("full-lr0.001", train={"learning_rate": 1e-3}, forgetting=True)))
        else:
            data = {"mix": {"path": str(general), "ratio": ratio}}
            runs.append((ratio, b.run(f"mix-{int(100 * ratio)}", data=data, forgetting=True)))
    rows = [(ratio, task(r), forgetting_of(r)) for ratio, r in runs]
    holds = rows[-1][2]["ppl_increase"] < rows[0][2]["ppl_increase"] and rows[-1][1] >= rows[0][1] - 0.05
    plt, fig, ax = plt_figure()
    ax2 = ax.twinx()
    xs = [100 * ratio for ratio, _, _ in rows]
    ax.plot(xs, [e for _, e, _ in rows], "o-", color="#4477aa")
    ax2.plot(xs, [100 * f["ppl_increase"] for _, _, f in rows], "s--", color="#ee6677")
    ax.set_xlabel("general data in train (%)")
    ax.set_ylabel("test field accuracy", color="#4477aa")
    ax2.set_ylabel("general-text perplexity change (%)", color="#ee6677")
    plot = save(plt, fig, out, "mixing.png")
    measured = "; ".join(f"{100 * ratio:.0f}%: {both(r)}, ppl {forgetting_of(r)['ppl_increase']:+.1%}, facts "
                         f"{forgetting_of(r)['facts_tuned']:.0%}" for ratio, r in runs)
    detail = ["| general share | train examples | field accuracy | exact match | general-text ppl change | "
              "general facts | probes failed |\n|---:|---:|---:|---:|---:|---|---:|\n" + "\n".join(
                  f"| {100 * ratio:.0f}% | {r['train']['train_examples']} | {task(r):.3f} | {em(r):.3f} | "
                  f"{forgetting_of(r)['ppl_increase']:+.1%} | {forgetting_of(r)['facts_base']:.0%} → "
                  f"{forgetting_of(r)['facts_tuned']:.0%} | {forgetting_of(r)['probe_failures']} |"
                  for ratio, r in runs),
              "`data.mix` adds general conversations to the training split only (the task examples stay the "
              "same), so mixed runs take a few more steps per epoch. Holds means: less forgetting at "
              f"{100 * rows[-1][0]:.0f}% than at 0% with field accuracy within 0.05."]
    return {"claim": "Mixing in general data limits forgetting", "setting": "full FT lr 1e-3, "
            f"{', '.join(f'{100 * x:.0f}%' for x in b.s['mix'])} general conversations via `data.mix`",
            "measured": measured, "verdict": "holds" if holds else "does not hold here", "detail": detail,
            "plot": plot}


# --- 5. template consistency ---------------------------------------------------------------------


def mixed_formats(records: list[dict], rng: random.Random) -> list[dict]:
    """The same examples as users often concatenate them: a third chat with the system prompt, a third
    a JSON instruction pasted into the user turn, a third a plain prompt/completion pair."""
    out = []
    for r in records:
        system, user, answer = (m["content"] for m in r["messages"])
        kind = rng.randrange(3)
        if kind == 0:
            out.append(chat(r))
        elif kind == 1:
            out.append({"messages": [{"role": "user", "content": json.dumps({"instruction": system, "input": user})},
                                     {"role": "assistant", "content": answer}]})
        else:
            out.append({"prompt": f"Customer message: {user}\nLabel it as JSON.", "completion": answer})
    return out


def needed(sizes: list[int], scores: list[float], target: float) -> float | None:
    """Smallest dataset size whose (linearly interpolated) score reaches target; None if never."""
    if scores[0] >= target:
        return float(sizes[0])
    for (n0, s0), (n1, s1) in zip(zip(sizes, scores, strict=True), zip(sizes[1:], scores[1:], strict=True), strict=False):
        if s0 < target <= s1:
            return n0 + (target - s0) / (s1 - s0) * (n1 - n0)
    return None


def claim_template(b: Bench, out: Path) -> dict:
    sizes, seeds = b.s["template_sizes"], b.s["template_seeds"]
    curves = {"one template": [], "mixed formats": []}  # field accuracy per size, one value per seed
    ems = {"one template": [], "mixed formats": []}  # exact match, the same shape
    for n in sizes:
        one, mixed = [], []
        for seed in seeds:
            subset = random.Random(seed).sample(b.train_records[: sizes[-1]], n)
            one.append(b.run(f"template-one-n{n}-s{seed}", records=[chat(r) for r in subset], train={"seed": seed}))
            mixed.append(b.run(f"template-mixed-n{n}-s{seed}", records=mixed_formats(subset, random.Random(seed)),
                               train={"seed": seed}))
        curves["one template"].append([task(r) for r in one])
        curves["mixed formats"].append([task(r) for r in mixed])
        ems["one template"].append([em(r) for r in one])
        ems["mixed formats"].append([em(r) for r in mixed])
    means = {k: [mean(v) for v in vs] for k, vs in curves.items()}
    # data the mixed set needs to match what one template reached at the middle size
    mid = len(sizes) // 2
    target = means["one template"][mid]
    n_one = needed(sizes, means["one template"], target)
    n_mixed = needed(sizes, means["mixed formats"], target)
    ratio = n_mixed / n_one if n_mixed and n_one else None
    # and at the middle size, one template must beat mixed formats by more than the seed spread (n >= 2)
    clear, spread = beats(curves["one template"][mid], curves["mixed formats"][mid],
                          f"One template vs mixed formats at {sizes[mid]} examples, field accuracy")
    plt, fig, ax = plt_figure()
    for (k, vs), color in zip(curves.items(), ["#228833", "#ee6677"], strict=True):
        ax.plot(sizes, means[k], "o-", color=color, label=k)
        for n, v in zip(sizes, vs, strict=True):
            ax.plot([n] * len(v), v, ".", color=color, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test field accuracy (one-template test prompts)")
    ax.legend()
    plot = save(plt, fig, out, "template.png")
    if target == 0:
        extra, verdict = "one template did not learn the task at these sizes, nothing to compare", "does not hold here"
    elif ratio is None:
        extra = ("mixed formats never reached it in the sizes tried" if n_mixed is None
                 else "one template reached it at the smallest size")
        verdict = "holds" if n_mixed is None else "does not hold here"
    else:
        extra = f"mixed formats needed {n_mixed:.0f} examples vs {n_one:.0f} ({ratio:.2f}x)"
        verdict = "holds" if ratio >= 1.3 else "does not hold here"
    if len(seeds) >= 2 and not clear:  # one seed: the data rule alone, as no spread is measured
        verdict = "does not hold here"
    measured = ("field accuracy by size " + ", ".join(
        f"{n}: {mean_sd(curves['one template'][i])} vs {mean_sd(curves['mixed formats'][i])}"
        for i, n in enumerate(sizes)) + f" (one template vs mixed); to reach {target:.3f}: {extra}; exact match "
        + ", ".join(f"{n}: {mean(ems['one template'][i]):.3f} vs {mean(ems['mixed formats'][i]):.3f}"
                    for i, n in enumerate(sizes)))
    detail = ["Test prompts are in the one-template form (system prompt + message). The mixed set holds the same "
              "examples in three prompt formats; sftflow still renders every row through one chat template, so "
              "what varies is the prompt text, the way users' concatenated data varies.",
              "Holds means: the mixed set needs at least 1.3x the data to match the one-template set's "
              f"field accuracy at {sizes[mid]} examples, and (with two or more seeds) one template beats mixed "
              f"formats at {sizes[mid]} examples by more than twice the standard error of the difference.",
              spread]
    return {"claim": "One template, or you need ~30% more data", "setting": f"{len(sizes)} sizes x "
            f"{len(seeds)} seed(s), {b.s['epochs']:g} epochs each", "measured": measured, "verdict": verdict,
            "detail": detail, "plot": plot}


# --- 6. epochs and early stopping -----------------------------------------------------------------


def val_curve(r: dict) -> list[tuple[float, float]]:
    rows = [json.loads(line) for line in (Path(r["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return [(m.get("epoch", 0.0), m["eval_loss"]) for m in rows if "eval_loss" in m]


def claim_epochs(b: Bench, out: Path) -> dict:
    records = [chat(r) for r in b.train_records[: b.s["epoch_n"]]]
    runs = []
    for n in b.s["epoch_list"]:
        runs.append((f"{n} epochs", b.run(f"epochs-{n}", records=records, train={
            "epochs": n, "early_stopping_patience": 0, "evals_per_epoch": 2,
            "extra": {"load_best_model_at_end": False}})))  # the last model, as a run without early stopping keeps
    most = max(b.s["epoch_list"])
    runs.append((f"early stopping (max {most})", b.run("epochs-early-stop", records=records, train={
        "epochs": most, "early_stopping_patience": 1, "evals_per_epoch": 2})))
    longest = runs[-2][1]
    over = longest["train"]["overfitting"]
    es = runs[-1][1]
    best_fixed = max(task(r) for _, r in runs[:-1])
    holds = task(es) >= best_fixed - 0.02 and task(es) > task(longest)
    plt, fig, ax = plt_figure()
    for label, r in runs:
        xs, ys = zip(*val_curve(r), strict=True)
        ax.plot(xs, ys, "o-" if "early" in label else ".-", label=f"{label}: field acc {task(r):.3f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    plot = save(plt, fig, out, "epochs.png")
    start = (f"validation loss was lowest at step {over['best_step']} ({over['val_loss_best']:.3f}) and rose to "
             f"{over['val_loss_last']:.3f} by the end" if over else "validation loss did not turn up")
    measured = ("; ".join(f"{label}: {both(r)}, {r['train']['epochs_done']:.1f} epochs run"
                          for label, r in runs) + f"; {most} epochs: {start}")
    detail = [f"{len(records)} training examples (a small set, so overfitting can show in {most} epochs). The "
              "fixed-epoch runs keep their last model (`load_best_model_at_end: false`); the early-stopping run "
              "keeps sftflow's defaults (patience 1, best checkpoint kept).",
              "Holds means: early stopping's field accuracy is within 0.02 of the best fixed epoch count's and "
              "beats the longest run's."]
    return {"claim": "Stop when validation loss stops dropping", "setting": f"{len(records)} examples, "
            f"{', '.join(map(str, b.s['epoch_list']))} epochs vs early stopping, full FT lr 1e-3",
            "measured": measured, "verdict": "holds" if holds else "does not hold here", "detail": detail,
            "plot": plot}


# --- 7. padding side --------------------------------------------------------------------------------


def claim_padding(b: Bench, out: Path) -> dict:
    from sftflow.eval.generate import generate
    from sftflow.eval.metrics import exact_match, json_field_accuracy
    from sftflow.model.chat import prompt_messages
    from sftflow.model.load import load_tuned

    r = b.run("full-lr0.001", train={"learning_rate": 1e-3}, forgetting=True)  # cached from claim 2 when run
    model, template = load_tuned(Path(r["run_dir"]), str(b.model), method="full")
    prompts = [prompt_messages(x) for x in b.test_records]
    refs = [x["messages"][-1]["content"] for x in b.test_records]
    n = b.s["max_new_tokens"]
    outs = {"one at a time": generate(model, template, prompts, max_new_tokens=n, batch_size=1),
            "left-padded batches (sftflow)": generate(model, template, prompts, max_new_tokens=n, batch_size=16),
            "right-padded batches": generate(model, template, prompts, max_new_tokens=n, batch_size=16,
                                             padding_side="right")}
    scores = {k: mean([json_field_accuracy(o, ref) for o, ref in zip(v, refs, strict=True)]) for k, v in outs.items()}
    ems = {k: mean([exact_match(o, ref) for o, ref in zip(v, refs, strict=True)]) for k, v in outs.items()}
    single = outs["one at a time"]
    same = {k: sum(a == c for a, c in zip(v, single, strict=True)) / len(single) for k, v in outs.items()}
    broken = [(i, outs["right-padded batches"][i]) for i in range(len(refs))
              if outs["right-padded batches"][i] != single[i]][:3]
    # holds: right padding changes outputs (the breakage) while sftflow's left-padded batches match one-at-a-time
    holds = same["right-padded batches"] < 1.0 and same["left-padded batches (sftflow)"] == 1.0
    plt, fig, ax = plt_figure()
    ax.bar(range(3), list(scores.values()), color=["#bbbbbb", "#228833", "#ee6677"])
    ax.set_xticks(range(3), [k.replace(" (", "\n(") for k in scores])
    ax.set_ylabel("test field accuracy")
    plot = save(plt, fig, out, "padding.png")
    measured = (", ".join(f"{k}: field accuracy {v:.3f} (EM {ems[k]:.3f}), {same[k]:.0%} identical to one-at-a-time"
                          for k, v in scores.items()))
    detail = ["Same tuned model (full FT lr 1e-3), same prompts, same `sftflow.eval.generate.generate` code path; "
              "only `padding_side` differs (batch 16, greedy).",
              "Right-padded outputs that differ from one-at-a-time decoding:\n\n" + "\n".join(
                  f"- reference `{refs[i]}` · one at a time `{single[i][:80]}` · right-padded `{o[:80]}`"
                  for i, o in broken) if broken else "No right-padded output differed."]
    return {"claim": "Pad on the left for decoder-only batched generation", "setting": f"{len(refs)} test prompts, "
            "batch 16, greedy", "measured": measured, "verdict": "holds" if holds else "does not hold here",
            "detail": detail, "plot": plot}


# --- report ---------------------------------------------------------------------------------------

CLAIMS = [("quality", claim_quality), ("lora", claim_lora), ("learning_rate", claim_learning_rate),
          ("mixing", claim_mixing), ("template", claim_template), ("epochs", claim_epochs),
          ("padding", claim_padding)]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_results(out: Path, mode: str, command: str, b: Bench, results: list[dict], seconds: float) -> Path:
    import torch
    import transformers

    s = b.s
    lines = [
        "# The playbook's claims, measured with sftflow",
        "",
        f"Written by `{command}` on {date.today()} "
        f"in {seconds / 60:.1f} minutes ({os.cpu_count()} CPU cores, {platform.machine()}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}). Mode `{mode}`: the tiny pre-trained "
        f"model, the quickstart task at variety {s['variety']:g} ({s['pool']} examples written, "
        f"{b.ref_stats['splits']['train']} in the reference train split), every run scored on the same "
        f"{len(b.test_records)} held-out test examples. Seeds: {', '.join(map(str, s['seeds']))} "
        f"(template: {', '.join(map(str, s['template_seeds']))}). Every number below was measured by that run. "
        "Verdicts use JSON field accuracy (the share of intent, product and urgency right), with exact match "
        "shown next to it: exact match sits near its floor at this scale, and each test example contributes "
        "three fields, so field accuracy resolves small differences that exact match cannot.",
        "",
        "| claim | setting | what we measured | here |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {cell(r['claim'])} | {cell(r['setting'])} | {cell(r['measured'])} | **{r['verdict']}** |")
    lines += ["", "\"Does not hold here\" is a finding about this scale (a ~2M-parameter model, a few hundred "
              "steps on CPU), not a verdict on the practice; the sections say why where we know.", ""]
    for i, r in enumerate(results, 1):
        lines += [f"## {i}. {r['claim']} — {r['verdict']}", "", f"![{r['claim']}]({r['plot']})", ""]
        for d in r["detail"]:
            lines += [d, ""]
    lines += ["## Runs", "", "| run | train examples | steps | field accuracy | exact match | seconds |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, r in b.runs.items():
        lines.append(f"| {name} | {r['train']['train_examples']} | {r['train']['steps']} | {task(r):.3f} | "
                     f"{em(r):.3f} | {r['seconds']:.0f} |")
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    claims = [{k: v for k, v in r.items() if k != "detail"} for r in results]
    summary = {"mode": mode, "seconds": round(seconds, 1), "task_metric": TASK_METRIC, "seeds": s["seeds"],
               "template_seeds": s["template_seeds"], "claims": claims}
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="<= 15 minutes on 2 CPU cores")
    parser.add_argument("--smoke", action="store_true", help="seconds-scale sizes, for the test suite only")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and the plots go")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for projects and runs")
    parser.add_argument("--only", default=None, help="comma-separated claims to run (default: all)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds 0..N-1 for the seed-looped claims, quality and template (default: the mode's own)")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    command = ("python bench/playbook/run.py" + (f" --{mode}" if mode != "full" else "")
               + (f" --seeds {args.seeds}" if args.seeds is not None else ""))
    work = args.work or args.out / f"_work-{mode}"
    if work.exists():
        shutil.rmtree(work)
    args.out.mkdir(parents=True, exist_ok=True)
    import warnings

    warnings.filterwarnings("ignore")
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("sftflow").setLevel(logging.ERROR)
    started = time.time()
    b = Bench(mode, work, seeds=args.seeds)
    say(f"mode {mode}: reference project ready, {len(b.train_records)} train / {len(b.test_records)} test")
    wanted = args.only.split(",") if args.only else [k for k, _ in CLAIMS]
    results = []
    for key, fn in CLAIMS:
        if key in wanted:
            t0 = time.time()
            results.append(fn(b, args.out))
            say(f"claim {key}: {results[-1]['verdict']} ({time.time() - t0:.0f}s)")
    path = write_results(args.out, mode, command, b, results, time.time() - started)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    say(f"wrote {path} in {(time.time() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
