"""The DARTS search network (supernet), architecture weights given from outside (method spec, section 1).

Normalize(mean, std) -> stem (conv 3x3 + BN to stem_multiplier * C) -> `layers` search cells
(reductions at layers // 3 and 2 * layers // 3, channels doubled there) -> global average pooling ->
linear classifier. All BNs are affine=False (DARTS search network). A search cell has two inputs,
the preprocessed outputs of the two previous cells, `steps` nodes by the node formula
(racl.supernet.cell) and outputs the channel concatenation of its last `multiplier` nodes. The
weights are used as given: no softmax inside, so a sampled log-normal weight enters the formula directly.

This module is the reference formulation; `ops="fast"` runs the same function from the same
parameters through racl.search_space.darts.fast (shared ReLUs and poolings, weights folded into BN).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.errors import RaclError
from racl.models.layers import OPS_MODES, Normalize, use_fast_path
from racl.search_space.base import ArchWeights, CellTopology, CellWeights
from racl.search_space.darts.ops import PRIMITIVES, FactorizedReduce, ReLUConvBN, Zero, make_search_op
from racl.supernet.cell import node_states
from racl.supernet.mixed_op import MixedOp, PartialMixedOp, active_ops

CELL_TYPES = ("normal", "reduce")


def topology(steps: int = 4) -> CellTopology:
    """DARTS: 2 cell inputs, `steps` nodes, every node keeps 2 incoming edges and never `none`."""
    return CellTopology(CELL_TYPES, PRIMITIVES, num_inputs=2, steps=steps, keep_edges=2)


class SearchCell(nn.Module):
    """One supernet cell. Reduction cells use stride 2 on edges leaving the two input nodes."""

    fast = False  # set by racl.models.layers.use_fast_path: racl.search_space.darts.fast (same function)

    def __init__(self, topo: CellTopology, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, partial_channels: int = 1):
        super().__init__()
        self.partial_channels = partial_channels  # PC-DARTS's k (1: every channel through every edge)
        self.topology, self.multiplier = topo, multiplier
        self.reduction = reduction
        self.cell_type = "reduce" if reduction else "normal"
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.strides = tuple(2 if reduction and i < 2 else 1 for _, i in topo.edges)
        self.ops = nn.ModuleList(self._mixed(c, s) for s in self.strides)

    def _mixed(self, c: int, stride: int) -> MixedOp:
        k, prims = self.partial_channels, self.topology.primitives
        if k == 1:
            return MixedOp([make_search_op(p, c, stride) for p in prims], prims)
        return PartialMixedOp([make_search_op(p, c // k, stride) for p in prims], prims, k, stride)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, w: CellWeights) -> torch.Tensor:
        """s0, s1: (B, C_pp|C_p, H, W) -> (B, multiplier * C, H', W')."""
        if self.fast and self.partial_channels == 1:  # s0, s1 as fast.Node (partial channels: reference)
            from racl.search_space.darts import fast
            return fast.search_cell(self, s0, s1, w)
        inputs = [self.preprocess0(s0), self.preprocess1(s1)]
        active = active_ops(self.topology.primitives, self.topology.num_edges, w.mask)
        states = node_states(inputs, self.ops, w, self.topology, active, lambda: self.empty(inputs[1]))
        return torch.cat(states[-self.multiplier:], dim=1)

    def empty(self, h: torch.Tensor) -> torch.Tensor:
        """A node none of whose terms is computed: zeros of a node's shape (h: a preprocessed input)."""
        return Zero(2 if self.reduction else 1)(h)


class Supernet(nn.Module):
    """DARTS search network; `forward(x, weights)` -> logits, x in [0, 1]."""

    KEEPS_BATCHNORM = True  # racl.models.fuse never folds it: the cells read their ops' BN modules
    fast = False  # set by racl.models.layers.use_fast_path

    def __init__(self, num_classes: int = 10, channels: int = 16, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, in_channels: int = 3,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25),
                 ops: str = "fast", partial_channels: int = 1):
        super().__init__()
        if ops not in OPS_MODES:
            raise ValueError(f"ops must be one of {', '.join(OPS_MODES)}, got {ops!r}")
        if partial_channels < 1 or channels % partial_channels or (partial_channels > 1 and channels // partial_channels % 2):
            raise RaclError(f"partial channels need C / k even (stride-2 skips split channels in two): C = {channels}, "
                            f"k = {partial_channels}; e.g. --set supernet.channels={2 * partial_channels * max(1, channels // (2 * partial_channels))}")
        self.topology = topology(steps)
        self.layers = layers
        self.normalize = Normalize(mean, std)
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr, affine=False))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(self.topology, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev,
                                         partial_channels))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        use_fast_path(self, ops)  # sets self.ops; fast: channels-last

    def forward(self, x: torch.Tensor, weights: ArchWeights) -> torch.Tensor:
        """x: (B, C_in, H, W) in [0, 1] -> logits (B, num_classes)."""
        if self.fast and self.cells[0].partial_channels == 1:
            from racl.search_space.darts import fast
            return fast.supernet_forward(self, x, weights)
        s0 = s1 = self.stem(self.normalize(x))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[cell.cell_type])
        return self.classifier(self.global_pooling(s1).flatten(1))
