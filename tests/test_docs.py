"""The docs site and the README: the generated references match the code, cover every config key
and CLI option, the site builds with warnings as errors (a broken link or anchor fails it), and the
README stays a front page whose links resolve.

    python docs/gen_reference.py               # after changing a config field or a CLI option
    mkdocs build --strict                      # what .ci/run and test_the_site_builds_strict run

The oracles here do not share the generator's walk: config keys come from pydantic's own dump of
a config with every section filled in, CLI options from `sftflow COMMAND --help` as printed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
gen_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_reference)

# Every section present, so its keys are in the dump: the optional ones (judge, teacher, mix, a synth
# task, eval.sample) set, free-form mappings (mapping, gates, extra) left empty so they stay leaves.
FULL_CONFIG = {
    "data": {"sources": [{"path": "raw/x.jsonl"}], "mix": {"path": "raw/general.jsonl"},
             "quality": {"judge": {"model": "judge-model"}},
             "synth": {"teacher": {"model": "teacher-model"}, "tasks": [{"strategy": "paraphrase"}]}},
    "model": {"name_or_path": "some/model"},
    "eval": {"sample": {}},
}


def _key_paths(value, path: str = "") -> set[str]:
    """`data.sources`, `data.sources[].path`, ...: every key of a dumped config."""
    paths = {path} if path else set()
    if isinstance(value, dict) and value:
        for key, item in value.items():
            paths |= _key_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        paths |= {p for p in _key_paths(value[0], path + "[]") if p != path + "[]"}
    return paths


def config_keys() -> set[str]:
    import warnings

    from sftflow.config import parse_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = parse_config(FULL_CONFIG)
    return _key_paths(cfg.model_dump(mode="json"))


def test_committed_references_are_what_the_code_generates():
    assert gen_reference.stale() == [], "docs/reference is out of date: run python docs/gen_reference.py and commit it"


def test_the_drift_check_sees_a_changed_reference(tmp_path, monkeypatch):
    """stale() compares with the committed text: an edited copy is reported, the original is not."""
    copy = tmp_path / "reference"
    shutil.copytree(REFERENCE, copy)
    monkeypatch.setattr(gen_reference, "REFERENCE", copy)
    assert gen_reference.stale() == []
    (copy / "config.md").write_text((copy / "config.md").read_text().replace("| `data.seed` |", "| `data.sed` |"))
    assert gen_reference.stale() == ["config.md"]


def test_every_config_key_is_in_the_config_reference_and_nothing_else():
    keys = config_keys()
    assert len(keys) > 150 and "data.sources[].mapping" in keys and "eval.sample.top_p" in keys
    text = (REFERENCE / "config.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))
    assert sorted(keys - listed) == [], "config keys missing from docs/reference/config.md"
    assert sorted(listed - keys) == [], "docs/reference/config.md lists keys the config does not have"


def _help(*args: str) -> str:
    from typer.testing import CliRunner

    from sftflow.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def _section(text: str, title: str) -> list[str]:
    """The first word of each entry of a `--help` section ("Options:", "Commands:")."""
    lines = text.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines() if f"\n{title}\n" in text else []
    return [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")]


def test_every_command_and_option_of_the_help_is_in_the_cli_reference():
    text = (REFERENCE / "cli.md").read_text()
    commands = _section(_help(), "Commands:")
    assert {"prepare", "train", "eval", "serve", "export"} <= set(commands)
    by_command = dict(re.findall(r"^## `([a-z-]+)` \{#[a-z-]+\}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    assert sorted(by_command) == sorted(commands)
    missing = []
    for command in commands:
        printed = _help(command)
        for name in _section(printed, "Options:") + _section(printed, "Arguments:"):
            if name != "--help" and f"| `{name}" not in by_command[command]:
                missing.append(f"{command} {name}")
    for name in _section(_help(), "Options:"):
        if name != "--help" and f"| `{name}" not in text.split("\n## ", 1)[0]:
            missing.append(f"sftflow {name}")
    assert missing == []


def test_config_at_a_glance_names_only_real_keys():
    """The hand-written overview table (docs/configuration.md) may leave keys out, never name a wrong one."""
    keys = config_keys()
    wrong = []
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        names = re.findall(r"`([^`]+)`", line.split(" | ")[0])
        for name in names:
            full = names[0].rsplit(".", 1)[0] + name if name.startswith(".") else name
            if full.rstrip("[]") not in keys:
                wrong.append(full)
    assert wrong == []


def test_the_readme_is_a_front_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 10
    assert [link for link in links if "://" not in link and not (ROOT / link).exists()] == []


def _mkdocs() -> list[str]:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        message = "mkdocs and mkdocs-material not installed; run: pip install -c constraints.txt -e '.[docs]'"
        if os.environ.get("SFTFLOW_REQUIRE_DOCS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return [sys.executable, "-m", "mkdocs", "build", "--strict"]


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*_mkdocs(), "--site-dir", str(site)], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strict(tmp_path):
    result = _build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert {"index.html", "data-formats/index.html", "deploy/index.html", "reference/config/index.html",
            "reference/cli/index.html"} <= built


@pytest.mark.parametrize("link, named", [("[a page](no-such-page.md)", "no-such-page.md"),
                                          ("[a section](training.md#no-such-section)", "no-such-section")])
def test_a_broken_link_fails_the_build(tmp_path, link, named):
    _mkdocs()
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + f"\nSee {link}.\n")
    result = _build(tmp_path, tmp_path / "site")
    assert result.returncode != 0 and named in result.stderr


README_FORMATS = {"Alpaca": "alpaca", "ShareGPT": "sharegpt", "OpenAI chat with tools": "messages",
                  "prompt / completion": "prompt_completion", "text": "text"}


def test_every_example_row_in_the_readme_and_the_formats_page_converts():
    """The rows the README's formats table and docs/data-formats.md show are rows sftflow reads, in
    the format they are shown for."""
    import json

    from sftflow.formats import convert_example

    table = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")] if line.startswith("| ") else []
        if len(cells) == 2 and cells[1].startswith("`{"):
            table[cells[0].split(" (")[0]] = json.loads(cells[1].strip("`"))
    assert sorted(table) == sorted(README_FORMATS)
    for shown, row in table.items():
        fmt, example = convert_example(row, "auto", allow_text=True)
        assert fmt == README_FORMATS[shown]
    page = (ROOT / "docs" / "data-formats.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", page, flags=re.S)
    assert len(blocks) == 6
    formats = {convert_example(json.loads(block), "auto", allow_text=True)[0] for block in blocks}
    assert formats == set(README_FORMATS.values())
