"""The DARTS networks' fast path (`ops="fast"`, the default): the same function from the same
parameters as the reference formulation (supernet.py, network.py), with less work. Opt out with
`ops="reference"`; tests/test_fast_path.py ties the two together (outputs, gradients, BN statistics).

What it saves, per step of the default supernet (1.85x on CPU with channels-last, benchmarks/README.md):
  - the ReLU of each node is computed once and shared by every op that starts with one (sep/dil convs,
    FactorizedReduce, preprocessing) on every edge leaving the node, instead of once per op and edge;
    likewise the ReLU of each cell output, shared by the preprocessing of the next two cells;
  - max and average pooling of each node are computed once per pooling setting and shared by all
    edges leaving the node (each edge keeps its own BN, so running statistics stay per edge);
  - the weight beta_e * alpha_o is folded into the affine-free BN that ends each op (a BN whose scale
    is the weight, `batch_norm_scaled`), saving one full pass and one temporary per op;
  - each node's terms are summed in place;
  - the affine-free BNs run in train mode through `batch_norm_train` (racl.supernet.batchnorm): same
    forward and backward kernels, a second derivative of a few whole-tensor operations.
An op without an entry in `_SCALED` (e.g. a newly added primitive) runs as `weight * op(x)`: adding a
primitive never needs this module.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from racl.models.layers import drop_path
from racl.search_space.base import ArchWeights, CellWeights
from racl.search_space.darts.ops import DilConv, FactorizedReduce, Identity, PoolBN, ReLUConvBN, SepConv
from racl.supernet.batchnorm import batch_norm_train
from racl.supernet.mixed_op import active_ops


class Node:
    """A tensor as every op reading it sees it: x, its ReLU and its poolings, each computed once."""

    def __init__(self, x: torch.Tensor):
        self.x = x
        self._relu: torch.Tensor | None = None
        self._pools: dict[Hashable, torch.Tensor] = {}

    def relu(self) -> torch.Tensor:
        if self._relu is None:
            self._relu = torch.relu(self.x)
        return self._relu

    def pool(self, pool: nn.Module) -> torch.Tensor:
        key = (type(pool), repr(pool))  # equal keys: the same pooling (kind and every setting)
        if key not in self._pools:
            self._pools[key] = pool(self.x)
        return self._pools[key]


def batch_norm_scaled(bn: nn.BatchNorm2d, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """`scale * bn(x)` for an affine-free BN, as one batch_norm call with weight = scale (None: bn(x)).

    Updates the running statistics and num_batches_tracked exactly as `bn(x)` does (momentum None:
    cumulative moving average; none with track_running_stats off in train mode)."""
    if bn.affine:
        raise ValueError("batch_norm_scaled folds the scale into the BN weight: the BN must be affine-free")
    # .contiguous(): with a stride-0 (expanded) weight, torch 2.14.1's CPU channels-last batch_norm
    # backward returned wrong input gradients (found by tests/test_fast_path.py; contiguous is right)
    weight = None if scale is None else scale.expand(x.shape[1]).contiguous()
    use_batch = bn.training or bn.running_mean is None
    track = not bn.training or bn.track_running_stats  # as nn.BatchNorm2d: running statistics used or updated
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average, as nn.BatchNorm2d does
            factor = 1.0 / float(bn.num_batches_tracked)
    running = (bn.running_mean, bn.running_var) if track else (None, None)
    if use_batch:  # the same maths, with a lean second derivative (the search's gradient-norm term)
        return batch_norm_train(x, weight, *running, factor, bn.eps)
    return F.batch_norm(x, *running, weight, None, False, factor, bn.eps)


def _bn(bn: nn.Module, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """scale * bn(x); an affine-free BN through batch_norm_scaled, any other module (an affine BN, the
    Identity left by BN folding) called as it is."""
    if scale is None and not (isinstance(bn, nn.BatchNorm2d) and not bn.affine):
        return bn(x)
    return batch_norm_scaled(bn, x, scale)


def _dil(op: DilConv, relu: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    return _bn(op[3], op[2](op[1](relu)), scale)


def _sep(op: SepConv, node: Node, scale: torch.Tensor | None) -> torch.Tensor:
    return _dil(op[1], F.relu(_dil(op[0], node.relu())), scale)


# scale * op(node.x) for each kind of op (scale None: op(node.x)), from the node's shared ReLU / pooling
_SCALED: dict[type, Callable[[nn.Module, Node, torch.Tensor | None], torch.Tensor]] = {
    DilConv: lambda op, node, s: _dil(op, node.relu(), s),
    SepConv: _sep,
    FactorizedReduce: lambda op, node, s: _bn(op.bn, op.convs(node.relu()), s),
    ReLUConvBN: lambda op, node, s: _bn(op[2], op[1](node.relu()), s),
    PoolBN: lambda op, node, s: _bn(op[1], node.pool(op[0]), s),
    Identity: lambda op, node, s: node.x if s is None else s * node.x,
}


def apply(op: nn.Module, node: Node, scale: torch.Tensor | None = None) -> torch.Tensor:
    """scale * op(node.x) (scale None: op(node.x)), sharing the node's ReLU and poolings."""
    fn = _SCALED.get(type(op))
    if fn is not None:
        return fn(op, node, scale)
    out = op(node.x)
    return out if scale is None else scale * out


def search_cell(cell: nn.Module, s0: Node, s1: Node, w: CellWeights) -> torch.Tensor:
    """SearchCell.forward with beta_e * alpha_eo folded into each op's last BN, terms summed in place."""
    topo = cell.topology
    states = [Node(apply(cell.preprocess0, s0)), Node(apply(cell.preprocess1, s1))]
    active = active_ops(topo.primitives, topo.num_edges, w.mask)
    weights = w.beta.unsqueeze(-1) * w.alpha  # (E, O)
    for j in range(topo.steps):
        node = None
        for e in topo.edges_into(j):
            for o, op in enumerate(cell.ops[e].ops):
                if active[e][o]:
                    term = apply(op, states[topo.edges[e][1]], weights[e, o])
                    # in place: every term is a fresh tensor whose backward does not need it (8% measured)
                    node = term if node is None else node.add_(term)
        states.append(Node(node if node is not None else cell.empty(states[1].x)))
    return torch.cat([h.x for h in states[-cell.multiplier:]], dim=1)


def supernet_forward(net: nn.Module, x: torch.Tensor, weights: ArchWeights) -> torch.Tensor:
    """Supernet.forward: each cell output's ReLU shared by the next two cells' preprocessing."""
    s0 = s1 = Node(net.stem(net.normalize(x)))
    for cell in net.cells:
        s0, s1 = s1, Node(cell(s0, s1, weights[cell.cell_type]))  # a module call: hooks see it
    return net.classifier(net.global_pooling(s1.x).flatten(1))


def eval_cell(cell: nn.Module, s0: Node, s1: Node, drop_prob: float) -> torch.Tensor:
    """network.Cell.forward, sharing each state's ReLU among the ops that start with one."""
    states = [Node(apply(cell.preprocess0, s0)), Node(apply(cell.preprocess1, s1))]
    for i in range(len(cell.ops) // 2):
        total = 0
        for k in (2 * i, 2 * i + 1):
            h = apply(cell.ops[k], states[cell.indices[k]])
            if not isinstance(cell.ops[k], Identity):
                h = drop_path(h, drop_prob, cell.training)
            total = total + h
        states.append(Node(total))
    return torch.cat([states[i].x for i in cell.concat], dim=1)


def network_features(net: nn.Module, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DartsNetwork's cells on x: (last cell output, auxiliary logits or None)."""
    s0 = s1 = Node(net.stem(net.normalize(x)))
    aux = None
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, Node(cell(s0, s1, net.drop_path_prob))  # a module call: hooks see it
        if i == net.aux_index and net.auxiliary_head is not None and net.training and with_aux:
            aux = net.auxiliary_head(s1.x)
    return s1.x, aux
