"""A config written as YAML with each key's help, type and default as a comment above it (`sftflow init`)."""

from __future__ import annotations

import warnings

import yaml
from pydantic import BaseModel

from sftflow.config import Config, parse_config


def _help_lines(model: type[BaseModel], data: dict, indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        value = data[name]
        ann = field.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if field.is_required():
            default = " (required)"
        elif sub or isinstance(value, list):
            default = ""
        else:
            default = f" (default {field.get_default(call_default_factory=True)!r})"
        if field.description:
            lines.append(f"{pad}# {field.description}{default}")
        if sub and isinstance(value, dict):
            lines.append(f"{pad}{name}:")
            lines.extend(_help_lines(sub, value, indent + 2))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{name}:")
            item_cls = getattr(ann, "__args__", (None,))[0]
            for item in value:
                item_lines = _help_lines(item_cls, item, indent + 4)
                first = next(i for i, line in enumerate(item_lines) if not line.lstrip().startswith("#"))
                item_lines[first] = f"{pad}  - " + item_lines[first].lstrip()
                item_lines[:first] = [line[2:] for line in item_lines[:first]]  # align with the "- "
                lines.extend(item_lines)
        else:
            dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()
            lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")
    return lines


def commented_yaml(data: dict) -> str:
    """A config as YAML with each key's help, type and default as a comment above it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_config(data)  # never write a config we would reject
    return "\n".join(_help_lines(Config, data, 0)) + "\n"
