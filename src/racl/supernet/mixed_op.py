"""The DARTS mixed op: every primitive on one edge, weighted by weights given from outside.

Following DARTS's `MixedOp.forward(x, weights)`, where the weights come from (sampling a log-normal,
a softmax, ...) is not the op's business. Pools are followed by BatchNorm2d(C, affine=False), as in
the DARTS search network, and every BN is affine=False (method spec, section 1).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.search_space.ops import PRIMITIVES, NodeCache, PoolBN, SharedReLU, Zero, make_op


def make_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """Primitive `name` as used in the supernet: affine-free BN, pools followed by BN (PoolBN)."""
    op = make_op(name, channels, stride, affine=False)
    if "pool" in name:
        op = PoolBN(op, channels)
    return op


class MixedOp(nn.Module):
    """sum_o alpha_o * o(x) over the primitives (PRIMITIVES order; index 0 is `none`)."""

    def __init__(self, channels: int, stride: int, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.stride = stride
        self.primitives = tuple(primitives)
        self.ops = nn.ModuleList(make_search_op(p, channels, stride) for p in self.primitives)

    def forward(self, x: torch.Tensor | NodeCache, alpha: torch.Tensor, active: Sequence[bool] | None = None,
                beta: torch.Tensor | None = None, into: torch.Tensor | None = None) -> torch.Tensor | None:
        """`into` + `beta` * sum_o alpha_o o(x) (beta None: 1, into None: 0); None when that is nothing.

        x: (B, C, H, W), or a NodeCache holding it; alpha: (O,). `active[o]` False skips op o (weight
        exactly 0 or `none`; `none` is never computed). A NodeCache that shares is the fast path: each
        term is `op.forward_shared(x, alpha_o)` (shared ReLU and pooling, alpha_o folded into the op's
        last BN) and is added to `into` in place; the caller folds beta into alpha there (beta None).
        Otherwise DARTS's formulation: the ops on x, weighted, summed, times beta, added to `into`.
        """
        shared = isinstance(x, NodeCache) and x.share
        if shared and beta is not None:
            raise ValueError("the fast path takes beta folded into alpha (beta_e * alpha_eo), not beta")
        if isinstance(x, SharedReLU) and not shared:
            x = x.x
        total = into if shared else None
        for o, op in enumerate(self.ops):
            if isinstance(op, Zero) or (active is not None and not active[o]):
                continue
            if shared:
                term = op.forward_shared(x, alpha[o])
                # in place: every term is a fresh tensor whose backward does not need it (8% measured)
                total = term if total is None else total.add_(term)
            else:
                term = alpha[o] * op(x)
                total = term if total is None else total + term
        if shared:
            return total
        if total is None:  # no active op: the edge adds exactly 0
            return into
        if beta is not None:
            total = beta * total
        return total if into is None else into + total
