"""Config dataclasses: built from dicts or YAML, unknown keys are errors, written back as dicts."""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, TypeVar

from racl.errors import RaclError, shown

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys and casting simple types."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(shown(k) for k in set(data) - set(fields))  # YAML keys may be numbers or odd text
    if unknown:
        raise RaclError(f"unknown {where} key(s): {', '.join(unknown)}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _cast(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RaclError(f"invalid {where}: {e}") from e
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(obj).items()}


def override(obj: T, where: str = "config", **changes: Any) -> T:
    """Replace the given fields (None values are ignored), with the same checks as from_dict."""
    merged = to_dict(obj)
    merged.update({k: v for k, v in changes.items() if v is not None})
    return from_dict(type(obj), merged, where)


def _cast(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise RaclError(f"{name} must not be empty")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        inner = [a for a in args if a is not type(None)]
        return _cast(value, inner[0], name) if len(inner) == 1 else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RaclError(f"{name} must be a list, got {value!r}")
        return tuple(_cast(v, args[0], name) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise RaclError(f"{name} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RaclError(f"{name} must be a number, got {value!r}")
        return _number(value, hint, name)
    if hint is str and not isinstance(value, str):
        raise RaclError(f"{name} must be a string, got {value!r}")
    return value


def _number(value: int | float, hint: type, name: str) -> int | float:
    """int or float from a number; inf/nan for an int, or an int too large for a float, is an error."""
    if isinstance(value, float) and not math.isfinite(value) and hint is int:
        raise RaclError(f"{name} must be a finite integer, got {value!r}")
    if hint is int and isinstance(value, float) and value != int(value):
        raise RaclError(f"{name} must be an integer, got {value!r}")
    try:
        return hint(value)
    except OverflowError as e:
        raise RaclError(f"{name} is too large to be a number here; use a smaller value") from e
