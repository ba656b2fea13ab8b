"""racl.search_space.depthwise computes F.conv2d's depthwise convolution: outputs, input gradients, weight
gradients (float32, both memory formats, every formulation: stride 2 on even rows, polyphase and
per-tap weight gradients, the plain route) and first and second derivatives (float64 gradcheck and
gradgradcheck, with the CPU rewrites and routed as on CUDA); its double backward is a few grouped calls."""
import itertools
from contextlib import nullcontext

import pytest
import torch
from torch.nn import functional as F

from racl.bench.opcount import OpCounter
from racl.search_space.depthwise import DepthwiseConv2d, depthwise_conv2d, differentiable_twice, routed_as_on_cuda

CASES = [  # (kernel, stride, padding, dilation, size)
    (3, 1, 2, 2, 32), (5, 1, 4, 2, 32), (3, 1, 2, 2, 16), (5, 1, 4, 2, 8), (3, 1, 2, 2, 7),
    (5, 1, 4, 2, 9), (3, 2, 2, 2, 32), (5, 2, 4, 2, 16), (3, 2, 2, 2, 7), (5, 2, 4, 2, 9),
    (3, 1, 1, 1, 16), (5, 2, 2, 1, 16), (3, 1, 0, 2, 16), (3, 1, 4, 2, 16), (3, 2, 1, 2, 16),
]


def _reference(x, w, stride, padding, dilation):
    return F.conv2d(x, w, None, stride, padding, dilation, x.shape[1])


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("kernel,stride,padding,dilation,size", CASES)
def test_matches_conv2d(kernel, stride, padding, dilation, size, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 6, size, size).contiguous(memory_format=fmt)
    w = torch.randn(6, 1, kernel, kernel).contiguous(memory_format=fmt)
    outs, grads = [], []
    for fn in (_reference, depthwise_conv2d):
        xi, wi = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        out = fn(xi, wi, stride, padding, dilation)
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        outs.append(out)
        grads.append(torch.autograd.grad(out, (xi, wi), g))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for fast, ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("routing", ["cpu", "cuda"])
@pytest.mark.parametrize("kernel,stride,dilation", list(itertools.product((3, 5), (1, 2), (1, 2))))
def test_derivatives_match_conv2d_in_float64(kernel, stride, dilation, routing):
    """gradcheck and gradgradcheck (finite differences of F.conv2d's maths), and the exact first and
    second derivatives of F.conv2d itself, for the Function as the CPU runs it and as CUDA would."""
    torch.manual_seed(0)
    padding = dilation * (kernel - 1) // 2
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    with routed_as_on_cuda() if routing == "cuda" else nullcontext(), differentiable_twice():
        fn = lambda a, b: depthwise_conv2d(a, b, stride, padding, dilation)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w))
        assert torch.autograd.gradgradcheck(fn, (x, w))
        derivs = []
        for conv in (fn, lambda a, b: _reference(a, b, stride, padding, dilation)):
            out = conv(x, w)
            gx, gw = torch.autograd.grad(out.pow(2).sum(), (x, w), create_graph=True)
            derivs.append((out, gx, gw, *torch.autograd.grad(gx.pow(2).sum() + gw.sin().sum(), (x, w))))
    for mine, ref in zip(*derivs):
        torch.testing.assert_close(mine, ref)


@pytest.mark.parametrize("size", [16, 6])  # polyphase and per-tap weight gradients
def test_second_derivatives(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    with differentiable_twice():
        assert torch.autograd.gradgradcheck(lambda a, b: depthwise_conv2d(a, b, 1, 2, 2), (x, w))


def test_double_backward_is_a_few_grouped_calls():
    """F.conv2d's double backward runs one convolution per channel; the Function's, a few grouped ones."""
    channels = 16
    x = torch.randn(2, channels, 8, 8, requires_grad=True)
    w = torch.randn(channels, 1, 3, 3, requires_grad=True)
    counts = {}
    for name, conv in (("racl", depthwise_conv2d), ("torch", _reference)):
        with routed_as_on_cuda(), differentiable_twice(), OpCounter() as counter:
            (gx,) = torch.autograd.grad(conv(x, w, 1, 1, 1).pow(2).sum(), x, create_graph=True)
            torch.autograd.grad(gx.pow(2).sum(), (x, w))
        counts[name] = counter.summary()
    assert counts["torch"]["single_channel_convolutions"] >= channels  # what the Function avoids
    assert counts["racl"]["single_channel_convolutions"] == 0 and counts["racl"]["convolutions"] <= 6, counts


def test_autocast_runs_in_the_lower_precision():
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = depthwise_conv2d(x, w, 1, 2, 2)
        ref = _reference(x, w, 1, 2, 2)
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)
    gx, gw = torch.autograd.grad(out.float().sum(), (x, w))
    assert gx.dtype == gw.dtype == torch.float32


def test_module_keeps_the_plain_state_dict_and_switches():
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(4, 4, 5, 1, 4, dilation=2, groups=4, bias=False)
    conv = DepthwiseConv2d(4, 5, 1, 4, 2)
    conv.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, 16, 16)
    assert not conv.fast
    torch.testing.assert_close(conv(x), plain(x))
    conv.fast = True
    torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-5)


def test_the_rewritten_formulations_are_the_ones_used():
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    assert "_Conv" in depthwise_conv2d(x, w, 1, 2, 2).grad_fn.name()
    strided = depthwise_conv2d(x, w, 2, 2, 2).grad_fn  # a plain conv of the even rows and columns
    assert strided.name().startswith("Convolution") and strided.next_functions[0][0].name().startswith("Slice")
    with routed_as_on_cuda():
        assert depthwise_conv2d(x, w, 2, 2, 2).grad_fn.next_functions[0][0].name().endswith("AccumulateGrad")


def test_the_functions_only_where_a_second_derivative_is_taken():
    """Outside differentiable_twice a convolution without a CPU rewrite is torch's own (fewer Python
    calls to first order); inside, the Functions; the same values either way."""
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    plain = depthwise_conv2d(x, w, 1, 1, 1)
    assert plain.grad_fn.name().startswith("Convolution")
    with differentiable_twice(False):
        assert depthwise_conv2d(x, w, 1, 1, 1).grad_fn.name().startswith("Convolution")
    with differentiable_twice():
        twice = depthwise_conv2d(x, w, 1, 1, 1)
        assert "_Conv" in twice.grad_fn.name()
        with routed_as_on_cuda():
            assert "_Conv" in depthwise_conv2d(x, w, 2, 2, 2).grad_fn.name()
    torch.testing.assert_close(twice, plain)
    with routed_as_on_cuda():  # no rewrite: torch's own, strided and dilated alike
        assert depthwise_conv2d(x, w, 2, 2, 2).grad_fn.name().startswith("Convolution")


def _count_double_backprop(fn) -> dict:
    with routed_as_on_cuda(), OpCounter() as counter:
        fn()
    return counter.summary()


def test_every_double_backprop_path_takes_the_functions():
    """AdvRush's regulariser and the local Lipschitz estimate differentiate through input gradients; on a
    net of fast depthwise convs neither runs a single-channel convolution (torch's own would: one per
    channel). The search's gradient-norm term: tests/test_gradnorm_cost.py."""
    from racl.lipschitz.local import jacobian_norms
    from racl.search.strategies.advrush import curvature

    torch.manual_seed(0)
    conv = DepthwiseConv2d(8, 3, 1, 1)
    conv.fast = True
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), conv, torch.nn.Softplus(), torch.nn.Flatten(),
                              torch.nn.LazyLinear(10))
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 10, (4,))
    net(x)

    def regulariser():
        value = curvature(lambda u: F.cross_entropy(net(u), y, reduction="none"), x, 0.5).value
        torch.autograd.grad(value, conv.weight)

    for fn in (regulariser, lambda: jacobian_norms(net, None, x, n_iter=2)):
        counts = _count_double_backprop(fn)
        assert counts["single_channel_convolutions"] == 0 and counts["convolutions"] > 0, counts
