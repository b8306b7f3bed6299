"""The versions sftflow was tested with (constraints.txt), and how to move them on.

    python .ci/constraints.py drift     # which pinned packages have a newer release today (report only)
    python .ci/constraints.py freeze    # write constraints.txt from the active venv (after the suite passed)
    python .ci/constraints.py update    # fresh venv, newest of everything, run the suite; rewrite on a pass

README command 1 and .ci/run install with `-c constraints.txt`, so a user gets the versions CI
passed with, not whatever was released this morning (kernels 0.19.1 arrived with transformers
5.25 and printed a line the tests did not expect). pyproject.toml keeps compatible ranges for
people who install sftflow as a library. torch is not pinned here: the install command names
the build (the CPU wheel here; a GPU machine installs its own first).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
EXTRAS = "dev,gguf,lmeval,docs"  # everything the suite needs (.ci/run installs the same)
TORCH = "torch==2.13.0"
NOT_PINNED = {"sftflow", "torch", "pip", "setuptools", "wheel"}
HEADER = """\
# Exact versions the test suite passed with (README command 2, .ci/run). Used by README command 1
# and .ci/run: pip install ... -c constraints.txt. Regenerate with `python .ci/constraints.py update`
# (fresh venv, newest releases, the suite, then this file); `drift` lists what is newer today.
"""


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def read_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def freeze(python: str) -> dict[str, str]:
    """name -> version of what is installed for `python` (editable and unpinnable packages left out)."""
    out = subprocess.run([python, "-m", "pip", "list", "--format", "json", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    return {canonical(p["name"]): p["version"] for p in json.loads(out) if canonical(p["name"]) not in NOT_PINNED}


def write_constraints(pins: dict[str, str], path: Path = CONSTRAINTS) -> None:
    path.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))


def newest(python: str = sys.executable) -> dict[str, str]:
    """What pip would install today without constraints: a dry-run resolution, nothing installed."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), TORCH, "-e", f"{ROOT}[{EXTRAS}]"], check=True)
        data = json.loads(report.read_text())
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in data["install"]
            if canonical(item["metadata"]["name"]) not in NOT_PINNED}


def drift() -> int:
    pins, today = read_pins(), newest()
    changed = {n: (pins.get(n), v) for n, v in today.items() if pins.get(n) != v}
    gone = sorted(set(pins) - set(today))
    if not changed and not gone:
        print(f"constraints: all {len(pins)} pins are the newest releases")
        return 0
    print(f"constraints: {len(changed)} of {len(today)} packages would resolve to another version without "
          "constraints.txt" + (":" if changed else ""))
    for name, (pinned, version) in sorted(changed.items()):
        print(f"  {name}: {pinned or 'not pinned'} -> {version}")
    if gone:
        print(f"  pinned but not in today's resolution (pulled in by something installed later?): {', '.join(gone)}")
    print("to move: python .ci/constraints.py update (runs the suite on the newest versions first)")
    return 0


def update(pytest_args: list[str]) -> int:
    """A fresh venv with the newest of everything, the README's test command in it; on a pass,
    constraints.txt becomes that venv's versions."""
    with tempfile.TemporaryDirectory(prefix="sftflow-update-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
        python = str(env_dir / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "-q", TORCH, "-e", f"{ROOT}[{EXTRAS}]"], check=True)
        before = read_pins() if CONSTRAINTS.exists() else {}
        result = subprocess.run([python, "-m", "pytest", *pytest_args], cwd=ROOT)
        if result.returncode != 0:
            print(f"constraints: the suite failed on the newest versions (exit {result.returncode}); "
                  "constraints.txt unchanged", file=sys.stderr)
            return result.returncode
        pins = freeze(python)
        write_constraints(pins)
        moved = sorted(n for n in pins if before.get(n) != pins[n])
        print(f"constraints: suite passed; constraints.txt rewritten ({len(moved)} changed: {', '.join(moved) or 'none'})")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("drift", help="list pinned packages with a newer release (report only)")
    sub.add_parser("freeze", help="write constraints.txt from this venv")
    upd = sub.add_parser("update", help="newest versions in a fresh venv, the suite, then constraints.txt")
    upd.add_argument("pytest_args", nargs="*", help="passed to pytest (default: the whole suite)")
    args = parser.parse_args()
    if args.command == "drift":
        return drift()
    if args.command == "freeze":
        write_constraints(freeze(sys.executable))
        print(f"constraints: {CONSTRAINTS} written from {sys.prefix}")
        return 0
    return update(args.pytest_args)


if __name__ == "__main__":
    sys.exit(main())
