"""What every config section shares: unknown keys are errors, and outputs stay inside the project."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


def inside_project(value: str) -> str:
    """Outputs stay in the project folder: a relative path may not climb out of it with '..'
    (an absolute path is taken as meant)."""
    p = Path(value).expanduser()
    if not p.is_absolute() and Path(os.path.normpath(p)).parts[:1] == ("..",):
        raise ValueError("leaves the project folder; use a path inside it, or an absolute path "
                         "if that is really meant")
    return value


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

