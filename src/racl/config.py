"""Config dataclasses and the one loader every command uses: preset < file < flags < `--set`.

A config is a frozen dataclass; its dataclass-typed fields are its *sections* (one frozen dataclass
per concern), the other fields are top-level keys. A key is named the same way everywhere: a
top-level key by its name (`epochs`), a section's key as `section.key` (`constraint.eta`); bare
section keys are errors that name the full key. Dicts, presets and YAML files are nested by section
(`constraint: {eta: 0.8}`); `--set` and the flag tables use the dotted name. Unknown keys are errors
with the closest known keys; a float may be written as text like "8/255" or "1e-3" (YAML 1.1 reads
those as strings); values are cast and checked on construction.

    Schema(Cls, presets, command, flags)   the loader of one config class (search, train):
        .from_dict(data, base) / .to_dict(config) / .load(path, base) / .save(path, config)
        .preset(name)                       a named starting point (a nested dict of changes)
        .set(config, {key: value})          typed values by key (the flags, Python callers)
        .override(config, ["key=value"])    `--set` (values read as YAML)
        .build(preset, file, flags, sets, base)   the layers of a command line, later ones winning
        .add_arguments(parser) / .arguments(args)  --preset, --config, --set and the `Flag`s
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

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
def _build(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Dataclass `cls` from {field: value} (every key known), values cast to the fields' types."""
    hints = typing.get_type_hints(cls)
    kwargs = {k: _cast(_number_text(v, hints[k]), hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RaclError(f"invalid {where or 'config'}: {e}") from e


def _number_text(value: Any, hint: Any) -> Any:
    """A number written as text ("8/255", "1e12") for a float field -> the float; other text stays as
    it is, so `_cast` names the key ("x must be a number, got '8/0'")."""
    if isinstance(value, str) and float in (hint, *typing.get_args(hint)):
        number = read_number(value)
        return value if number is None else number
    return value


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
        return tuple(_cast(_number_text(v, args[0]), args[0], name) for v in value)
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


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass (tuples become lists, as they read back from YAML or JSON)."""
    return _plain(dataclasses.asdict(obj))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------- sections and keys
def sections(cls: type) -> dict[str, type]:
    """{field name: dataclass type} of the sectioned config class `cls`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def top_keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in sections(cls)]


def all_keys(cls: type) -> list[str]:
    """Every key of `cls` as written: top-level names, then `section.key`."""
    return top_keys(cls) + [f"{n}.{f.name}" for n, s in sections(cls).items() for f in dataclasses.fields(s)]


def close_keys(key: Any, known: list[str]) -> list[str]:
    """The known keys `key` may mean: those whose last part is `key` (else close to it), else close matches."""
    if not isinstance(key, str):
        return []
    by_name: dict[str, list[str]] = {}
    for k in known:
        by_name.setdefault(k.rpartition(".")[2], []).append(k)
    name = key.rpartition(".")[2]
    names = [name] if name in by_name else difflib.get_close_matches(name, list(by_name), n=2, cutoff=0.6)
    return [k for n in names for k in by_name[n]][:3] or difflib.get_close_matches(key, known, n=2, cutoff=0.6)


# ---------------------------------------------------------------- command-line flags
@dataclass(frozen=True)
class Flag:
    """`--NAME VALUE`: the same as `--set KEY=VALUE` (typed from the key's field unless `read` is given)."""

    key: str
    help: str
    choices: tuple[str, ...] | None = None
    read: Callable[[str], Any] | None = None  # text -> value, e.g. eps written as 8/255


# ---------------------------------------------------------------- the loader
class Schema(Generic[T]):
    """Everything that reads or writes one config class (see the module docstring)."""

    def __init__(self, cls: type[T], presets: Mapping[str, Mapping[str, Any]], command: str, where: str,
                 flags: Mapping[str, Flag] | None = None) -> None:
        self.cls, self.presets, self.command, self.where = cls, presets, command, where
        self.flags = dict(flags or {})
        self.sections = sections(cls)
        self.keys = all_keys(cls)

    # ---- keys
    def unknown(self, keys: list[Any]) -> RaclError:
        """'unknown ... key X (did you mean Y?); racl config show CMD lists every key'."""
        hints = "; ".join(f"{shown(k) + ': ' if len(keys) > 1 else ''}did you mean {' or '.join(c)}?"
                          for k in keys if (c := close_keys(k, self.keys)))
        return RaclError(f"unknown {self.where} key{'s' if len(keys) > 1 else ''} "
                         f"{', '.join(repr(shown(k)) for k in keys)}{f' ({hints})' if hints else ''}; "
                         f"racl config show {self.command} lists every key")

    def nest(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """{'constraint.eta': 0.8, 'epochs': 3} -> {'constraint': {'eta': 0.8}, 'epochs': 3}."""
        out: dict[str, Any] = {}
        unknown = [k for k in values if k not in self.keys]
        if unknown:
            raise self.unknown(unknown)
        for key, value in values.items():
            section, _, name = key.rpartition(".")
            if section:
                out.setdefault(section, {})[name] = value
            else:
                out[name] = value
        return out

    # ---- dicts and files
    def from_dict(self, data: Mapping[Any, Any] | None, base: T | None = None) -> T:
        """The config from a dict nested by section, on top of `base` (default: the defaults)."""
        if data is not None and not isinstance(data, Mapping):
            raise RaclError(f"a {self.where} must be a YAML mapping of key: value")
        merged = self.to_dict(base if base is not None else self.cls())
        unknown: list[Any] = []
        for key, value in (data or {}).items():
            if key in self.sections:
                if not isinstance(value, Mapping):
                    raise RaclError(f"{self.where} section {key!r} must be a mapping of key: value, got {value!r}")
                unknown += [f"{key}.{shown(k)}" for k in value if k not in merged[key]]
                merged[key] = {**merged[key], **value}
            elif key in merged:
                merged[key] = value
            else:
                unknown.append(key)
        if unknown:
            raise self.unknown(unknown)
        built = {name: _build(section, merged.pop(name), name) for name, section in self.sections.items()}
        return dataclasses.replace(_build(self.cls, merged, ""), **built)

    def to_dict(self, config: T) -> dict[str, Any]:
        """The nested plain dict (what `config.yaml` holds)."""
        return to_dict(config)

    def load(self, path: str | Path, base: T | None = None) -> T:
        return self.from_dict(read_yaml(path, self.where), base)

    def save(self, path: str | Path, config: T) -> Path:
        return write_yaml(path, self.to_dict(config))

    def preset(self, name: str) -> T:
        if name not in self.presets:
            raise RaclError(f"unknown {self.command} preset {name!r}; use one of {', '.join(self.presets)}")
        return self.from_dict(self.presets[name])

    # ---- single keys
    def set(self, config: T, values: Mapping[str, Any]) -> T:
        """`config` with keys (`epochs`, `attack.eps`) set to typed values."""
        return self.from_dict(self.nest(values), config)

    def override(self, config: T, items: list[str] | tuple[str, ...]) -> T:
        """Apply `--set key=value` strings (each value read as YAML: 0.5, true, null, [0.5, 0.999]; 8/255
        stays text and is read as a number by a float key)."""
        return self.set(config, dict(parse_override(item) for item in items))

    def build(self, *, preset: str | None = None, file: str | Path | None = None,
              flags: Mapping[str, Any] | None = None, sets: list[str] | tuple[str, ...] = (),
              base: T | Mapping[str, Any] | None = None) -> T:
        """The layers of a command line, later ones winning: `base` (a resumed run's saved config, used
        when no preset is given) or the preset (default: paper = the defaults) < FILE < flags
        ({key: value}) < `--set` items."""
        if isinstance(base, Mapping):
            base = self.from_dict(base)
        config = base if base is not None and preset is None else self.preset(preset or "paper")
        if file is not None:
            config = self.load(file, config)
        return self.override(self.set(config, flags or {}), sets)

    # ---- the command line
    def add_arguments(self, parser: argparse.ArgumentParser, title: str, set_example: str,
                      exclude: tuple[str, ...] = ()) -> None:
        """--preset, --config FILE.yaml, --set KEY=VALUE and a group `title` with the flags (less `exclude`)."""
        parser.add_argument("--preset", choices=tuple(self.presets), default=None,
                            help="starting config: tiny (tests), quick (CPU minutes), paper (the defaults)")
        parser.add_argument("--config", metavar="FILE.yaml",
                            help=f"{self.where} as YAML, nested by section; flags and --set override its values "
                                 f"(racl config show {self.command} prints every key)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help=f"override one setting (section.key, or a top-level key), e.g. {set_example} "
                                 "(repeatable)")
        group = parser.add_argument_group(title)
        for name, flag in self.flags.items():
            if name in exclude:
                continue
            kw: dict[str, Any] = {"dest": name, "default": None, "help": flag.help, "choices": flag.choices}
            owner = self.sections.get(flag.key.rpartition(".")[0], self.cls)
            hint = typing.get_type_hints(owner)[flag.key.rpartition(".")[2]]
            inner = ([a for a in typing.get_args(hint) if a is not type(None)] or [hint])[0]
            if inner is bool:
                kw["action"] = argparse.BooleanOptionalAction
            elif flag.read is None and inner in (int, float):
                kw["type"] = inner
            group.add_argument("--" + name.replace("_", "-"), **kw)

    def flag_values(self, args: argparse.Namespace) -> dict[str, Any]:
        """{key: value} of the flags given (read by their `read`)."""
        given = {name: getattr(args, name) for name in self.flags if getattr(args, name, None) is not None}
        return {self.flags[n].key: self.flags[n].read(v) if self.flags[n].read else v for n, v in given.items()}

    def arguments(self, args: argparse.Namespace) -> dict[str, Any]:
        """`build`'s keyword arguments from the parsed arguments of `add_arguments`."""
        return {"preset": args.preset, "file": args.config, "flags": self.flag_values(args),
                "sets": tuple(args.overrides)}


def parse_override(item: str) -> tuple[str, Any]:
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
