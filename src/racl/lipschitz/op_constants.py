"""Lipschitz constants (l2, w.r.t. the op's input) of the supernet's ops, preprocessing, stem and head.

Conventions [design, method spec section 3]:
  - each maximal linear piece between two nonlinearities is ONE linear map, whose spectral norm is
    found by power iteration (power_iteration.py) on the actual input size of that op in the supernet;
  - BN counts in eval mode as the diagonal scaling |gamma_c| / sqrt(running_var_c + eps) (gamma = 1
    when affine=False); its shift (and every bias) does not change a Lipschitz constant and is ignored;
  - ReLU counts 1, so a constant is the product of its linear pieces' norms:
      dil_conv = ReLU, [dw -> pw -> BN];  sep_conv = two dil_conv blocks (product);
      FactorizedReduce = ReLU, [two strided 1x1 convs on offset inputs, concat, BN];
      preprocess ReLUConvBN = ReLU, [conv1x1 -> BN];  stem = [x / std -> conv3x3 -> BN];
      avg_pool (count_include_pad=False) -> BN is linear: power iteration on [pool -> BN];
      skip = 1 (identity); none = 0 (log -inf, dropped from every sum);
  - max_pool 3x3 (padding 1) -> BN: the pool's gain times max_c of the BN scaling. Pool gain: for one
    window, |max a - max b| <= max_i |a_i - b_i|, so (Delta out)^2 <= sum over the window of
    (Delta in_i)^2. Summing over windows, each input is counted once per window containing it: at
    most 3 x 3 = 9 windows with stride 1, at most 2 x 2 = 4 with stride 2 (per axis, input p lies in
    the windows starting at p-1..p+1 that are multiples of the stride). Hence
    ||Delta out||_2 <= sqrt(9) = 3 ||Delta in||_2 (stride 1) and <= sqrt(4) = 2 (stride 2);
  - head: global average pooling over H x W has l2 constant 1/sqrt(H W) (it is (1/HW) 1^T per
    channel), then the classifier's exact spectral norm (a small matrix: torch.linalg.matrix_norm).
Each factor is returned as a callable that gives a log-constant, so the bound can refresh them.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from racl.lipschitz.power_iteration import LinearMap
from racl.models.layers import Normalize
from racl.search_space.ops import DilConv, FactorizedReduce, ReLUConvBN

MAXPOOL_GAIN = {1: 3.0, 2: 2.0}  # sqrt(number of 3x3 windows an input can lie in)


def bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BN as a diagonal scaling: |gamma_c| / sqrt(running_var_c + eps). (C,)"""
    if bn.running_var is None:
        raise ValueError("BN without running statistics has no eval-mode Lipschitz constant")
    scale = (bn.running_var + bn.eps).rsqrt()
    return scale * bn.weight.detach().abs() if bn.weight is not None else scale


def _conv(conv: nn.Conv2d) -> LinearMap:
    """The conv without its bias (a shift)."""
    return lambda x: F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def _bn(bn: nn.BatchNorm2d) -> LinearMap:
    return lambda x: x * bn_scale(bn).view(1, -1, 1, 1)


def chain(*fns: LinearMap) -> LinearMap:
    """Composition fns[-1] o ... o fns[0]."""
    def apply(x: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            x = fn(x)
        return x
    return apply


def relu_conv_bn_linear(m: ReLUConvBN) -> LinearMap:
    return chain(_conv(m[1]), _bn(m[2]))


def dil_conv_linear(m: DilConv) -> LinearMap:
    return chain(_conv(m[1]), _conv(m[2]), _bn(m[3]))


def factorized_reduce_linear(m: FactorizedReduce) -> LinearMap:
    """[conv_1(x), conv_2(x shifted by one pixel)] concatenated, then BN, as in FactorizedReduce."""
    def apply(x: torch.Tensor) -> torch.Tensor:
        y = x[:, :, 1:, 1:]
        if y.shape[-2:] != x.shape[-2:]:
            y = F.pad(y, (0, 1, 0, 1))
        return torch.cat([_conv(m.conv_1)(x), _conv(m.conv_2)(y)], dim=1)
    return chain(apply, _bn(m.bn))


def stem_linear(normalize: Normalize, stem: nn.Sequential) -> LinearMap:
    """[x / std -> conv3x3 -> BN] (the mean subtraction is a shift)."""
    return chain(lambda x: x / normalize.std, _conv(stem[0]), _bn(stem[1]))


def preprocess_linear(m: nn.Module) -> LinearMap:
    return factorized_reduce_linear(m) if isinstance(m, FactorizedReduce) else relu_conv_bn_linear(m)


Factor = tuple[str, object]  # ("power", LinearMap) or ("closed", Callable[[], log-constant tensor])


def op_factors(name: str, op: nn.Module, stride: int) -> list[Factor] | None:
    """The factors whose product bounds primitive `name`; None for `none` (constant 0)."""
    if name == "none":
        return None
    if name == "max_pool_3x3":
        gain = math.log(MAXPOOL_GAIN[stride])
        return [("closed", lambda: gain + bn_scale(op[1]).max().log())]
    if name == "avg_pool_3x3":
        return [("power", chain(op[0], _bn(op[1])))]
    if name == "skip_connect":
        return [("power", factorized_reduce_linear(op))] if stride == 2 else []
    if name.startswith("sep_conv"):
        return [("power", dil_conv_linear(op[0])), ("power", dil_conv_linear(op[1]))]
    if name.startswith("dil_conv"):
        return [("power", dil_conv_linear(op))]
    raise ValueError(f"no Lipschitz constant for op {name!r}")


def head_log_constant(classifier: nn.Linear, height: int, width: int) -> torch.Tensor:
    """ln(||W||_2 / sqrt(H W)): global average pooling then the linear classifier (bias ignored)."""
    w = classifier.weight.detach()
    return torch.linalg.matrix_norm(w.double(), ord=2).log().to(w.dtype) - 0.5 * math.log(height * width)


def out_shape(fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...],
              like: torch.Tensor) -> tuple[int, ...]:
    """Output shape (without batch) of fn on an input of shape in_shape."""
    with torch.no_grad():
        return tuple(fn(like.new_zeros(1, *in_shape)).shape[1:])
