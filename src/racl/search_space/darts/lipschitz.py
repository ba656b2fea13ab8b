"""The Lipschitz bound through DARTS networks: the supernet's (for the search) and a trained
evaluation network's (`racl lipschitz`), with the same conventions (racl.lipschitz.linear).

Propagation, with lambda the per-op constants (ops.py) and p0, p1 the preprocessing constants of cell k:
  ln L(h0) = ln p0_k + ln L(s_{k-2}),   ln L(h1) = ln p1_k + ln L(s_{k-1}),
  nodes by the node formula of the bound (racl.lipschitz.propagation.cell_nodes),
  ln L(s_k) = 0.5 logsumexp_j (2 ln L(h_j))
      (root of the sum of squares: ||Delta concat(h)||^2 = sum_j ||Delta h_j||^2 makes it exact for a
       concatenation, and never larger than the plain sum sum_j L(h_j)),
  ln L_F = ln L(s_last) + ln L_head,  starting from s_{-2} = s_{-1} = stem output with ln L_stem;
stem = [x / std -> conv3x3 -> BN] (the mean subtraction is a shift); head = global average pooling,
then the classifier (racl.lipschitz.linear.head_log_constant).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Sequence

import torch
from torch import nn

from racl.lipschitz.bound import BoundLayout, Group, LipschitzBound, record_shapes
from racl.lipschitz.linear import batched_bn, batched_conv, chain, closed, head_log_constant, power
from racl.lipschitz.network import Part, Pieces, lse, rss
from racl.lipschitz.propagation import cell_nodes
from racl.models.layers import Normalize
from racl.search_space.base import CellTopology, CellWeights
from racl.search_space.darts.ops import op_factors, preprocess_linear


def stem_linear(normalize: Normalize, stem: nn.Sequential, count_bn: bool = True):
    """[x / std -> conv3x3 -> BN] (the mean subtraction is a shift)."""
    return chain(lambda x: x / normalize.std, batched_conv([stem[0]]), batched_bn([stem[1]], count_bn))


def propagate(consts: dict[str, torch.Tensor], alg, weights: dict[str, CellWeights], *, topo: CellTopology,
              cell_types: Sequence[str], multiplier: int):
    """ln L_F through stem, cells and head (see the module docstring), in `alg`'s form."""
    s_pp = s_p = alg.const(consts["log_stem"])
    for k, t in enumerate(cell_types):
        inputs = [alg.shift(s_pp, consts["log_pre"][k, 0]), alg.shift(s_p, consts["log_pre"][k, 1])]
        nodes = cell_nodes(alg, inputs, weights.get(t), consts["log_ops"][k], topo)
        s_pp, s_p = s_p, alg.rss(nodes[-multiplier:])
    return alg.shift(s_p, consts["log_head"])


def supernet_bound(net: nn.Module, input_shape: Sequence[int], n_iter: int = 1, seed: int = 0,
                   count_bn: bool = True) -> LipschitzBound:
    """The bound of a DARTS Supernet. The N edges of a cell that carry one op at the same stride and
    input shape share one batched power iteration."""
    topo = net.topology
    ones = {t: CellWeights(net.stem[0].weight.new_ones(topo.num_edges, topo.num_ops),
                           net.stem[0].weight.new_ones(topo.num_edges)) for t in topo.cell_types}
    shapes = record_shapes(net, input_shape, lambda x: net(x, ones))
    groups = [Group("log_stem", (), [power(stem_linear(net.normalize, net.stem, count_bn))], 1, shapes[net.stem])]
    for k, cell in enumerate(net.cells):
        for p, pre in enumerate((cell.preprocess0, cell.preprocess1)):
            groups.append(Group("log_pre", (k, p), [power(preprocess_linear(pre, count_bn))], 1, shapes[pre]))
        forms: dict[tuple, list[int]] = {}
        for e, mixed in enumerate(cell.ops):
            forms.setdefault((cell.strides[e], shapes[mixed]), []).append(e)
        for (_, shape), edges in forms.items():
            for o, name in enumerate(topo.primitives):
                ops = [cell.ops[e].ops[o] for e in edges]
                groups.append(Group("log_ops", (k, edges, o), op_factors(name, ops, count_bn), len(edges), shape))
    hw = shapes[net.global_pooling][1:]
    groups.append(Group("log_head", (), [closed(lambda: head_log_constant(net.classifier, *hw).reshape(1))], 1, ()))
    cell_types = tuple(cell.cell_type for cell in net.cells)
    layout = BoundLayout(topo, cell_types, {"log_stem": (), "log_pre": (len(net.cells), 2),
                                            "log_ops": (len(net.cells), topo.num_edges, topo.num_ops),
                                            "log_head": ()},
                         groups, partial(propagate, topo=topo, cell_types=cell_types,
                                         multiplier=net.cells[0].multiplier),
                         lambda: next(net.parameters()))
    return LipschitzBound(layout, next(net.parameters()), n_iter=n_iter, seed=seed)


# ---------------------------------------------------------------- a trained evaluation network
def cell_logs(pre: tuple[float, float], lam: Sequence[float], indices: Sequence[int], concat: Sequence[int],
              inputs: tuple[float, float]) -> float:
    """ln bound of a discrete cell's output given ln bounds of its inputs (s_{k-2}, s_{k-1})."""
    states = [pre[0] + inputs[0], pre[1] + inputs[1]]
    for i in range(len(lam) // 2):
        states.append(lse(*(lam[k] + states[indices[k]] for k in (2 * i, 2 * i + 1))))
    return rss([states[i] for i in concat])


def network_parts(net: nn.Module, pieces: Pieces) -> list[Part]:
    """Per-part bounds of a DartsNetwork: stem, each cell (w.r.t. its two inputs jointly), head."""
    log_stem = pieces.piece(stem_linear(net.normalize, net.stem), net.stem)
    parts = [Part("stem", net.stem, log_stem, log_stem)]
    s_pp = s_p = log_stem
    for k, cell in enumerate(net.cells):
        pre = (pieces.piece(preprocess_linear(cell.preprocess0), cell.preprocess0),
               pieces.piece(preprocess_linear(cell.preprocess1), cell.preprocess1))
        edges = net.genotype.reduce if cell.reduction else net.genotype.normal
        lam = [pieces.log_norm(op_factors(name, [op]), pieces.shapes[op]) for (name, _), op in zip(edges, cell.ops)]
        args = (pre, lam, cell.indices, cell.concat)
        a = cell_logs(*args, inputs=(0.0, -math.inf))
        b = cell_logs(*args, inputs=(-math.inf, 0.0))
        s_pp, s_p = s_p, cell_logs(*args, inputs=(s_pp, s_p))
        kind = "reduce" if cell.reduction else "normal"
        parts.append(Part(f"cell{k} ({kind})", cell, rss([a, b]), s_p,
                          {"log_from_prev_prev": a, "log_from_prev": b, "log_ops": lam}))
    head = head_log_constant(net.classifier, *pieces.shapes[net.global_pooling][1:]).item()
    parts.append(Part("head", None, head, s_p + head))
    return parts
