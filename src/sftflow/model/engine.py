"""The decoding engine behind `sftflow serve`, `sftflow chat` and synth's local teacher.

    engine = Engine(model, chat, max_batch=16).start()   # chat: the tokenizer's ChatTemplate
    engine.submit([GenRequest(prompt_ids=ids, max_tokens=64, on_event=print, temperature=0)])

`decode_batch` decodes requests together: one left-padded prefill, then one token per row per
step through the KV cache, each row with its own temperature, top_p, seed, stop strings and
max_tokens, text streamed as it becomes final; rows that finish leave the batch. `Engine`
runs it on a worker thread with dynamic batching.

`sftflow eval` decodes through `model.generate` instead (sftflow/eval/generate.py): it applies
the model's generation_config (a repetition_penalty, say), and its seeded sampling draws from
one generator per batch, so moving eval here would change its outputs for such models.
"""

import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class GenRequest:
    """One completion to decode. `on_event(kind, payload)` is called from the decoding thread:
    ("delta", text) as text becomes final, then ("done", result) or ("error", message)."""

    prompt_ids: list[int]
    max_tokens: int
    on_event: Callable[[str, object], None]
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    strip: bool = False  # chat answers: no leading/trailing whitespace, in streaming too
    reasoning: bool = False  # chat answers: a leading <think> block goes to reasoning_content
    calls: bool = False  # tools were offered: tool-call text is read into tool_calls (model/output.py), not sent
    syntax: object = None  # the family's CallSyntax (model/output.py); None tries every known one
    prefix: str = ""  # text the prompt was prefilled with (a forced call): part of the reply, not generated
    cancelled: bool = False
    index: int = 0
    # decoding state
    tokens: list[int] = field(default_factory=list)
    sent: str = ""
    sent_reasoning: str | None = None
    opened: bool | None = None  # the prompt ends inside a <think> block (R1 distills' generation prompt)
    finish_reason: str | None = None


def _pick(logits, req: GenRequest, generator):
    """Greedy at temperature 0; otherwise sample from the temperature-scaled, top-p-truncated
    distribution with the request's own seeded generator (same seed, same answer)."""
    import torch

    if req.temperature <= 1e-5:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / req.temperature, dim=-1)
    if req.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs[before >= req.top_p] = 0.0  # keep the smallest set whose mass reaches top_p
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def _holdback(text: str, stops: list[str]) -> int:
    """Characters at the end of `text` that may still turn into a stop string (not sent yet)."""
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:k]):
                keep = k
                break
    return keep


def _advance(req: GenRequest, chat, eos_ids: set[int], final: bool) -> None:
    """Decode the row so far, apply stop strings, and send the text that can no longer change."""
    from sftflow.model import harmony

    tok = chat.tokenizer
    ids = req.tokens[:-1] if req.tokens and req.tokens[-1] in eos_ids else req.tokens
    channels = None  # gpt-oss: (analysis, final, final begun), read off the text with its special tokens
    if chat.harmony:
        channels = harmony.parse(tok.decode(ids, skip_special_tokens=False), tuple(tok.all_special_tokens))
        text = channels[1]
    else:
        text = tok.decode(ids, skip_special_tokens=True)
    if req.strip:
        text = text.lstrip()
    cut = min((i for i in (text.find(s) for s in req.stop) if i >= 0), default=-1)
    if cut >= 0:
        text, final = text[:cut], True
        req.finish_reason = "stop"
    thought = None
    if req.reasoning:
        from sftflow.model.reasoning import CLOSE, OPEN, opens_reasoning, split_partial

        if channels is not None:
            thought, closed = channels[0], channels[2]
        else:
            if req.opened is None:
                req.opened = opens_reasoning(tok.decode(req.prompt_ids[-4:], skip_special_tokens=False))
            thought, text, closed = split_partial(OPEN + text if req.opened else text)
        if thought is not None and not (closed or final):
            thought = thought[: len(thought) - _holdback(thought, [CLOSE])].rstrip("\ufffd").rstrip()
        if thought is not None and (req.sent_reasoning is None or len(thought) > len(req.sent_reasoning)):
            if req.sent_reasoning is not None or thought:
                req.on_event("reasoning", thought[len(req.sent_reasoning or ""):])
            req.sent_reasoning = thought
        if thought is not None and not closed:
            text = ""
    calls = []
    if req.calls:  # a call is held back until it can be read whole, then sent as tool_calls
        from sftflow.model.output import call_start, parse_calls

        text = req.prefix + text
        if final:
            content, calls = parse_calls(text, req.syntax)
            text = content if calls else text
        else:
            cut = call_start(text, req.syntax)
            text = text if cut is None else text[:cut]
    if final:
        ready = text.rstrip() if req.strip else text
    else:
        ready = text[: len(text) - _holdback(text, req.stop)]
        ready = ready.rstrip("\ufffd")  # an unfinished multi-byte character
        if req.strip:
            ready = ready.rstrip()
    if ready.startswith(req.sent) and len(ready) > len(req.sent):
        req.on_event("delta", ready[len(req.sent):])
        req.sent = ready
    if final:
        finish = "tool_calls" if calls and req.finish_reason != "length" else (req.finish_reason or "stop")
        req.on_event("done", {"text": ready, "finish_reason": finish, "reasoning": thought, "tool_calls": calls,
                              "prompt_tokens": len(req.prompt_ids), "completion_tokens": len(req.tokens)})


def _cache_keyword(model) -> str:
    """transformers 5.x renamed `past_key_values` to `cache` (the old name still works, with a warning)."""
    import inspect

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(target.forward).parameters else "past_key_values"


def decode_batch(model, chat, reqs: list[GenRequest]) -> None:
    """Decode several requests together: one left-padded prefill, then one token per row per
    step through the KV cache. Finished or cancelled rows leave the batch. `chat`: the ChatTemplate."""
    import torch

    tok = chat.tokenizer
    eos = model.generation_config.eos_token_id
    eos_ids = {eos} if isinstance(eos, int) else set(eos or [tok.eos_token_id])
    device = next(model.parameters()).device
    cache_kw = _cache_keyword(model)
    gens = []
    for r in reqs:
        g = torch.Generator(device="cpu")
        g.manual_seed(r.seed if r.seed is not None else random.getrandbits(63))
        gens.append(g)
    width = max(len(r.prompt_ids) for r in reqs)
    ids = torch.full((len(reqs), width), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(reqs), width), dtype=torch.long)
    for i, r in enumerate(reqs):
        ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids, dtype=torch.long)
        attn[i, width - len(r.prompt_ids):] = 1
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    active = list(range(len(reqs)))  # row i of the tensors is reqs[active[i]]
    with torch.inference_mode():
        out = model(input_ids=ids.to(device), attention_mask=attn.to(device), position_ids=pos.to(device),
                    use_cache=True)
        cache = out[cache_kw]
        logits = out.logits[:, -1, :].cpu()
        attn, pos = attn.to(device), pos[:, -1:].to(device)
        while active:
            keep, next_ids = [], []
            for row, k in enumerate(active):
                r = reqs[k]
                if r.cancelled:
                    continue
                t = _pick(logits[row], r, gens[k])
                r.tokens.append(t)
                done = t in eos_ids or len(r.tokens) >= r.max_tokens
                if t not in eos_ids and len(r.tokens) >= r.max_tokens:
                    r.finish_reason = "length"
                _advance(r, chat, eos_ids, final=done)
                if not done and r.finish_reason is None:  # a stop string also ends the row
                    keep.append(row)
                    next_ids.append(t)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                attn, pos = attn[index], pos[index]
                active = [active[row] for row in keep]
            attn = torch.cat([attn, torch.ones((len(active), 1), dtype=attn.dtype, device=device)], dim=1)
            pos = pos + 1
            step = torch.tensor(next_ids, dtype=torch.long, device=device)[:, None]
            out = model(input_ids=step, attention_mask=attn, position_ids=pos, use_cache=True, **{cache_kw: cache})
            cache = out[cache_kw]
            logits = out.logits[:, -1, :].cpu()


class Busy(Exception):
    pass


class Engine:
    """A worker thread that decodes queued requests in batches (dynamic batching).

    After the first request arrives it waits up to `batch_wait_ms` for more, so requests sent
    together share forward passes; on a small model most of a step's time is fixed overhead,
    so a batch of 8 costs little more than one request.
    """

    def __init__(self, model, chat, *, max_batch: int = 16, batch_wait_ms: float = 10, max_queue: int = 256):
        self.model, self.chat, self.tok = model, chat, chat.tokenizer
        self.max_batch, self.wait, self.max_queue = max_batch, batch_wait_ms / 1000, max_queue
        self.queue: queue.Queue[GenRequest] = queue.Queue()
        self.stats = {"requests": 0, "batches": 0, "max_batch": 0, "completion_tokens": 0, "errors": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sftflow-decode", daemon=True)

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def submit(self, reqs: list[GenRequest]) -> None:
        if self.queue.qsize() + len(reqs) > self.max_queue:
            raise Busy(f"{self.queue.qsize()} requests queued (limit {self.max_queue}); retry shortly")
        for r in reqs:
            self.queue.put(r)

    def _collect(self) -> list[GenRequest]:
        try:
            batch = [self.queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return [r for r in batch if not r.cancelled]

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if not batch:
                continue
            self.stats["batches"] += 1
            self.stats["requests"] += len(batch)
            self.stats["max_batch"] = max(self.stats["max_batch"], len(batch))
            try:
                decode_batch(self.model, self.chat, batch)
            except Exception as err:  # a failed batch fails its requests, never the server
                self.stats["errors"] += 1
                for r in batch:
                    r.on_event("error", f"{type(err).__name__}: {err}")
            self.stats["completion_tokens"] += sum(len(r.tokens) for r in batch)
