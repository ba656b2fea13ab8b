"""Published DARTS-space genotypes, transcribed from the papers (see docs: references)."""
from __future__ import annotations

from racl.errors import RaclError
from racl.search_space.darts.genotype import Genotype

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
