"""The CLI as a user types it: the installed `sftflow` entry point, in a subprocess."""

import os
import subprocess
import sys
import time

import pytest

from tests.support import sftflow

COMMANDS = ["init", "prepare", "train", "eval", "report", "run", "estimate", "export", "audit", "serve", "chat",
            "review", "synth"]


def test_version_and_fast_help():
    from sftflow import __version__

    r = sftflow("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"sftflow {__version__}"
    start = time.time()
    r = sftflow("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in COMMANDS)
    assert time.time() - start < 10  # no torch import for --help


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_example(command):
    r = sftflow(command, "--help")
    assert r.returncode == 0
    assert "sftflow" in r.stdout and "Example" in r.stdout


def one_line_error(r, code=2):
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in r.stderr
    return lines[0]


def test_init_model_names_the_models_with_a_ready_project(tmp_path):
    assert one_line_error(sftflow("init", tmp_path / "p", "--model", "Qwen/Qwen2.5-0.5B-Instruct")) == (
        "error: --model Qwen/Qwen2.5-0.5B-Instruct: no ready project for this model; ready: smollm2-135m-instruct "
        "(support tickets → JSON, LoRA). For another model, start from `sftflow init DIR` and set "
        "model.name_or_path (README: With a real Hugging Face model)")
    assert not (tmp_path / "p").exists()


def test_missing_config_is_one_line(tmp_path):
    line = one_line_error(sftflow("prepare", str(tmp_path / "nope.yaml")))
    assert "nope.yaml: config file not found" in line


def test_bad_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [\n  - oops: {\n")
    line = one_line_error(sftflow("prepare", str(p)))
    assert f"{p}:" in line and "invalid YAML" in line


def test_unknown_key_and_wrong_type(tmp_path):
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: a.jsonl}]\nmodel: {name_or_path: m}\ntrain: {epoch: 2, batch_size: many}\n")
    line = one_line_error(sftflow("train", str(p)))
    assert "unknown key 'train.epoch' (did you mean 'epochs'?)" in line
    assert "'train.batch_size': Input should be a valid integer" in line


def test_missing_data_file_and_debug_traceback(tmp_path):
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: raw/missing.jsonl}]\nmodel: {name_or_path: m}\n")
    line = one_line_error(sftflow("prepare", str(p)))
    assert "raw/missing.jsonl not found" in line
    r = sftflow("--debug", "prepare", str(p))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_prepare_through_cli_reports_counts(tmp_path):
    (tmp_path / "raw.jsonl").write_text(
        "".join(f'{{"prompt": "q{i}", "completion": "a{i}"}}\n' for i in range(30)) + "{broken\n")
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: raw.jsonl}]\nmodel: {name_or_path: m}\n")
    r = sftflow("prepare", str(p))
    assert r.returncode == 0, r.stderr
    assert "31 rows read → 30 kept, 1 rejected, 0 duplicates" in r.stdout
    assert (tmp_path / "data" / "rejects.jsonl").read_text().count("\n") == 1


def test_guardrail_warning_once_where_it_applies(tmp_path):
    """Risky training settings warn on the commands that train (train, run), once each, and
    not on every command that reads the config (prepare, audit, report)."""
    (tmp_path / "raw.jsonl").write_text("".join(f'{{"prompt": "q{i}", "completion": "a{i}"}}\n' for i in range(10)))
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: raw.jsonl}]\nmodel: {name_or_path: m}\ntrain: {method: full, learning_rate: 1e-4}\n")
    warning = "warning: train.learning_rate 0.0001 > 3e-05 in full fine-tuning"
    r = sftflow("prepare", str(p))
    assert r.returncode == 0 and "warning: train." not in r.stderr, r.stderr
    r = sftflow("audit", str(p))
    assert r.returncode == 0 and "warning: train." not in r.stderr, r.stderr
    for command in ("train", "run"):  # both stop at the model that is not there, after warning once
        r = sftflow(command, str(p))
        assert r.stderr.count(warning) == 1, (command, r.stderr)
        assert r.returncode == 2 and "error: model 'm'" in r.stderr, (command, r.stderr)


def test_debug_after_the_command(tmp_path):
    from sftflow.cli import hoist_debug

    assert hoist_debug(["prepare", "x.yaml", "--debug"]) == ["--debug", "prepare", "x.yaml"]
    assert hoist_debug(["--debug", "prepare", "x.yaml"]) == ["--debug", "prepare", "x.yaml"]
    assert hoist_debug(["chat", "run", "--", "--debug"]) == ["chat", "run", "--", "--debug"]  # after --: an argument
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: raw/missing.jsonl}]\nmodel: {name_or_path: m}\n")
    r = sftflow("prepare", str(p), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "raw/missing.jsonl not found" in r.stderr


def test_library_chatter_goes_to_the_log_unless_debug(tmp_path):
    """DeepSpeed logs "Setting accelerator to CPU" to stdout when it is imported on a machine without
    a GPU (resetting its logger's level as it does); transformers logs to stderr through a handler
    it creates on import. While a command runs both land in the log file, not on the terminal."""
    import deepspeed  # noqa: F401  (the dev extra installs it: a missing one fails)
    code = ("import sys, contextlib; from pathlib import Path; from sftflow.logs import library_output_to\n"
            "quiet = sys.argv[1] == 'quiet'\n"
            "with (library_output_to(Path(sys.argv[2]), 'sftflow test') if quiet else contextlib.nullcontext()):\n"
            "    import deepspeed, transformers; transformers.logging.get_logger('transformers.x').warning('chatter')\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_VERBOSITY")}  # as from a fresh shell
    quiet = subprocess.run([sys.executable, "-c", code, "quiet", str(tmp_path)], capture_output=True, text=True,
                           timeout=300, env=env)
    loud = subprocess.run([sys.executable, "-c", code, "debug", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "Setting accelerator" not in quiet.stdout + quiet.stderr and "chatter" not in quiet.stderr
    assert "chatter" in loud.stderr
    log = (tmp_path / "logs" / "sftflow.log").read_text()
    assert "chatter" in log
    import torch

    if not torch.cuda.is_available():  # DeepSpeed's line is for machines without a GPU
        assert "Setting accelerator to CPU" in loud.stdout and "Setting accelerator to CPU" in log
