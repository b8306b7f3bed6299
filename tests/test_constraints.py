"""constraints.txt pins what the suite passed with: every dependency sftflow declares is pinned,
each pin satisfies pyproject's range, and the installed versions are the pinned ones (a
difference means the venv was not installed with `-c constraints.txt`, as the README says)."""

import importlib.metadata
import importlib.util
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("constraints_tool", ROOT / ".ci" / "constraints.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = tool.read_pins()
    problems = []
    for req in _declared():
        name = tool.canonical(req.name)
        if name in tool.NOT_PINNED:
            continue
        if name not in pins:
            problems.append(f"{req.name}: not in constraints.txt")
        elif req.specifier and not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: pinned {pins[name]}, pyproject asks {req.specifier}")
    assert problems == []


def test_installed_versions_are_the_pinned_ones():
    pins = tool.read_pins()
    installed = {tool.canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    differ = {n: (v, installed[n]) for n, v in pins.items() if n in installed and installed[n] != v}
    assert differ == {}, "installed without -c constraints.txt? (pinned, installed): " + repr(differ)


def test_constraints_round_trip(tmp_path):
    path = tmp_path / "c.txt"
    tool.write_constraints({"b-pkg": "1.0", "a-pkg": "2.0"}, path)
    assert path.read_text().endswith("a-pkg==2.0\nb-pkg==1.0\n")
    assert tool.read_pins(path) == {"a-pkg": "2.0", "b-pkg": "1.0"}


def test_readme_command_1_is_what_ci_runs_and_uses_the_constraints():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("python3 -m venv .venv"))
    assert "-c constraints.txt" in command and command in ci.replace("pip install -q ", "pip install ")
