"""Cell search spaces as plugins (racl.search_space.base: the interface; .registry: the names).

`darts`: the DARTS cell space (racl.search_space.darts). The DARTS names are re-exported here for
convenience (`Genotype`, `PRIMITIVES`, `ZOO`, ...).
"""
from racl.search_space.base import ArchWeights, CellTopology, CellWeights, SearchSpace, Selection, map_weights
from racl.search_space.darts.genotype import Genotype
from racl.search_space.darts.ops import OPS, PARAMETER_FREE, PRIMITIVES, make_op
from racl.search_space.darts.zoo import ZOO, get_genotype, list_genotypes
from racl.search_space.registry import get_space, list_spaces, register_space, space_of
from racl.search_space.resolve import load_genotype, resolve_genotype

__all__ = [
    "ArchWeights", "CellTopology", "CellWeights", "Genotype", "OPS", "PARAMETER_FREE", "PRIMITIVES",
    "SearchSpace", "Selection", "ZOO", "map_weights", "get_genotype", "get_space", "list_genotypes", "list_spaces",
    "load_genotype", "make_op", "register_space", "resolve_genotype", "space_of",
]
