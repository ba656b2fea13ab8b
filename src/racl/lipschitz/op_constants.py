"""Lipschitz constants (l2, w.r.t. the op's input) of the supernet's ops, preprocessing, stem and head.

Conventions [design, method spec section 3]:
  - each maximal linear piece between two nonlinearities is ONE linear map, whose spectral norm is
    found by power iteration (power_iteration.py) on the actual input size of that op in the supernet;
  - BN counts in eval mode as the diagonal scaling |gamma_c| / sqrt(running_var_c + eps) (gamma = 1
    when affine=False); its shift (and every bias) does not change a Lipschitz constant and is ignored.
    With `count_bn=False` every BN counts 1 (the convolutions' spectral norms only: the search's
    default, see BoundConfig.bn and docs/method.md);
  - ReLU counts 1, so a constant is the product of its linear pieces' norms:
      dil_conv = ReLU, [dw -> pw -> BN];  sep_conv = two dil_conv blocks (product);
      conv_7x1_1x7 (evaluation networks only) = ReLU, [1x7 conv -> 7x1 conv -> BN];
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
Batching: a "piece" built from a list of N modules of the same form maps (N, C, H, W) -> (N, C', H', W'),
module n acting on sample n only (grouped convolutions), so the N edges of a cell that carry the same
op at the same stride share one power-iteration call.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

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


def relu_conv_bn_linear(ms: Sequence[ReLUConvBN], count_bn: bool = True) -> LinearMap:
    return chain(batched_conv([m[1] for m in ms]), batched_bn([m[2] for m in ms], count_bn))


def dil_conv_linear(ms: Sequence[DilConv], count_bn: bool = True) -> LinearMap:
    return chain(batched_conv([m[1] for m in ms]), batched_conv([m[2] for m in ms]),
                 batched_bn([m[3] for m in ms], count_bn))


def factorized_reduce_linear(ms: Sequence[FactorizedReduce], count_bn: bool = True) -> LinearMap:
    """[conv_1(x), conv_2(x shifted by one pixel)] concatenated, then BN, as in FactorizedReduce."""
    conv_1, conv_2 = batched_conv([m.conv_1 for m in ms]), batched_conv([m.conv_2 for m in ms])

    def apply(x: torch.Tensor) -> torch.Tensor:
        y = x[:, :, 1:, 1:]
        if y.shape[-2:] != x.shape[-2:]:
            y = F.pad(y, (0, 1, 0, 1))
        return torch.cat([conv_1(x), conv_2(y)], dim=1)
    return chain(apply, batched_bn([m.bn for m in ms], count_bn))


def stem_linear(normalize: Normalize, stem: nn.Sequential, count_bn: bool = True) -> LinearMap:
    """[x / std -> conv3x3 -> BN] (the mean subtraction is a shift)."""
    return chain(lambda x: x / normalize.std, batched_conv([stem[0]]), batched_bn([stem[1]], count_bn))


def preprocess_linear(m: nn.Module, count_bn: bool = True) -> LinearMap:
    if isinstance(m, FactorizedReduce):
        return factorized_reduce_linear([m], count_bn)
    return relu_conv_bn_linear([m], count_bn)


Factor = tuple[str, Callable]  # ("power", LinearMap) or ("closed", () -> (N,) log-constants)


def op_factors(name: str, ops: Sequence[nn.Module], stride: int, count_bn: bool = True) -> list[Factor] | None:
    """The factors whose product bounds primitive `name` on N edges; None for `none` (constant 0)."""
    if name == "none":
        return None
    if name == "max_pool_3x3":
        gain = math.log(MAXPOOL_GAIN[stride])
        if not count_bn:
            return [("closed", lambda: torch.full((len(ops),), gain))]
        return [("closed", lambda: gain + torch.stack([bn_scale(op[1]).max() for op in ops]).log())]
    if name == "avg_pool_3x3":
        return [("power", chain(ops[0][0], batched_bn([op[1] for op in ops], count_bn)))]
    if name == "skip_connect":
        return [("power", factorized_reduce_linear(ops, count_bn))] if stride == 2 else []
    if name.startswith("sep_conv"):
        return [("power", dil_conv_linear([op[0] for op in ops], count_bn)),
                ("power", dil_conv_linear([op[1] for op in ops], count_bn))]
    if name.startswith("dil_conv") or name == "conv_7x1_1x7":  # ReLU, [conv -> conv -> BN] both
        return [("power", dil_conv_linear(ops, count_bn))]
    raise ValueError(f"no Lipschitz constant for op {name!r}")


def head_log_constant(classifier: nn.Linear, height: int, width: int) -> torch.Tensor:
    """ln(||W||_2 / sqrt(H W)): global average pooling then the linear classifier (bias ignored)."""
    w = classifier.weight.detach()
    return torch.linalg.matrix_norm(w.double(), ord=2).log().to(w.dtype) - 0.5 * math.log(height * width)


def out_shape(fn: LinearMap, n: int, in_shape: tuple[int, ...], like: torch.Tensor) -> tuple[int, ...]:
    """Output shape (without batch) of the batched piece fn on N inputs of shape in_shape."""
    with torch.no_grad():
        return tuple(fn(like.new_zeros(n, *in_shape)).shape[1:])
