"""Published DARTS-space genotypes, transcribed from the papers (see docs: references), and the two
cells of the RL and evolution era that the field's comparisons use in the DARTS network: NASNet-A and
AmoebaNet-A as DARTS's code transcribes them (quark0/darts cnn/genotypes.py, `NASNet`, `AmoebaNet`):
five intermediate nodes, concat lists of their own, and two ops outside the search space
(sep_conv_7x7, conv_7x1_1x7: racl.search_space.ops.EVAL_ONLY)."""
from __future__ import annotations

import difflib
from typing import Sequence

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
    "sep7": "sep_conv_7x7",
    "conv7x1": "conv_7x1_1x7",
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
    "NASNET": (
        "sep5 1, sep3 0 / sep5 0, sep3 0 / avg 1, skip 0 / avg 0, avg 0 / sep3 1, skip 1",
        "sep5 1, sep7 0 / max 1, sep7 0 / avg 1, sep5 0 / skip 3, avg 2 / sep3 2, max 1",
    ),
    "AMOEBANET": (
        "avg 0, max 1 / sep3 0, sep5 2 / sep3 0, avg 3 / sep3 1, skip 1 / skip 0, avg 1",
        "avg 0, sep3 1 / max 0, sep7 2 / sep7 0, avg 1 / max 0, max 1 / conv7x1 0, sep3 5",
    ),
}
# (normal_concat, reduction_concat) where a cell does not concatenate every intermediate node
_CONCAT = {"NASNET": ((2, 3, 4, 5, 6), (4, 5, 6)), "AMOEBANET": ((4, 5, 6), (3, 4, 6))}


def _parse_cell(text: str) -> tuple[tuple[str, int], ...]:
    edges = []
    for pair in text.replace("/", ",").split(","):
        op, idx = pair.split()
        edges.append((_ABBREV[op], int(idx)))
    return tuple(edges)


def _build(name: str, normal: str, reduce: str) -> Genotype:
    n, r = _parse_cell(normal), _parse_cell(reduce)
    concat = _CONCAT.get(name, (tuple(range(2, 2 + len(n) // 2)), tuple(range(2, 2 + len(r) // 2))))
    return Genotype(n, concat[0], r, concat[1])


ZOO: dict[str, Genotype] = {name: _build(name, *cells) for name, cells in _PUBLISHED.items()}


def list_genotypes() -> list[str]:
    return list(ZOO)


def get_genotype(name: str) -> Genotype:
    """A published genotype by name (case-insensitive)."""
    key = name.upper().replace("-", "_")
    if key not in ZOO:
        raise RaclError(f"unknown genotype {name!r}; zoo has: {', '.join(ZOO)}")
    return ZOO[key]
