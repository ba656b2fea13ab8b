"""Depthwise convolutions (groups = C) whose derivatives of every order are a few grouped calls.

Why: torch 2.14.1 differentiates a grouped convolution's backward (`_convolution_double_backward`,
reached by double backprop: the search's input-gradient-norm term, robust.gamma > 0) one group at a
time, so the second derivative of a depthwise conv of C channels issues C single-channel
convolutions per call (on every device; on a GPU, thousands of tiny kernels per step). Here the
convolution y = conv(x, w) is treated as the bilinear map it is; its adjoints conv^T(g; w) (input
gradient) and wgrad(x, g) (weight gradient) are bilinear too, so two autograd Functions close the set:

    _Conv(x, w)            = conv(x, w)                         backward: _ConvBackward(g, x, w)
    _ConvBackward(g, x, w) = (conv^T(g; w), wgrad(x, g))        one aten.convolution_backward call
        backward(hx, hw):  d/dg       = _Conv(hx, w) + _Conv(x, hw)
                           (d/dx, d/dw) = _ConvBackward(g, hx, hw)   = (conv^T(g; hw), wgrad(hx, g))

(from <hx, conv^T(g; w)> + <hw, wgrad(x, g)> = <conv(hx, w) + conv(x, hw), g>). Every derivative is
one or two grouped calls, differentiable again by the same rule. Tested against F.conv2d by
gradcheck and gradgradcheck in float64 (tests/test_depthwise.py); the weight step's operation count
is bounded in tests/test_gradnorm_cost.py.

The Functions are used inside `differentiable_twice()` (entered where a loss is differentiated through
its input gradients: the search's gradient-norm term, AdvRush's regulariser, the local Lipschitz
estimate). Elsewhere a convolution without a CPU rewrite is torch's own F.conv2d, whose first-order
autograd is the same kernels without two Python Functions per call (racl.supernet.batchnorm routes its
BN the same way; together the supernet's first-order step within 0-5% of its speed before the
Functions, benchmarks/README.md). Either route is exact to every order: the switch is for speed only.

CPU rewrites (used only on the CPU, `routed_as_on_cuda()` turns them off): the dilation-2 convolutions
(dil_conv_3x3, dil_conv_5x5) have slow gradients in torch 2.14.1 on the CPU (generic im2col kernels;
`benchmarks/depthwise.py`, 2-core CPU, channels-last, batch 32, C = 16, 32x32, 5x5: 5.1 ms with the
input gradient and 18.7 ms with both, against 1.7 and 7.9 ms rewritten; at stride 2, C = 32: 34.3 and
44.0 ms against 2.1 and 4.1 ms). Same maths, other formulations:
  - stride 2, dilation 2, even padding: only the even rows and columns of the input are read, so the
    op is a plain (dilation 1, stride 1) depthwise conv of x[:, :, ::2, ::2] with half the padding;
  - stride 1, dilation 2: input gradient conv^T(g; w) = the same dilated conv of g with the kernel
    flipped (a forward conv, fast); weight gradient = the weight gradient of a plain conv on the 2x2
    polyphase components ("space to batch": the dilated conv of an even-sized image is a plain conv on
    each of its four sub-images), or, on images too small for that to pay (< 16 pixels), one
    product-and-sum per kernel tap.
Under autocast the inputs are cast as autocast casts F.conv2d's (to its lower-precision dtype) and the
Functions run in that dtype.
"""
from __future__ import annotations

from typing import ContextManager, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from racl.models.layers import attribute_set

_MIN_POLYPHASE = 16  # below this image size, the per-tap weight gradient is faster (measured)


class _Route:
    """Where depthwise convolutions go (racl.models.layers.attribute_set switches these)."""

    cpu_rewrites = True  # False inside routed_as_on_cuda()
    twice = False  # True inside differentiable_twice()


class Geometry(NamedTuple):
    stride: int
    padding: int
    dilation: int


def routed_as_on_cuda() -> ContextManager[None]:
    """Inside, the CPU rewrites are off: CPU tensors take the route CUDA tensors take (to count the
    operations a GPU would run, on the CPU)."""
    return attribute_set([_Route], "cpu_rewrites", False)


def differentiable_twice(on: bool = True) -> ContextManager[None]:
    """Inside (if `on`), depthwise convolutions are the Functions below, whose second derivative is a few
    grouped calls (torch's own issues one convolution per channel)."""
    return attribute_set([_Route] if on else [], "twice", True)


def twice() -> bool:
    """Whether inside differentiable_twice()."""
    return _Route.twice


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                     dilation: int) -> torch.Tensor:
    """F.conv2d(x, weight, None, stride, padding, dilation, groups=C) for weight (C, 1, k, k), square."""
    k = weight.shape[-1]
    if weight.shape[-2] != k or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        raise ValueError(f"depthwise_conv2d needs a square (C, 1, k, k) weight for C = {x.shape[1]}, "
                         f"got {tuple(weight.shape)}")
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return depthwise_conv2d(x.to(dtype), weight.to(dtype), stride, padding, dilation)
    if (_rewrites(x) and stride == 2 and dilation == 2 and padding % 2 == 0
            and _out_size(x, k, 2, padding, 2) == tuple((n + 1) // 2 + padding - k + 1 for n in x.shape[-2:])):
        x, stride, padding, dilation = x[:, :, ::2, ::2], 1, padding // 2, 1
    if _Route.twice or (_rewrites(x) and stride == 1 and dilation == 2):  # the Functions (the adjoint rewrites)
        return _Conv.apply(x, weight, Geometry(stride, padding, dilation))
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])


def _rewrites(x: torch.Tensor) -> bool:
    return _Route.cpu_rewrites and x.device.type == "cpu"


def _out_size(x: torch.Tensor, k: int, stride: int, padding: int, dilation: int) -> tuple[int, int]:
    return tuple((n + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for n in x.shape[-2:])


# ------------------------------------------------------------------ the three bilinear maps (no autograd)
def _conv(x: torch.Tensor, w: torch.Tensor, geo: Geometry) -> torch.Tensor:
    return F.conv2d(x, w, None, geo.stride, geo.padding, geo.dilation, x.shape[1])


def _adjoints(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, geo: Geometry, want_x: bool, want_w: bool
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(conv^T(g; w) if want_x, wgrad(x, g) if want_w): x and w only give the shape of what is unwanted."""
    k = w.shape[-1]
    if _rewrites(g) and geo.stride == 1 and geo.dilation == 2 and geo.padding <= 2 * (k - 1):
        gx = F.conv2d(g, w.flip(-1, -2), None, 1, 2 * (k - 1) - geo.padding, 2, g.shape[1]) if want_x else None
        return gx, _dilated2_weight_grad(x, g, w, geo.padding) if want_w else None
    gx, gw, _ = torch.ops.aten.convolution_backward(
        g, x, w, None, [geo.stride] * 2, [geo.padding] * 2, [geo.dilation] * 2, False, [0, 0], x.shape[1],
        [want_x, want_w, False])
    return (gx if want_x else None), (gw if want_w else None)


def _space_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W), H and W even -> (4B, C, H/2, W/2): the sub-images x[:, :, a::2, b::2], one copy,
    channels-last."""
    b, c, h, w = x.shape
    nhwc = x.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c)
    return nhwc.permute(2, 4, 0, 1, 3, 5).reshape(4 * b, h // 2, w // 2, c).permute(0, 3, 1, 2)


def _dilated2_weight_grad(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
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


# ------------------------------------------------------------------ autograd
class _Conv(torch.autograd.Function):
    """conv(x, w); backward: _ConvBackward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, geo: Geometry) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.geo = geo
        return _conv(x, w, geo)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        if not (want_x or want_w):
            return None, None, None
        if torch.is_grad_enabled():  # create_graph: the backward is differentiated in turn
            gx, gw = _ConvBackward.apply(g, x, w, ctx.geo, want_x, want_w)
        else:
            gx, gw = _adjoints(g, x, w, ctx.geo, want_x, want_w)
        return gx, gw, None


class _ConvBackward(torch.autograd.Function):
    """(conv^T(g; w), wgrad(x, g)), each only where wanted (else None); backward in the module docstring."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, geo: Geometry, want_x: bool,
                want_w: bool):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(g, x, w)
        ctx.geo = geo
        return _adjoints(g, x, w, geo, want_x, want_w)

    @staticmethod
    def backward(ctx, hx: torch.Tensor | None, hw: torch.Tensor | None):
        g, x, w = ctx.saved_tensors
        need_g, need_x, need_w = ctx.needs_input_grad[:3]
        dg = None
        if need_g:
            terms = ([_Conv.apply(hx, w, ctx.geo)] if hx is not None else []) + \
                    ([_Conv.apply(x, hw, ctx.geo)] if hw is not None else [])
            dg = sum(terms[1:], terms[0]) if terms else None
        want_x, want_w = need_x and hw is not None, need_w and hx is not None
        dx = dw = None
        if want_x or want_w:  # conv^T(g; hw) and wgrad(hx, g): x and w stand in for the unused one's shape
            dx, dw = _ConvBackward.apply(g, hx if hx is not None else x, hw if hw is not None else w, ctx.geo,
                                         want_x, want_w)
        return dg, dx, dw, None, None, None


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
