"""The supernet cell's fast path: the same function and parameters as `SearchCell.forward`, less work.

What it saves, relative to the plain per-edge formulation (every op on every edge on its own):
- ReLU of each node is computed once and shared by every op that starts with it (sep/dil convs and
  FactorizedReduce on all edges leaving that node), instead of once per op and edge; likewise the
  ReLU of each cell output, shared by the preprocessing of the next two cells;
- max and average pooling of each node are computed once per stride and shared by all edges leaving
  the node (each edge keeps its own BatchNorm, so running statistics stay per edge, exactly as before);
- the architecture weight beta_e * alpha_o is folded into the affine-free BatchNorm that ends each op
  (a BN whose scale is the weight), saving one full pass and one temporary per op;
- `none` and ops whose weight is exactly 0 are never computed;
- each node's terms are summed in place, without a new tensor per term.
Channels-last memory format is chosen by the network (`Supernet(ops="fast")`).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from racl.search_space.ops import DilConv, FactorizedReduce, Identity, SepConv, SharedReLU


def _bn(bn: nn.BatchNorm2d, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """`scale * bn(x)` for an affine-free BN, as one batch_norm call with weight = scale."""
    # .contiguous(): with a stride-0 (expanded) weight, torch 2.14.1's CPU channels-last batch_norm
    # backward returned wrong input gradients (found by tests/test_fast_path.py; contiguous is right)
    weight = None if scale is None else scale.expand(x.shape[1]).contiguous()
    use_batch = bn.training or bn.running_mean is None
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average, as nn.BatchNorm2d does
            factor = 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(x, bn.running_mean, bn.running_var, weight, None, use_batch, factor, bn.eps)


def _dil_from_relu(block: DilConv, r: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """DilConv (ReLU, depthwise, pointwise, BN) on an input whose ReLU is already taken."""
    return _bn(block[3], block[2](block[1](r)), scale)


def _factorized_from_relu(op: FactorizedReduce, r: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    y = r[:, :, 1:, 1:]
    if y.shape[-1] != r.shape[-1] or y.shape[-2] != r.shape[-2]:
        y = F.pad(y, (0, 1, 0, 1))
    return _bn(op.bn, torch.cat([op.conv_1(r), op.conv_2(y)], dim=1), scale)


class _NodeCache(SharedReLU):
    """Per-node shared results: ReLU(x) and pool(x) for each (kind, stride)."""

    def __init__(self, h: torch.Tensor):
        super().__init__(h)
        self._pools: dict[tuple[type, int], torch.Tensor] = {}

    def pool(self, pool: nn.Module) -> torch.Tensor:
        key = (type(pool), pool.stride)
        if key not in self._pools:
            self._pools[key] = pool(self.x)
        return self._pools[key]


def _op_term(op: nn.Module, node: _NodeCache, scale: torch.Tensor) -> torch.Tensor:
    """scale * op(h) for one search op (see make_search_op for the op structures)."""
    if isinstance(op, Identity):
        return scale * node.x
    if isinstance(op, SepConv):
        first = _dil_from_relu(op[0], node.relu(), None)
        return _dil_from_relu(op[1], F.relu(first), scale)
    if isinstance(op, DilConv):
        return _dil_from_relu(op, node.relu(), scale)
    if isinstance(op, FactorizedReduce):
        return _factorized_from_relu(op, node.relu(), scale)
    if isinstance(op, nn.Sequential) and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d)):
        return _bn(op[1], node.pool(op[0]), scale)
    raise TypeError(f"no fast path for {type(op).__name__}")


def fast_cell_forward(cell: nn.Module, s0: SharedReLU, s1: SharedReLU, alpha: torch.Tensor,
                      beta: torch.Tensor, active: Sequence[Sequence[bool]]) -> torch.Tensor:
    """Same result as SearchCell.forward(s0.x, s1.x, alpha, beta, active); see the module docstring.
    s0, s1: the cell inputs with their shared ReLUs (each cell output feeds the next two cells)."""
    nodes = [_NodeCache(s0.apply(cell.preprocess0)), _NodeCache(s1.apply(cell.preprocess1))]
    weights = beta.unsqueeze(-1) * alpha  # (E, O): beta_e * alpha_eo
    e = 0
    for _ in range(cell.steps):
        total = None
        for i in range(len(nodes)):
            for o, op in enumerate(cell.ops[e].ops):
                if active[e][o]:
                    term = _op_term(op, nodes[i], weights[e, o])
                    # in place: every term is a fresh tensor whose backward does not need it (8% measured)
                    total = term if total is None else total.add_(term)
            e += 1
        nodes.append(_NodeCache(total if total is not None else cell._zeros([n.x for n in nodes])))
    return torch.cat([n.x for n in nodes[-cell.multiplier:]], dim=1)
