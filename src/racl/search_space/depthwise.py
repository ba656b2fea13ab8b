"""Depthwise convolutions on the CPU: the dilated ones rewritten so torch's fast kernels do the work.

The DARTS ops' depthwise convolutions with dilation 2 (dil_conv_3x3, dil_conv_5x5) are slow in
torch 2.14.1 on the CPU: their gradients go through generic im2col kernels. `benchmarks/depthwise.py`
on the 2-core CPU (channels-last, batch 32, median of 20; one run, the machine was noisy): a 5x5
dilation-2 depthwise conv at C = 16, 32x32 takes 0.5 ms forward, 5.1 ms with its input gradient and
18.7 ms with both gradients (this module: 0.5, 1.7, 7.9 ms); at stride 2 (C = 32) 0.3, 34.3 and 44.0
ms (this module: 0.5, 2.1, 4.1 ms). Same maths, other formulations:
  - stride 2, dilation 2, even padding: only the even rows and columns of the input are read, so the
    op is a plain (dilation 1, stride 1) depthwise conv of x[:, :, ::2, ::2] with half the padding;
  - stride 1, dilation 2 (`_Dilated2`): forward as is; input gradient = the same dilated conv of the
    output gradient with the kernel flipped (a forward conv, fast); weight gradient = the weight
    gradient of a plain conv on the 2x2 polyphase components ("space to batch": the dilated conv
    of an even-sized image is a plain conv on each of its four sub-images), or, on images too small
    for that to pay (< 16 pixels), one product-and-sum per kernel tap.
Elsewhere (other dilations, odd paddings, GPUs, autocast) it is `F.conv2d`. Tested equal to `F.conv2d` in
outputs, input and weight gradients, and second derivatives (tests/test_depthwise.py).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_MIN_POLYPHASE = 16  # below this image size, the per-tap weight gradient is faster (measured)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                     dilation: int) -> torch.Tensor:
    """F.conv2d(x, weight, None, stride, padding, dilation, groups=C) for weight (C, 1, k, k)."""
    channels = x.shape[1]
    k = weight.shape[-1]
    if (x.device.type != "cpu" or dilation != 2 or padding % 2 or weight.shape[-2] != k
            or torch.is_autocast_enabled("cpu")):
        return F.conv2d(x, weight, None, stride, padding, dilation, channels)
    if stride == 2 and _out_size(x, k, 2, padding, 2) == tuple((n + 1) // 2 + padding - k + 1
                                                               for n in x.shape[-2:]):
        return F.conv2d(x[:, :, ::2, ::2], weight, None, 1, padding // 2, 1, channels)
    if stride == 1 and padding <= 2 * (k - 1):
        return _Dilated2.apply(x, weight, padding)
    return F.conv2d(x, weight, None, stride, padding, dilation, channels)


def _out_size(x: torch.Tensor, k: int, stride: int, padding: int, dilation: int) -> tuple[int, int]:
    return tuple((n + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for n in x.shape[-2:])


def _space_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W), H and W even -> (4B, C, H/2, W/2): the sub-images x[:, :, a::2, b::2], one copy,
    channels-last."""
    b, c, h, w = x.shape
    nhwc = x.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c)
    return nhwc.permute(2, 4, 0, 1, 3, 5).reshape(4 * b, h // 2, w // 2, c).permute(0, 3, 1, 2)


def _weight_grad(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
    """d/dweight of sum(grad * conv(x, weight, stride 1, padding, dilation 2)), depthwise."""
    channels, k = x.shape[1], weight.shape[-1]
    h, w = x.shape[-2:]
    if h % 2 == 0 and w % 2 == 0 and min(h, w) >= _MIN_POLYPHASE:
        return torch.ops.aten.convolution_backward(
            _space_to_batch(grad), _space_to_batch(x), weight, None, [1, 1], [padding // 2] * 2, [1, 1],
            False, [0, 0], channels, [False, True, False])[1]
    xp = F.pad(x, (padding,) * 4)
    ho, wo = grad.shape[-2:]
    taps = [(xp[:, :, 2 * i: 2 * i + ho, 2 * j: 2 * j + wo] * grad).sum((0, 2, 3))
            for i in range(k) for j in range(k)]
    return torch.stack(taps, dim=1).view_as(weight)


class _Dilated2(torch.autograd.Function):
    """Depthwise conv, stride 1, dilation 2, with the backward described in the module docstring."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, None, 1, padding, 2, x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        p, k = ctx.padding, weight.shape[-1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(-1, -2), None, 1, 2 * (k - 1) - p, 2, x.shape[1])
        if ctx.needs_input_grad[1]:
            grad_w = _weight_grad(x, grad, weight, p)
        return grad_x, grad_w, None


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d(C, C, k, groups=C, bias=False) that uses `depthwise_conv2d` when `fast` is set
    (`racl.models.layers.use_fast_path`); same parameters and state dict as the plain module."""

    fast = False

    def __init__(self, channels: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(channels, channels, kernel, stride, padding, dilation=dilation, groups=channels,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast or self.bias is not None:  # square by construction; a bias would be ignored below
            return super().forward(x)
        return depthwise_conv2d(x, self.weight, self.stride[0], self.padding[0], self.dilation[0])
