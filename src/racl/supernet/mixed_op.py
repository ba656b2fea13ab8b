"""The mixed op of an edge: every primitive on the edge, weighted by weights given from outside.

Following DARTS's `MixedOp.forward(x, weights)`, where the weights come from (sampling a log-normal,
a softmax, a Gumbel sample, a genotype's 0/1 weights) is not the op's business.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MixedOp(nn.Module):
    """sum_o alpha_o * o(x) over the primitives of one edge."""

    def __init__(self, ops: Sequence[nn.Module], primitives: Sequence[str]):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.primitives = tuple(primitives)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor, active: Sequence[bool]) -> torch.Tensor:
        """x (B, C, H, W), alpha (O,); only the ops marked `active` are computed (see `active_ops`)."""
        return sum(a * op(x) for a, op, on in zip(alpha, self.ops, active) if on)


def active_ops(primitives: Sequence[str], num_edges: int,
               mask: Sequence[Sequence[bool]] | None = None) -> list[list[bool]]:
    """Which (edge, op) terms a cell computes: `none` never (it adds exactly 0), and with a `mask`
    (the weights' own, known on the host: a genotype's or a hard sample's support) only the ops in it.
    Skipping is exact for the output; the skipped ops' BN statistics are left alone and their weights
    get no gradient (a weight fixed at 0 needs none)."""
    real = [p != "none" for p in primitives]
    if mask is None:
        return [list(real) for _ in range(num_edges)]
    return [[r and bool(m) for r, m in zip(real, row)] for row in mask]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` equal channel groups: (B, g * c, H, W) -> channel order 0, c, 2c, ..., 1, c+1, ..."""
    b, channels, h, w = x.shape
    return x.view(b, groups, channels // groups, h, w).transpose(1, 2).reshape(b, channels, h, w)


class PartialMixedOp(MixedOp):
    """PC-DARTS's partial channel connection (Xu et al., ICLR 2020; yuhuixu1993/PC-DARTS model_search.py
    `MixedOp`): the first C/k channels go through the mixed op (its ops are built for C/k channels), the
    other channels bypass it (max-pooled 2x2 when the edge has stride 2), then the halves are
    concatenated and the channels shuffled in k groups."""

    def __init__(self, ops: Sequence[nn.Module], primitives: Sequence[str], k: int, stride: int):
        super().__init__(ops, primitives)
        self.k = k
        self.bypass = nn.MaxPool2d(2, 2) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor, alpha: torch.Tensor, active: Sequence[bool]) -> torch.Tensor:
        part = x.shape[1] // self.k
        mixed = super().forward(x[:, :part], alpha, active)
        return channel_shuffle(torch.cat([mixed, self.bypass(x[:, part:])], dim=1), self.k)
