"""NAS-Bench-201's benchmark index of each of the 15,625 cells and its isomorphism classes (6,466).

Index order: AutoDL-Projects `exps/NAS-Bench-201/main.py` (`generate_meta_info`) lists every cell with
`Structure.gen_all` (`cell_searchs/genotypes.py`: the ops of edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2 in
NB201's op order, the first edge the most significant), then calls `random.seed(88); random.shuffle`;
the benchmark files (NAS-Bench-201's API, and both robustness data sets' `meta.json`) use the shuffled
positions. Reproduced here with Python's seeded shuffle; main.py's own checks (cells 0, 9 and 123) are
tests. NASLib orders ops and edges differently and does not use these indices.

Isomorphism: two cells are taken as the same when AutoDL's `Structure.to_unique_str(consider_zero=True)`
agrees (`skip_connect` passes its input's expression through, `none` is a zero term, the terms of a sum
are unordered); followed exactly, zero terms included, it gives the 6,466 classes NB201 counts. The representative
of a class is its lowest benchmark index, which is what the robustness data sets' `meta.json` stores as
`"isomorph"` (checked in the tests against TT2408/nasrobbench201 `NasBenchID_6466_idx.txt`). When a
`meta.json` is at hand, its mapping is used instead (racl.search_space.nb201.benchmark).
"""
from __future__ import annotations

import itertools
import random
from functools import lru_cache

from racl.errors import RaclError
from racl.search_space.nb201.genotype import EDGES, NODES, Nb201Genotype
from racl.search_space.nb201.ops import PRIMITIVES

NUM_CELLS = len(PRIMITIVES) ** len(EDGES)  # 15,625
NUM_UNIQUE = 6466
_SHUFFLE_SEED = 88  # main.py: "please do not change this line for reproducibility"


@lru_cache(maxsize=1)
def all_cells() -> tuple[Nb201Genotype, ...]:
    """Every cell, at its benchmark index."""
    cells = [Nb201Genotype(ops) for ops in itertools.product(PRIMITIVES, repeat=len(EDGES))]
    random.Random(_SHUFFLE_SEED).shuffle(cells)
    return tuple(cells)


@lru_cache(maxsize=1)
def _index_of() -> dict[Nb201Genotype, int]:
    return {cell: i for i, cell in enumerate(all_cells())}


def benchmark_index(genotype: Nb201Genotype) -> int:
    """The cell's index in NAS-Bench-201 (0..15,624)."""
    return _index_of()[genotype]


def from_index(index: int) -> Nb201Genotype:
    """The cell at a benchmark index."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < NUM_CELLS:
        raise RaclError(f"NB201 benchmark index must be an integer in 0..{NUM_CELLS - 1}, got {index!r}")
    return all_cells()[index]


def isomorphism_key(genotype: Nb201Genotype) -> str:
    """A string equal for two cells exactly when they are isomorphic (AutoDL's `to_unique_str(True)`):
    each node is the sorted sum of its inputs' terms; a term is '#' for `none` or an edge out of a node
    whose string is '#', the input's string for `skip_connect`, `(input)@op` otherwise."""
    nodes = {0: "0"}
    for node in range(1, NODES):
        terms = [_term(nodes[src], op) for src, dst, op in genotype.edges() if dst == node]
        nodes[node] = "+".join(sorted(terms))
    return nodes[NODES - 1]


def _term(source: str, op: str) -> str:
    if op == "none" or source == "#":
        return "#"
    return source if op == "skip_connect" else f"({source})@{op}"


@lru_cache(maxsize=1)
def _representatives() -> dict[str, int]:
    """Isomorphism key -> lowest benchmark index holding it."""
    best: dict[str, int] = {}
    for i, cell in enumerate(all_cells()):
        best.setdefault(isomorphism_key(cell), i)
    return best


def representative_index(genotype: Nb201Genotype) -> int:
    """Benchmark index of the class representative (the lowest index among the cells isomorphic to it)."""
    return _representatives()[isomorphism_key(genotype)]


def representative(genotype: Nb201Genotype) -> Nb201Genotype:
    """The canonical representative of the cell's isomorphism class."""
    return all_cells()[representative_index(genotype)]


def unique_indices() -> list[int]:
    """Benchmark indices of the 6,466 representatives, ascending."""
    return sorted(_representatives().values())
