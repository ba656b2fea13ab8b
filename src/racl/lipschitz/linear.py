"""Linear pieces of a network as batched maps, for the power iteration (method spec, section 3).

Conventions [design]: l2 constants w.r.t. a piece's input; each maximal linear piece between two
nonlinearities is ONE linear map whose spectral norm comes from power iteration (power_iteration.py)
at its real input size; BN counts in eval mode as the diagonal scaling |gamma_c| / sqrt(running_var_c
+ eps) (gamma = 1 when affine=False; with `count_bn=False` every BN counts 1); shifts (BN's, biases,
the normalisation's mean) never change a Lipschitz constant and are ignored; ReLU counts 1.

Batching: a piece built from a list of N modules of the same form maps (N, C, H, W) -> (N, C', H',
W'), module n acting on sample n only (grouped convolutions), so the N edges of a cell that carry the
same op at the same stride share one power-iteration call.

A `Factor` is ("power", LinearMap): a piece whose norm the power iteration finds, or ("closed",
() -> (N,) log-constants): a constant known in closed form (a max pool's gain, a skip's 1).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from racl.lipschitz.power_iteration import LinearMap

Factor = tuple[str, Callable]


def bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BN as a diagonal scaling: |gamma_c| / sqrt(running_var_c + eps). (C,)"""
    if bn.running_var is None:
        raise ValueError("BN without running statistics has no eval-mode Lipschitz constant")
    scale = (bn.running_var + bn.eps).rsqrt()
    return scale * bn.weight.detach().abs() if bn.weight is not None else scale


def batched_conv(convs: Sequence[nn.Conv2d]) -> LinearMap:
    """Conv n (without bias: a shift) on sample n: (N, C, H, W) -> (N, C', H', W'), one grouped call."""
    c0, n = convs[0], len(convs)

    def apply(x: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([c.weight.detach() for c in convs], 0)  # (N * C', C / g, k, k)
        y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), weight, None, c0.stride, c0.padding, c0.dilation,
                     c0.groups * n)
        return y.view(n, -1, *y.shape[2:])
    return apply


def batched_bn(bns: Sequence[nn.BatchNorm2d], count_bn: bool = True) -> LinearMap:
    """BN n's eval-mode scaling on sample n (the identity when BN is not counted)."""
    if not count_bn:
        return lambda x: x
    return lambda x: x * torch.stack([bn_scale(b) for b in bns])[:, :, None, None]


def chain(*fns: LinearMap) -> LinearMap:
    """Composition fns[-1] o ... o fns[0]."""
    def apply(x: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            x = fn(x)
        return x
    return apply


def closed(log_values: Callable[[], torch.Tensor]) -> Factor:
    """A constant known in closed form: () -> (N,) log-constants."""
    return ("closed", log_values)


def power(fn: LinearMap) -> Factor:
    """A linear piece whose spectral norm the power iteration finds."""
    return ("power", fn)


def head_log_constant(classifier: nn.Linear, height: int, width: int) -> torch.Tensor:
    """ln(||W||_2 / sqrt(H W)): global average pooling ((1/HW) 1^T per channel, l2 constant
    1/sqrt(HW)) then the linear classifier's exact spectral norm (a small matrix; bias ignored)."""
    w = classifier.weight.detach()
    return torch.linalg.matrix_norm(w.double(), ord=2).log().to(w.dtype) - 0.5 * math.log(height * width)


def out_shape(fn: LinearMap, n: int, in_shape: tuple[int, ...], like: torch.Tensor) -> tuple[int, ...]:
    """Output shape (without batch) of the batched piece fn on N inputs of shape in_shape."""
    with torch.no_grad():
        return tuple(fn(like.new_zeros(n, *in_shape)).shape[1:])
