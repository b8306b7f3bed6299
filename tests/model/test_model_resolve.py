"""prepare finds out early and once whether the model can be had: wrong id, gated repo, no such
folder, offline. The hub is a local HTTP server speaking the hub's error protocol (HF_ENDPOINT),
reached by the real huggingface_hub client in a real `sftflow prepare`."""

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import SFTFLOW


class FakeHub:
    """/api/models/<org>/<name>: 'gated' → 403 GatedRepo, anything else → 404 RepoNotFound."""

    def __enter__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                gated = "gated" in self.path
                self.send_response(403 if gated else 404)
                self.send_header("X-Error-Code", "GatedRepo" if gated else "RepoNotFound")
                self.send_header("X-Error-Message", "Access restricted" if gated else "Repository not found")
                self.send_header("Content-Type", "application/json")
                body = json.dumps({"error": "nope"}).encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def project(tmp_path: Path, model: str) -> Path:
    (tmp_path / "raw").mkdir(exist_ok=True)
    (tmp_path / "raw" / "a.jsonl").write_text("".join(
        json.dumps({"prompt": f"question {i} about my order", "completion": f"answer {i}"}) + "\n" for i in range(40)))
    config = tmp_path / "sftflow.yaml"
    config.write_text(f"data:\n  sources: [{{path: raw/a.jsonl}}]\nmodel: {{name_or_path: {model}}}\n")
    return config


def prepare(config: Path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    return subprocess.run([SFTFLOW, "prepare", str(config)], capture_output=True, text=True, timeout=120,
                          env=base | {"NO_COLOR": "1", "HF_HOME": str(config.parent / "hf-home"), **env})


@pytest.mark.parametrize("model, says", [
    ("some-org/no-such-model", "not found on the Hugging Face hub: check the id (a private repo needs"),
    ("meta-llama/gated-model", "is gated: accept its licence on https://huggingface.co/meta-llama/gated-model and log in"),
])
def test_a_wrong_or_gated_hub_id_stops_prepare_with_one_line(tmp_path, model, says):
    with FakeHub() as hub:
        started = time.monotonic()
        r = prepare(project(tmp_path, model), HF_ENDPOINT=hub.url)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0 and len(lines) == 1 and says in lines[0], r.stderr
    assert time.monotonic() - started < 60 and not (tmp_path / "data" / "train.jsonl").exists()


def test_a_missing_model_folder_stops_prepare(tmp_path):
    r = prepare(project(tmp_path, "./models/base"), HF_HUB_OFFLINE="1")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0 and lines == ["error: model.name_or_path './models/base': no such folder (a path is read "
                                           "relative to the config file)"], r.stderr


def test_offline_and_not_cached_stops_prepare_with_the_download_command(tmp_path):
    """No network at all (nothing listens on the endpoint): one line naming the command that fetches the
    model, no retry noise, no minute of waiting, nothing published. Before, prepare warned and went on,
    and the failure came at train."""
    started = time.monotonic()
    config = project(tmp_path, "some-org/model")
    r = prepare(config, HF_ENDPOINT="http://127.0.0.1:9")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and lines == [
        "error: model 'some-org/model' is not in the local Hugging Face cache and the hub cannot be reached "
        "(ConnectError); download it first: hf download some-org/model (or give a local folder)"], r.stderr
    assert time.monotonic() - started < 60 and not (tmp_path / "data" / "train.jsonl").exists()


def test_a_mistyped_id_offline_names_the_cached_one(tmp_path):
    """HF_HUB_OFFLINE and an id one letter off a cached one (`…-Instruc`): the cached id is named."""
    cached = tmp_path / "hf-home" / "hub" / "models--Qwen--Qwen2.5-1.5B-Instruct" / "snapshots" / "abc"
    cached.mkdir(parents=True)
    r = prepare(project(tmp_path, "Qwen/Qwen2.5-1.5B-Instruc"), HF_HUB_OFFLINE="1")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and lines == [
        "error: model 'Qwen/Qwen2.5-1.5B-Instruc' is not in the local Hugging Face cache and the hub is off "
        "(HF_HUB_OFFLINE); did you mean 'Qwen/Qwen2.5-1.5B-Instruct' (cached)? Otherwise download it first: "
        "hf download Qwen/Qwen2.5-1.5B-Instruc"], r.stderr


def test_prepare_without_the_model_is_one_warning_and_goes_on(tmp_path):
    """--no-model: data work before the model is downloaded; token lengths are not checked, and it says so once."""
    config = project(tmp_path, "some-org/model")
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    r = subprocess.run([SFTFLOW, "prepare", str(config), "--no-model"], capture_output=True, text=True, timeout=120,
                       env=base | {"NO_COLOR": "1", "HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert r.returncode == 0, r.stderr
    warned = [x for x in r.stderr.splitlines() if "NOT checked" in x]
    assert len(warned) == 1 and "the hub cannot be reached" in warned[0] and "hf download some-org/model" in warned[0]
    assert "Retrying" not in r.stderr and (tmp_path / "data" / "train.jsonl").exists()
