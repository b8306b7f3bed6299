"""Public benchmarks through lm-eval-harness, base vs tuned: what tuning cost elsewhere, in
numbers people already know (`eval.benchmarks`, needs `pip install 'sftflow[lmeval]'`).

    eval:
      benchmarks: [arc_easy, tasks/my_task.yaml]    # lm-eval task names, task YAML files or folders of them
      benchmark_limit: 200                          # first N examples per task

Each model is handed to lm-eval's `HFLM` as the object eval already loaded (no second load, no
download; real tasks read their data from the Hugging Face datasets cache, README). A task YAML
given as a path is run from its own folder, so its relative `data_files` sit next to it. The
drop per task (base − tuned on its main metric, sign-aware) feeds the default gate
`benchmark_drop`.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from sftflow.config import Config
from sftflow.errors import SftflowError
from sftflow.progress import phase

# The metric a task's drop is measured on: the first one the task reports (lm-eval's usual
# headline metrics), else its first metric.
MAIN_METRICS = ("acc_norm", "acc", "exact_match", "f1", "mcc", "word_perplexity", "perplexity")


def check_benchmarks(cfg: Config) -> None:
    """Before any model is loaded (and before training, in `sftflow run`): lm-eval is there, and
    so is every task file named."""
    if cfg.eval.benchmarks and importlib.util.find_spec("lm_eval") is None:
        raise SftflowError("eval.benchmarks: lm-eval-harness is not installed; pip install 'sftflow[lmeval]' "
                           "(or remove eval.benchmarks)")
    benchmark_specs(cfg)


def benchmark_specs(cfg: Config) -> list[tuple[str, Path | None]]:
    """(what lm-eval is given, folder to run it from): a path that exists (relative to the config)
    is a task YAML or a folder of them, anything else a task name."""
    specs = []
    for entry in cfg.eval.benchmarks:
        path = cfg.path(entry)
        if path.is_dir():
            specs.append((str(path.resolve()), path.resolve()))
        elif path.is_file():
            specs.append((str(path.resolve()), path.resolve().parent))
        elif entry.endswith((".yaml", ".yml")):
            raise SftflowError(f"eval.benchmarks: {path} not found")
        else:
            specs.append((entry, None))
    return specs


def task_manager(cfg: Config):
    """lm-eval's task index: its built-in tasks only when a task is named (indexing them takes
    seconds), plus the folders given."""
    from lm_eval.tasks import TaskManager

    specs = benchmark_specs(cfg)
    folders = [s for s, where in specs if where is not None and Path(s).is_dir()]
    return TaskManager(include_path=folders or None, include_defaults=any(where is None for _, where in specs))


def run_benchmarks(model, tok, cfg: Config, manager, who: str) -> dict:
    """{task: {metric: value, ..., "n": examples}} for one model."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    e = cfg.eval
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=e.batch_size, max_length=cfg.train.max_length)
    scores, higher = {}, {}
    for spec, where in benchmark_specs(cfg):
        tasks = [spec]
        if Path(spec).is_dir():  # a folder: every task whose YAML is in it
            tasks = [t for t in manager.all_subtasks
                     if Path(manager.task_index[t].yaml_path or "/").is_relative_to(spec)]
        with phase(f"eval: {who} model: benchmark {Path(spec).name if where else spec}"), \
                contextlib.chdir(where or Path.cwd()):
            try:
                out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=e.benchmark_limit,
                                              num_fewshot=e.benchmark_fewshot, log_samples=False, bootstrap_iters=0)
            except (KeyError, FileNotFoundError, ValueError) as err:
                raise SftflowError(f"eval.benchmarks: {spec}: lm-eval could not run it: {err}") from err
        for task, row in out["results"].items():
            metrics = {k.removesuffix(",none"): v for k, v in row.items()
                       if "," in k and "_stderr" not in k and isinstance(v, int | float)}
            n = (out.get("n-samples") or {}).get(task, {}).get("effective")
            scores[task] = {**metrics, "n": n}
            higher[task] = out.get("higher_is_better", {}).get(task, {})
    return {"scores": scores, "higher_is_better": higher}


def compare_benchmarks(base: dict, tuned: dict, cfg: Config) -> dict:
    """Per task: main metric, base, tuned, delta (tuned − base) and drop (how much worse, in the
    metric's direction); max_drop over the tasks is what the gate benchmark_drop checks."""
    import lm_eval

    tasks = {}
    for task, t_scores in tuned["scores"].items():
        b_scores = base["scores"].get(task, {})
        metric = next((m for m in MAIN_METRICS if m in t_scores), next(k for k in t_scores if k != "n"))
        up = tuned["higher_is_better"].get(task, {}).get(metric, True)
        b, t = b_scores.get(metric), t_scores[metric]
        delta = None if b is None else t - b
        tasks[task] = {"metric": metric, "higher_is_better": up, "base": b, "tuned": t, "delta": delta,
                       "drop": None if delta is None else (-delta if up else delta), "n": t_scores["n"],
                       "base_scores": b_scores, "tuned_scores": t_scores}
    drops = [(v["drop"], k) for k, v in tasks.items() if v["drop"] is not None]
    worst = max(drops) if drops else (None, None)
    return {"tasks": tasks, "max_drop": worst[0], "worst_task": worst[1], "limit": cfg.eval.benchmark_limit,
            "num_fewshot": cfg.eval.benchmark_fewshot, "lm_eval": lm_eval.__version__}
