"""A search cell: 2 preprocessed inputs, `steps` intermediate nodes, a MixedOp on every edge.

Node formula (method spec, section 1): x_j = sum_{i<j} beta_ij * sum_o alpha_o^(ij) * o(x_i).
The cell output is the channel concatenation of the last `multiplier` intermediate nodes.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.search_space.ops import FactorizedReduce, ReLUConvBN, Zero
from racl.supernet.mixed_op import MixedOp


def make_edges(steps: int) -> tuple[tuple[int, int], ...]:
    """(node j, input i) for every edge, in edge-index order: e = sum_{k<j}(k + 2) + i."""
    return tuple((j, i) for j in range(steps) for i in range(j + 2))


EDGES: tuple[tuple[int, int], ...] = make_edges(4)


def edge_index(node: int, inp: int) -> int:
    """Index of the edge from input `inp` (0, 1: cell inputs; 2 + k: node k) into node `node`."""
    if not 0 <= inp < node + 2:
        raise ValueError(f"node {node} has inputs 0..{node + 1}, got {inp}")
    return sum(k + 2 for k in range(node)) + inp


class SearchCell(nn.Module):
    """One supernet cell. Reduction cells use stride 2 on edges leaving the two input nodes."""

    def __init__(self, steps: int, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        self.steps = steps
        self.multiplier = multiplier
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = make_edges(steps)
        self.strides = tuple(2 if reduction and i < 2 else 1 for _, i in self.edges)
        self.ops = nn.ModuleList(MixedOp(c, s) for s in self.strides)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                active: Sequence[Sequence[bool]] | None = None) -> torch.Tensor:
        """s0, s1: (B, C_pp|C_p, H, W); alpha: (E, O); beta: (E,) -> (B, multiplier * C, H', W')."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(self.steps):
            node = None
            for i, h in enumerate(states):
                out = self.ops[e](h, alpha[e], None if active is None else active[e])
                if out is not None:
                    node = beta[e] * out if node is None else node + beta[e] * out
                e += 1
            states.append(node if node is not None else self._zeros(states))
        return torch.cat(states[-self.multiplier:], dim=1)

    def _zeros(self, states: list[torch.Tensor]) -> torch.Tensor:
        """A node every incoming weight of which is 0: zeros of the node's shape."""
        return Zero(2 if self.reduction else 1)(states[0])
