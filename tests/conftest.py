import contextlib
import ctypes
import os
import signal

import pytest

# No network here: the hub must fail fast instead of retrying for half a minute. Set at import,
# before any test module imports huggingface_hub (it reads the variable once, on import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The pre-trained tiny model, copied into a session temp dir.

    Built once per machine (about two minutes) and cached in $SFTFLOW_CACHE, default
    ~/.cache/sftflow, so later sessions only copy it. Tests may write next to it, never into the cache.
    """
    from sftflow.model.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def pytest_collection_modifyitems(config, items):
    """Every test that loads the tiny model (the `tiny_model_dir` fixture, directly or through
    another fixture) is `slow`, so `pytest -m "not slow"` is the quick subset: no model at all."""
    for item in items:
        if "tiny_model_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def cli():
    """`cli("prepare", "sftflow.yaml", cwd=root)`: the sftflow command as a user types it."""
    from tests.support import sftflow

    return sftflow


@pytest.fixture
def processes():
    """`processes.sftflow("serve", run, "--port", "0")`: a background process the test owns; it is
    stopped when the test ends, whatever the way (pass, fail, skip, timeout)."""
    from tests.support import Processes

    owned = Processes()
    try:
        yield owned
    finally:
        owned.stop_all()


@pytest.fixture
def live_server():
    """`with live_server(app) as url:` the app on uvicorn at a free 127.0.0.1 port, stopped after."""
    from tests.support import live_server

    return live_server


# ---------------------------------------------------------------- no process outlives the suite

PR_SET_CHILD_SUBREAPER = 36
HARMLESS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")  # exit with their parent


def pytest_sessionstart(session):
    """Processes orphaned by a test's child (a server a wrapper started) are re-parented to pytest
    rather than to init, so the check below sees them too."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _leftover_processes():
    import psutil

    leftovers = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(child.cmdline())
        except psutil.Error:  # gone meanwhile
            continue
        if not any(h in cmdline for h in HARMLESS):
            leftovers.append((child, cmdline))
    return leftovers


def pytest_sessionfinish(session, exitstatus):
    """A test must stop what it starts on every path: a child of the suite still alive at the end
    fails the run (and is killed here, so it does not outlive it)."""
    leftovers = _leftover_processes()
    if not leftovers:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for child, cmdline in leftovers:
        if reporter is not None:
            reporter.write_line(f"left running by the tests, killed: pid {child.pid}: {cmdline[:300]}", red=True)
        with contextlib.suppress(Exception):
            child.send_signal(signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
