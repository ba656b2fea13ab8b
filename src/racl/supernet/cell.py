"""The node formula of every search cell (method spec, section 1):

    x_j = sum_{i -> j} beta_ij * sum_o alpha_o^(ij) * o(x_i)

over the edges entering node j, in node order; the cell's inputs and output are the space's business
(DARTS: two preprocessed inputs, the concatenation of the nodes; NAS-Bench-201: one input, the last node).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from racl.search_space.base import CellTopology, CellWeights


def node_states(inputs: Sequence[torch.Tensor], mixed: nn.ModuleList, w: CellWeights, topology: CellTopology,
                active: Sequence[Sequence[bool]], empty: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
    """The cell's inputs followed by its nodes x_j. mixed[e]: the MixedOp of edge e; `empty()`: the
    zeros of a node none of whose terms is computed."""
    states = list(inputs)
    for j in range(topology.steps):
        terms = [w.beta[e] * mixed[e](states[topology.edges[e][1]], w.alpha[e], active[e])
                 for e in topology.edges_into(j) if any(active[e])]
        states.append(sum(terms) if terms else empty())
    return states
