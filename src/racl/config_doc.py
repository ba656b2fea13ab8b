"""`racl config show search|train`: a config as YAML with one comment line per key.

The comment of a key is the comment its dataclass field carries in the source (the one place where
each setting is explained): the comment at the end of the field's line with the comment lines that
continue it, or, for a field without one, the comment block just above it (a block that opens with a
tag such as `[design]` always belongs to the field below). `fallback` ({key: text}) fills keys whose
field has no comment (the flags' help texts). The output loads back with `--config FILE.yaml`.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Mapping

import yaml

from racl.config import all_keys, sections, to_dict

_FIELD = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s?(.*))?$")
_COMMENT = re.compile(r"^\s+#\s?(.*)$")


def field_comments(cls: type) -> dict[str, str]:
    """{field name: its source comment, on one line} of dataclass `cls` (module docstring)."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    block: list[str] = []
    last: str | None = None  # the field whose trailing comment may continue on the next lines
    for line in inspect.getsource(cls).splitlines()[1:]:
        comment, field = _COMMENT.match(line), _FIELD.match(line)
        if comment:
            text = comment.group(1).strip()
            if last is not None and not block and not text.startswith("["):
                out[last] += " " + text
            else:
                block.append(text)
                last = None
            continue
        if field and field.group(1) in names:
            name, trailing = field.group(1), (field.group(2) or "").strip()
            out[name] = " ".join([*block, trailing]).strip()
            last = name if trailing else None
        else:
            last = None
        block = []
    return {k: v for k, v in out.items() if v}


def key_comments(cls: type, fallback: Mapping[str, str] | None = None) -> dict[str, str]:
    """{key or section.key: comment} for every key of the sectioned config class `cls`."""
    fallback = fallback or {}
    secs = sections(cls)
    out = {k: v for k, v in field_comments(cls).items() if k not in secs}
    for name, section in secs.items():
        out.update({f"{name}.{k}": v for k, v in field_comments(section).items()})
    return {**{k: fallback[k] for k in all_keys(cls) if k in fallback}, **out}


def _value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def show(config: Any, comments: Mapping[str, str], header: list[str]) -> str:
    """`config` as YAML, each key under one `# comment` line (`header`: the first comment lines)."""
    lines = [f"# {h}" for h in header]
    hints = typing.get_type_hints(type(config))
    for key, value in to_dict(config).items():
        if dataclasses.is_dataclass(hints.get(key)):
            lines += ["", f"{key}:"]
            for sub, v in value.items():
                lines += [f"  # {comments.get(f'{key}.{sub}', '')}".rstrip(), f"  {sub}: {_value(v)}"]
        else:
            lines += [f"# {comments.get(key, '')}".rstrip(), f"{key}: {_value(value)}"]
    return "\n".join(lines) + "\n"
