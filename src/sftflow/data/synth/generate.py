"""`sftflow synth`: candidate examples written by a teacher model from human seed examples.

    sftflow synth sftflow.yaml          # appends to data.synth.output; re-run to continue

Strategies (`data.synth.tasks`), each a Jinja prompt template that can be replaced:

- paraphrase: the seed's last user message reworded; the seed's answer kept (or re-answered);
- self_instruct: a new user message in the style of a few seeds, then answered;
- answer: answers to user-written prompts (`data.synth.prompts`), seeds as format examples;
- multi_turn: a follow-up user turn on a seed conversation, then answered.

Every candidate is a job with a key derived from what it is made of (strategy, template ids,
seed or prompt, variant number), never from the teacher or the time. Finished jobs, accepted
or rejected, are appended to the output files at once, so an interrupted or budget-limited
run loses nothing and a re-run only does the jobs whose key is not there yet: nothing is
generated twice. Jobs whose requests failed after their retries are not written, so the next
run tries them again.

A candidate is not training data yet: `prepare` reads it (origin synthetic) through the same
quality filter, dedup, judge and ledger as human rows, plus the synthetic cap and the
test-split rule. Each row carries its provenance: teacher model id, template id and
parameters, seed example ids and a timestamp. Teacher replies that cannot be used
(no JSON where JSON was asked, cut off at max_tokens, empty, a copy of the seed) are written
to the rejected file with the reason and the raw reply.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sftflow.data.decide.dedup import loose
from sftflow.data.llm.prompts import Template, load_template, parse_json_object
from sftflow.data.llm.teacher import (
    Budget,
    BudgetSpent,
    RequestRefused,
    TeacherFailed,
    TeacherUnusable,
    budget_for,
    open_model,
)
from sftflow.data.synth.seeds import Seed, load_prompts, load_seeds
from sftflow.errors import SftflowError

MAX_FAILURES_IN_A_ROW = 5  # then the teacher is taken to be down: stop instead of burning the budget
REPLY_KEPT = 500  # characters of a rejected reply kept for inspection

_JSON_ONLY = 'Reply with a JSON object only: {"prompt": "<the message>"}'

TEMPLATES = {
    "paraphrase": """Rewrite the user message below so that it asks for exactly the same thing in different \
words, as a different person might write it: change wording, sentence structure and tone, but keep every fact, \
name, number and requirement. This is variation {{ variant + 1 }}; it must differ from the original.

{% if system %}
The assistant who answers it is instructed: {{ system }}

{% endif %}
{% if examples %}
Other messages users sent, for tone and style only:
{% for ex in examples %}
- {{ ex.prompt }}
{% endfor %}

{% endif %}
User message:
{{ seed.prompt }}

""" + _JSON_ONLY + "\n",
    "self_instruct": """Here are messages users sent to an assistant\
{% if system %} that is instructed: {{ system }}{% endif %}.
{% for ex in examples %}

Example {{ loop.index }}:
{{ ex.prompt }}
{% endfor %}

Write one new user message for the same assistant: similar in purpose, length and style to the examples, but \
about a different case, not a copy or paraphrase of any of them. This is request {{ variant + 1 }}.

""" + _JSON_ONLY + "\n",
    "multi_turn": """Here is a conversation between a user and an assistant\
{% if system %} (the assistant is instructed: {{ system }}){% endif %}.

{% for m in seed.turns %}
{{ m.role | capitalize }}: {{ m.content }}
{% endfor %}

Write the user's next message: a natural follow-up that builds on the assistant's last reply. \
This is variation {{ variant + 1 }}.

""" + _JSON_ONLY + "\n",
    "answer": """{% if system %}
You are an assistant with these instructions: {{ system }}

{% endif %}
{% if examples %}
Examples of good replies:
{% for ex in examples %}

User: {{ ex.prompt }}
Assistant: {{ ex.answer }}
{% endfor %}

{% endif %}
{% if history %}
The conversation so far:

{% for m in history %}
{{ m.role | capitalize }}: {{ m.content }}
{% endfor %}

{% endif %}
Write the assistant's reply to the user message below\
{% if examples %}, in the same style and format as the examples{% endif %}. \
Reply with the assistant's reply only, nothing before or after it.

User: {{ prompt }}
""",
}


class Rejected(Exception):
    """The teacher's reply cannot become a candidate; the reason is recorded."""

    def __init__(self, reason: str, reply: str = ""):
        super().__init__(reason)
        self.reason, self.reply = reason, reply


# ---------------------------------------------------------------- jobs


@dataclass
class Job:
    key: str
    task: int  # index in data.synth.tasks
    strategy: str
    variant: int
    template: Template
    answer_template: Template | None
    keep_answer: bool
    seed: Seed | None = None
    prompt: tuple[str, str] | None = None  # (where, text) for the answer strategy
    examples: list[Seed] = field(default_factory=list)
    system: str | None = None


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


def _pick(pool: list[Seed], k: int, rng: random.Random, exclude: Seed | None = None) -> list[Seed]:
    cand = [x for x in pool if x is not exclude]
    return rng.sample(cand, min(k, len(cand)))


def plan(cfg, seeds: list[Seed], prompts: list[tuple[str, str]]) -> list[Job]:
    """Every job the config asks for, each with its stable key (done ones included)."""
    s = cfg.data.synth
    systems = Counter(x.system for x in seeds if x.system)
    common_system = systems.most_common(1)[0][0] if systems else cfg.data.system_prompt
    jobs = []
    for t, task in enumerate(s.tasks):
        where = f"data.synth.tasks[{t}]"
        if task.strategy in ("paraphrase", "self_instruct", "multi_turn") and not seeds:
            raise SftflowError(f"{where}: strategy {task.strategy} needs seed examples, and none were found "
                               "(set data.synth.seeds, or give data.sources with origin human)")
        if task.strategy == "self_instruct" and task.examples < 1:
            raise SftflowError(f"{where}: self_instruct needs examples >= 1 (the seeds whose style to follow)")
        if task.strategy == "answer" and not cfg.data.synth.prompts:
            raise SftflowError(f"{where}: strategy answer needs data.synth.prompts (the prompts to answer)")
        gen = None
        if task.strategy != "answer":
            gen = load_template(task.strategy, task.template, cfg.root, f"{where}.template", TEMPLATES[task.strategy])
        needs_answer = task.strategy != "paraphrase" or not task.keep_answer
        ans = None
        if needs_answer:
            path = task.answer_template if gen else (task.answer_template or task.template)
            ans = load_template("answer", path, cfg.root, f"{where}.answer_template", TEMPLATES["answer"])
        ids = [gen.id if gen else None, ans.id if ans else None]
        keep = task.keep_answer if task.strategy == "paraphrase" else False
        # (key, variant, seed, prompt) of every job of this task: the key names what the job is made of
        if task.strategy in ("paraphrase", "multi_turn"):
            specs = [(_key(task.strategy, *ids, keep, seed.id, v), v, seed, None)
                     for seed in seeds for v in range(task.count)]
        elif task.strategy == "self_instruct":
            specs = [(_key(task.strategy, *ids, v), v, None, None) for v in range(task.count)]
        else:
            specs = [(_key(task.strategy, *ids, loose(p[1]), v), v, None, p) for p in prompts for v in range(task.count)]
        for key, variant, seed, prompt in specs:
            examples = _pick(seeds, task.examples, random.Random(f"{s.seed}:{key}"), exclude=seed)
            jobs.append(Job(key, t, task.strategy, variant, gen or ans, ans if gen else None, keep, seed=seed,
                            prompt=prompt, examples=examples, system=seed.system if seed else common_system))
    return jobs


# ---------------------------------------------------------------- one job


def _seed_int(key: str, step: int) -> int:
    return (int(key[:8], 16) + step) % 2**31


def _ask(teacher, text: str, job: Job, step: int):
    try:
        return teacher.chat([{"role": "user", "content": text}], seed=_seed_int(job.key, step))
    except RequestRefused as err:
        raise Rejected(f"the teacher refused the request: {err}") from err


def _new_prompt(teacher, job: Job) -> tuple[str, dict]:
    ctx = {"seed": job.seed.view() if job.seed else None, "examples": [x.view() for x in job.examples],
           "system": job.system, "variant": job.variant}
    reply = _ask(teacher, job.template.render(**ctx), job, 0)
    if reply.finish_reason == "length":
        raise Rejected("truncated: the reply reached teacher.max_tokens", reply.text)
    obj = parse_json_object(reply.text)
    if obj is None:
        raise Rejected('malformed: no JSON object in the reply (the template asks for {"prompt": ...})', reply.text)
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Rejected("malformed: the JSON reply has no non-empty 'prompt' string", reply.text)
    prompt = prompt.strip()
    copies = [x.view()["prompt"] for x in ([job.seed] if job.seed and job.strategy == "paraphrase" else [])
              + job.examples]
    if any(loose(prompt) == loose(c) for c in copies):
        raise Rejected("copy: the new prompt repeats a seed prompt word for word", reply.text)
    return prompt, _usage(reply)


def _answer(teacher, job: Job, history: list[dict], prompt: str) -> tuple[str, dict]:
    ctx = {"system": job.system, "examples": [x.view() for x in job.examples], "history": history,
           "prompt": prompt, "variant": job.variant}
    reply = _ask(teacher, job.answer_template.render(**ctx) if job.answer_template else job.template.render(**ctx),
                 job, 1)
    if reply.finish_reason == "length":
        raise Rejected("truncated: the answer reached teacher.max_tokens", reply.text)
    if not reply.text.strip():
        raise Rejected("empty: the teacher returned an empty answer", reply.text)
    return reply.text.strip(), _usage(reply)


def _usage(reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}


def run_job(job: Job, teacher, cfg) -> dict:
    """One candidate: the messages and their provenance (raises Rejected with the reason)."""
    system = [{"role": "system", "content": job.system}] if job.system else []
    usage: list[dict] = []
    if job.strategy == "paraphrase":
        prompt, u = _new_prompt(teacher, job)
        usage.append(u)
        context = job.seed.messages[:-2]
        if job.keep_answer:
            answer = job.seed.turns[-1]["content"]
        else:
            answer, u = _answer(teacher, job, [m for m in context if m["role"] != "system"], prompt)
            usage.append(u)
        messages = [*context, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    elif job.strategy == "multi_turn":
        prompt, u = _new_prompt(teacher, job)
        answer, u2 = _answer(teacher, job, job.seed.turns, prompt)
        usage += [u, u2]
        messages = [*job.seed.messages, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    elif job.strategy == "self_instruct":
        prompt, u = _new_prompt(teacher, job)
        answer, u2 = _answer(teacher, job, [], prompt)
        usage += [u, u2]
        messages = [*system, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    else:  # answer
        prompt = job.prompt[1]
        answer, u = _answer(teacher, job, [], prompt)
        usage.append(u)
        messages = [*system, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return {"messages": messages, "origin": "synthetic", "synthetic": provenance(job, teacher, cfg, usage)}


def provenance(job: Job, teacher, cfg, usage: list[dict] | None = None) -> dict:
    t = cfg.data.synth.teacher
    seed_ids = ([job.seed.id] if job.seed else []) + [x.id for x in job.examples]
    params = {"variant": job.variant, "examples": len(job.examples), "temperature": t.temperature,
              "max_tokens": t.max_tokens, "seed": _seed_int(job.key, 0)}
    if job.strategy == "paraphrase":
        params["keep_answer"] = job.keep_answer
    return {
        "key": job.key,
        "strategy": job.strategy,
        "teacher": teacher.model_id,
        "endpoint": t.base_url or "local",
        "template": {"id": job.template.id, "params": params},
        "answer_template": job.answer_template.id if job.answer_template else None,
        "seed_ids": seed_ids,
        "prompt_source": job.prompt[0] if job.prompt else None,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "usage": {k: sum(u[k] for u in usage or []) for k in ("prompt_tokens", "completion_tokens")},
    }


# ---------------------------------------------------------------- output and resume


def rejected_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejected{output.suffix or '.jsonl'}")


def _done_keys(path: Path, key_of: Callable[[dict], str | None]) -> set[str]:
    """Keys of the finished jobs in an output file; a half-written last line (crash) is cut off."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
        data = data[: data.rfind(b"\n") + 1]
    keys = set()
    for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            key = key_of(json.loads(line))
        except (json.JSONDecodeError, AttributeError, TypeError) as err:
            raise SftflowError(f"{path}:{n}: not a synth output row ({err}); move the file away to start over") from err
        if key:
            keys.add(key)
    return keys


class Output:
    """The candidates file and the rejected file, appended one finished job at a time."""

    def __init__(self, path: Path):
        self.path, self.rejected = path, rejected_path(path)
        self.done = _done_keys(path, lambda r: (r.get("synthetic") or {}).get("key"))
        self.done |= _done_keys(self.rejected, lambda r: r.get("key"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._rej = open(self.rejected, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, f, row: dict) -> None:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()  # in the OS's hands at once: a killed process loses at most the jobs in flight

    def accept(self, row: dict) -> None:
        self.write(self._out, row)

    def reject(self, job: Job, err: Rejected, teacher) -> None:
        self.write(self._rej, {"key": job.key, "strategy": job.strategy, "reason": err.reason,
                               "reply": err.reply[:REPLY_KEPT], "teacher": teacher.model_id,
                               "template": job.template.id,
                               "seed_ids": ([job.seed.id] if job.seed else []) + [x.id for x in job.examples],
                               "created_at": datetime.now(UTC).isoformat(timespec="seconds")})

    def close(self) -> None:
        for f in (self._out, self._rej):
            f.flush()
            os.fsync(f.fileno())
            f.close()


# ---------------------------------------------------------------- the run


@dataclass
class Progress:
    total: int  # jobs to do in this run
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    budget: Budget | None = None

    @property
    def finished(self) -> int:
        return self.accepted + self.rejected + self.failed

    def line(self) -> str:
        return (f"{self.finished}/{self.total} jobs: {self.accepted} accepted, {self.rejected} rejected, "
                f"{self.failed} failed; {self.budget.describe() if self.budget else ''}")


def _job_outcome(job: Job, teacher, cfg):
    try:
        return "accepted", run_job(job, teacher, cfg)
    except Rejected as err:
        return "rejected", err


def synthesize(cfg, log: Callable[[str], object] = print,
               on_progress: Callable[[Progress], object] | None = None) -> dict:
    """Run the jobs of data.synth that are not done yet; returns the counts of this run."""
    s = cfg.data.synth
    if s.teacher is None:
        raise SftflowError("data.synth.teacher is not set: give base_url and model of an OpenAI-compatible API "
                           "(or model: a local model folder)")
    if not s.tasks:
        raise SftflowError("data.synth.tasks is empty: add e.g. [{strategy: paraphrase, count: 2}]")
    seeds = load_seeds(cfg)
    prompts, skipped = load_prompts(cfg) if s.prompts else ([], [])
    if skipped:
        log(f"synth: {len(skipped)} prompt rows skipped (first: {skipped[0]})")
    jobs = plan(cfg, seeds, prompts)
    path = cfg.path(s.output)
    from sftflow.lock import hold

    with hold(path.parent, "synth", name=f".{path.name}.lock"):  # two appenders would generate jobs twice
        return _synthesize(cfg, jobs, seeds, Output(path), log, on_progress)


def _synthesize(cfg, jobs: list, seeds: list, output: Output, log, on_progress) -> dict:
    s = cfg.data.synth
    todo = [j for j in jobs if j.key not in output.done]
    budget = budget_for(s.teacher)
    progress = Progress(total=len(todo), budget=budget)
    log(f"synth: {len(seeds)} seeds, {len(jobs)} jobs planned, {len(jobs) - len(todo)} done before, "
        f"{len(todo)} to do → {output.path}")
    stopped, reasons, last_error, in_a_row = None, Counter(), "", 0
    teacher = None
    try:
        if todo:
            teacher = open_model(s.teacher, budget, "data.synth.teacher", cfg.root)
        with ThreadPoolExecutor(max_workers=s.teacher.concurrency, thread_name_prefix="synth") as pool:
            queue, running = iter(todo), {}
            while True:
                while stopped is None and len(running) < s.teacher.concurrency:
                    job = next(queue, None)
                    if job is None:
                        break
                    running[pool.submit(_job_outcome, job, teacher, cfg)] = job
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = running.pop(fut)
                    try:
                        kind, result = fut.result()
                    except BudgetSpent as err:
                        stopped = stopped or str(err)
                        continue
                    except TeacherFailed as err:
                        progress.failed += 1
                        in_a_row += 1
                        last_error = str(err)
                        if in_a_row >= MAX_FAILURES_IN_A_ROW:
                            stopped = stopped or f"{in_a_row} jobs in a row failed"
                        continue
                    except TeacherUnusable:
                        for other in running:
                            other.cancel()
                        raise
                    in_a_row = 0
                    if kind == "accepted":
                        output.accept(result)
                        progress.accepted += 1
                    else:
                        output.reject(job, result, teacher)
                        progress.rejected += 1
                        reasons[result.reason.split(":")[0]] += 1
                    if on_progress:
                        on_progress(progress)
    finally:
        output.close()
        if teacher is not None:
            teacher.close()
    left = progress.total - progress.accepted - progress.rejected
    summary = {"seeds": len(seeds), "planned": len(jobs), "done_before": len(jobs) - len(todo), "todo": len(todo),
               "accepted": progress.accepted, "rejected": progress.rejected, "failed": progress.failed, "left": left,
               "reject_reasons": dict(reasons), "stopped": stopped, "last_error": last_error,
               "usage": budget.summary(), "output": str(output.path), "rejected_file": str(output.rejected)}
    log(f"synth: {progress.accepted} accepted, {progress.rejected} rejected"
        + (f" ({', '.join(f'{k} {v}' for k, v in reasons.most_common())})" if reasons else "")
        + f", {progress.failed} failed; {budget.describe()} in {budget.elapsed():.0f}s")
    if stopped and in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise SftflowError(f"data.synth.teacher {s.teacher.base_url or s.teacher.model}: {stopped} "
                           f"(last: {last_error}); {progress.accepted} candidates kept, re-run to continue")
    if left:
        why = stopped or (f"{progress.failed} jobs failed (last: {last_error})" if progress.failed else "")
        log(f"synth: {left} jobs left ({why}); re-run to continue, nothing is generated twice")
    return summary
