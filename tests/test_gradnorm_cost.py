"""The weight step's input-gradient-norm term (robust.gamma > 0) at a bounded cost: its operation count
(routed as on CUDA) against the gamma = 0 step, the lean BN second derivative against F.batch_norm,
and robust.gradnorm_subset (the term on part of the batch)."""
import pytest
import torch
from torch.nn import functional as F

from racl.bench.opcount import weight_step_ops
from racl.errors import RaclError
from racl.search.config import RobustConfig
from racl.search.weight_step import weight_loss
from racl.search_space.base import map_weights
from racl.search_space.darts.supernet import Supernet
from racl.search_space.depthwise import differentiable_twice
from racl.distributions import ArchDistribution
from racl.supernet.batchnorm import batch_norm_train, bn_layers


def test_gradient_norm_step_costs_under_four_plain_steps():
    """Counted at a small supernet (deterministic): torch's own double backward issued one convolution per
    channel of every depthwise conv and ~80 operations per BN, 5.9x the gamma = 0 count here."""
    plain = weight_step_ops(0.0, channels=4, layers=3, batch=4, image_size=16)
    term = weight_step_ops(0.1, channels=4, layers=3, batch=4, image_size=16)
    assert term["single_channel_convolutions"] == 0
    assert term["total"] < 4 * plain["total"], (term, plain)
    assert term["convolutions"] < 3 * plain["convolutions"], (term, plain)


@pytest.mark.parametrize("weighted", [True, False])
def test_batch_norm_train_derivatives_match_batch_norm(weighted):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_(True)
    inputs = (x, w) if weighted else (x,)
    mine = lambda a, b=None: batch_norm_train(a, b, None, None, 0.1, 1e-5)  # noqa: E731
    ref = lambda a, b=None: F.batch_norm(a, None, None, b, None, True, 0.1, 1e-5)  # noqa: E731
    assert "BatchNorm" in mine(*inputs).grad_fn.name() and "_BatchNorm" not in mine(*inputs).grad_fn.name()
    with differentiable_twice():  # the Function with the lean second derivative
        assert "_BatchNorm" in mine(*inputs).grad_fn.name()
        assert torch.autograd.gradcheck(mine, inputs) and torch.autograd.gradgradcheck(mine, inputs)
        derivs = []
        for fn in (mine, ref):
            out = fn(*inputs)
            grads = torch.autograd.grad(out.pow(3).sum(), inputs, create_graph=True)
            derivs.append((out, *grads, *torch.autograd.grad(sum(g.pow(2).sum() for g in grads), inputs)))
    for a, b in zip(*derivs):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("twice", [False, True])
def test_batch_norm_train_updates_running_statistics_as_batch_norm(twice):
    x = torch.randn(4, 3, 6, 6)
    stats = [(torch.zeros(3), torch.ones(3)) for _ in range(2)]
    with differentiable_twice(twice):
        batch_norm_train(x, None, *stats[0], 0.1, 1e-5)
    F.batch_norm(x, *stats[1], None, None, True, 0.1, 1e-5)
    for a, b in zip(*stats):
        torch.testing.assert_close(a, b)


def _setup():
    torch.manual_seed(0)
    net = Supernet(num_classes=10, channels=4, layers=3)
    w = map_weights(torch.Tensor.detach,
                    ArchDistribution(net.topology, normalize=True).sample(torch.Generator().manual_seed(0)))
    return net, w, torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,))


def _buffers(net):
    return [b.clone() for m in bn_layers(net) for b in m.buffers()]


def test_gradnorm_subset_is_the_term_of_the_first_examples_and_leaves_running_statistics():
    net, w, x, y = _setup()
    _, ce_full, _, norm_full = weight_loss(net, w, x, y, 0.1)
    after_full = _buffers(net)
    net, w, x, y = _setup()
    loss, ce, _, norm = weight_loss(net, w, x, y, 0.1, subset=0.25)  # 2 of 8 examples
    assert all(torch.equal(a, b) for a, b in zip(_buffers(net), after_full))  # one update: the full forward's
    torch.testing.assert_close(ce, ce_full)
    torch.testing.assert_close(loss, ce + 0.1 * norm)
    net, w, _, _ = _setup()
    _, _, _, alone = weight_loss(net, w, x[:2], y[:2], 0.1)  # the same 2 examples in a batch of their own
    torch.testing.assert_close(norm, alone)
    assert not torch.allclose(norm, norm_full)
    for p in net.parameters():
        p.grad = None
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_gradnorm_subset_outside_unit_interval_is_refused(bad):
    with pytest.raises(RaclError, match="gradnorm_subset"):
        RobustConfig(gradnorm_subset=bad)
