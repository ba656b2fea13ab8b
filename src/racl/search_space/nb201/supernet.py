"""The NAS-Bench-201 search network (AutoDL-Projects `cell_searchs/search_model_darts.py`
`TinyNetworkDarts` with `cell_searchs/search_cells.py` `NAS201SearchCell`), weights from outside.

Stem Conv3x3 + BN; three stages of N search cells at C, 2C, 4C joined by the residual block (stride 2,
not searched); head BN-ReLU-global average pooling-Linear. A search cell has one input (node 0) and 3
nodes by the node formula (racl.supernet.cell); its output is the last node (no concatenation). Every
edge carries the 5 ops with SEARCH_BN (affine-free, batch statistics: ops.py explains the choice); the
stem, the residual blocks and the head keep affine BN with running statistics, as AutoDL builds them.
Without an edge choice in NB201, beta is 1 on every edge (CellTopology.keep_edges = None).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.models.layers import OPS_MODES, Normalize, use_fast_path
from racl.search_space.base import ArchWeights, CellTopology, CellWeights
from racl.search_space.nb201.ops import PRIMITIVES, SEARCH_BN, ResidualBlock, make_op
from racl.supernet.cell import node_states
from racl.supernet.mixed_op import MixedOp, active_ops


def topology(keep_none: bool = True) -> CellTopology:
    """NB201: 1 cell input, 3 nodes, every edge kept (beta = 1); an edge may keep `none` unless
    `keep_none` is False [design: NB201's own definition allows it; docs/nb201.md]."""
    return CellTopology(("cell",), PRIMITIVES, num_inputs=1, steps=3, keep_edges=None, none_choosable=keep_none)


class SearchCell(nn.Module):
    """One NB201 search cell on C channels (stride 1 everywhere)."""

    cell_type = "cell"

    def __init__(self, topo: CellTopology, c: int):
        super().__init__()
        self.topology = topo
        self.ops = nn.ModuleList(MixedOp([make_op(p, c, SEARCH_BN) for p in topo.primitives], topo.primitives)
                                 for _ in topo.edges)

    def forward(self, x: torch.Tensor, w: CellWeights) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        active = active_ops(self.topology.primitives, self.topology.num_edges, w.mask)
        return node_states([x], self.ops, w, self.topology, active, lambda: x.mul(0.0))[-1]


class Supernet(nn.Module):
    """NB201 search network; `forward(x, weights)` -> logits, x in [0, 1]."""

    KEEPS_BATCHNORM = True  # racl.models.fuse never folds it (batch-statistics BNs)

    def __init__(self, num_classes: int = 10, channels: int = 16, layers: int = 5, in_channels: int = 3,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25),
                 ops: str = "fast", keep_none: bool = True):
        super().__init__()
        if ops not in OPS_MODES:
            raise ValueError(f"ops must be one of {', '.join(OPS_MODES)}, got {ops!r}")
        self.topology = topology(keep_none)
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.layers = nn.ModuleList()
        c = channels
        for stage in range(3):
            if stage > 0:
                self.layers.append(ResidualBlock(c, 2 * c))
                c *= 2
            self.layers.extend(SearchCell(self.topology, c) for _ in range(layers))
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        use_fast_path(self, ops)  # sets self.ops; fast: channels-last only (no fast cell formulation)

    @property
    def cells(self) -> tuple[SearchCell, ...]:
        """The searched cells, in order (the residual blocks between stages are not searched)."""
        return tuple(m for m in self.layers if isinstance(m, SearchCell))

    def forward(self, x: torch.Tensor, weights: ArchWeights) -> torch.Tensor:
        s = self.stem(self.normalize(x))
        for layer in self.layers:
            s = layer(s, weights["cell"]) if isinstance(layer, SearchCell) else layer(s)
        return self.classifier(self.global_pooling(self.lastact(s)).flatten(1))
