"""Secrets and personal data (issue 10, promise 6).

API keys and review tokens are read from flags and the environment and must never be
written anywhere: not in the project, the run folder, reports, the ledger, logs, or the
commands' own output. Personal data found by the data stage is counted in the data card,
and `data.quality.pii: redact` replaces it before anything is written, rejected rows'
raw text in rejects.jsonl included.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.support import SFTFLOW
from tests.tiny_run import shared_run

API_KEY = "sk-serve-7f3a9c1e5b2d4680aa"
TOKEN = "review-tok-93b1e7c55d0f2a"
ADMIN_TOKEN = "review-admin-5e0c2d8a4417"
TEACHER_KEY = "sk-teacher-2c8e4a6b0d1f3957"
SECRETS = (API_KEY, TOKEN, ADMIN_TOKEN, TEACHER_KEY)
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def leaks(folder: Path, *outputs: str) -> list[str]:
    """Where any secret appears: files under `folder` (bytes, so SQLite and binaries count) and outputs."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)}: {s[:8]}…" for s in SECRETS if s.encode() in data]
    for i, text in enumerate(outputs):
        found += [f"output {i}: {s[:8]}…" for s in SECRETS if s in text]
    return found


def _start(processes, args: list[str], marker: str, env=None) -> tuple[subprocess.Popen, str, list[str]]:
    proc = processes.start([SFTFLOW, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or ENV)
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return proc, line, seen
    proc.kill()
    raise AssertionError(f"{args[0]} did not start: {''.join(seen)} {proc.communicate()[1]}")


def _stop(proc: subprocess.Popen, seen: list[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return "".join(seen) + out + err


@pytest.fixture
def project(tmp_path_factory, tiny_model_dir, tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        built = shared_run(tmp_path_factory, tiny_model_dir)
    finally:
        torch.set_num_threads(before)
    dest = tmp_path / "proj"
    shutil.copytree(built.parents[1], dest)
    return dest


def test_serve_key_and_review_token_are_written_nowhere(project, processes):
    run_dir = project / "runs" / "tiny"
    proc, line, seen = _start(processes, ["serve", str(run_dir), "--port", "0", "--api-key", API_KEY, "--threads", "1"], "/v1 (model")
    try:
        url = line.split()[1].removesuffix("/v1")
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        ok = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=60)
        bad = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}x"})
        assert ok.status_code == 200 and bad.status_code == 401
        assert API_KEY not in bad.text
    finally:
        serve_out = _stop(proc, seen)

    env = {**ENV, "SFTFLOW_REVIEW_TOKEN": TOKEN, "SFTFLOW_REVIEW_ADMIN_TOKEN": ADMIN_TOKEN}
    proc, line, seen = _start(processes, ["review", str(run_dir), "--port", "0"], "review: open ", env=env)
    try:
        assert TOKEN not in line and "--token or $SFTFLOW_REVIEW_TOKEN" in line  # the user's token is not echoed
        url = line.split("review: open ")[1].split("/login")[0]
        with httpx.Client(base_url=url, follow_redirects=False) as client:
            assert client.post("/login", data={"token": TOKEN, "name": "ann"}).status_code == 303
            page = client.get("/review", follow_redirects=True)
            assert page.status_code == 200 and TOKEN not in page.text
            assert client.get("/export/ratings.csv").status_code == 403  # the admin's, not a reviewer's
            admin = client.get("/export/ratings.csv", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert admin.status_code == 200 and ADMIN_TOKEN not in admin.text
            assert client.post("/login", data={"token": TOKEN + "x", "name": "bob"}).status_code == 401
    finally:
        review_out = _stop(proc, seen)

    report = subprocess.run([SFTFLOW, "report", str(project / "sftflow.yaml")], capture_output=True, text=True,
                            env={**ENV, "SFTFLOW_API_KEY": API_KEY, "SFTFLOW_REVIEW_TOKEN": TOKEN}, timeout=120)
    assert report.returncode in (0, 1), report.stderr  # 1: a gate failed, fine here
    assert leaks(project, serve_out, review_out, report.stdout, report.stderr) == []


def _rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"please help with case {i} about order {i * 7}"},
                          {"role": "assistant", "content": json.dumps({"intent": "help", "n": i})}]}
            for i in range(n)]


def test_teacher_and_judge_keys_stay_in_the_environment(tmp_path):
    """synth and prepare (with the LLM judge) authenticate with a key from the environment; the
    candidates, provenance, judge cache, ledger, data card and output never contain it, and a
    key pasted into the config is refused without being echoed."""
    with FakeOpenAI(api_key=TEACHER_KEY) as fake:
        (tmp_path / "raw").mkdir()
        (tmp_path / "raw" / "human.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(30)))
        endpoint = {"base_url": fake.url, "model": "teacher-1", "backoff": 0.01, "timeout": 5, "concurrency": 2}
        config = {"name": "sec", "model": {"name_or_path": "m"},
                  "data": {"sources": [{"path": "raw/human.jsonl"}], "system_prompt": "Answer with JSON.",
                           "synth": {"teacher": {**endpoint, "api_key_env": "SYNTH_KEY"},
                                     "tasks": [{"strategy": "paraphrase"}]},
                           "quality": {"judge": {**endpoint, "api_key_env": "JUDGE_KEY"}}}}
        path = tmp_path / "sftflow.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**ENV, "SYNTH_KEY": TEACHER_KEY, "JUDGE_KEY": TEACHER_KEY}
        synth = subprocess.run([SFTFLOW, "synth", str(path)], capture_output=True, text=True, env=env, timeout=120)
        assert synth.returncode == 0, synth.stderr
        prep = subprocess.run([SFTFLOW, "prepare", str(path), "--no-model"], capture_output=True, text=True, env=env,
                              timeout=120)
        assert prep.returncode == 0, prep.stderr
        assert "judge teacher-1:" in prep.stdout and len(fake.requests) > 30  # both really used the endpoint
        outputs = [synth.stdout, synth.stderr, prep.stdout, prep.stderr]

        config["data"]["synth"]["teacher"]["api_key_env"] = TEACHER_KEY  # the key itself, by mistake
        path.write_text(yaml.safe_dump(config))
        wrong = subprocess.run([SFTFLOW, "synth", str(path)], capture_output=True, text=True, env=env, timeout=60)
        lines = [x for x in wrong.stderr.splitlines() if x.strip()]
        assert wrong.returncode == 2 and len(lines) == 1 and "not hold the key itself" in lines[0], wrong.stderr
        outputs += [wrong.stdout, wrong.stderr]
    path.unlink()  # the user's own file, where the key was pasted; everything sftflow wrote must be clean
    assert leaks(tmp_path, *outputs) == []


# ------------------------------------------------------------------ personal data


EMAIL, PHONE, CARD = "jane.doe@example.com", "+1 415-555-0199", "4111 1111 1111 1111"


def _pii_project(tmp_path, mode: str):
    from sftflow.config import parse_config

    rows = [json.dumps(r) for r in _rows(40)]
    rows[3] = json.dumps({"messages": [{"role": "user", "content": f"my email is {EMAIL}, what now?"},
                                       {"role": "assistant", "content": f"We wrote to {EMAIL} and will call {PHONE}."}]})
    rows[4] = json.dumps({"messages": [{"role": "user", "content": f"charge card {CARD} please"},
                                       {"role": "assistant", "content": "Done, charged."}]})
    rows[5] = json.dumps({"messages": [{"role": "user", "content": f"call me on {PHONE}"},
                                       {"role": "assistant", "content": "TODO"}]})  # filtered (placeholder)
    rows += [
        '{"messages": [{"role": "user", "content": "mail ' + EMAIL + '"',  # truncated JSON: rejected
        json.dumps({"messages": [{"role": "robot", "content": f"card {CARD}, phone {PHONE}"}]}),  # bad role
        json.dumps({"text": f"plain text with {EMAIL}"}),  # text rows are not allowed here: rejected
    ]
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    (raw / "a.jsonl").write_text("\n".join(rows) + "\n")
    return parse_config({"data": {"sources": [{"path": "raw/a.jsonl"}], "quality": {"pii": mode}},
                         "model": {"name_or_path": "m"}}, root=tmp_path)


@pytest.mark.parametrize("mode", ["flag", "redact"])
def test_pii_is_counted_in_the_data_card_and_redacted_before_anything_is_written(tmp_path, mode):
    from sftflow.data.prepare import prepare

    cfg = _pii_project(tmp_path, mode)
    lines = []
    stats = prepare(cfg, log=lines.append)
    assert stats["rejected"] == 3
    assert stats["pii"] == {"mode": mode, "rows": 3, "kinds": {"phone": 2, "email": 1, "card": 1}, "kept": 2}
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "## Personal data" in card and "**3** rows with personal data (phone 2, email 1, card 1), 2 of them kept" in card
    assert any("personal data in 3 rows" in line for line in lines)
    written = {p.name: p.read_bytes() for p in cfg.data_dir.rglob("*") if p.is_file()}
    found = {name for name, data in written.items() for s in (EMAIL, PHONE, CARD) if s.encode() in data}
    splits = b"".join(written[f"{s}.jsonl"] for s in ("train", "val", "test"))
    rejects = written["rejects.jsonl"]
    if mode == "flag":  # the scan is real: unredacted, the data is there
        assert {"train.jsonl", "val.jsonl", "test.jsonl"} & found and "rejects.jsonl" in found
        return
    assert found == set(), found
    assert b"[EMAIL]" in splits and b"[PHONE]" in splits and b"[CARD_NUMBER]" in splits
    assert b"[EMAIL]" in rejects and b"[CARD_NUMBER]" in rejects and b"[PHONE]" in rejects
    assert "redact" in card and "rejects.jsonl" in card
