"""The DARTS cell search space: primitives, genotypes, the zoo of published cells, cell pictures."""
from racl.search_space.genotype import Genotype
from racl.search_space.ops import OPS, PARAMETER_FREE, PRIMITIVES, make_op
from racl.search_space.zoo import ZOO, get_genotype, list_genotypes, resolve_genotype

__all__ = [
    "Genotype", "OPS", "PARAMETER_FREE", "PRIMITIVES", "ZOO",
    "get_genotype", "list_genotypes", "make_op", "resolve_genotype",
]
