"""The DARTS mixed op: every primitive on one edge, weighted by weights given from outside.

Following DARTS's `MixedOp.forward(x, weights)`, where the weights come from (sampling a log-normal,
a softmax, ...) is not the op's business. Pools are followed by BatchNorm2d(C, affine=False), as in
the DARTS search network, and every BN is affine=False (method spec, section 1).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.search_space.ops import PRIMITIVES, Zero, make_op


def make_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """Primitive `name` as used in the supernet: affine-free BN, pools followed by BN."""
    op = make_op(name, channels, stride, affine=False)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
    return op


class MixedOp(nn.Module):
    """sum_o alpha_o * o(x) over the primitives (PRIMITIVES order; index 0 is `none`)."""

    def __init__(self, channels: int, stride: int, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.stride = stride
        self.primitives = tuple(primitives)
        self.ops = nn.ModuleList(make_search_op(p, channels, stride) for p in self.primitives)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor, active: Sequence[bool] | None = None
                ) -> torch.Tensor | None:
        """x: (B, C, H, W); alpha: (O,). `active[o]` False skips op o (weight exactly 0 or `none`).

        Returns None when no op is active (the edge contributes exactly 0).
        """
        total = None
        for o, op in enumerate(self.ops):
            if isinstance(op, Zero) or (active is not None and not active[o]):
                continue
            term = alpha[o] * op(x)
            total = term if total is None else total + term
        return total
