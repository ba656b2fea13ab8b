"""The Lipschitz bound through NAS-Bench-201 networks: the search network's (for the search) and a
trained evaluation network's (`racl lipschitz`), with racl's conventions (racl.lipschitz.linear).

Per-op constants lambda (ReLU counts 1, so each is the norm of the linear piece after it):
  nor_conv_kxk = ReLU, [conv -> BN];  avg_pool_3x3 (count_include_pad=False): power iteration on the
  pool itself (its norm is slightly above 1 at the borders: 1.005-1.015 on 32-8 pixel maps);
  skip = 1;  none = 0 (log -inf, dropped from every sum).
Propagation (no concatenation anywhere):
  a cell: nodes by the node formula of the bound (racl.lipschitz.propagation.cell_nodes) from its one
      input; its output is the last node;
  a residual block (ResNetBasicblock): main path [conv3x3 s2 -> BN] then [conv3x3 -> BN] (a ReLU
      before each), shortcut [avgpool 2x2 -> conv1x1]; the sum by the triangle inequality,
      L = L_main + L_shortcut;
  stem [x / std -> conv3x3 -> BN]; head [BN] -> ReLU -> global average pooling -> linear.
BN counts as in the DARTS space (`count_bn`); the search cells' BNs keep no running statistics
(SEARCH_BN), so their eval-mode factor does not exist and `count_bn=True` is refused for the supernet.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn

from racl.errors import RaclError
from racl.lipschitz.bound import BoundLayout, Group, LipschitzBound, record_shapes
from racl.lipschitz.linear import batched_bn, batched_conv, bn_scale, chain, closed, head_log_constant, power
from racl.lipschitz.network import Part, Pieces, lse
from racl.lipschitz.propagation import cell_nodes
from racl.search_space.base import CellWeights


def op_factors(name: str, ops: Sequence[nn.Module], count_bn: bool = True):
    """The factors bounding NB201 op `name` on the N modules `ops` (None for `none`)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return []
    if name.startswith("nor_conv"):
        return [power(chain(batched_conv([o[1] for o in ops]), batched_bn([o[2] for o in ops], count_bn)))]
    if name == "avg_pool_3x3":
        return [power(ops[0])]
    raise ValueError(f"no Lipschitz constant for NB201 op {name!r}")


def _block_main(block: nn.Module, count_bn: bool):
    return [power(chain(batched_conv([block.conv_a[1]]), batched_bn([block.conv_a[2]], count_bn))),
            power(chain(batched_conv([block.conv_b[1]]), batched_bn([block.conv_b[2]], count_bn)))]


def _stem(net: nn.Module, count_bn: bool):
    return chain(lambda x: x / net.normalize.std, batched_conv([net.stem[0]]), batched_bn([net.stem[1]], count_bn))


def _head_log(net: nn.Module, hw: tuple[int, int], count_bn: bool) -> torch.Tensor:
    bn = bn_scale(net.lastact[0]).max().log() if count_bn else 0.0
    return (head_log_constant(net.classifier, *hw) + bn).reshape(1)


def propagate(consts: dict[str, torch.Tensor], alg, weights: dict[str, CellWeights], *, kinds: Sequence[str],
              topo):
    """ln L_F through stem, the cells and residual blocks in order (`kinds`: "cell" | "block"), head."""
    s = alg.const(consts["log_stem"])
    k = r = 0
    for kind in kinds:
        if kind == "cell":
            s = cell_nodes(alg, [s], weights.get("cell"), consts["log_ops"][k], topo)[-1]
            k += 1
        else:
            s = alg.shift(s, torch.logaddexp(consts["log_block_main"][r], consts["log_block_shortcut"][r]))
            r += 1
    return alg.shift(s, consts["log_head"])


def supernet_bound(net: nn.Module, input_shape: Sequence[int], n_iter: int = 1, seed: int = 0,
                   count_bn: bool = False) -> LipschitzBound:
    """The bound of an NB201 Supernet (see the module docstring)."""
    if count_bn:
        raise RaclError("bound.bn=eval needs running BN statistics, and NB201's search cells normalise with "
                        "batch statistics (docs/nb201.md); use bound.bn=none with --space nb201")
    topo, cells = net.topology, net.cells
    ones = {"cell": CellWeights(net.stem[0].weight.new_ones(topo.num_edges, topo.num_ops),
                                net.stem[0].weight.new_ones(topo.num_edges))}
    shapes = record_shapes(net, input_shape, lambda x: net(x, ones))
    groups = [Group("log_stem", (), [power(_stem(net, count_bn))], 1, shapes[net.stem])]
    for k, cell in enumerate(cells):
        shape = shapes[cell]  # every edge of a cell sees the cell's input shape
        for o, name in enumerate(topo.primitives):
            ops = [cell.ops[e].ops[o] for e in range(topo.num_edges)]
            groups.append(Group("log_ops", (k, list(range(topo.num_edges)), o), op_factors(name, ops, count_bn),
                                topo.num_edges, shape))
    blocks = [m for m in net.layers if not hasattr(m, "cell_type")]
    for r, block in enumerate(blocks):
        groups.append(Group("log_block_main", r, _block_main(block, count_bn), 1, shapes[block]))
        groups.append(Group("log_block_shortcut", r, [power(chain(block.shortcut[0], batched_conv([block.shortcut[1]])))],
                            1, shapes[block]))
    hw = tuple(shapes[net.global_pooling][1:])
    groups.append(Group("log_head", (), [closed(lambda: _head_log(net, hw, count_bn))], 1, ()))
    kinds = tuple("cell" if hasattr(m, "cell_type") else "block" for m in net.layers)
    layout = BoundLayout(topo, tuple("cell" for _ in cells),
                         {"log_stem": (), "log_ops": (len(cells), topo.num_edges, topo.num_ops),
                          "log_block_main": (len(blocks),), "log_block_shortcut": (len(blocks),), "log_head": ()},
                         groups, partial(propagate, kinds=kinds, topo=topo), lambda: next(net.parameters()))
    return LipschitzBound(layout, next(net.parameters()), n_iter=n_iter, seed=seed)


# ---------------------------------------------------------------- a trained evaluation network
def network_parts(net: nn.Module, pieces: Pieces) -> list[Part]:
    """Per-part bounds of an Nb201Network: stem, each cell (node formula), each residual block, head."""
    log = pieces.piece(_stem(net, True), net.stem)
    parts = [Part("stem", net.stem, log, log)]
    for k, layer in enumerate(net.cells):
        if hasattr(layer, "edges"):  # an Nb201Cell
            lam = [pieces.log_norm(op_factors(name, [op]), pieces.shapes[layer])
                   for name, op in zip(net.genotype.ops, layer.ops, strict=True)]
            states = [0.0]
            for node in range(1, 4):
                states.append(lse(*(lam[e] + states[src] for e, (src, dst) in enumerate(layer.edges) if dst == node)))
            own, name = states[-1], f"cell{k}"
        else:
            first, second = _block_main(layer, True)
            main = pieces.log_norm([first], pieces.shapes[layer]) + pieces.log_norm([second], pieces.shapes[layer.conv_b])
            short = pieces.log_norm([power(chain(layer.shortcut[0], batched_conv([layer.shortcut[1]])))],
                                    pieces.shapes[layer])
            own, name = lse(main, short), f"block{k}"
        log += own
        parts.append(Part(name, layer, own, log))
    hw = tuple(pieces.shapes[net.global_pooling][1:])
    head = float(_head_log(net, hw, True))
    parts.append(Part("head", None, head, log + head))
    return parts

