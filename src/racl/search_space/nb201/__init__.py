"""NAS-Bench-201 (Dong & Yang, ICLR 2020): its cell space, evaluation network, zoo and robustness benchmarks.

What does not depend on the search-space plugin interface: ops, genotype (architecture strings, JSON),
benchmark index and isomorphism, evaluation network, cost (params, FLOPs as NB201 counts them), zoo,
cell pictures, and the look-up in the two published robustness data sets. See docs/nb201.md.
"""
from racl.search_space.nb201.genotype import EDGES, Nb201Genotype
from racl.search_space.nb201.index import (
    NUM_CELLS, NUM_UNIQUE, benchmark_index, from_index, representative, representative_index,
)
from racl.search_space.nb201.network import Nb201Cell, Nb201Network
from racl.search_space.nb201.ops import FINAL_BN, PRIMITIVES, SEARCH_BN, BNSettings, make_op
from racl.search_space.nb201.zoo import ZOO, get_cell, list_cells, resolve_cell

__all__ = [
    "BNSettings", "EDGES", "FINAL_BN", "NUM_CELLS", "NUM_UNIQUE", "Nb201Cell", "Nb201Genotype", "Nb201Network",
    "PRIMITIVES", "SEARCH_BN", "ZOO", "benchmark_index", "from_index", "get_cell", "list_cells", "make_op",
    "representative", "representative_index", "resolve_cell",
]
