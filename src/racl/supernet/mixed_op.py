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
