"""NAS-Bench-201 (Dong & Yang, ICLR 2020) as a racl search-space plugin (`--space nb201`).

Modules: ops (the 5 ops, the residual block, BN settings), genotype (architecture strings, JSON), index
(benchmark index, isomorphism), supernet (the search network), lipschitz (the bound through both
networks), network (the evaluation network), cost (params, FLOPs as NB201 counts them), zoo, draw, and
benchmark / benchmark_files (the look-up in the two published robustness data sets). See docs/nb201.md.
"""
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from racl.errors import RaclError
from racl.search_space.base import CellTopology, SearchSpace, Selection
from racl.search_space.nb201.genotype import EDGES, Nb201Genotype
from racl.search_space.nb201.index import (
    NUM_CELLS, NUM_UNIQUE, benchmark_index, from_index, representative, representative_index,
)
from racl.search_space.nb201.network import Nb201Cell, Nb201Network
from racl.search_space.nb201.ops import FINAL_BN, PRIMITIVES, SEARCH_BN, BNSettings, make_op
from racl.search_space.nb201.zoo import ZOO, get_cell, list_cells, resolve_cell

PARAMETER_FREE = frozenset({"none", "skip_connect", "avg_pool_3x3"})


class Nb201Space(SearchSpace):
    name = "nb201"
    description = "NAS-Bench-201 cells: 1 input, 3 nodes summing all incoming edges, 5 ops, one cell type"
    genotype_type = Nb201Genotype
    network_type = Nb201Network
    supernet_defaults = {"channels": 16, "layers": 5, "steps": 3}  # AutoDL's search skeleton: C = 16, N = 5
    network_defaults = {"channels": 16, "layers": 5, "drop_path": 0.0}  # the benchmark's network
    zoo = {f"NB201_{name.upper()}": genotype for name, genotype in ZOO.items()}

    def topology(self, steps: int | None = None) -> CellTopology:
        from racl.search_space.nb201.supernet import topology

        if steps not in (None, 3):
            raise RaclError(f"an NB201 cell has 3 nodes; supernet.steps must be 3 (or null), got {steps}")
        return topology()

    def supernet(self, *, num_classes: int, in_channels: int, mean: Sequence[float], std: Sequence[float],
                 channels: int, layers: int, steps: int, ops: str = "fast", partial_channels: int = 1,
                 keep_none: bool | None = None) -> nn.Module:
        from racl.search_space.nb201.supernet import Supernet

        self.topology(steps)
        if partial_channels != 1:
            raise RaclError("partial channel connections (PC-DARTS) are implemented for the DARTS space only")
        return Supernet(num_classes=num_classes, channels=channels, layers=layers, in_channels=in_channels,
                        mean=mean, std=std, ops=ops, keep_none=True if keep_none is None else keep_none)

    def bound(self, supernet: nn.Module, input_shape: Sequence[int], *, n_iter: int = 1, seed: int = 0,
              count_bn: bool = True) -> nn.Module:
        from racl.search_space.nb201.lipschitz import supernet_bound
        return supernet_bound(supernet, input_shape, n_iter=n_iter, seed=seed, count_bn=count_bn)

    def genotype(self, selection: dict[str, Selection]) -> Nb201Genotype:
        ops = {(i, j + 1): op for j, i, op in selection["cell"]}  # node j + 1 of NB201 (node 0 = the input)
        return Nb201Genotype(tuple(ops[edge] for edge in EDGES))

    def selection(self, genotype: Nb201Genotype) -> dict[str, Selection]:
        return {"cell": tuple(sorted((dst - 1, src, op) for src, dst, op in genotype.edges()))}

    def genotype_from_dict(self, data: Any) -> Nb201Genotype:
        return Nb201Genotype.from_dict(data)

    def parse_text(self, text: str) -> Nb201Genotype | None:
        """An architecture string (`|op~0|+|op~0|op~1|+|...|`)."""
        return Nb201Genotype.from_string(text) if text.strip().startswith("|") else None

    def network(self, genotype: Nb201Genotype, *, num_classes: int, in_channels: int, mean: Sequence[float],
                std: Sequence[float], channels: int = 16, layers: int = 5, auxiliary: bool = False,
                drop_path_prob: float = 0.0) -> nn.Module:
        if auxiliary or drop_path_prob:
            raise RaclError("NB201 networks have no auxiliary head and no drop-path; train them without "
                            "--auxiliary and with --drop-path 0")
        return Nb201Network(genotype, num_classes=num_classes, channels=channels, cells_per_stage=layers,
                            in_channels=in_channels, mean=mean, std=std)

    def network_bound(self, net: nn.Module, pieces: Any) -> list:
        from racl.search_space.nb201.lipschitz import network_parts
        return network_parts(net, pieces)

    def draw(self, genotype: Nb201Genotype, out_dir: str | Path, label: str = "") -> list[Path]:
        from racl.search_space.nb201.draw import draw_cell
        return draw_cell(genotype, out_dir, label=label)

    def parameter_free(self, genotype: Nb201Genotype) -> tuple[int, int]:
        return sum(op in PARAMETER_FREE for op in genotype.ops), len(genotype.ops)

    def describe(self, genotype: Nb201Genotype) -> str:
        return genotype.to_string()


NB201 = Nb201Space()

__all__ = [
    "NB201", "Nb201Space", "BNSettings", "EDGES", "FINAL_BN", "NUM_CELLS", "NUM_UNIQUE", "Nb201Cell", "Nb201Genotype", "Nb201Network",
    "PRIMITIVES", "SEARCH_BN", "ZOO", "benchmark_index", "from_index", "get_cell", "list_cells", "make_op",
    "representative", "representative_index", "resolve_cell",
]
