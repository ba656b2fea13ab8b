"""The DARTS primitives (Liu et al., ICLR 2019), with DARTS's op definitions.

Every op maps (B, C, H, W) -> (B, C, H / stride, W / stride).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

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

    def forward(self, x: torch.Tensor, relu: torch.Tensor | None = None) -> torch.Tensor:
        """`relu`: ReLU(x) when the caller already has it (the fast path shares one per tensor)."""
        x = self.relu(x) if relu is None else relu
        y = x[:, :, 1:, 1:]
        if y.shape[-1] != x.shape[-1] or y.shape[-2] != x.shape[-2]:
            y = nn.functional.pad(y, (0, 1, 0, 1))  # keep odd sizes aligned with conv_1
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(y)], dim=1))


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
}


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """Build primitive `name` for `channels` channels and the given stride."""
    if name not in OPS:
        raise KeyError(f"unknown op {name!r}; known: {', '.join(PRIMITIVES)}")
    return OPS[name](channels, stride, affine)
