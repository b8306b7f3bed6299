import os

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
def live_server():
    """`with live_server(app) as url:` the app on uvicorn at a free 127.0.0.1 port, stopped after."""
    from tests.support import live_server

    return live_server
