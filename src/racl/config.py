"""Config dataclasses, one mechanism for every command: sections, dict/YAML round trip, overrides, presets.

A config is a frozen dataclass; its dataclass-typed fields are its *sections* (one frozen dataclass
per concern), the other fields are top-level keys. Wherever a config is built (Python keyword
arguments, a YAML file, `--set key=value`, a command-line flag) a key is written `section.key`, or
bare when exactly one section has it. Unknown keys are errors; a float may be written as text like
"8/255" or "1e-3" (YAML 1.1 reads those as strings); values are cast and checked on construction.

    config_from_dict(Cls, data, base)      nested or bare-key dict -> Cls (on top of `base`)
    config_to_dict(config)                 -> the nested plain dict a run folder's config.yaml holds
    flat_dict(config)                      -> {bare key: value}, for messages and flat records
    apply_overrides(config, ["k=v", ...])  `--set`
    load_config / save_config              YAML files
    get_preset(Cls, PRESETS, name)         a named starting point
    sectioned                              class decorator: Cls(eps=4/255) routes bare keys to sections
A config class may carry `RENAMED` ({old key: new key}: `--set old=...` is an error naming the new
key) and `upgrade(data) -> data` (old keys of a saved config rewritten before it is read).
    add_flags / flag_values                `--KEY VALUE` flags that are `--set KEY=VALUE` under another name
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import math
import re
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from racl.errors import RaclError, shown
from racl.io import read_yaml, write_yaml

T = TypeVar("T")
# a number as text: "8/255", "0.031", "1e-3" (group 1: numerator, group 2: the optional denominator)
NUMBER_TEXT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$", re.I)


def check(ok: bool, message: str) -> None:
    """RaclError(message) unless ok: the configs' validation."""
    if not ok:
        raise RaclError(message)


def check_one_of(name: str, value: str, options: tuple[str, ...]) -> None:
    check(value in options, f"{name} must be one of {', '.join(options)}, got {value!r}")


def read_number(text: str) -> float | None:
    """'8/255' -> 0.0313..., '1e-3' -> 0.001, '0.5' -> 0.5; None for anything else (also 'x/0')."""
    match = NUMBER_TEXT.match(text)
    if not match or float(match.group(2) or 1.0) == 0:
        return None
    return float(match.group(1)) / float(match.group(2) or 1.0)


# ---------------------------------------------------------------- one flat dataclass
def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys and casting simple types."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(shown(k) for k in set(data) - set(fields))  # YAML keys may be numbers or odd text
    if unknown:
        close = [c for k in unknown for c in difflib.get_close_matches(k, list(fields), n=1, cutoff=0.6)]
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise RaclError(f"unknown {where} key(s): {', '.join(unknown)}{hint}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _cast(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RaclError(f"invalid {where}: {e}") from e
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass (tuples become lists, as they read back from YAML or JSON)."""
    return _plain(dataclasses.asdict(obj))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def coerce_numbers(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers written as text ("8/255", "1e12") become floats for the float keys of `cls`; other
    text stays as it is, so `from_dict` names the key ("x must be a number, got '8/0'")."""
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for key, value in data.items():
        if isinstance(value, str) and key in hints and float in (hints[key], *typing.get_args(hints[key])):
            number = read_number(value)
            out[key] = value if number is None else number
    return out


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


# ---------------------------------------------------------------- sections
def sections(cls: type) -> dict[str, type]:
    """{field name: dataclass type} of the sectioned config class `cls`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def top_keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in sections(cls)]


def key_owners(cls: type) -> dict[str, list[str]]:
    """{bare key: [sections holding it]} (a top-level key is owned by '')."""
    owners: dict[str, list[str]] = {k: [""] for k in top_keys(cls)}
    for name, section in sections(cls).items():
        for f in dataclasses.fields(section):
            owners.setdefault(f.name, []).append(name)
    return owners


def renamed(cls: type, key: Any, where: str) -> None:
    """RaclError naming the new key when `key` is one of `cls.RENAMED` (old key -> new key)."""
    new = getattr(cls, "RENAMED", {}).get(key.rpartition(".")[2] if isinstance(key, str) else key)
    if new is not None:
        raise RaclError(f"{where} key {shown(key)!r} is now {new!r}")


def unknown_keys(cls: type, keys: list[str], where: str) -> RaclError:
    """'unknown ... key(s) X (did you mean Y?); racl config show CMD lists every key'."""
    owners = key_owners(cls)
    known = [k for k, o in owners.items() if len(o) == 1] + [f"{o}.{k}" for k, os in owners.items() for o in os if o]
    close = {k: difflib.get_close_matches(k, known, n=2, cutoff=0.6) for k in keys if isinstance(k, str)}
    hint = "; ".join(f"{k}: did you mean {' or '.join(c)}?" for k, c in close.items() if c)
    command = "train" if where.startswith("training") else where.split()[0]
    return RaclError(f"unknown {where} key{'s' if len(keys) > 1 else ''} {', '.join(repr(shown(k)) for k in keys)}"
                     f"{f' ({hint})' if hint else ''}; racl config show {command} lists every key")


def key_path(cls: type, key: str, where: str = "config") -> tuple[str, ...]:
    """'eps' -> ('attack', 'eps'); 'optim.lr' -> ('optim', 'lr'); 'epochs' -> ('epochs',)."""
    renamed(cls, key, where)
    if "." in key:
        section, _, name = key.partition(".")
        if section not in sections(cls) or name not in {f.name for f in dataclasses.fields(sections(cls)[section])}:
            raise unknown_keys(cls, [key], where)
        return (section, name)
    owners = key_owners(cls).get(key)
    if not owners:
        raise unknown_keys(cls, [key], where)
    if len(owners) > 1:
        raise RaclError(f"{where} key {key!r} is in several sections; write one of "
                        f"{', '.join(f'{o}.{key}' if o else key for o in owners)}")
    return (owners[0], key) if owners[0] else (key,)


def nest(cls: type, data: Mapping[Any, Any], where: str = "config") -> dict[str, Any]:
    """A dict with section mappings, `section.key` keys and bare keys -> {top keys, section: {...}}."""
    secs = sections(cls)
    out: dict[str, Any] = {}
    unknown = []
    for key, value in data.items():
        if key in secs:
            if not isinstance(value, Mapping):
                raise RaclError(f"{where} section {key!r} must be a mapping, got {value!r}")
            out.setdefault(key, {}).update(value)
            continue
        owners = key_owners(cls).get(key, []) if isinstance(key, str) and "." not in key else []
        if isinstance(key, str) and ("." in key or len(owners) > 1):
            path = key_path(cls, key, where)
        elif len(owners) == 1:
            path = (owners[0], key) if owners[0] else (key,)
        else:
            unknown.append(shown(key))
            continue
        if len(path) == 2:
            out.setdefault(path[0], {})[path[1]] = value
        else:
            out[path[0]] = value
    if unknown:
        raise unknown_keys(cls, sorted(unknown), where)
    return out


def config_from_dict(cls: type[T], data: Mapping[Any, Any] | None, base: T | None = None,
                     where: str = "config") -> T:
    """`cls` from a nested (or bare-key) dict on top of `base` (default: the defaults)."""
    if data is not None and not isinstance(data, Mapping):
        raise RaclError(f"a {where} must be a YAML mapping of key: value")
    merged = config_to_dict(base if base is not None else cls())
    upgrade = getattr(cls, "upgrade", None)  # a config class's old keys (saved runs) -> its current ones
    data = upgrade(data) if upgrade is not None and data else data
    for key, value in nest(cls, data or {}, where).items():
        merged[key] = {**merged[key], **value} if key in sections(cls) else value
    built = {name: from_dict(section, coerce_numbers(section, merged.pop(name)), f"{where} {name}")
             for name, section in sections(cls).items()}
    top = from_dict(cls, coerce_numbers(cls, merged), where)
    return dataclasses.replace(top, **built)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The nested plain dict (what `config.yaml` holds)."""
    return to_dict(config)


def flat_dict(config: Any) -> dict[str, Any]:
    """{bare key (section.key where a bare key is ambiguous): value}."""
    owners = key_owners(type(config))
    out: dict[str, Any] = {}
    for key, value in config_to_dict(config).items():
        if isinstance(value, dict) and key in sections(type(config)):
            out.update({(k if len(owners[k]) == 1 else f"{key}.{k}"): v for k, v in value.items()})
        else:
            out[key] = value
    return out


def parse_override(item: str, where: str = "config") -> tuple[str, Any]:
    """'key=value' -> (key, value read as YAML: 0.5, true, null, [0.5, 0.999], 8/255 stays text)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise RaclError(f"--set expects key=value, got {item!r}")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RaclError(f"--set {item!r}: cannot read the value ({str(e).splitlines()[0]})") from e
    except RecursionError as e:
        raise RaclError(f"--set {key.strip()}: the value is nested too deeply") from e


def apply_overrides(config: T, items: list[str] | tuple[str, ...], where: str = "config") -> T:
    """Apply `--set key=value` strings (section.key or a bare unique key)."""
    data: dict[str, Any] = {}
    for item in items:
        key, value = parse_override(item, where)
        path = key_path(type(config), key, where)
        if len(path) == 2:
            data.setdefault(path[0], {})[path[1]] = value
        else:
            data[path[0]] = value
    return config_from_dict(type(config), data, config, where)


def load_config(cls: type[T], path: str | Path, base: T | None = None, where: str = "config") -> T:
    return config_from_dict(cls, read_yaml(path, where), base, where)


def save_config(path: str | Path, config: Any) -> Path:
    return write_yaml(path, config_to_dict(config))


def get_preset(cls: type[T], presets: Mapping[str, Mapping[str, Any]], name: str, where: str = "config") -> T:
    if name not in presets:
        raise RaclError(f"unknown {where} preset {name!r}; use one of {', '.join(presets)}")
    return config_from_dict(cls, presets[name], None, where)


def sectioned(cls: type[T]) -> type[T]:
    """Let `cls(...)` take bare section keys too: `TrainConfig(eps=4/255, lr=0.05)` is
    `TrainConfig(attack=AttackSpec(eps=4/255), optim=OptimConfig(lr=0.05))` (also in dataclasses.replace).
    Values are not cast here (they are in `config_from_dict`); each section still checks itself."""
    init = cls.__init__
    where = getattr(cls, "WHERE", cls.__name__)

    @functools.wraps(init)
    def __init__(self: Any, **kwargs: Any) -> None:
        secs, top, routed = sections(cls), {}, {}
        for key, value in kwargs.items():
            if key in secs or key in top_keys(cls):
                top[key] = value
                continue
            path = key_path(cls, key, where)
            routed.setdefault(path[0], {})[path[1]] = value
        for name, values in routed.items():
            current = top.get(name)
            top[name] = dataclasses.replace(current, **values) if current is not None else secs[name](**values)
        init(self, **top)

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


# ---------------------------------------------------------------- command-line flags
def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, helps: Mapping[str, str],
              choices: Mapping[str, tuple[str, ...]] | None = None, text_keys: tuple[str, ...] = ()) -> None:
    """`--KEY VALUE` for each bare key in `helps` (the same as `--set KEY=VALUE`), typed from the
    config's fields; all default to None so only the flags given override. `text_keys` are read as
    text (e.g. eps as 8/255) and converted by the caller."""
    owners = key_owners(cls)
    for key, text in helps.items():
        owner = sections(cls)[owners[key][0]] if owners[key][0] else cls
        hint = typing.get_type_hints(owner)[key]
        kw: dict[str, Any] = {"dest": key, "default": None, "help": text}
        inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if inner[0] is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif key not in text_keys and inner[0] in (int, float):
            kw["type"] = inner[0]
        if choices and key in choices:
            kw["choices"] = choices[key]
        parser.add_argument("--" + key.replace("_", "-"), **kw)


def flag_values(args: argparse.Namespace, helps: Mapping[str, str]) -> dict[str, Any]:
    """{bare key: value} of the flags of `add_flags` that were given."""
    return {k: getattr(args, k) for k in helps if getattr(args, k, None) is not None}
