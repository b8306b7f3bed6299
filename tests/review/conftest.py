"""The review tests' fixtures: one tiny trained run per module, a private copy per test, and
the app on a live uvicorn."""

import shutil

import pytest

from tests.support import live_server
from tests.tiny_run import shared_run

TOKEN = "test-token-123456"
ADMIN = "admin-token-654321"


@pytest.fixture(scope="module")
def built_run(tmp_path_factory, tiny_model_dir):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: no OpenMP spinning against other processes
    try:
        return shared_run(tmp_path_factory, tiny_model_dir)
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def project(built_run, tmp_path):
    """A private copy of the project (config, model, run): these tests write ratings and reports."""
    dest = tmp_path / "proj"
    shutil.copytree(built_run.parents[1], dest)
    return dest


@pytest.fixture
def run_dir(project):
    return project / "runs" / "tiny"


@pytest.fixture
def live(run_dir):
    """The review app on a real uvicorn bound to 127.0.0.1 (a free port), in a thread."""
    from sftflow.review.app import create_app

    with live_server(create_app(run_dir, TOKEN, admin_token=ADMIN)) as url:
        yield url
