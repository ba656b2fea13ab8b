"""The DARTS primitives (Liu et al., ICLR 2019), with DARTS's op definitions.

Every op maps (B, C, H, W) -> (B, C, H / stride, W / stride).

The supernet's fast path (racl.supernet.cell) calls each search op through `op.forward_shared(node,
scale)` instead of `op(x)`: `scale * op(x)` for the node x = `node.x`, with the ReLU and pooling of x
taken from `node` (a NodeCache, computed once for every edge leaving the node) and `scale` (the
architecture weight) folded into the affine-free BatchNorm that ends the op (`batch_norm_scaled`).
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from racl.search_space.depthwise import DepthwiseConv2d

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
PARAMETER_FREE: frozenset[str] = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})
# ops of DARTS's operations.py outside the search space: only the NASNet and AmoebaNet cells of the zoo use them
EVAL_ONLY: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")


def batch_norm_scaled(bn: nn.BatchNorm2d, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """`scale * bn(x)` for an affine-free BN, as one batch_norm call with weight = scale (None: bn(x)).

    Updates the running statistics and num_batches_tracked exactly as `bn(x)` does (momentum None:
    cumulative moving average)."""
    if bn.affine:
        raise ValueError("batch_norm_scaled folds the scale into the BN weight: the BN must be affine-free")
    # .contiguous(): with a stride-0 (expanded) weight, torch 2.14.1's CPU channels-last batch_norm
    # backward returned wrong input gradients (found by tests/test_fast_path.py; contiguous is right)
    weight = None if scale is None else scale.expand(x.shape[1]).contiguous()
    use_batch = bn.training or bn.running_mean is None
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average, as nn.BatchNorm2d does
            factor = 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(x, bn.running_mean, bn.running_var, weight, None, use_batch, factor, bn.eps)


class ReLUConvBN(nn.Sequential):
    """ReLU, k x k convolution, BN: the cells' preprocessing and the auxiliary-free building block."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor, relu: torch.Tensor | None = None) -> torch.Tensor:
        """`relu`: ReLU(x) when the caller already has it (the fast path shares one per tensor)."""
        return self[2](self[1](self[0](x) if relu is None else relu))


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

    def forward(self, x: torch.Tensor, relu: torch.Tensor | None = None) -> torch.Tensor:
        """`relu`: ReLU(x) when the caller already has it (the fast path shares one per tensor)."""
        return self[3](self[2](self[1](self[0](x) if relu is None else relu)))

    def forward_shared(self, node: NodeCache, scale: torch.Tensor) -> torch.Tensor:
        """scale * self(node.x), from the node's shared ReLU (affine-free BN only)."""
        return self.from_relu(node.relu(), scale)

    def from_relu(self, relu: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        """scale * self(x) from relu = ReLU(x), the scale folded into the final BN (None: self(x))."""
        return batch_norm_scaled(self[3], self[2](self[1](relu)), scale)


class SepConv(nn.Sequential):
    """Two DilConv blocks with dilation 1; the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    def forward(self, x: torch.Tensor, relu: torch.Tensor | None = None) -> torch.Tensor:
        """`relu`: ReLU(x) when the caller already has it (the fast path shares one per tensor)."""
        return self[1](self[0](x, relu))

    def forward_shared(self, node: NodeCache, scale: torch.Tensor) -> torch.Tensor:
        """scale * self(node.x), from the node's shared ReLU (affine-free BNs only)."""
        first = self[0].from_relu(node.relu(), None)
        return self[1].from_relu(F.relu(first), scale)


class Conv7x1x7(nn.Sequential):
    """ReLU, 1 x 7 then 7 x 1 convolution (the stride split between them), BN: DARTS's `conv_7x1_1x7`
    (quark0/darts cnn/operations.py), used by AmoebaNet's reduction cell."""

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

    def forward_shared(self, node: NodeCache, scale: torch.Tensor) -> torch.Tensor:
        return scale * node.x


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

    def forward(self, x: torch.Tensor, relu: torch.Tensor | None = None) -> torch.Tensor:
        """`relu`: ReLU(x) when the caller already has it (the fast path shares one per tensor)."""
        return self.bn(self._convs(self.relu(x) if relu is None else relu))

    def forward_shared(self, node: NodeCache, scale: torch.Tensor) -> torch.Tensor:
        """scale * self(node.x), from the node's shared ReLU (affine-free BN only)."""
        return batch_norm_scaled(self.bn, self._convs(node.relu()), scale)

    def _convs(self, relu: torch.Tensor) -> torch.Tensor:
        """The two convolutions, concatenated, on relu = ReLU(x)."""
        y = relu[:, :, 1:, 1:]
        if y.shape[-1] != relu.shape[-1] or y.shape[-2] != relu.shape[-2]:
            y = F.pad(y, (0, 1, 0, 1))  # keep odd sizes aligned with conv_1
        return torch.cat([self.conv_1(relu), self.conv_2(y)], dim=1)


class PoolBN(nn.Sequential):
    """A pooling followed by an affine-free BN: the supernet's pool ops (as in the DARTS search network)."""

    def __init__(self, pool: nn.MaxPool2d | nn.AvgPool2d, channels: int):
        super().__init__(pool, nn.BatchNorm2d(channels, affine=False))
        self.pool_key = (type(pool), repr(pool))  # equal keys: the same pooling (kind and every setting)

    def forward_shared(self, node: NodeCache, scale: torch.Tensor) -> torch.Tensor:
        """scale * self(node.x), the pooling shared by every edge leaving the node (its BN is not)."""
        return batch_norm_scaled(self[1], node.pool(self[0], self.pool_key), scale)


class SharedReLU:
    """A tensor whose ReLU is computed once, on first use, and handed to every op that starts with one
    (the fast path: a node feeding several conv ops, a cell output feeding two cells)."""

    def __init__(self, x: torch.Tensor, share: bool = True):
        self.x = x
        self.share = share  # False: every op takes its own ReLU (the reference formulation)
        self._relu: torch.Tensor | None = None

    def relu(self) -> torch.Tensor:
        if self._relu is None:
            self._relu = torch.relu(self.x)
        return self._relu

    def apply(self, op: nn.Module) -> torch.Tensor:
        """op(x), with the shared ReLU for ops that start with one."""
        if self.share and isinstance(op, (ReLUConvBN, DilConv, SepConv, FactorizedReduce)):
            return op(self.x, relu=self.relu())
        return op(self.x)


class NodeCache(SharedReLU):
    """A supernet node as every edge leaving it sees it: x, its shared ReLU (SharedReLU) and its
    poolings, each computed once per pooling setting. `share` False: the reference formulation."""

    def __init__(self, x: torch.Tensor, share: bool = True):
        super().__init__(x, share)
        self._pools: dict[Hashable, torch.Tensor] = {}

    def pool(self, pool: nn.Module, key: Hashable) -> torch.Tensor:
        """pool(x), computed on the first call with `key` (PoolBN.pool_key) and reused after."""
        if key not in self._pools:
            self._pools[key] = pool(self.x)
        return self._pools[key]


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride, affine: Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine),  # EVAL_ONLY
    "conv_7x1_1x7": lambda c, stride, affine: Conv7x1x7(c, stride, affine),          # EVAL_ONLY
}


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """Build primitive `name` for `channels` channels and the given stride."""
    if name not in OPS:
        raise KeyError(f"unknown op {name!r}; known: {', '.join(OPS)}")
    return OPS[name](channels, stride, affine)
