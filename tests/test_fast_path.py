"""The fast path (racl.search_space.darts.fast) computes the same function as the reference
formulation from the same parameters: outputs, input gradients, parameter gradients and BN statistics
agree within float32 tolerance, for every op and stride, and for whole networks.

Tolerance: float32 reassociation (weights folded into BN, shared ReLU/pooling, NHWC kernels) gives
differences around 1e-6 relative; we allow rtol 1e-4 and atol 1e-5 + 1e-4 * max|value|.
"""
import copy

import pytest
import torch
from torch.nn import functional as F

from racl.models import build_model
from racl.models.layers import Normalize
from racl.search_space import PRIMITIVES, ArchWeights, CellWeights
from racl.search_space.darts import fast as darts_fast
from racl.search_space.darts.fast import Node, batch_norm_scaled
from racl.search_space.darts.ops import make_search_op
from racl.search_space.darts.supernet import Supernet

RTOL, ATOL = 1e-4, 1e-5


def _pair(layers: int = 3, channels: int = 4) -> tuple[Supernet, Supernet]:
    torch.manual_seed(0)
    ref = Supernet(num_classes=5, channels=channels, layers=layers, ops="reference")
    fast = Supernet(num_classes=5, channels=channels, layers=layers, ops="fast")
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _weights(net: Supernet, only_op: int | None = None) -> ArchWeights:
    """Random positive weights; with `only_op`, that op alone on every edge (and only it computed)."""
    g = torch.Generator().manual_seed(1)
    topo, out = net.topology, {}
    for t in topo.cell_types:
        alpha = torch.rand(topo.num_edges, topo.num_ops, generator=g) + 0.1
        beta = torch.rand(topo.num_edges, generator=g) + 0.1
        mask = None
        if only_op is not None:
            alpha = torch.zeros_like(alpha).index_fill(1, torch.tensor([only_op]), 1.0) * alpha
            mask = tuple(tuple(o == only_op for o in range(topo.num_ops)) for _ in range(topo.num_edges))
        out[t] = CellWeights(alpha.requires_grad_(True), beta.requires_grad_(True), mask)
    return out


def _tensors(w: ArchWeights) -> list[torch.Tensor]:
    return [t for c in w.values() for t in (c.alpha, c.beta)]


def _channels_last_reference(net: Supernet) -> None:
    """The reference formulation in the fast path's memory format (NHWC), fast flags left off."""
    net.to(memory_format=torch.channels_last)
    for m in net.modules():
        if isinstance(m, Normalize):
            m.channels_last = True


def _grads(net: Supernet, x: torch.Tensor, y: torch.Tensor, w: ArchWeights) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(net(x, w), y)
    inputs = [x, *_tensors(w), *net.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)  # one-op weights leave ops unused
    return [loss.detach(), *(torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads))]


def _assert_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    """Elementwise, with the absolute tolerance scaled by the tensor's largest entry (gradients of
    deep stacks reach O(10) while single entries cancel to ~0)."""
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=RTOL, atol=ATOL + RTOL * float(u.abs().max()))


@pytest.mark.parametrize("op", range(1, len(PRIMITIVES)))
def test_every_op_and_stride_matches(op: int) -> None:
    # 3 cells = normal (stride 1 edges), reduction (stride 2 on input edges), reduction after reduction
    ref, fast = _pair()
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 5, (4,))
    w = _weights(ref, only_op=op)
    if PRIMITIVES[op] == "max_pool_3x3":
        # max pooling of max-pooled maps has ties; NCHW and NHWC kernels route the (sub)gradient to
        # different tied inputs, both correct. Same function: compare outputs, then gradients with the
        # reference formulation (fast flags still off) in the fast path's memory format.
        torch.testing.assert_close(ref(x, w), fast(x, w), rtol=RTOL, atol=ATOL)
        _channels_last_reference(ref)
        assert not any(getattr(m, "fast", False) for m in ref.modules())
    _assert_close(_grads(ref, x, y, w), _grads(fast, x, y, w))


def test_whole_supernet_step_matches_in_train_and_eval_mode() -> None:
    ref, fast = _pair(layers=5)
    x, y = torch.rand(6, 3, 16, 16), torch.randint(0, 5, (6,))
    w = _weights(ref)
    _assert_close(_grads(ref, x, y, w), _grads(fast, x, y, w))
    for k, v in ref.state_dict().items():  # BN running statistics updated identically
        torch.testing.assert_close(fast.state_dict()[k].float(), v.float(), rtol=RTOL, atol=ATOL)
    ref.eval(), fast.eval()
    _assert_close(_grads(ref, x, y, w), _grads(fast, x, y, w))


def test_fast_cell_equals_reference_cell_with_edges_off() -> None:
    ref, _ = _pair()
    cell = ref.cells[0]
    s = torch.rand(2, cell.preprocess0[1].in_channels, 8, 8)
    alpha, beta = torch.rand(14, 8), torch.rand(14)
    alpha[3:9] = 0.0  # whole edges off, and so marked
    mask = tuple(tuple(bool(v) for v in row) for row in (alpha != 0).tolist())
    w = CellWeights(alpha, beta, mask)
    plain = cell(s, s, w)  # the reference formulation (the flag is off)
    quick = darts_fast.search_cell(copy.deepcopy(cell), Node(s), Node(s), w)
    torch.testing.assert_close(quick, plain, rtol=RTOL, atol=ATOL)
    calls = []
    for mixed in cell.ops[3:9]:
        for op in mixed.ops:
            op.register_forward_hook(lambda m, a, out: calls.append(m))
    cell(s, s, w)
    assert calls == []  # ops the mask switches off are never computed


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", PRIMITIVES[1:])
def test_every_op_fast_apply_is_scale_times_forward(name: str, stride: int, momentum: float | None) -> None:
    """fast.apply(op, node, scale) = scale * op(x): output, gradients, BN running statistics and
    num_batches_tracked (momentum None: cumulative average), in train and eval mode."""
    torch.manual_seed(0)
    ref = make_search_op(name, 4, stride)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = momentum
    fast = copy.deepcopy(ref)
    for train in (True, True, False):
        ref.train(train), fast.train(train)
        x = torch.randn(3, 4, 7, 7)
        scale = torch.tensor(0.7)
        outs = []
        for op in (ref, fast):
            xx, ss = x.clone().requires_grad_(True), scale.clone().requires_grad_(True)
            y = ss * op(xx) if op is ref else darts_fast.apply(op, Node(xx), ss)
            g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
            outs.append([y.detach(), *torch.autograd.grad((y * g).sum(), [xx, ss, *op.parameters()])])
        _assert_close(*outs)
        for (k, v), w in zip(ref.state_dict().items(), fast.state_dict().values(), strict=True):
            torch.testing.assert_close(w.float(), v.float(), rtol=RTOL, atol=ATOL, msg=k)


def test_node_pools_once_per_setting() -> None:
    settings = [("max_pool_3x3", 1), ("max_pool_3x3", 1), ("max_pool_3x3", 2), ("avg_pool_3x3", 1)]
    max1, max1b, max2, avg1 = (make_search_op(name, 4, stride) for name, stride in settings)
    node = Node(torch.randn(2, 4, 6, 6))
    first = node.pool(max1[0])
    assert node.pool(max1b[0]) is first  # another edge, same pooling: shared
    assert node.pool(max2[0]).shape[-1] == 3
    assert not torch.equal(node.pool(avg1[0]), first)
    assert len(node._pools) == 3


def test_batch_norm_scaled_refuses_affine_bn() -> None:
    with pytest.raises(ValueError, match="affine-free"):
        batch_norm_scaled(torch.nn.BatchNorm2d(4), torch.randn(2, 4, 3, 3), torch.tensor(2.0))


def test_cells_run_as_modules_in_both_formulations() -> None:
    """One node loop (SearchCell.forward) for both: module hooks on the cells see the fast path too."""
    for net in _pair():
        calls = []
        for cell in net.cells:
            cell.register_forward_hook(lambda m, a, out: calls.append(out.shape))
        net(torch.rand(2, 3, 16, 16), _weights(net))
        assert len(calls) == len(net.cells), net.ops


@pytest.mark.parametrize("name", ["RACL", "DARTS_V2", "resnet18"])
def test_evaluation_networks_match(name: str) -> None:
    kwargs = dict(num_classes=5, channels=4, layers=5, auxiliary=True, drop_path_prob=0.0)
    torch.manual_seed(0)
    ref = build_model(name, ops="reference", **kwargs)
    fast = build_model(name, ops="fast", **kwargs)
    fast.load_state_dict(ref.state_dict())
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 5, (4,))
    out = []
    for net in (ref, fast):
        xx = x.clone().requires_grad_(True)
        logits, aux = net(xx, with_aux=True)
        loss = F.cross_entropy(logits, y) + (0 if aux is None else 0.4 * F.cross_entropy(aux, y))
        out.append([loss.detach(), *torch.autograd.grad(loss, [xx, *net.parameters()])])
    _assert_close(*out)


def test_narrow_networks_stay_nchw_and_do_not_crash():
    """torch 2.14.1 CPU aborts in channels-last backward of narrow strided convs (see layers.py)."""
    import subprocess
    import sys

    from racl.models import build_model

    narrow = build_model("resnet18", num_classes=4, width=4)
    assert all(p.is_contiguous() for p in narrow.parameters())
    wide = build_model("resnet18", num_classes=4, width=8)
    assert wide.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    script = ("import torch; torch.set_num_threads(1)\n"
              "from racl.models import build_model\n"
              "m = build_model('resnet18', num_classes=4, width=4).train()\n"
              "for _ in range(30): m(torch.rand(8, 3, 16, 16)).square().sum().backward()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


def test_fast_path_shares_relus() -> None:
    """Same function (above), fewer ReLU passes: one per tensor, not one per op that starts with one."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountReLU(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += func in (torch.ops.aten.relu.default, torch.ops.aten.clamp_min.default)
            return func(*args, **(kwargs or {}))

    counts = {}
    for ops in ("reference", "fast"):
        torch.manual_seed(0)
        net = build_model("RACL", num_classes=5, channels=8, layers=5, ops=ops)
        with torch.no_grad(), CountReLU() as mode:
            net(torch.rand(2, 3, 16, 16))
        counts[ops] = mode.count
    # RACL: per normal cell 2 preprocessing ReLUs of which 1 is shared with the previous cell, and
    # 3 ops reading node 0 share its ReLU
    assert counts["fast"] < counts["reference"] - 5, counts


def test_training_step_attacks_a_folded_copy_with_the_same_result() -> None:
    """The trainer's PGD step (eval-mode attack, the default): on the fast path the attack passes run
    on a BN-folded copy (no BN kernel in them), on the reference path on the model as it is; loss,
    adversarial logits and every parameter gradient agree."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from _tiny import train_config
    from racl.training.losses import make_objective

    class CountBN(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__
            self.count += "batch_norm" in name and "backward" not in name
            return func(*args, **(kwargs or {}))

    cfg = train_config(adv="pgd", steps=3).resolved()
    assert cfg.objective.attack_mode == "eval"
    torch.manual_seed(0)
    kwargs = dict(num_classes=5, channels=4, layers=5)
    ref = build_model("RACL", ops="reference", **kwargs)
    fast = build_model("RACL", ops="fast", **kwargs)
    fast.load_state_dict(ref.state_dict())
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 5, (8,))
    for net in (ref, fast):  # the same non-trivial running statistics in both
        with torch.no_grad():
            net.train()(x)
    out, counts = [], {}
    for name, net in (("reference", ref), ("fast", fast)):
        torch.manual_seed(1)  # the same random start
        with CountBN() as mode:
            step = make_objective(net, cfg)(x, y)
            grads = torch.autograd.grad(step.loss, list(net.parameters()))
        counts[name] = mode.count
        out.append([step.loss.detach(), step.adv_logits, step.clean_logits, *grads])
    _assert_close(*out)
    # reference: BN in the clean forward, 3 attack passes and the weight pass; fast: in 2 of those 5
    assert counts["reference"] % 5 == 0 and counts["fast"] == 2 * counts["reference"] // 5, counts
