"""Genotypes by name or file, whatever their space: the zoos of every space, genotype JSON files
(`{"space": NAME, ...}`; files without the key are DARTS genotypes), and run folders."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Sequence

from racl.errors import RaclError
from racl.io import read_json
from racl.search_space.registry import get_space, list_spaces


def zoo_key(name: str) -> str:
    return name.upper().replace("-", "_")


def zoo_names(space: str | None = None) -> list[str]:
    """Every published cell's name (of one space, or of all)."""
    return [n for s in ([space] if space else list_spaces()) for n in get_space(s).zoo]


def from_zoo(name: str, space: str | None = None) -> Any | None:
    """The zoo genotype called `name` (case-insensitive, '-' = '_'), or None."""
    for s in [space] if space else list_spaces():
        zoo = get_space(s).zoo
        if zoo_key(name) in zoo:
            return zoo[zoo_key(name)]
    return None


def load_genotype(data: Any) -> Any:
    """A genotype from its JSON value (a bare genotype or a file wrapping one under "genotype")."""
    inner = data.get("genotype") if isinstance(data, dict) and isinstance(data.get("genotype"), dict) else data
    space = inner.get("space", "darts") if isinstance(inner, dict) else "darts"
    if not isinstance(space, str):
        raise RaclError(f"genotype 'space' must be a space name, got {space!r}")
    return get_space(space).genotype_from_dict(data)


def resolve_genotype(name_or_path: str, space: str | None = None, also: Sequence[str] = ()) -> Any:
    """A zoo name, a space's textual form (an NB201 architecture string), a run folder holding
    genotype.json, or a genotype JSON file. `also`: other names the caller accepts (resnet18, ...),
    listed and suggested in the error."""
    found = from_zoo(name_or_path, space)
    if found is not None:
        return found
    for s in [space] if space else list_spaces():
        parsed = get_space(s).parse_text(name_or_path)
        if parsed is not None:
            return parsed
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "genotype.json").is_file():
            raise RaclError(f"directory {name_or_path!r} has no genotype.json; pass a run directory, "
                            "a zoo name or a genotype JSON file")
        path = path / "genotype.json"
    if path.suffix == ".json" or path.exists():
        return load_genotype(read_json(path, "genotype file"))
    known = [*zoo_names(space), *also]
    keys = [_loose(k) for k in known]
    close = difflib.get_close_matches(_loose(name_or_path), keys, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(known[keys.index(c)] for c in close)}?)" if close else ""
    what = "a zoo genotype" + (", a model name" if also else "")
    raise RaclError(f"{name_or_path!r} is neither {what} nor a genotype JSON file{hint}; known: "
                    f"{', '.join(known)} (racl zoo list)")


def _loose(name: str) -> str:
    """A name compared loosely: case, dashes and underscores aside."""
    return name.upper().replace("-", "").replace("_", "")
