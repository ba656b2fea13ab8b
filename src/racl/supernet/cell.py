"""A search cell: 2 preprocessed inputs, `steps` intermediate nodes, a MixedOp on every edge.

Node formula (method spec, section 1): x_j = sum_{i<j} beta_ij * sum_o alpha_o^(ij) * o(x_i).
The cell output is the channel concatenation of the last `multiplier` intermediate nodes.

`SearchCell.forward` is the one node loop, in two formulations of the same function and parameters:
- reference (inputs as tensors, or SharedReLU with share=False): DARTS's, every op on every edge on
  its own, `beta_e * MixedOp(x_i)` summed per node;
- fast (inputs as SharedReLU, `Supernet(ops="fast")`, which also picks channels-last memory format),
  less work for the same result:
  - ReLU of each node is computed once and shared by every op that starts with it (sep/dil convs and
    FactorizedReduce on all edges leaving that node), instead of once per op and edge; likewise the
    ReLU of each cell output, shared by the preprocessing of the next two cells (SharedReLU);
  - max and average pooling of each node are computed once per pooling (kind and settings) and shared by
    all edges leaving the node (NodeCache; each edge keeps its own BatchNorm, so running statistics
    stay per edge);
  - the architecture weight beta_e * alpha_o is folded into the affine-free BatchNorm that ends each
    op (a BN whose scale is the weight, `batch_norm_scaled`), saving one full pass and one temporary
    per op;
  - `none` and ops whose weight is exactly 0 are never computed (in both formulations);
  - each node's terms are summed in place, without a new tensor per term.
  The per-op part is each op's `forward_shared(node, scale)` (racl.search_space.ops), called by MixedOp.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.search_space.ops import FactorizedReduce, NodeCache, ReLUConvBN, SharedReLU, Zero
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

    def forward(self, s0: torch.Tensor | SharedReLU, s1: torch.Tensor | SharedReLU, alpha: torch.Tensor,
                beta: torch.Tensor, active: Sequence[Sequence[bool]] | None = None) -> torch.Tensor:
        """s0, s1: (B, C_pp|C_p, H, W); alpha: (E, O); beta: (E,) -> (B, multiplier * C, H', W').

        s0, s1 as SharedReLU that share: the fast path (see the module docstring; each cell output
        feeds the next two cells, which share its ReLU); as tensors: the reference formulation."""
        s0, s1 = (s if isinstance(s, SharedReLU) else SharedReLU(s, share=False) for s in (s0, s1))
        fold = s0.share and s1.share
        states = [NodeCache(s0.apply(self.preprocess0), fold), NodeCache(s1.apply(self.preprocess1), fold)]
        weights = beta.unsqueeze(-1) * alpha if fold else alpha  # fast: (E, O) beta_e * alpha_eo
        e = 0
        for _ in range(self.steps):
            node = None
            for h in states:
                node = self.ops[e](h, weights[e], None if active is None else active[e],
                                   None if fold else beta[e], into=node)
                e += 1
            states.append(NodeCache(node if node is not None else self._zeros(states[0].x), fold))
        return torch.cat([h.x for h in states[-self.multiplier:]], dim=1)

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        """A node every incoming weight of which is 0: zeros of the node's shape (x: a cell input node)."""
        return Zero(2 if self.reduction else 1)(x)
