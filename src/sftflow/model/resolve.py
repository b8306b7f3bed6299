"""Where a model's files come from, asked once and early: a local folder, a `.gguf` file or an
offline short name (both converted once into a folder in sftflow's cache), the local hub cache, or
the Hugging Face hub.

    resolve_model("smollm2-135m-instruct", Path("smollm2-135m-instruct"))  # the converted folder
    locate_model("Qwen/Qwen3-0.6B")   # "local" | "cache" | "hub", or a one-line SftflowError

`Config.model_path()` is `resolve_model` on `model.name_or_path`: every command reads the model
through it, so a `.gguf` base is one folder everywhere (`gguf_base.py`, `offline.py`).

`prepare` asks before any work, so a wrong id, a gated repo or a missing login stops there with
one line instead of at `train`. When the hub cannot be reached (no network, or HF_HUB_OFFLINE)
and the model is not cached, it raises `Unreachable`, naming the download command or the
cached id nearest to a mistyped one; the commands that need the model (`require_model`: init,
prepare, train, run) stop there, and only a caller that can do without the model (the prepare
library function, `sftflow prepare --no-model`) turns it into one warning. The process is left as
it was (the Hub is not switched off for everyone else): a caller that goes on without the model
does not load it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from sftflow.errors import SftflowError

HUB_TIMEOUT = 10.0  # seconds for the one metadata request


class Unreachable(SftflowError):
    """The hub cannot be reached and the model is not in the local cache."""


def _looks_like_path(name: str) -> bool:
    """A hub id is `name` or `org/name`; anything else is meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def resolve_model(name: str, local: Path) -> str:
    """`model.name_or_path` as something `from_pretrained` reads: `local` (the name as a path, relative
    to the config) if it is a folder; a Hugging Face folder converted from a `.gguf` file or from an
    offline short name (`offline.OFFLINE_MODELS`); else the hub id unchanged."""
    if local.is_file() and local.suffix.lower() == ".gguf":
        from sftflow.model.gguf_base import gguf_folder

        return str(gguf_folder(local))
    if local.exists():
        return str(local)
    from sftflow.model.offline import OFFLINE_MODELS, offline_gguf

    if name in OFFLINE_MODELS:
        from sftflow.model.gguf_base import gguf_folder

        return str(gguf_folder(offline_gguf(name)))
    if name.lower().endswith(".gguf"):
        locate_model(name)  # raises: no such .gguf file
    return name


def cached_models() -> list[str]:
    """The model ids in the local Hugging Face cache (its `models--org--name` folders)."""
    from huggingface_hub import constants

    try:
        folders = os.listdir(constants.HF_HUB_CACHE)
    except OSError:
        return []
    return sorted(f.removeprefix("models--").replace("--", "/") for f in folders if f.startswith("models--"))


def nearest_cached(name: str) -> str | None:
    """The cached model id (or offline short name) a mistyped `name` most likely meant."""
    from sftflow.model.offline import OFFLINE_MODELS

    known = [*cached_models(), *OFFLINE_MODELS]
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.8)
    return by_lower[close[0]] if close and by_lower[close[0]] != name else None


def fetch_hint(name: str) -> str:
    """How to get a model that is not here: the cached id it may be a typo of, and the download command."""
    near = nearest_cached(name)
    download = f"download it first: hf download {name}"
    return f"did you mean {near!r} (cached)? Otherwise {download}" if near else f"{download} (or give a local folder)"


def require_model(name: str, revision: str | None = None) -> str:
    """`locate_model` for the commands that cannot go on without the model: not cached and no hub is an
    error (one line naming the download command or the nearest cached id), not a warning."""
    try:
        return locate_model(name, revision)
    except Unreachable as err:
        raise SftflowError(str(err)) from None


def locate_model(name: str, revision: str | None = None) -> str:
    if Path(name).expanduser().exists():
        return "local"
    if _looks_like_path(name) or name.lower().endswith(".gguf"):
        what = ".gguf file" if name.lower().endswith(".gguf") else "folder"
        raise SftflowError(f"model.name_or_path {name!r}: no such {what} (a path is read relative to the config file)")
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "tokenizer_config.json"):
        if isinstance(try_to_load_from_cache(name, filename, revision=revision), str):
            return "cache"
    if _offline():
        raise Unreachable(f"model {name!r} is not in the local Hugging Face cache and the hub is off (HF_HUB_OFFLINE); "
                          + fetch_hint(name))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        HfApi().model_info(name, revision=revision, timeout=HUB_TIMEOUT)
    except GatedRepoError as err:
        raise SftflowError(f"model {name!r} is gated: accept its licence on https://huggingface.co/{name} and log in "
                           "(`hf auth login`, or set HF_TOKEN)") from err
    except RevisionNotFoundError as err:
        raise SftflowError(f"model {name!r} has no revision {revision!r} on the hub; check model.revision") from err
    except RepositoryNotFoundError as err:
        near = nearest_cached(name)
        raise SftflowError(f"model {name!r} not found on the Hugging Face hub: "
                           + (f"did you mean {near!r} (cached)? " if near else "")
                           + "check the id (a private repo needs `hf auth login` or HF_TOKEN), or give a local "
                           "folder") from err
    except HfHubHTTPError as err:
        raise SftflowError(f"model {name!r}: the hub answered {str(err).splitlines()[0]}") from err
    except Exception as err:  # noqa: BLE001 - DNS, refused, timeouts: the network, whatever the client raises
        raise Unreachable(f"model {name!r} is not in the local Hugging Face cache and the hub cannot be reached "
                          f"({type(err).__name__}); {fetch_hint(name)}") from err
    return "hub"
