"""Prompt templates and replies for the models prepare and synth talk to (the judge, the teacher).

A template is a Jinja text, built in or the user's file, named by its content hash so that an
edited template makes new synth jobs and new judge cache keys; a reply is read back as the
first JSON object in it. Both `synth` and the judge use these, so neither imports the other.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from sftflow.errors import SftflowError


@dataclass
class Template:
    name: str
    text: str
    compiled: object = field(repr=False, default=None)

    @property
    def id(self) -> str:
        """Name and content hash: editing a template makes new jobs, not silent variations of old ones."""
        return f"{self.name}@{hashlib.sha256(self.text.encode()).hexdigest()[:8]}"

    def render(self, **context) -> str:
        from jinja2 import UndefinedError

        try:
            return self.compiled.render(**context).strip()
        except UndefinedError as err:
            raise SftflowError(f"template {self.name}: {err.message}; available: {', '.join(sorted(context))}") from err


def load_template(name: str, path: str | None, root: Path, key: str, builtin: str) -> Template:
    """The Jinja file at `path` (relative to the config), else the built-in text."""
    from jinja2 import Environment, StrictUndefined, TemplateSyntaxError

    if path is None:
        text = builtin
    else:
        file = Path(path).expanduser()
        file = file if file.is_absolute() else root / file
        if not file.is_file():
            raise SftflowError(f"{key}: template file {file} not found")
        text, name = file.read_text(encoding="utf-8"), file.stem
    env = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    try:
        compiled = env.from_string(text)
    except TemplateSyntaxError as err:
        raise SftflowError(f"{key}: {path or name}:{err.lineno}: template syntax error: {err.message}") from err
    return Template(name, text, compiled)


def parse_json_object(text: str) -> dict | None:
    """The first JSON object in a reply, tolerating code fences and prose around it."""
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    body = fence.group(1) if fence else text
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", body):
        try:
            obj, _ = decoder.raw_decode(body, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None
