"""The terminal gets sftflow's own lines; library output goes to the project's log file.

Every command the quickstart uses is run as typed and its stderr checked against sftflow's own
prefixes (tests/support.py OWN_STDERR_PREFIXES), so a library message that a new version of
anything starts printing fails here instead of reaching users. `run` and `init` are checked in
test_end_to_end.py, `serve` start-up and `chat` in tests/serve/test_serve.py, the GGUF export in
tests/model/test_gguf.py.
"""

import json
import os
import shutil

import pytest

from tests.support import foreign_lines, sftflow

# Put on PYTHONPATH, this makes "a library" speak the moment a command imports its prepare stage:
# a logger with no handler (Python's last resort, as kernels 0.19 did), a library's own logger,
# a library warning and a stray write to stderr. An audit hook: it fires inside the command.
PLANTED = '''
import sys

def _speak(event, args):
    if event == "import" and args[0] == "sftflow.data.prepare" and not getattr(_speak, "done", False):
        _speak.done = True
        import logging, warnings
        logging.getLogger("kernels._internals.hf_hub").warning("planted-lastresort: publisher trust check skipped")
        logging.getLogger("transformers.planted").warning("planted-logger: some advice")
        warnings.warn_explicit("planted-warning: deprecated", FutureWarning, "somelib/x.py", 1, module="somelib.x")
        print("planted-print: stray", file=sys.stderr)

sys.addaudithook(_speak)
'''
MARKS = ("planted-lastresort", "planted-logger", "planted-warning", "planted-print")


@pytest.fixture
def small_project(tmp_path, tiny_model_dir):
    """A quickstart project of 120 examples on the cached tiny model (trains in seconds)."""
    root = tmp_path / "proj"
    r = sftflow("init", root, "--examples", "120")
    assert r.returncode == 0 and foreign_lines(r.stderr) == [], r.stderr
    return root


def test_library_messages_go_to_the_log_and_debug_shows_them(small_project, tmp_path):
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "sitecustomize.py").write_text(PLANTED)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(planted), os.environ.get("PYTHONPATH")]))}
    config = small_project / "sftflow.yaml"

    quiet = sftflow("prepare", config, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert foreign_lines(quiet.stderr) == [] and not any(m in quiet.stderr for m in MARKS), quiet.stderr
    log = (small_project / "logs" / "sftflow.log").read_text()
    assert all(m in log for m in MARKS), log
    assert log.startswith("=== ") and "sftflow prepare (pid " in log.splitlines()[0]

    loud = sftflow("prepare", config, "--debug", env=env)
    assert loud.returncode == 0, loud.stderr
    assert all(m in loud.stderr for m in MARKS), loud.stderr


def test_quickstart_commands_print_only_sftflow_lines(small_project, tmp_path):
    """prepare, train, eval, report, export and chat on a small quickstart, as typed."""
    config = small_project / "sftflow.yaml"
    steps = [("prepare", config), ("train", config), ("eval", config), ("report", config),
             ("export", config, "--out", tmp_path / "exported")]
    for args in steps:
        r = sftflow(*args, timeout=900)
        assert r.returncode in (0, 1), (args, r.stdout[-2000:], r.stderr)  # 1: a gate of the tiny run, fine here
        assert foreign_lines(r.stderr) == [], (args, r.stderr)
    chat = sftflow("chat", small_project / "runs" / "quickstart", "--max-tokens", "8", "--threads", "1",
                   env={"OMP_NUM_THREADS": "1"}, input="my laptop is broken\n/exit\n")
    assert chat.returncode == 0 and foreign_lines(chat.stderr) == [], chat.stderr
    assert json.loads((small_project / "runs" / "quickstart" / "eval" / "metrics.json").read_text())["gates"]
    shutil.rmtree(tmp_path / "exported")
