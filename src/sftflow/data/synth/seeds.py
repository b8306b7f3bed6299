"""What `sftflow synth` starts from: human seed examples (converted as prepare converts them) and
user-written prompts to answer."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sftflow.data.decide.dedup import content_hash
from sftflow.data.pii import redact_message
from sftflow.data.read import iter_sources
from sftflow.errors import RowError
from sftflow.formats import convert_example


@dataclass
class Seed:
    id: str  # the id prepare gives the same example
    messages: list[dict]
    where: str  # file:line

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None

    @property
    def turns(self) -> list[dict]:
        return [m for m in self.messages if m["role"] != "system"]

    def view(self) -> dict:
        """What a template sees of a seed."""
        turns = self.turns
        return {"id": self.id, "system": self.system, "prompt": turns[-2]["content"], "answer": turns[-1]["content"],
                "turns": turns}


def load_seeds(cfg) -> list[Seed]:
    """Human-written examples to start from: data.synth.seeds, else the human data.sources.

    Converted exactly as prepare converts them (so seed ids are the prepared ids), PII redacted
    first when data.quality.pii is redact, so it never reaches the teacher.
    """
    d, s = cfg.data, cfg.data.synth
    seeds: dict[str, Seed] = {}
    for raw, fmt, mapping in _seed_rows(cfg):
        if raw.error is not None or (isinstance(raw.row, dict) and raw.row.get("origin") == "synthetic"):
            continue
        try:
            _, example = convert_example(raw.row, fmt, mapping=mapping, system_prompt=d.system_prompt)
        except RowError:
            continue  # prepare reports it; a seed must be a usable example
        if d.quality.pii == "redact":  # tool calls' arguments too
            example.messages = [redact_message(m) for m in example.messages]
        record = example.to_dict()
        sid = content_hash(record)
        seeds.setdefault(sid, Seed(sid, record["messages"], f"{raw.file}:{raw.line}"))
        if s.max_seeds and len(seeds) >= s.max_seeds:
            break
    return list(seeds.values())


def _seed_rows(cfg):
    """(raw row, format, mapping) of data.synth.seeds, else of the human data.sources: files, and
    hub datasets or save_to_disk folders as prepare reads them (row numbers as lines)."""
    d, s = cfg.data, cfg.data.synth
    output = cfg.path(s.output).resolve()
    if s.seeds:
        entries = [(s.seeds, "auto", {}, "data.synth.seeds")]
    else:
        entries = [(src, src.format, src.mapping, f"data.sources[{i}]") for i, src in enumerate(d.sources)
                   if src.origin == "human"]
    for entry, fmt, mapping, key in entries:
        for source in iter_sources(entry, cfg.root, key):
            if source.path is not None and source.path.resolve() == output:
                continue
            yield from ((replace(raw, file=source.display), fmt, mapping) for raw in source.rows())


def load_prompts(cfg) -> tuple[list[tuple[str, str]], list[str]]:
    """(where, prompt) of every user prompt to answer, and the rows skipped with why."""
    s = cfg.data.synth
    prompts, skipped = [], []
    for source in iter_sources(s.prompts, cfg.root, "data.synth.prompts"):
        name, path = source.display, source.path
        if path is not None and path.suffix.lower() == ".txt":
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    prompts.append((f"{name}:{lineno}", line.strip()))
            continue
        for raw in source.rows():
            value = raw.row.get("prompt") if isinstance(raw.row, dict) else None
            if raw.error is not None or not isinstance(value, str) or not value.strip():
                skipped.append(f"{name}:{raw.line}: {raw.error or 'no prompt string'}")
                continue
            prompts.append((f"{name}:{raw.line}", value.strip()))
    return prompts, skipped
