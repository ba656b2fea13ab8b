"""The search spaces by name, like the strategies (racl.search.registry).

A new space is one subpackage with a `SearchSpace` object (racl.search_space.base) plus one line
here; `--space NAME` and `SearchConfig.space` accept every name listed. Entries are "module:attr"
strings, imported on first use. Tests may add a space at run time with `register_space`.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any

from racl.errors import RaclError
from racl.search_space.base import SearchSpace

REGISTRY: dict[str, str] = {
    "darts": "racl.search_space.darts:DARTS",  # the DARTS cell space (Liu et al., 2019)
    "nb201": "racl.search_space.nb201:NB201",  # NAS-Bench-201 (Dong & Yang, 2020)
}
_LOADED: dict[str, SearchSpace] = {}


def register_space(name: str, space: SearchSpace) -> None:
    """Add (or replace) a space object under `name` (for spaces defined outside the package)."""
    _LOADED[name] = space
    REGISTRY.setdefault(name, "")


def unregister_space(name: str) -> None:
    _LOADED.pop(name, None)
    REGISTRY.pop(name, None)


def get_space(name: str) -> SearchSpace:
    """The space registered as `name`; a one-line error with the close names otherwise."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise RaclError(f"unknown search space {name!r}{hint} (known: {', '.join(REGISTRY)})")
    if name not in _LOADED:
        module, _, attr = REGISTRY[name].partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), attr)
    return _LOADED[name]


def list_spaces() -> list[str]:
    return list(REGISTRY)


def space_of(genotype: Any) -> SearchSpace:
    """The space whose genotype type `genotype` is."""
    for name in REGISTRY:
        space = get_space(name)
        if isinstance(genotype, space.genotype_type):
            return space
    raise RaclError(f"no search space has genotypes of type {type(genotype).__name__}")
