"""The DARTS cell search space (Liu et al., ICLR 2019), as a racl search-space plugin.

Modules: ops (the 8 primitives and their Lipschitz factors), genotype (`Genotype`), zoo (published
cells), supernet (the search network, reference formulation), fast (its fast path), network (the
evaluation network built from a genotype), lipschitz (the bound through both), draw (cell pictures).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from torch import nn

from racl.errors import RaclError
from racl.search_space.base import CellTopology, SearchSpace, Selection
from racl.search_space.darts.genotype import Genotype
from racl.search_space.darts.ops import PRIMITIVES, count_parameter_free
from racl.search_space.darts.zoo import ZOO


class DartsSpace(SearchSpace):
    name = "darts"
    description = "DARTS cells: 2 inputs, 4 nodes of 2 edges each, 8 ops, normal + reduction cell"
    genotype_type = Genotype
    supernet_defaults = {"channels": 16, "layers": 8, "steps": 4}  # [paper] the search network
    network_defaults = {"channels": 36, "layers": 20}               # the DARTS CIFAR network
    zoo = ZOO

    @property
    def network_type(self) -> type:
        from racl.search_space.darts.network import DartsNetwork
        return DartsNetwork

    def topology(self, steps: int | None = None) -> CellTopology:
        from racl.search_space.darts.supernet import topology
        return topology(self.supernet_defaults["steps"] if steps is None else steps)

    def supernet(self, *, num_classes: int, in_channels: int, mean: Sequence[float], std: Sequence[float],
                 channels: int, layers: int, steps: int, ops: str = "fast", partial_channels: int = 1,
                 keep_none: bool | None = None) -> nn.Module:
        from racl.search_space.darts.supernet import Supernet

        if keep_none:
            raise RaclError("a DARTS genotype never keeps `none` (supernet.keep_none must be null or false)")
        return Supernet(num_classes=num_classes, channels=channels, layers=layers, steps=steps,
                        in_channels=in_channels, mean=mean, std=std, ops=ops, partial_channels=partial_channels)

    def bound(self, supernet: nn.Module, input_shape: Sequence[int], *, n_iter: int = 1, seed: int = 0,
              count_bn: bool = True) -> nn.Module:
        from racl.search_space.darts.lipschitz import supernet_bound
        return supernet_bound(supernet, input_shape, n_iter=n_iter, seed=seed, count_bn=count_bn)

    def genotype(self, selection: dict[str, Selection]) -> Genotype:
        cells = {t: tuple((op, i) for _, i, op in selection[t]) for t in ("normal", "reduce")}
        concat = tuple(range(2, 2 + len(cells["normal"]) // 2))
        return Genotype(cells["normal"], concat, cells["reduce"], tuple(range(2, 2 + len(cells["reduce"]) // 2)))

    def selection(self, genotype: Genotype) -> dict[str, Selection]:
        return {t: tuple((k // 2, i, op) for k, (op, i) in enumerate(getattr(genotype, t))) for t in ("normal", "reduce")}

    def genotype_from_dict(self, data: Any) -> Genotype:
        return Genotype.from_dict(data)

    def network(self, genotype: Genotype, *, num_classes: int, in_channels: int, mean: Sequence[float],
                std: Sequence[float], channels: int = 36, layers: int = 20, auxiliary: bool = False,
                drop_path_prob: float = 0.0) -> nn.Module:
        from racl.search_space.darts.network import DartsNetwork
        return DartsNetwork(genotype, num_classes=num_classes, channels=channels, layers=layers, auxiliary=auxiliary,
                            drop_path_prob=drop_path_prob, in_channels=in_channels, mean=mean, std=std)

    def network_bound(self, net: nn.Module, pieces) -> list:
        from racl.search_space.darts.lipschitz import network_parts
        return network_parts(net, pieces)

    def draw(self, genotype: Genotype, out_dir: str | Path, label: str = "") -> list[Path]:
        from racl.search_space.darts.draw import draw_genotype
        return draw_genotype(genotype, out_dir, label=label)

    def parameter_free(self, genotype: Genotype) -> tuple[int, int]:
        return count_parameter_free(genotype.normal), len(genotype.normal)


DARTS = DartsSpace()

__all__ = ["DARTS", "DartsSpace", "Genotype", "PRIMITIVES", "ZOO"]
