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
