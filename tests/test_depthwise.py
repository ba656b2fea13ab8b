"""racl.search_space.depthwise computes F.conv2d's depthwise convolution: outputs, input gradients, weight
gradients (float32, both memory formats, every formulation: stride 2 on even rows, polyphase and
per-tap weight gradients, fall-backs) and second derivatives (float64 gradgradcheck)."""
import pytest
import torch
from torch.nn import functional as F

from racl.search_space.depthwise import DepthwiseConv2d, depthwise_conv2d

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


@pytest.mark.parametrize("size", [16, 6])  # polyphase and per-tap weight gradients
def test_second_derivatives(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: depthwise_conv2d(a, b, 1, 2, 2), (x, w))


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
    assert "Dilated2" in depthwise_conv2d(x, w, 1, 2, 2).grad_fn.name()
    strided = depthwise_conv2d(x, w, 2, 2, 2).grad_fn
    assert strided.name().startswith("Convolution") and strided._saved_dilation == (1, 1)
    assert depthwise_conv2d(x, w, 1, 1, 1).grad_fn._saved_dilation == (1, 1)
