"""The DARTS primitives (Liu et al., ICLR 2019), with DARTS's op definitions and their Lipschitz factors.

Every op maps (B, C, H, W) -> (B, C, H / stride, W / stride) and has one forward. A primitive is one
entry of `OPS`: its constructor, its Lipschitz factors and whether it carries weights. Adding a
primitive is adding one entry (and, for a new kind of module, its factor function).

Lipschitz factors (method spec, section 3; conventions in racl.lipschitz.linear), for N modules of one
primitive at once (the edges of a cell that carry it):
  dil_conv = ReLU, [dw -> pw -> BN];  sep_conv = two dil_conv blocks (product);
  conv_7x1_1x7 (evaluation networks only) = ReLU, [1x7 conv -> 7x1 conv -> BN];
  FactorizedReduce = ReLU, [two strided 1x1 convs on offset inputs, concat, BN];
  avg_pool (count_include_pad=False) [-> BN] is linear: power iteration on the whole piece;
  skip = 1 (identity); none = 0 (log -inf, dropped from every sum);
  max_pool 3x3 (padding 1) [-> BN]: the pool's gain times max_c of the BN scaling. Pool gain: for one
  window |max a - max b| <= max_i |a_i - b_i|, so (Delta out)^2 <= sum over the window of
  (Delta in_i)^2; summing over windows, each input counts once per window containing it: at most
  3 x 3 = 9 with stride 1, 2 x 2 = 4 with stride 2. Hence gains sqrt(9) = 3 and sqrt(4) = 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from racl.lipschitz.linear import Factor, batched_bn, batched_conv, bn_scale, chain, closed, power
from racl.search_space.depthwise import DepthwiseConv2d

MAXPOOL_GAIN = {1: 3.0, 2: 2.0}  # sqrt(number of 3x3 windows an input can lie in)


class ReLUConvBN(nn.Sequential):
    """ReLU, k x k convolution, BN: the cells' preprocessing."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise k x k (dilated), pointwise 1 x 1, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, kernel, stride, padding, dilation),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two DilConv blocks with dilation 1; the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class Conv7x1x7(nn.Sequential):
    """ReLU, 1 x 7 then 7 x 1 convolution (the stride split between them), BN: DARTS's `conv_7x1_1x7`
    (quark0/darts cnn/operations.py), used by AmoebaNet's reduction cell (an evaluation-only op)."""

    def __init__(self, c: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` op: zeros of the output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """skip_connect with stride 2: two offset 1 x 1 stride-2 convolutions, concatenated, then BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.convs(self.relu(x)))

    def convs(self, x: torch.Tensor) -> torch.Tensor:
        """The two convolutions on x (already activated), concatenated."""
        return torch.cat([self.conv_1(x), self.conv_2(shifted(x))], dim=1)


def shifted(x: torch.Tensor) -> torch.Tensor:
    """x moved by one pixel up-left, zero-padded at the far edge so odd sizes stay aligned."""
    y = x[:, :, 1:, 1:]
    return F.pad(y, (0, 1, 0, 1)) if y.shape[-2:] != x.shape[-2:] else y


class PoolBN(nn.Sequential):
    """A pooling followed by an affine-free BN: the supernet's pool ops (as in the DARTS search network)."""

    def __init__(self, pool: nn.MaxPool2d | nn.AvgPool2d, channels: int):
        super().__init__(pool, nn.BatchNorm2d(channels, affine=False))


# ------------------------------------------------------------------ Lipschitz factors per primitive
def _pool_parts(ops: Sequence[nn.Module]) -> tuple[nn.Module, list[nn.BatchNorm2d] | None]:
    """The pooling and the BNs after it (PoolBN in the supernet; none in an evaluation cell)."""
    if isinstance(ops[0], PoolBN):
        return ops[0][0], [op[1] for op in ops]
    return ops[0], None


def _max_pool_factors(ops: Sequence[nn.Module], count_bn: bool) -> list[Factor]:
    pool, bns = _pool_parts(ops)
    gain = math.log(MAXPOOL_GAIN[pool.stride if isinstance(pool.stride, int) else pool.stride[0]])
    if bns is None or not count_bn:
        return [closed(lambda: torch.full((len(ops),), gain))]
    return [closed(lambda: gain + torch.stack([bn_scale(b).max() for b in bns]).log())]


def _avg_pool_factors(ops: Sequence[nn.Module], count_bn: bool) -> list[Factor]:
    pool, bns = _pool_parts(ops)
    return [power(pool if bns is None else chain(pool, batched_bn(bns, count_bn)))]


def dil_conv_linear(ms: Sequence[nn.Sequential], count_bn: bool = True):
    """[conv -> conv -> BN] after the leading ReLU (DilConv: depthwise, pointwise; Conv7x1x7: 1x7, 7x1)."""
    return chain(batched_conv([m[1] for m in ms]), batched_conv([m[2] for m in ms]),
                 batched_bn([m[3] for m in ms], count_bn))


def relu_conv_bn_linear(ms: Sequence[ReLUConvBN], count_bn: bool = True):
    return chain(batched_conv([m[1] for m in ms]), batched_bn([m[2] for m in ms], count_bn))


def factorized_reduce_linear(ms: Sequence[FactorizedReduce], count_bn: bool = True):
    """[conv_1(x), conv_2(x shifted by one pixel)] concatenated, then BN, as in FactorizedReduce."""
    conv_1, conv_2 = batched_conv([m.conv_1 for m in ms]), batched_conv([m.conv_2 for m in ms])
    return chain(lambda x: torch.cat([conv_1(x), conv_2(shifted(x))], dim=1),
                 batched_bn([m.bn for m in ms], count_bn))


def _skip_factors(ops: Sequence[nn.Module], count_bn: bool) -> list[Factor]:
    return [power(factorized_reduce_linear(ops, count_bn))] if isinstance(ops[0], FactorizedReduce) else []


def preprocess_linear(m: nn.Module, count_bn: bool = True):
    """A cell input's preprocessing (ReLUConvBN or FactorizedReduce) as a linear piece after its ReLU."""
    if isinstance(m, FactorizedReduce):
        return factorized_reduce_linear([m], count_bn)
    return relu_conv_bn_linear([m], count_bn)


# ------------------------------------------------------------------ the primitives
@dataclass(frozen=True)
class Primitive:
    build: Callable[[int, int, bool], nn.Module]  # (channels, stride, affine) -> module
    lipschitz: Callable[[Sequence[nn.Module], bool], list[Factor] | None]  # (modules, count_bn) -> factors
    parameter_free: bool = False


OPS: dict[str, Primitive] = {
    "none": Primitive(lambda c, s, a: Zero(s), lambda ops, bn: None, True),
    "max_pool_3x3": Primitive(lambda c, s, a: nn.MaxPool2d(3, stride=s, padding=1), _max_pool_factors, True),
    "avg_pool_3x3": Primitive(lambda c, s, a: nn.AvgPool2d(3, stride=s, padding=1, count_include_pad=False),
                              _avg_pool_factors, True),
    "skip_connect": Primitive(lambda c, s, a: Identity() if s == 1 else FactorizedReduce(c, c, a), _skip_factors,
                              True),
    "sep_conv_3x3": Primitive(lambda c, s, a: SepConv(c, c, 3, s, 1, a),
                              lambda ops, bn: [power(dil_conv_linear([o[k] for o in ops], bn)) for k in (0, 1)]),
    "sep_conv_5x5": Primitive(lambda c, s, a: SepConv(c, c, 5, s, 2, a),
                              lambda ops, bn: [power(dil_conv_linear([o[k] for o in ops], bn)) for k in (0, 1)]),
    "dil_conv_3x3": Primitive(lambda c, s, a: DilConv(c, c, 3, s, 2, 2, a),
                              lambda ops, bn: [power(dil_conv_linear(ops, bn))]),
    "dil_conv_5x5": Primitive(lambda c, s, a: DilConv(c, c, 5, s, 4, 2, a),
                              lambda ops, bn: [power(dil_conv_linear(ops, bn))]),
}
PRIMITIVES: tuple[str, ...] = tuple(OPS)  # none, max_pool_3x3, avg_pool_3x3, skip_connect, sep/dil convs
PARAMETER_FREE: frozenset[str] = frozenset(name for name, p in OPS.items() if p.parameter_free)
# ops of DARTS's operations.py outside the search space: only the NASNet and AmoebaNet cells of the zoo use them
EVAL_OPS: dict[str, Primitive] = {
    "sep_conv_7x7": Primitive(lambda c, s, a: SepConv(c, c, 7, s, 3, a),
                              lambda ops, bn: [power(dil_conv_linear([o[k] for o in ops], bn)) for k in (0, 1)]),
    "conv_7x1_1x7": Primitive(lambda c, s, a: Conv7x1x7(c, s, a), lambda ops, bn: [power(dil_conv_linear(ops, bn))]),
}
EVAL_ONLY: tuple[str, ...] = tuple(EVAL_OPS)
ALL_OPS: dict[str, Primitive] = {**OPS, **EVAL_OPS}


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """Build op `name` (a primitive or an evaluation-only op) for `channels` channels and the given stride."""
    if name not in ALL_OPS:
        raise KeyError(f"unknown op {name!r}; known: {', '.join(ALL_OPS)}")
    return ALL_OPS[name].build(channels, stride, affine)


def make_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """Primitive `name` as used in the supernet: affine-free BN, pools followed by BN (PoolBN)."""
    op = make_op(name, channels, stride, affine=False)
    return PoolBN(op, channels) if isinstance(op, (nn.MaxPool2d, nn.AvgPool2d)) else op


def op_factors(name: str, ops: Sequence[nn.Module], count_bn: bool = True) -> list[Factor] | None:
    """The factors whose product bounds primitive `name` on the N modules `ops`; None for `none`."""
    return ALL_OPS[name].lipschitz(ops, count_bn)


def count_parameter_free(cell: Sequence[tuple[str, int]]) -> int:
    """How many of a cell's (op, input) pairs carry no weights (pools and skips)."""
    return sum(op in PARAMETER_FREE for op, _ in cell)
