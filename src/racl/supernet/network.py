"""The DARTS search network (supernet) with architecture weights given from outside.

Normalize(mean, std) -> stem (conv 3x3 + BN to stem_multiplier * C) -> `layers` search cells
(reductions at layers // 3 and 2 * layers // 3, channels doubled there) -> global average pooling ->
linear classifier. All BNs are affine=False (DARTS search network). The weights (ArchWeights) are
used as-is: no softmax inside, so a sampled log-normal weight enters the node formula directly.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from racl.models.layers import OPS_MODES, Normalize, use_fast_path
from racl.search_space.ops import PRIMITIVES, SharedReLU
from racl.supernet.cell import SearchCell, make_edges


class ArchWeights(NamedTuple):
    """Positive architecture weights, one set per cell type, shared by all cells of that type."""

    normal_alpha: torch.Tensor  # (E, O)
    normal_beta: torch.Tensor   # (E,)
    reduce_alpha: torch.Tensor  # (E, O)
    reduce_beta: torch.Tensor   # (E,)


def _active(alpha: torch.Tensor, beta: torch.Tensor) -> list[list[bool]]:
    """Which (edge, op) pairs to compute: weight non-zero and op not `none` (one host sync)."""
    mask = (alpha != 0) & (beta != 0).unsqueeze(-1)
    mask[:, 0] = False  # `none` contributes 0
    return mask.tolist()


class Supernet(nn.Module):
    """DARTS search network; `forward(x, weights)` -> logits, x in [0, 1]."""

    KEEPS_BATCHNORM = True  # racl.models.fuse never folds it: the cells read their ops' BN modules

    def __init__(self, num_classes: int = 10, channels: int = 16, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, in_channels: int = 3,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25),
                 ops: str = "fast"):
        super().__init__()
        if ops not in OPS_MODES:
            raise ValueError(f"ops must be one of {', '.join(OPS_MODES)}, got {ops!r}")
        self.ops = ops  # fast: channels-last, SearchCell's fast formulation (same function); reference: DARTS
        self.steps, self.multiplier, self.layers = steps, multiplier, layers
        self.num_edges = len(make_edges(steps))
        self.num_ops = len(PRIMITIVES)
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
            self.cells.append(SearchCell(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        use_fast_path(self, ops)

    def forward(self, x: torch.Tensor, weights: ArchWeights) -> torch.Tensor:
        """x: (B, C_in, H, W) in [0, 1] -> logits (B, num_classes)."""
        active = {False: _active(weights.normal_alpha, weights.normal_beta),
                  True: _active(weights.reduce_alpha, weights.reduce_beta)}
        share = self.ops == "fast"  # a cell output's ReLU shared by the next two cells (SearchCell)
        s0 = s1 = SharedReLU(self.stem(self.normalize(x)), share)
        for cell in self.cells:
            alpha, beta = ((weights.reduce_alpha, weights.reduce_beta) if cell.reduction
                           else (weights.normal_alpha, weights.normal_beta))
            s0, s1 = s1, SharedReLU(cell(s0, s1, alpha, beta, active[cell.reduction]), share)
        return self.classifier(self.global_pooling(s1.x).flatten(1))


class FixedArch(nn.Module):
    """The supernet with fixed architecture weights, as a plain `model(x) -> logits` (attacks, BN updates)."""

    def __init__(self, supernet: Supernet, weights: ArchWeights):
        super().__init__()
        self.supernet = supernet
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.weights)
