import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The pre-trained tiny model, copied into a session temp dir.

    Built once per machine (about two minutes) and cached in $SFTFLOW_CACHE, default
    ~/.cache/sftflow, so later sessions only copy it. Tests may write next to it, never into the cache.
    """
    from sftflow.model.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(autouse=True, scope="session")
def _offline():
    """No network here: make the hub fail fast instead of retrying for half a minute."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
