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
        "error: --model Qwen/Qwen2.5-0.5B-Instruct: no ready project for this model (ready: smollm2-135m-instruct "
        f"(support tickets → JSON, LoRA)); for your own data, add it: sftflow init {tmp_path / 'p'} --model "
        "Qwen/Qwen2.5-0.5B-Instruct --data FILE")
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
    line = one_line_error(sftflow("prepare", str(p), "--no-model"))
    assert "raw/missing.jsonl not found" in line
    r = sftflow("--debug", "prepare", str(p), "--no-model")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_prepare_through_cli_reports_counts(tmp_path):
    (tmp_path / "raw.jsonl").write_text(
        "".join(f'{{"prompt": "q{i}", "completion": "a{i}"}}\n' for i in range(30)) + "{broken\n")
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: raw.jsonl}]\nmodel: {name_or_path: m}\n")
    r = sftflow("prepare", str(p), "--no-model")
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
    r = sftflow("prepare", str(p), "--no-model")
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
    r = sftflow("prepare", str(p), "--debug", "--no-model")
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


# ---- issue 31: a CLI that reads as one tool ----------------------------------------------------------------


def test_bare_sftflow_prints_help_and_succeeds():
    r = sftflow()
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: sftflow [OPTIONS] COMMAND") and all(c in r.stdout for c in COMMANDS)


@pytest.mark.parametrize("command, argument", [("prepare", "CONFIG"), ("train", "CONFIG"), ("run", "CONFIG"),
                                               ("eval", "RUN"), ("report", "RUN"), ("export", "RUN"),
                                               ("serve", "RUN"), ("chat", "RUN"), ("review", "RUN"),
                                               ("init", "DIR")])
def test_usage_lines_name_what_to_pass(command, argument):
    usage = sftflow(command, "--help").stdout.splitlines()[0]
    assert usage == f"Usage: sftflow {command} [OPTIONS] {argument}"


def test_choices_are_case_insensitive(tmp_path):
    """--format HF is --format hf: the next check (quantize is for GGUF) speaks, not the spelling."""
    line = one_line_error(sftflow("export", tmp_path / "sftflow.yaml", "--format", "HF", "--quantize", "Q8_0",
                                  "--out", tmp_path / "out"))
    assert line == "error: --quantize applies to --format gguf only"


def test_each_generation_default_is_stated_where_it_applies():
    """chat's answers and a serve request without max_tokens get one default, and each command's help
    says so and where eval's comes from."""
    def words(command):  # the help without its wrapping (click breaks lines inside hyphenated words too)
        return "".join(sftflow(command, "--help").stdout.split())

    assert ("--default-max-tokens<intrange>tokensarequestthatsetsnomax_tokensgets(thesamedefaultaschat's"
            "--max-tokens)[default:256;") in words("serve")
    assert ("--max-tokens<intrange>tokensperansweratmost(thesamedefaultasserve's--default-max-tokens;eval"
            "usesitsown,eval.max_new_tokens)[default:256;") in words("chat")


# ---- issue 31: messages that carry the fix -----------------------------------------------------------------

QA_CSV = "question,answer,source\n" + "".join(
    f"What does order {i} contain?,Order {i} contains {i % 7 + 1} items,shop\n" for i in range(40))


def test_the_reject_summary_shows_the_fix(tmp_path):
    """The terminal's reason line carries the mapping to paste (it used to stop at the first ';', and the fix
    was only in rejects.jsonl)."""
    (tmp_path / "qa.csv").write_text(QA_CSV)
    p = tmp_path / "sftflow.yaml"
    p.write_text("data:\n  sources: [{path: qa.csv}]\nmodel: {name_or_path: m}\n")
    r = sftflow("prepare", str(p), "--no-model")
    assert r.returncode == 2 and "error: no usable examples" in r.stderr
    assert ("  rejected     40: unknown format (fields: answer, question, source): set `mapping: {prompt: question, "
            "completion: answer}` on this source in the config;") in r.stdout


@pytest.mark.parametrize("mapping, says", [
    ("{promt: question, completion: answer}", "'promt' is not a field sftflow reads (did you mean 'prompt'?)"),
    ("{question: prompt, answer: completion}", "{question: prompt} is reversed: a mapping is written {field "
                                               "sftflow reads: your column}, so write {prompt: question}"),
])
def test_mapping_keys_are_checked(tmp_path, mapping, says):
    """A mapping key sftflow does not read renamed a column to nothing, and every row was rejected."""
    (tmp_path / "qa.csv").write_text(QA_CSV)
    p = tmp_path / "sftflow.yaml"
    p.write_text(f"data:\n  sources: [{{path: qa.csv, mapping: {mapping}}}]\nmodel: {{name_or_path: m}}\n")
    line = one_line_error(sftflow("prepare", str(p), "--no-model"))
    assert line.startswith(f"error: {p}: 'data.sources.0.mapping': {says}"), line
    assert not (tmp_path / "data").exists()


def test_unknown_keys_list_the_allowed_ones_once(tmp_path):
    """An Axolotl config's keys: each named, with a did-you-mean where one is near, the allowed list once."""
    p = tmp_path / "sftflow.yaml"
    p.write_text("base_model: Qwen/Qwen2.5-0.5B\ndatasets: [{path: a.jsonl}]\nmicro_batch_size: 2\n"
                 "gradient_accumulation_steps: 4\nlora_r: 16\ndata:\n  sources: [{path: a.jsonl}]\n"
                 "model: {name_or_path: m}\n")
    line = one_line_error(sftflow("prepare", str(p)))
    assert line == (f"error: {p}: unknown keys 'base_model' (did you mean 'model'?), 'datasets' (did you mean "
                    "'data'?), 'micro_batch_size', 'gradient_accumulation_steps', 'lora_r'; allowed at the top level: "
                    "name, data, model, train, eval, review, output_dir")


def test_run_resume_reaches_training(tmp_path, tiny_model_dir):
    """`run --resume` is train's --resume: here both it and --overwrite, which train refuses after prepare."""
    (tmp_path / "raw.jsonl").write_text("".join(
        f'{{"prompt": "question {i} about my order", "completion": "answer {i}"}}\n' for i in range(40)))
    p = tmp_path / "sftflow.yaml"
    p.write_text(f"data:\n  sources: [{{path: raw.jsonl}}]\nmodel: {{name_or_path: '{tiny_model_dir}'}}\n")
    r = sftflow("run", str(p), "--resume", "--overwrite")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == ("error: give --resume (continue this run) or "
                                                               "--overwrite (start it again), not both"), r.stderr
    assert (tmp_path / "data" / "train.jsonl").exists()  # prepare ran first


def test_commands_that_use_a_trained_model_take_the_run_folder(tmp_path_factory, tiny_model_dir):
    """export and report, like serve, chat and review, take runs/NAME as well as the project's config."""
    import shutil

    from tests.tiny_run import shared_run

    root = tmp_path_factory.mktemp("run-folder") / "proj"
    shutil.copytree(shared_run(tmp_path_factory, tiny_model_dir).parents[1], root)
    run = root / "runs" / "tiny"
    r = sftflow("export", run, "--out", root / "exported")
    assert r.returncode == 0 and f"exported model: {root / 'exported'}" in r.stdout, r.stderr
    assert (root / "exported" / "adapter_config.json").exists()
    r = sftflow("report", run)
    assert r.returncode == 0 and f"report: {run / 'eval' / 'report.html'}" in r.stdout, r.stderr
