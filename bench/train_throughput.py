"""Training throughput: sftflow's default training path vs a plain TRL `SFTTrainer` script, side by side.

    python bench/train_throughput.py                 # tiny + 25M Llama, long-tail + quickstart data, 3 repeats
    python bench/train_throughput.py --quick         # fewer steps, baseline + sftflow, 3 (model, data) pairs, < 10 min
    python bench/train_throughput.py --profile       # where the time goes, one torch.profiler run per path

Every (model, data, variant) run is a fresh child process, so its peak RSS is its own, and the
repeats are interleaved (baseline, sftflow, variants, baseline, ...) so background load on a
shared machine hits every variant alike. Each run trains one epoch with the same examples,
effective batch (4 x 4 accumulation), optimizer steps, learning rate, schedule, LoRA settings
and seed. The first `--warmup` optimizer steps are excluded; tokens/s counts the non-padding
tokens of the remaining steps over the time from the end of the warm-up step to the end of
`trainer.train()` (so sftflow's per-epoch validation pass and checkpoint save are included).
Final val loss is computed the same way for every variant afterwards: answer tokens only,
one example at a time, fp32. The median of the repeats is reported.

- baseline: what a user gets from a plain script: `SFTTrainer(model, SFTConfig(...), peft_config=...)`
  on prompt/completion conversations, leaving TRL's throughput defaults alone (pad to the
  longest in the batch, no packing, `bf16=True`, `gradient_checkpointing=True`, `max_length` 1024);
- sftflow: `sftflow.train.build.build_trainer` with the config defaults;
- variants: sftflow with one setting changed (see VARIANTS), and the baseline in fp32 without
  gradient checkpointing, to separate what TRL's CPU defaults cost from what padding-free wins.

Results: bench/results/train_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# Randomly initialised Llama with the tiny model's tokenizer: ~25M parameters, for the ratio beyond the toy.
LLAMA_25M = {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8, "num_attention_heads": 8,
             "num_key_value_heads": 4, "max_position_embeddings": 1024, "rope_theta": 10000.0,
             "rms_norm_eps": 1e-5, "tie_word_embeddings": False}

# Training examples per run: one epoch at effective batch 16. Validation gets 1/8 of that, as
# the default 80/10/10 split does, since sftflow's per-epoch validation pass is inside the timing.
SIZES = {"tiny": 512, "llama-25m": 160, "smollm2": 96}
QUICK_SIZES = {"tiny": 224, "llama-25m": 96, "smollm2": 64}
QUICK_PAIRS = [("tiny", "longtail"), ("llama-25m", "longtail"), ("llama-25m", "quickstart")]
LEARNING_RATE = {"tiny": 2e-3, "llama-25m": 1e-3, "smollm2": 5e-4}  # smollm2: the real-model project's rate
DATA_CHOICES = ["longtail", "quickstart", "tickets"]  # tickets: the real-model project's prepared task
BATCH, ACCUM = 4, 4

# name -> (path, settings): "trl" settings are SFTConfig overrides of the baseline script, "sftflow"
# settings are train-config overrides. "sftflow-row-mask" is the previous default: padding-free rows
# under transformers' SDPA with a block-diagonal mask over the whole row (see train/packed_attention.py).
VARIANTS = {
    "baseline": ("trl", {}),
    "sftflow": ("sftflow", {}),
    "baseline-fp32-nogc": ("trl", {"bf16": False, "gradient_checkpointing": False}),
    "sftflow-row-mask": ("sftflow", {}),
    "sftflow-padded": ("sftflow", {"padding_free": False}),
    "sftflow-grouped": ("sftflow", {"extra": {"train_sampling_strategy": "batch_rebalance"}}),
    "sftflow-gc": ("sftflow", {"gradient_checkpointing": True}),
    "sftflow-bf16": ("sftflow", {"bf16": True}),
    "sftflow-lora-dropout": ("sftflow", {"lora": {"dropout": 0.05}}),
}
QUICK_VARIANTS = ["baseline", "sftflow"]

WORD_TEXT = ("the a of to and in is it that for on with as was at by this be from or have an they which one you "
         "were all we when there can more if out so what up about into than them could time only new some "
         "order refund router camera tablet phone laptop charger screen battery warranty address delivery "
         "broken slow late missing account password invoice subscription cancel upgrade return replace "
         "please help urgent today week month yesterday still again since bought old second first working "
         "stopped turning connect update app website email support store price river mountain city garden "
         "music paper window colour green blue red small large quick quiet bright water light stone")
WORDS = WORD_TEXT.split()
SYSTEMS = [None, "You are a helpful assistant.", "Answer briefly.", "Copy the key words of the request."]


# ---------------------------------------------------------------------------------------------
# Data and models (parent process)
# ---------------------------------------------------------------------------------------------

def longtail_records(n: int, seed: int) -> list[dict]:
    """Single-turn chats whose prompt and answer lengths are log-normal: many short, a few long
    (median ~40 tokens, 95th percentile ~400, longest ~1000), like instruction data. The answer
    copies words of the prompt in order, so the loss has something learnable to fall on."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        n_prompt = min(int(rng.lognormvariate(3.0, 1.1)) + 3, 600)
        n_answer = min(int(rng.lognormvariate(2.3, 1.0)) + 2, 200, n_prompt)
        words = [rng.choice(WORDS) for _ in range(n_prompt)]
        answer = " ".join(words[:: max(1, n_prompt // n_answer)][:n_answer])
        messages = [{"role": "user", "content": " ".join(words)}, {"role": "assistant", "content": answer}]
        system = rng.choice(SYSTEMS)
        if system:
            messages.insert(0, {"role": "system", "content": system})
        rows.append({"id": f"longtail-{seed}-{i}", "messages": messages})
    return rows


def quickstart_records(work: Path, model_dir: Path) -> tuple[list[dict], list[dict]]:
    """The quickstart project's prepared train and val splits (generated and prepared once)."""
    from sftflow.config import parse_config
    from sftflow.data.prepare import prepare
    from sftflow.io import read_jsonl
    from sftflow.quickstart import ALPACA_FILE, CHAT_FILE, write_quickstart_data

    root = work / "quickstart"
    if not (root / "data" / "val.jsonl").exists():
        write_quickstart_data(root / "raw", n=2000)
        sources = [{"path": f"raw/{ALPACA_FILE}"}, {"path": f"raw/{CHAT_FILE}"}]
        cfg = parse_config({"name": "quickstart", "data": {"sources": sources},
                            "model": {"name_or_path": str(model_dir)}}, root=root)
        prepare(cfg, log=lambda m: None)
    return list(read_jsonl(root / "data" / "train.jsonl")), list(read_jsonl(root / "data" / "val.jsonl"))


def tickets_records(work: Path) -> tuple[list[dict], list[dict]]:
    """The SmolLM2 project's prepared train and val splits (`sftflow init --model smollm2-135m-instruct`, then
    prepare): support tickets to JSON with general chat mixed in, as that project trains on them."""
    from sftflow.config import load_config
    from sftflow.data.prepare import prepare
    from sftflow.io import read_jsonl
    from sftflow.real_project import MODEL, write_model_project

    root = work / "tickets"
    if not (root / "data" / "val.jsonl").exists():
        write_model_project(root, MODEL, force=True, log=lambda m: None)
        prepare(load_config(root / "sftflow.yaml"), log=lambda m: None)
    return list(read_jsonl(root / "data" / "train.jsonl")), list(read_jsonl(root / "data" / "val.jsonl"))


def write_split(folder: Path, train: list[dict], val: list[dict]) -> Path:
    from sftflow.io import write_jsonl

    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "val.jsonl", val)
    return folder


def build_llama_25m(work: Path, tiny_dir: Path) -> Path:
    """A randomly initialised Llama (seed 0) saved with the tiny model's tokenizer."""
    out = work / "llama-25m"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **LLAMA_25M)
    model = LlamaForCausalLM(config)
    tmp = Path(tempfile.mkdtemp(dir=work))
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    tmp.rename(out)
    return out


def prepare_inputs(work: Path, wanted: list[tuple[str, str]], quick: bool, n_train: int | None) -> dict:
    """{(model, data): (model_dir, data_dir)} with train/val files sized for the model."""
    from sftflow.model.tiny import build_tiny_model

    work.mkdir(parents=True, exist_ok=True)
    tiny = build_tiny_model(work / "tiny-model", log=lambda m: None)
    model_dirs = {"tiny": tiny}
    if any(model == "llama-25m" for model, _ in wanted):
        model_dirs["llama-25m"] = build_llama_25m(work, tiny)
    if any(model == "smollm2" for model, _ in wanted):
        from sftflow.model.resolve import resolve_model
        from sftflow.real_project import MODEL

        model_dirs["smollm2"] = Path(resolve_model(MODEL, work / MODEL))  # the converted, cached folder
    sizes = QUICK_SIZES if quick else SIZES
    pairs = {}
    for data in dict.fromkeys(d for _, d in wanted):
        if data == "quickstart":
            q_train, q_val = quickstart_records(work, tiny)
        elif data == "tickets":
            q_train, q_val = tickets_records(work)
        for model in [m for m, d in wanted if d == data]:
            n = n_train or sizes[model]
            n_val = max(16, n // 8)
            if data == "longtail":
                train, val = longtail_records(n, seed=1), longtail_records(n_val, seed=2)
            else:
                train, val = q_train[:n], q_val[:n_val]
            pairs[(model, data)] = (model_dirs[model], write_split(work / "data" / f"{data}-{model}", train, val))
    return pairs


# ---------------------------------------------------------------------------------------------
# One run (child process)
# ---------------------------------------------------------------------------------------------

def baseline_trainer(spec: dict, overrides: dict, out_dir: Path):
    """The plain TRL script: the user's model, prompt/completion data and LoRA; TRL defaults otherwise."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from sftflow.io import read_jsonl

    data = Path(spec["data_dir"])
    rows = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in read_jsonl(data / "train.jsonl")]
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    # On a CPU-only machine TRL's default bf16=True stops with "You need to assign use_cpu": a user does that.
    args = SFTConfig(output_dir=str(out_dir), per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUM,
                     num_train_epochs=1, learning_rate=spec["lr"], lr_scheduler_type="cosine", seed=spec["seed"],
                     use_cpu=not torch.cuda.is_available(), report_to=[], disable_tqdm=True, **overrides)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                      peft_config=lora)


def sftflow_trainer(spec: dict, overrides: dict, out_dir: Path):
    """sftflow's own path: build_trainer on a config that sets only the shared run parameters."""
    from sftflow.config import parse_config
    from sftflow.train.build import build_trainer

    train = {"method": "lora", "learning_rate": spec["lr"], "epochs": 1, "batch_size": BATCH, "grad_accum": ACCUM,
             "seed": spec["seed"], **overrides}
    cfg = parse_config({"name": "bench", "data": {"sources": [{"path": "unused.jsonl"}], "output_dir": spec["data_dir"]},
                        "model": {"name_or_path": spec["model_dir"]}, "train": train, "output_dir": str(out_dir)})
    trainer, _ = build_trainer(cfg, log=lambda m: None)
    return trainer


def answer_loss(model, template, records: list[dict]) -> float:
    """Mean loss over answer tokens (sftflow's mask), one example at a time in fp32: the same
    yardstick for every variant, whatever its own eval batching or precision."""
    import torch
    import torch.nn.functional as F

    from sftflow.model.chat import tokenize_record

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for r in records:
            t = tokenize_record(template, r, 1024)
            ids = torch.tensor([t.input_ids], device=model.device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            mask = torch.tensor(t.assistant_masks[1:], dtype=torch.bool, device=model.device)
            losses = F.cross_entropy(logits, ids[0, 1:], reduction="none")
            total += float(losses[mask].sum())
            count += int(mask.sum())
    return total / max(count, 1)


def run_child(spec: dict) -> dict:
    """Train one variant once and measure it (runs in its own process)."""
    import torch
    from transformers import TrainerCallback

    from sftflow.io import read_jsonl
    from sftflow.model.load import load_chat

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    kind, overrides = VARIANTS[spec["variant"]]
    out_dir = Path(tempfile.mkdtemp(prefix="sftflow-bench-run-"))
    if spec["variant"] == "sftflow-row-mask":
        import sftflow.train.packed_attention

        sftflow.train.packed_attention.use_packed_attention = lambda model: False
    try:
        build = baseline_trainer if kind == "trl" else sftflow_trainer
        trainer = build(spec, overrides, out_dir)
        meter = {"tokens": 0, "slots": 0, "collate_s": 0.0, "step_loss": 0.0, "losses": [], "mark": None}

        # Non-padding tokens and the loss of every micro-batch, counted where training consumes it.
        plain_step = trainer.training_step

        def training_step(model, inputs, *args, **kwargs):
            ids = inputs["input_ids"]
            meter["slots"] += ids.numel()
            meter["tokens"] += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else ids.numel()
            loss = plain_step(model, inputs, *args, **kwargs)
            meter["step_loss"] += float(loss)
            return loss

        trainer.training_step = training_step
        plain_collator = trainer.data_collator

        def collate(features):
            t = time.perf_counter()
            batch = plain_collator(features)
            meter["collate_s"] += time.perf_counter() - t
            return batch

        trainer.data_collator = collate
        profiler = None
        if spec.get("profile_steps"):
            from torch.profiler import ProfilerActivity, profile

            profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=True)

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                meter["losses"].append(meter["step_loss"])
                meter["step_loss"] = 0.0
                meter["last_step_end"] = time.perf_counter()
                if state.global_step == spec["warmup"]:
                    meter["mark"] = (time.perf_counter(), time.process_time(), meter["tokens"], meter["slots"],
                                     meter["collate_s"])
                    if profiler is not None:
                        profiler.start()
                if profiler is not None and state.global_step == spec["warmup"] + spec["profile_steps"]:
                    profiler.stop()
                    control.should_training_stop = True

        trainer.add_callback(Clock())
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.train()
        end, cpu_end = time.perf_counter(), time.process_time()
        if meter["mark"] is None:
            raise RuntimeError(f"only {len(meter['losses'])} steps; need more than --warmup {spec['warmup']}")
        t0, cpu0, tok0, slots0, coll0 = meter["mark"]
        tokens, slots = meter["tokens"] - tok0, meter["slots"] - slots0
        template = load_chat(spec["model_dir"])
        val = list(read_jsonl(Path(spec["data_dir"]) / "val.jsonl"))
        tail = meter["losses"][-max(1, len(meter["losses"]) // 4):]
        result = {
            **{k: spec[k] for k in ("model", "data", "variant", "repeat")},
            "steps": len(meter["losses"]),
            "timed_steps": len(meter["losses"]) - spec["warmup"],
            "tokens_per_second": tokens / (end - t0),
            "tokens_per_cpu_second": tokens / (cpu_end - cpu0),
            "timed_tokens": tokens,
            "padding_share": 1 - tokens / slots if slots else 0.0,
            "train_seconds": end - start,
            "timed_seconds": end - t0,
            "collate_seconds": meter["collate_s"] - coll0,
            "after_last_step_seconds": end - meter["last_step_end"],  # sftflow: final eval, save, best reload
            "final_train_loss": sum(tail) / len(tail),
            "final_val_loss": answer_loss(trainer.model, template, val),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_threads": torch.get_num_threads(),
        }
        if torch.cuda.is_available():
            result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        if profiler is not None:
            result["profile"] = profile_breakdown(profiler, trainer.model.config)
        return result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def profile_breakdown(prof, config) -> dict:
    """Self CPU time of the profiled steps by where it goes, from op names and input shapes."""
    vocab, inter = config.vocab_size, config.intermediate_size
    buckets: dict[str, float] = {}
    top: dict[str, float] = {}
    for evt in prof.key_averages(group_by_input_shape=True):
        top[evt.key] = top.get(evt.key, 0.0) + evt.self_cpu_time_total / 1e6
        name, dims = evt.key, {d for shape in (evt.input_shapes or []) for d in (shape or [])}
        if name.startswith(("Optimizer.", "aten::_foreach")) or "adamw" in name.lower():
            where = "optimizer"
        elif "scaled_dot_product" in name or "flash_attention" in name or "attention" in name:
            where = "attention (SDPA)"
        elif name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"):
            where = ("LM head" if vocab in dims else "MLP matmuls" if inter in dims
                     else "LoRA matmuls" if 16 in dims else "attention projections")
        elif vocab in dims:
            where = "LM head + loss (non-matmul)"
        else:
            where = "other (norms, RoPE, activations, masks, autograd)"
        buckets[where] = buckets.get(where, 0.0) + evt.self_cpu_time_total / 1e6
    total = sum(buckets.values())
    out = {k: {"seconds": round(v, 3), "share": round(v / total, 3)}
           for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])}
    for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]:
        out[f"  op {k}"] = {"seconds": round(v, 3), "share": round(v / total, 3)}
    return out


# ---------------------------------------------------------------------------------------------
# Orchestration (parent process)
# ---------------------------------------------------------------------------------------------

def spawn(spec: dict, timeout: float) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), "--child-out", out.name],
                              capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{spec['variant']} on {spec['model']}/{spec['data']} failed:\n{proc.stderr[-3000:]}")
        return json.loads(Path(out.name).read_text())


def summarise(runs: list[dict]) -> list[dict]:
    """Median per (model, data, variant) and the ratio of its median tokens/s to the baseline's."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["data"], r["variant"]), []).append(r)
    rows = []
    for (model, data, variant), rs in groups.items():
        tps = [r["tokens_per_second"] for r in rs]
        row = {"model": model, "data": data, "variant": variant, "repeats": len(rs),
               "tokens_per_second": statistics.median(tps),
               "tokens_per_second_min": min(tps), "tokens_per_second_max": max(tps),
               "tokens_per_cpu_second": statistics.median(r["tokens_per_cpu_second"] for r in rs)}
        for key in ("train_seconds", "timed_seconds", "collate_seconds", "peak_rss_mib", "peak_gpu_mib",
                    "final_train_loss", "final_val_loss", "padding_share", "steps"):
            if key in rs[0]:
                row[key] = statistics.median(r[key] for r in rs)
        rows.append(row)
    for row in rows:
        base = next((b for b in rows if (b["model"], b["data"], b["variant"]) == (row["model"], row["data"], "baseline")),
                    None)
        if base:
            row["ratio"] = row["tokens_per_second"] / base["tokens_per_second"]
            row["ratio_cpu"] = row["tokens_per_cpu_second"] / base["tokens_per_cpu_second"]
            row["val_loss_vs_baseline"] = row["final_val_loss"] / base["final_val_loss"] - 1
            row["rss_vs_baseline"] = row["peak_rss_mib"] / base["peak_rss_mib"]
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    gpu = any("peak_gpu_mib" in r for r in rows)
    head = ("| model | data | variant | tokens/s (median, min-max) | ratio | ratio, CPU time | wall s | peak RSS MiB |"
            + (" peak GPU MiB |" if gpu else "") + " pad % | train loss | val loss (vs base) |")
    lines = [f"{meta['device']}, torch {meta['torch']}, transformers {meta['transformers']}, trl {meta['trl']}; "
             f"{meta['repeats']} repeats, median; warm-up {meta['warmup']} steps excluded", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        gpu_cell = f" {r.get('peak_gpu_mib', 0):,.0f} |" if gpu else ""
        lines.append(
            f"| {r['model']} | {r['data']} | {r['variant']} | {r['tokens_per_second']:,.0f} "
            f"({r['tokens_per_second_min']:,.0f}-{r['tokens_per_second_max']:,.0f}) | **{r.get('ratio', 0):.2f}x** | "
            f"{r.get('ratio_cpu', 0):.2f}x | "
            f"{r['train_seconds']:.1f} | {r['peak_rss_mib']:,.0f} |{gpu_cell} {100 * r['padding_share']:.0f} | "
            f"{r['final_train_loss']:.3f} | {r['final_val_loss']:.3f} ({100 * r.get('val_loss_vs_baseline', 0):+.1f}%) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer examples, baseline and sftflow only (~10 min)")
    ap.add_argument("--models", default=None,
                    help="comma-separated, from: tiny, llama-25m, smollm2 (default: tiny, llama-25m)")
    ap.add_argument("--data", default=None, help="comma-separated, from: longtail, quickstart, tickets "
                    "(default: longtail, quickstart)")
    ap.add_argument("--variants", default=None, help=f"comma-separated, from: {', '.join(VARIANTS)}")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="optimizer steps excluded from the timing")
    ap.add_argument("--train-examples", type=int, default=None, help="override the per-model train size")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each run (default: torch's)")
    ap.add_argument("--profile", action="store_true", help="profile 4 steps of baseline and sftflow instead")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sftflow-bench-train")
    ap.add_argument("--out", type=Path, default=RESULTS / "train_throughput.json")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one run may take")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out and do the rest")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        Path(args.child_out).write_text(json.dumps(run_child(json.loads(args.child))))
        return 0

    import torch
    import transformers
    import trl

    models = args.models.split(",") if args.models else ["tiny", "llama-25m"]
    datasets = args.data.split(",") if args.data else ["longtail", "quickstart"]
    wanted = [(m, d) for d in datasets for m in models]
    if args.quick and not args.models and not args.data:
        wanted = QUICK_PAIRS  # the toy's quickstart pair is left to the full run, to stay within 10 minutes
    variants = args.variants.split(",") if args.variants else (QUICK_VARIANTS if args.quick else list(VARIANTS))
    unknown = ([v for v in variants if v not in VARIANTS] + [m for m in models if m not in SIZES]
               + [d for d in datasets if d not in DATA_CHOICES])
    if unknown:
        ap.error(f"unknown: {', '.join(unknown)}")
    if "baseline" not in variants:
        variants.insert(0, "baseline")
    pairs = prepare_inputs(args.work, wanted, args.quick, args.train_examples)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    meta = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "repeats": 1 if args.profile else args.repeats, "warmup": args.warmup,
            "batch": BATCH, "grad_accum": ACCUM, "quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M")}
    repeats = 1 if args.profile else args.repeats
    out = args.out.with_name(args.out.stem + "_profile.json") if args.profile else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(out.read_text())["runs"] if args.resume and out.exists() else []
    done = {(r["model"], r["data"], r["variant"], r["repeat"]) for r in runs}
    for repeat in range(repeats):
        for (model, data), (model_dir, data_dir) in pairs.items():
            for variant in (["baseline", "sftflow"] if args.profile and not args.variants else variants):
                if (model, data, variant, repeat) in done:
                    continue
                spec = {"model": model, "data": data, "variant": variant, "repeat": repeat, "seed": 42,
                        "model_dir": str(model_dir), "data_dir": str(data_dir), "lr": LEARNING_RATE[model],
                        "warmup": args.warmup, "threads": args.threads,
                        "profile_steps": 4 if args.profile else 0}
                r = spawn(spec, args.timeout)
                runs.append(r)
                out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")  # survives an interruption
                print(f"[{repeat + 1}/{repeats}] {model:>9} {data:>10} {variant:<20} {r['tokens_per_second']:>9,.0f} tok/s "
                      f"({r['tokens_per_cpu_second']:,.0f}/cpu-s) "
                      f"{r['train_seconds']:6.1f} s  RSS {r['peak_rss_mib']:6,.0f} MiB  val {r['final_val_loss']:.4f}",
                      flush=True)
                if args.profile:
                    for where, v in r["profile"].items():
                        print(f"      {where:<52} {v['seconds']:7.2f} s {100 * v['share']:5.1f}%")
    rows = summarise(runs)
    table = markdown(rows, meta)
    print("\n" + table)
    out.write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=1) + "\n")
    if not args.profile:
        out.with_suffix(".md").write_text(table)
    print(f"→ {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
