"""stats.json's "steps": each prepare step's own counters, in pipeline order. The rule filters run
in worker processes a chunk at a time; their counts must come back summed over every chunk. The
oracle reads the outputs as files (raw lines, rejects.jsonl, the ledger's filtered rows, the
split files), never through sftflow's counting code."""

import json
import sqlite3

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.read import RawRow
from sftflow.data.signals.rows import RowProcessor, RowSettings, SourceSpec
from sftflow.data_folder import LEDGER, REJECTS, STATS
from tests.data.test_prepare import chat

REFUSAL = "I'm sorry, but as an AI language model I cannot help with that."
BENCH_PROMPT = "What is the boiling point of water at sea level in degrees Celsius?"
# the ledger's reason for a filtered row, as the user reads it, by the filter that wrote it
REASON_OF = {"low_quality": "quality ", "contaminated": "contaminated: ", "echoed_prompt": "the answer repeats"}


def _good(i: int) -> dict:
    return chat(i, f"The answer to question {i} is {i * 7}: open Settings, then Billing, then Invoices.")


def _echo(i: int) -> dict:
    prompt = f"{i} + 5 = ?"
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"Q: {prompt}"}]}


def _bench_row() -> dict:
    return {"messages": [{"role": "user", "content": BENCH_PROMPT}, {"role": "assistant", "content": "100 degrees."}]}


def _write(path, rows) -> int:
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    return len(rows)


def test_the_steps_counters_equal_what_the_outputs_hold_with_several_workers(tmp_path):
    # three files: each is read as its own chunks, handed to the worker pool, and summed in the main process
    files = {
        "a.jsonl": [_good(i) for i in range(40)] + [chat(100 + i, REFUSAL) for i in range(3)] + ["{not json\n"],
        "b.jsonl": [_good(200 + i) for i in range(30)] + [_echo(i) for i in range(2)] + [_bench_row()],
        "c.jsonl": [_good(300 + i) for i in range(30)] + [chat(400, REFUSAL), _bench_row(), _good(5)],
    }
    (tmp_path / "raw").mkdir()
    read_rows = sum(_write(tmp_path / "raw" / name, rows) for name, rows in files.items())
    _write(tmp_path / "bench.jsonl", [_bench_row()])
    cfg = parse_config({"data": {"sources": [{"path": f"raw/{name}"} for name in files],
                                 "decontaminate": ["bench.jsonl"]}, "model": {"name_or_path": "m"}}, root=tmp_path)

    prepare(cfg, log=lambda m: None, workers=2)

    steps = json.loads((cfg.data_dir / STATS).read_text())["steps"]
    out = cfg.data_dir
    rejected = len((out / REJECTS).read_text().splitlines())
    db = sqlite3.connect(out / LEDGER)
    filtered = [r for (r,) in db.execute("SELECT reason FROM decisions WHERE stage='prepare' AND decision='filtered'")]
    fates = dict(db.execute("SELECT decision, count(*) FROM decisions WHERE stage='prepare' GROUP BY decision"))
    kept = sum(len((out / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test"))

    assert list(steps) == ["read", "low_quality", "contaminated", "echoed_prompt", "decide", "write", "leakage"]
    assert steps["read"] == {"rows": read_rows, "files": 3}
    seen = read_rows - rejected  # every row that became a record meets the first filter
    for name, reason in REASON_OF.items():  # the chain in order: a filter sees what the ones before it kept
        dropped = sum(r.startswith(reason) for r in filtered)
        assert dropped > 0, f"the test data should make {name} drop something"
        assert steps[name] == {"seen": seen, "kept": seen - dropped, "dropped": dropped}, name
        seen -= dropped
    assert sum(steps[name]["dropped"] for name in REASON_OF) == len(filtered)
    assert steps["write"] == {"kept": kept, "duplicates": fates["duplicate"], "filtered": len(filtered),
                              "unused": fates.get("unused", 0)}
    assert steps["leakage"]["exact_prompt_leaks"] == 0


def test_a_row_rejected_as_over_long_never_meets_the_filters(tiny_model_dir):
    """The length check comes before the filter chain: an over-long refusal is rejected and not also
    counted as dropped, so a filter's `dropped` equals the filtered rows it leaves in the ledger."""
    p = RowProcessor(RowSettings(model_path=str(tiny_model_dir), max_tokens=64))
    too_long = chat(1, REFUSAL + " " + " ".join(f"word{i}" for i in range(200)))
    raws = [RawRow("t.jsonl", 1, too_long), RawRow("t.jsonl", 2, _good(2)), RawRow("t.jsonl", 3, chat(3, REFUSAL))]
    chunk = p.process(raws, SourceSpec("t.jsonl"))
    assert [r.reject is not None for r in chunk.rows] == [True, False, False]
    assert [r.drop.code if r.drop else None for r in chunk.rows] == [None, None, "low_quality"]
    assert chunk.filter_counts["low_quality"] == {"seen": 2, "kept": 1, "dropped": 1}
