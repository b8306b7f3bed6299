"""Breaking things on purpose: malformed inputs (fuzzed with hypothesis), prepare killed with
SIGKILL at random points, a full disk, and two runs into one folder. The promises tested are
in README.md's "Reliability and security" section."""

import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.read import ReadAccount, read_rows
from sftflow.data.read import check_account as check_read
from sftflow.data.signals.rows import RowProcessor, RowSettings, SourceSpec
from sftflow.errors import SftflowError
from sftflow.lock import FolderInUse, hold
from tests.filegen import make_file

pytestmark = pytest.mark.filterwarnings("ignore:.*(usable examples|test split has only|NOT checked):UserWarning")
quiet = dict(log=lambda m: None)
BOM = b"\xef\xbb\xbf"


def chat(i: int, answer: str | None = None) -> dict:
    return {"messages": [{"role": "user", "content": f"question number {i} about the order"},
                         {"role": "assistant", "content": answer or f"the answer to question {i} is here"}]}


def line(row) -> bytes:
    return json.dumps(row).encode() + b"\n"


def project(root: Path, sources: list[str], **data):
    return parse_config({"data": {"sources": [{"path": p} for p in sources], **data},
                         "model": {"name_or_path": "no-such-model"}}, root=root)


# SFTFLOW_SOAK=20 pytest tests/data/test_faults.py: the opt-in soak, 20x the fuzzed inputs of a CI run
SOAK = max(1, int(os.environ.get("SFTFLOW_SOAK", "1")))


def jsonl_lines(path) -> list[str]:
    return [x for x in path.read_text(encoding="utf-8").split("\n") if x]


def check_account(cfg, stats: dict) -> None:
    """The promise: every row read has exactly one fate, one reject line each, one ledger decision each."""
    fates = ("kept", "rejected", "duplicates", "filtered", "unused")
    assert sum(stats[k] for k in fates) == stats["rows_read"]
    # JSON Lines are split on "\n" only: str.splitlines() would also split inside strings at U+0085/U+2028
    rejects = [json.loads(x) for x in jsonl_lines(cfg.data_dir / "rejects.jsonl")]
    assert len(rejects) == stats["rejected"]
    for r in rejects:
        assert r["file"] and r["line"] >= 1 and r["reason"] and "\n" not in r["reason"]
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    try:
        decided = db.execute("SELECT count(*) FROM decisions WHERE stage = 'prepare'").fetchone()[0]
    finally:
        db.close()
    assert decided == stats["rows_read"]
    kept = sum(len(jsonl_lines(cfg.data_dir / f"{s}.jsonl"))
               for s in ("train", "val", "test"))
    assert kept == stats["kept"]


# ---------------------------------------------------------------- fuzzed files, counted by their writer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(["messages", "conversations", "instruction", "output", "input", "prompt", "completion",
                        "text", "role", "content", "from", "value", "system"])
# rows shaped like the real formats, with any value in any place: wrong types everywhere
shaped = st.one_of(
    st.dictionaries(keys, json_values, max_size=4),
    st.builds(lambda msgs: {"messages": msgs}, st.lists(st.dictionaries(keys, json_values, max_size=3), max_size=3)),
    st.builds(lambda role, content: {"messages": [{"role": "user", "content": "hi there"},
                                                  {"role": role, "content": content}]}, json_values, json_values),
    json_values,
)


def _process(path: Path) -> list:
    rows = list(read_rows(path))
    chunk = RowProcessor(RowSettings()).process(rows, SourceSpec(path.name))
    assert len(chunk.rows) == len(rows)
    for r in chunk.rows:
        if r.reject is not None:
            field, reason = r.reject
            assert reason and "\n" not in reason
            # what prepare writes for it must be writable as UTF-8
            json.dumps({"field": field, "reason": reason, "raw": r.raw_preview}, ensure_ascii=False).encode()
        else:
            json.dumps(r.record, ensure_ascii=False).encode()
    return chunk.rows


def test_generated_damaged_files_every_record_read_once(tmp_path):
    """The oracle is the generator (tests/filegen.py): it knows how many records it wrote. Every
    file's rows read equal that, the reader's account matches the file's own line count, and
    every row converts or is rejected with a one-line reason. SFTFLOW_SOAK multiplies the files."""
    rng = random.Random(0)
    planted: Counter = Counter()
    for i in range(300 * SOAK):
        kind, data, count, faults = make_file(rng)
        planted.update(faults)
        path = tmp_path / f"f{i}.{kind}"
        path.write_bytes(data)
        account = ReadAccount()
        rows = list(read_rows(path, account))
        check_read(path, path.name, account)
        assert len(rows) == count, (path.name, faults)
        _process(path)
    # the run really planted every kind of fault it claims to test
    assert all(planted[k] for k in ("bad_value", "missing_brace", "stray_quote", "ragged", "bad_utf8", "truncated",
                                    "deep", "surrogate", "file_cut", "utf-16", "utf-32", "utf8_bom"))


def test_generated_projects_account_for_every_row_through_prepare(tmp_path):
    """End to end: generated files plus a good one; per file, prepare reads exactly the rows written."""
    rng = random.Random(1)
    for p in range(4 * SOAK):
        root = tmp_path / f"proj{p}"
        (root / "raw").mkdir(parents=True)
        (root / "raw" / "good.jsonl").write_bytes(b"".join(line(chat(i)) for i in range(30)))
        expected = {"raw/good.jsonl": 30}
        for i in range(12):
            kind, data, count, _ = make_file(rng)
            (root / "raw" / f"f{i}.{kind}").write_bytes(data)
            expected[f"raw/f{i}.{kind}"] = count
        cfg = project(root, ["raw"])
        stats = prepare(cfg, **quiet)
        check_account(cfg, stats)
        assert {f: stats["files"].get(f, {}).get("read", 0) for f in expected} == expected
        assert stats["rows_read"] == sum(expected.values())


@settings(max_examples=300 * SOAK, deadline=None)
@given(row=shaped)
def test_any_row_shape_is_converted_or_rejected_with_a_field(row):
    from sftflow.errors import RowError
    from sftflow.formats import convert_row

    try:
        convert_row(row, "auto")
    except RowError as err:
        assert err.reason and "\n" not in err.reason


# ---------------------------------------------------------------- the catalogue of bad inputs


def test_every_kind_of_malformed_file_is_accounted_for(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = [line(chat(i)) for i in range(40)]
    # UTF-8 text beside a damaged line: the file is UTF-8 with one bad row, not in a legacy encoding
    utf8 = (json.dumps(chat(103, "the answer is in the café"), ensure_ascii=False) + "\n").encode()
    files = {  # name: (bytes, rows read, rows rejected)
        "good.jsonl": (b"".join(good), 40, 0),
        "truncated.jsonl": (line(chat(100)) + line(chat(101))[:25], 2, 1),
        "utf8.jsonl": (line(chat(102)) + b'{"text": "\xff\xfe"}\n' + utf8, 3, 1),
        "nul.jsonl": (b'{"messages": \x00}\n' + line(chat(104)), 2, 1),
        "bom.jsonl": (BOM + line(chat(105)), 1, 0),
        "newlines.jsonl": (line(chat(106))[:-1] + b"\r\n" + line(chat(107))[:-1] + b"\r" + line(chat(108)), 3, 0),
        "deep.jsonl": (b"[" * 100_000 + b"\n" + b'{"messages": ' + b"[" * 300 + b"]" * 300 + b"}\n", 2, 2),
        "types.jsonl": (b"".join(line(r) for r in (
            42, None, "text", [], {"messages": "hi"}, {"messages": [1]},
            {"messages": [{"role": ["user"], "content": "x"}, {"role": "assistant", "content": "y"}]},
            {"instruction": 5, "output": "x"}, {"prompt": "p", "completion": {"a": 1}},
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None}]})), 10, 10),
        "surrogate.jsonl": (b'{"messages": [{"role": "user", "content": "a \\ud800"}, '
                            b'{"role": "assistant", "content": "b"}]}\n', 1, 1),
        "huge.jsonl": (b'{"text": "' + b"x" * 10_000_000 + b"\n" + line(chat(109)), 2, 1),
        "quotes.csv": (b'prompt,completion\nwhat is it,it is a thing\n"unbalanced,oops\nlast,row\n', 3, 1),
        "array.json": (b'[\n' + b",\n".join(json.dumps(chat(200 + i)).encode() for i in range(3)) + b',\n{"mess', 4, 1),
        "utf8.json": (b'[{"text": "\xff"},\n' + utf8[:-1] + b"]", 2, 1),  # only its row
        "empty.jsonl": (b"", 0, 0),
        "empty.json": (b"", 0, 0),
        "empty.csv": (b"", 0, 0),
    }
    for name, (data, _, _) in files.items():
        (raw / name).write_bytes(data)
    cfg = project(tmp_path, ["raw"])
    stats = prepare(cfg, **quiet)
    check_account(cfg, stats)
    got = {name: (stats["files"].get(f"raw/{name}", {}).get("read", 0),
                  stats["files"].get(f"raw/{name}", {}).get("rejected", 0)) for name in files}
    assert got == {name: (read, rejected) for name, (_, read, rejected) in files.items()}
    reasons: dict[str, list] = {}
    for x in jsonl_lines(cfg.data_dir / "rejects.jsonl"):
        r = json.loads(x)
        reasons.setdefault(r["file"].split("/")[-1], []).append(r["reason"])
    assert reasons["utf8.jsonl"] == ["invalid UTF-8 at byte 10"]
    assert reasons["deep.jsonl"] == ["invalid JSON: nested too deeply", "must be an object, got list"]
    assert reasons["surrogate.jsonl"][0].startswith("invalid Unicode")
    assert reasons["huge.jsonl"][0].startswith("invalid JSON")
    assert reasons["quotes.csv"][0].startswith("unbalanced quotes: a quoted field opened on this line")
    assert reasons["array.json"] == ["invalid JSON: the array is not closed (truncated file?)"]


@pytest.mark.parametrize("case", ["directory", "unreadable", "json_deep", "json_scalar",
                                  "csv_header_not_utf8", "unknown_suffix"])
def test_a_bad_file_stops_prepare_with_one_line_naming_it(tmp_path, monkeypatch, case):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.jsonl").write_bytes(b"".join(line(chat(i)) for i in range(20)))
    bad = raw / {"json_not_utf8": "bad.json", "json_deep": "bad.json", "json_scalar": "bad.json",
                 "csv_header_not_utf8": "bad.csv", "unknown_suffix": "bad.txt"}.get(case, "bad.jsonl")
    if case == "directory":
        bad.mkdir()  # a folder where a file was named, holding nothing readable
    elif case == "unreadable":
        # tests run as root here, where chmod 000 still reads: simulate the kernel's refusal instead
        bad.write_bytes(line(chat(99)))
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if Path(path) == bad:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("sftflow.data.read.text.open", refusing_open, raising=False)
    else:
        bad.write_bytes({"json_not_utf8": b'[{"text": "\xff"}]', "json_deep": b"{" + b'"a":{' * 100_000,
                         "json_scalar": b"42", "csv_header_not_utf8": "pr\udcffompt,completion\nx,café\n".encode("utf-8", "surrogateescape"),
                         "unknown_suffix": b"hello"}[case])
    cfg = project(tmp_path, ["raw/good.jsonl", str(bad.relative_to(tmp_path))])
    with pytest.raises(SftflowError) as caught:
        prepare(cfg, **quiet)
    message = str(caught.value)
    assert "\n" not in message and bad.name in message
    assert not (cfg.data_dir / "train.jsonl").exists()


# ---------------------------------------------------------------- kill -9, full disk, locks

OUTPUT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl")


def _outputs(data_dir: Path) -> dict:
    return {n: (data_dir / n).read_bytes() for n in OUTPUT_FILES}


def _write_data(root: Path, offset: int) -> None:
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rows = [line(chat(i + offset)) for i in range(1200)] + [b"{broken\n"] * 5
    (raw / "a.jsonl").write_bytes(b"".join(rows))


def _prepare_child(root: str, kill_at: int) -> None:
    if kill_at:
        real, count = os.replace, [0]

        def replace(a, b):  # die between two renames of the publish step
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            real(a, b)

        os.replace = replace
    prepare(project(Path(root), ["raw/a.jsonl"]), **quiet)


def _run_prepare(root: Path, kill_at: int = 0, delay: float | None = None) -> int:
    """prepare in a forked process (imports already warm), SIGKILLed after `delay` s or at the kill_at-th rename."""
    import multiprocessing as mp

    proc = mp.get_context("fork").Process(target=_prepare_child, args=(str(root), kill_at))
    proc.start()
    if delay is not None:
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=120)
    return proc.exitcode


def test_prepare_killed_at_random_points_never_leaves_a_mix(tmp_path):
    """SIGKILL at random moments and between the renames of the publish step: the outputs are
    always all of the previous run's or all of the new one's, and the next prepare gives exactly
    the outputs of an uninterrupted run."""
    from sftflow.data_folder import check_published

    data_dir = tmp_path / "data"
    _write_data(tmp_path, 0)
    prepare(project(tmp_path, ["raw/a.jsonl"]), **quiet)  # in this process: warms the imports
    outputs = {0: _outputs(data_dir)}
    _write_data(tmp_path, 10_000)
    start = time.time()
    assert _run_prepare(tmp_path) == 0
    full = time.time() - start
    outputs[10_000] = _outputs(data_dir)
    assert outputs[0] != outputs[10_000]
    rng = random.Random(1)
    kills = [("time", rng.uniform(0.05, full)) for _ in range(4)] + [("publish", 2), ("publish", 5)]
    current = 10_000
    for how, when in kills:
        target = 10_000 - current
        _write_data(tmp_path, target)
        code = _run_prepare(tmp_path, delay=when) if how == "time" else _run_prepare(tmp_path, kill_at=int(when))
        if (data_dir / ".publishing").exists():  # killed mid-publish: train refuses, the next prepare finishes
            with pytest.raises(SftflowError, match="interrupted while publishing"):
                check_published(data_dir)
        else:
            assert _outputs(data_dir) in (outputs[current], outputs[target]), f"a mix after a kill ({how} {when})"
        assert _run_prepare(tmp_path) == 0, code
        assert _outputs(data_dir) == outputs[target]
        assert not list(data_dir.glob(".prepare-*")) and not (data_dir / ".publishing").exists()
        current = target


@pytest.mark.parametrize("where", ["stats", "ledger", "spool"])
def test_full_disk_during_prepare_stops_cleanly_keeping_previous_outputs(tmp_path, monkeypatch, where):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"".join(line(chat(i)) for i in range(60)))
    cfg = project(tmp_path, ["raw/a.jsonl"])
    prepare(cfg, **quiet)
    before = _outputs(cfg.data_dir)
    (raw / "a.jsonl").write_bytes(b"".join(line(chat(i + 500)) for i in range(60)))
    full = OSError(errno.ENOSPC, "No space left on device")

    def fail(*args, **kwargs):
        raise full

    if where == "stats":
        monkeypatch.setattr("sftflow.data.prepare.write_json", fail)
    elif where == "ledger":
        def ledger_full(self):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr("sftflow.data.account.ledger.Ledger.flush", ledger_full)
    else:
        import sftflow.data.prepare as p

        real = p.Collector.add

        def add(self, chunk, src):
            real(self, chunk, src)
            raise full

        monkeypatch.setattr(p.Collector, "add", add)
    with pytest.raises(SftflowError, match="no space left on the device") as caught:
        prepare(cfg, **quiet)
    assert "\n" not in str(caught.value)
    assert _outputs(cfg.data_dir) == before
    assert not list(cfg.data_dir.glob(".prepare-*"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_recognised_in_the_errors_that_wrap_it(tmp_path):
    """torch.save onto a full disk says "[enforce fail at inline_container.cc:...] . unexpected pos ..." with
    no errno; /dev/full fails every write with ENOSPC, so it gives the real error to recognise."""
    import torch

    from sftflow.train.run_folder import disk_full

    with pytest.raises(RuntimeError) as caught:
        torch.save({"w": torch.ones(4096)}, "/dev/full")
    assert "unexpected pos" in str(caught.value) and getattr(caught.value, "errno", None) is None
    assert disk_full(caught.value)
    for errno_ in (errno.ENOSPC, errno.EDQUOT):
        try:
            try:
                raise OSError(errno_, os.strerror(errno_))
            except OSError as err:
                raise RuntimeError("while saving the weights") from err  # wrapped, as libraries do
        except RuntimeError as wrapped:
            assert disk_full(wrapped)
    with pytest.raises(RuntimeError) as other:
        torch.save({"w": torch.ones(4)}, tmp_path / "no-such-folder" / "w.pt")
    assert not disk_full(other.value) and not disk_full(OSError(errno.EACCES, "Permission denied"))


def test_a_second_prepare_into_the_same_folder_fails_naming_the_holder(tmp_path, processes):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"".join(line(chat(i)) for i in range(30)))
    cfg = project(tmp_path, ["raw/a.jsonl"])
    holder = processes.start([sys.executable, "-c", "import sys, time\nfrom sftflow.lock import hold\n"
                               "with hold(sys.argv[1], 'prepare'):\n    print('held', flush=True)\n"
                               "    time.sleep(60)\n", str(cfg.data_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse) as caught:
            prepare(cfg, **quiet)
        assert f"pid {holder.pid}" in str(caught.value) and "sftflow prepare" in str(caught.value)
        assert "\n" not in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    prepare(cfg, **quiet)  # the kernel dropped the dead holder's lock: no stale lock file to clean up


def test_train_refuses_a_busy_or_used_run_folder(tmp_path):
    """Checked before anything is loaded: the lock, a previous run, and --resume with --overwrite."""
    from sftflow.train.trainer import train

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"".join(line(chat(i)) for i in range(30)))
    cfg = project(tmp_path, ["raw/a.jsonl"])
    with hold(cfg.run_dir, "train"), pytest.raises(FolderInUse, match=rf"in use by sftflow train \(pid {os.getpid()}\)"):
        train(cfg, **quiet)
    (cfg.run_dir / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (cfg.run_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (cfg.run_dir / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(SftflowError, match=r"already holds a run \(checkpoints\); pass --resume to continue it, "
                                           r"--overwrite to replace it"):
        train(cfg, **quiet)
    with pytest.raises(SftflowError, match="not both"):
        train(cfg, resume=True, overwrite=True, **quiet)
    (cfg.data_dir).mkdir(exist_ok=True)
    (cfg.data_dir / ".publishing").write_text(".prepare-x")
    with pytest.raises(SftflowError, match="interrupted while publishing"):
        train(cfg, overwrite=True, **quiet)
    (cfg.data_dir / ".publishing").unlink()
    with pytest.raises(SftflowError, match="train.jsonl: not found"):  # --overwrite cleared the folder first
        train(cfg, overwrite=True, **quiet)
    assert not (cfg.run_dir / "checkpoints").exists() and not (cfg.run_dir / "metrics.jsonl").exists()


def _prepare_killed_mid_publish(root: str) -> None:
    """prepare, SIGKILLed between moving its first and its second output into place."""
    real, moved = os.replace, []

    def replace(a, b):
        if ".prepare-" in str(a) and Path(b).parent == Path(root) / "data":
            moved.append(b)
            if len(moved) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        real(a, b)

    os.replace = replace
    prepare(project(Path(root), ["raw/a.jsonl"]), **quiet)


@pytest.mark.slow
def test_eval_audit_and_report_refuse_a_half_published_data_folder(tmp_path, tmp_path_factory, tiny_model_dir):
    """Every command that reads the data folder refuses it while a killed prepare's publish is unfinished, as
    train does: one line that says to run `sftflow prepare` again (they used to read the stale split and pass)."""
    import multiprocessing as mp
    import shutil

    from tests.test_cli import one_line_error, sftflow
    from tests.tiny_run import shared_run

    # audit: prepare killed for real halfway through moving its outputs into place
    _write_data(tmp_path, 0)
    prepare(project(tmp_path, ["raw/a.jsonl"]), **quiet)
    _write_data(tmp_path, 10_000)
    proc = mp.get_context("fork").Process(target=_prepare_killed_mid_publish, args=(str(tmp_path),))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == -signal.SIGKILL and (tmp_path / "data" / ".publishing").exists()
    (tmp_path / "sftflow.yaml").write_text(json.dumps({"data": {"sources": [{"path": "raw/a.jsonl"}]},
                                                       "model": {"name_or_path": "no-such-model"}}))
    # eval and report: a finished run whose data folder is then left half-published
    run = shutil.copytree(shared_run(tmp_path_factory, tiny_model_dir).parents[1], tmp_path / "run")
    (run / "data" / ".publishing").write_text(".prepare-x")
    for command, root in (("audit", tmp_path), ("eval", run), ("report", run)):
        line = one_line_error(sftflow(command, str(root / "sftflow.yaml"), timeout=600))
        assert line == (f"error: {root / 'data'}: a prepare was interrupted while publishing its outputs "
                        "(train/val/test may not match); run `sftflow prepare` again to finish it"), command
    assert not (run / "runs" / "tiny" / "eval" / "report.html").exists()
    # and once prepare has finished the publish, audit answers again
    assert sftflow("prepare", str(tmp_path / "sftflow.yaml"), "--no-model").returncode == 0
    r = sftflow("audit", str(tmp_path / "sftflow.yaml"))
    assert r.returncode == 0 and "decision=kept" in r.stdout, r.stderr


# ---------------------------------------------------------------- synth killed mid-run


def test_synth_killed_with_sigkill_resumes_without_duplicates_or_loss(tmp_path, processes):
    """kill -9 of `sftflow synth` mid-run, then a re-run: every planned candidate exactly once."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from tests.data.test_synth import project as synth_project
    from tests.fake_openai import FakeOpenAI

    sftflow = str(Path(sys.executable).parent / "sftflow")
    with FakeOpenAI() as fake:
        fake.delay = 0.1  # slow teacher: the run takes seconds, so the kill lands mid-run
        cfg = synth_project(tmp_path, fake.url, [{"strategy": "paraphrase", "count": 3}], seeds=10)
        config = tmp_path / "sftflow.yaml"
        config.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
        out = cfg.path(cfg.data.synth.output)
        env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
        proc = processes.start([sftflow, "synth", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
        deadline = time.time() + 60
        while time.time() < deadline and not (out.exists() and out.read_text().count("\n") >= 5):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        done_at_kill = out.read_text().count("\n")
        assert 5 <= done_at_kill < 30  # really interrupted mid-run
        r = subprocess.run([sftflow, "synth", str(config)], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in jsonl_lines(out)]
    keys = [row["synthetic"]["key"] for row in rows]
    assert len(keys) == len(set(keys)) == 30  # nothing generated twice, nothing lost
