"""Published DARTS-space genotypes, transcribed from the papers (see docs: references)."""
from __future__ import annotations

import difflib
from typing import Sequence

from racl.errors import RaclError
from racl.search_space.genotype import Genotype

_ABBREV = {
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
    "skip": "skip_connect",
    "sep3": "sep_conv_3x3",
    "sep5": "sep_conv_5x5",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
}

# (normal cell, reduction cell): "op input, op input / ..." with one group per node 2..5.
_PUBLISHED = {
    "DARTS_V1": (
        "sep3 1, sep3 0 / skip 0, sep3 1 / skip 0, sep3 1 / sep3 0, skip 2",
        "max 0, max 1 / skip 2, max 0 / max 0, skip 2 / skip 2, avg 0",
    ),
    "DARTS_V2": (
        "sep3 0, sep3 1 / sep3 0, sep3 1 / sep3 1, skip 0 / skip 0, dil3 2",
        "max 0, max 1 / skip 2, max 1 / max 0, skip 2 / skip 2, max 1",
    ),
    "PC_DARTS": (
        "sep3 1, skip 0 / sep3 0, dil3 1 / sep5 0, sep3 1 / avg 0, dil3 1",
        "sep5 1, max 0 / sep5 1, sep5 2 / sep3 0, sep3 3 / sep3 1, sep3 2",
    ),
    "PDARTS": (
        "skip 0, dil3 1 / skip 0, sep3 1 / sep3 1, sep3 3 / sep3 0, dil5 4",
        "avg 0, sep5 1 / sep3 0, dil5 2 / max 0, dil3 1 / dil3 1, dil5 3",
    ),
    "ADVRUSH": (
        "sep3 1, sep3 0 / sep5 0, sep3 1 / sep3 1, sep3 0 / skip 0, sep3 1",
        "sep3 0, sep3 1 / skip 0, dil3 2 / skip 0, avg 1 / skip 0, skip 2",
    ),
    "RACL": (
        "sep3 0, sep3 1 / sep5 0, skip 1 / sep3 0, skip 3 / sep3 3, skip 4",
        "sep3 0, sep5 1 / avg 0, dil3 1 / sep3 0, sep5 1 / sep3 2, dil3 3",
    ),
}


def _parse_cell(text: str) -> tuple[tuple[str, int], ...]:
    edges = []
    for pair in text.replace("/", ",").split(","):
        op, idx = pair.split()
        edges.append((_ABBREV[op], int(idx)))
    return tuple(edges)


def _build(normal: str, reduce: str) -> Genotype:
    n, r = _parse_cell(normal), _parse_cell(reduce)
    return Genotype(n, tuple(range(2, 2 + len(n) // 2)), r, tuple(range(2, 2 + len(r) // 2)))


ZOO: dict[str, Genotype] = {name: _build(*cells) for name, cells in _PUBLISHED.items()}


def list_genotypes() -> list[str]:
    return list(ZOO)


def get_genotype(name: str) -> Genotype:
    """A published genotype by name (case-insensitive)."""
    key = name.upper().replace("-", "_")
    if key not in ZOO:
        raise RaclError(f"unknown genotype {name!r}; zoo has: {', '.join(ZOO)}")
    return ZOO[key]


def resolve_genotype(name_or_path: str, also: Sequence[str] = ()) -> Genotype:
    """A zoo name, or the path of a genotype JSON file (a bare genotype or a file wrapping one).
    `also`: other names the caller accepts (resnet18, ...), listed and suggested in the error."""
    from pathlib import Path

    if name_or_path.upper().replace("-", "_") in ZOO:
        return get_genotype(name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "genotype.json").is_file():
            raise RaclError(f"directory {name_or_path!r} has no genotype.json; pass a run directory, "
                            "a zoo name or a genotype JSON file")
        path = path / "genotype.json"
    if path.suffix == ".json" or path.exists():
        return Genotype.load(path)
    known = [*ZOO, *also]
    close = difflib.get_close_matches(_key(name_or_path), [_key(k) for k in known], n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(known[[_key(k) for k in known].index(c)] for c in close)}?)" if close else ""
    what = "a zoo genotype" + (", a model name" if also else "")
    raise RaclError(f"{name_or_path!r} is neither {what} nor a genotype JSON file{hint}; known: "
                    f"{', '.join(known)} (racl zoo list)")


def _key(name: str) -> str:
    return name.upper().replace("-", "_").replace("_", "")
