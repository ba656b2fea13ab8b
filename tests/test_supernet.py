"""The DARTS supernet: shapes, reductions, edge order, external weights, masked ops, gradients."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from racl.search_space import PRIMITIVES, ArchWeights, CellWeights
from racl.search_space.darts.ops import FactorizedReduce
from racl.search_space.darts.supernet import Supernet, topology

EDGES = topology().edges


def _weights(net: Supernet, seed: int = 0, requires_grad: bool = False) -> ArchWeights:
    g = torch.Generator().manual_seed(seed)
    topo = net.topology
    return {t: CellWeights(*(torch.rand(s, generator=g).add(0.1).requires_grad_(requires_grad)
                             for s in ((topo.num_edges, topo.num_ops), (topo.num_edges,))))
            for t in topo.cell_types}


def _masked(w: CellWeights, off: list[tuple[int, int]]) -> CellWeights:
    """w with the (edge, op) terms in `off` marked as not computed (and their weights 0)."""
    alpha = w.alpha.detach().clone()
    mask = [[True] * alpha.shape[1] for _ in range(alpha.shape[0])]
    for e, o in off:
        alpha[e, o] = 0.0
        mask[e][o] = False
    return CellWeights(alpha, w.beta, tuple(map(tuple, mask)))


def _net(layers: int = 3, channels: int = 4, ops: str = "fast") -> Supernet:
    torch.manual_seed(0)
    return Supernet(num_classes=5, channels=channels, layers=layers, ops=ops)


def test_edge_order() -> None:
    topo = topology()
    assert len(EDGES) == 14 and EDGES == tuple((j, i) for j in range(4) for i in range(j + 2))
    for e, (j, i) in enumerate(EDGES):
        assert topo.edge_index(j, i) == e and topo.node_of_edge[e] == j
    with pytest.raises(ValueError):
        topo.edge_index(0, 2)


def test_forward_shape_and_reductions() -> None:
    net = _net(layers=5)
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert [isinstance(c.preprocess0, FactorizedReduce) for c in net.cells] == [False, False, True, False, True]
    assert net.topology.num_edges == 14 and net.topology.num_ops == len(PRIMITIVES)
    out = net(torch.rand(2, 3, 8, 8), _weights(net))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_all_bn_affine_free_and_pools_followed_by_bn() -> None:
    net = _net()
    assert all(not m.affine for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    mixed = net.cells[0].ops[0]
    for name, op in zip(mixed.primitives, mixed.ops):
        if "pool" in name:
            assert isinstance(op, nn.Sequential) and isinstance(op[1], nn.BatchNorm2d)


def test_default_size() -> None:
    # the DARTS search network (C = 16, 8 cells) has about 1.9M parameters (DARTS paper, 10 classes)
    n = sum(p.numel() for p in Supernet().parameters())
    assert 1.85e6 < n < 2.0e6


def test_masked_ops_and_none_are_skipped() -> None:
    net = _net(ops="reference")  # module hooks see the plain path; the fast path is checked in test_fast_path
    calls: dict[str, int] = {}
    for name, op in zip(net.cells[0].ops[0].primitives, net.cells[0].ops[0].ops):
        op.register_forward_hook(lambda m, a, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    w = _weights(net)
    w["normal"] = _masked(w["normal"], [(0, PRIMITIVES.index("sep_conv_3x3"))])
    net(torch.rand(2, 3, 8, 8), w)
    assert "none" not in calls and "sep_conv_3x3" not in calls
    assert calls["dil_conv_3x3"] == 1  # the hooked op (cell 0, edge 0) ran once


def test_zero_op_weight_matches_dropping_the_op() -> None:
    # a zero weight contributes 0, so the output equals the one with a tiny weight up to O(tiny)
    net = _net().eval()
    x, w = torch.rand(2, 3, 8, 8), _weights(net)
    tiny = w["normal"].alpha.clone()
    tiny[:, 4] = 1e-7
    y0 = net(x, {**w, "normal": _masked(w["normal"], [(e, 4) for e in range(14)])})
    y1 = net(x, {**w, "normal": CellWeights(tiny, w["normal"].beta)})
    torch.testing.assert_close(y0, y1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ops", ["reference", "fast"])
def test_node_with_all_zero_weights_gives_zeros(ops: str) -> None:
    net = _net(ops=ops)  # the cells run as modules in both formulations: the hook sees the node
    w = _weights(net)
    beta = w["reduce"].beta.clone()
    beta[: 2] = 0.0  # node 0 of the reduction cell has no computed edge
    mask = tuple(tuple(e >= 2 for _ in range(8)) for e in range(14))
    w["reduce"] = CellWeights(w["reduce"].alpha, beta, mask)
    cell = next(c for c in net.cells if c.reduction)
    seen = []
    hook = cell.register_forward_hook(lambda _m, _inp, output: seen.append(output.detach()))
    x = torch.rand(2, 3, 8, 8)
    try:
        out = net(x, w)
    finally:
        hook.remove()
    assert torch.isfinite(out).all() and len(seen) == 1
    other = "reference" if ops == "fast" else "fast"
    torch.testing.assert_close(_net(ops=other)(x, w), out, rtol=1e-4, atol=1e-5)
    node0 = seen[0][:, : seen[0].shape[1] // cell.multiplier]  # the cell output concatenates nodes 0..3
    assert node0.numel() > 0 and torch.equal(node0, torch.zeros_like(node0))
    others = seen[0][:, seen[0].shape[1] // cell.multiplier:]
    assert others.abs().sum() > 0  # the other nodes are not zero: the check can tell them apart


def test_gradients_reach_weights_and_parameters() -> None:
    net = _net()
    w = _weights(net, requires_grad=True)
    out = net(torch.rand(2, 3, 8, 8), w)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    for name, t in [(f"{c}_{k}", getattr(w[c], k)) for c in w for k in ("alpha", "beta")]:
        g = t.grad
        assert g is not None and torch.isfinite(g).all(), name
        if name.endswith("alpha"):
            assert (g[:, 0] == 0).all() and (g[:, 1:] != 0).all(), name  # `none` is never computed
        else:
            assert (g != 0).all(), name
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
