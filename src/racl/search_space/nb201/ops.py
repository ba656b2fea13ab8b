"""NAS-Bench-201's operations and its residual reduction block (Dong & Yang, ICLR 2020).

Built as D-X-Y/AutoDL-Projects builds them (`xautodl/models/cell_operations.py`, formerly
`lib/models/cell_operations.py`): `OPS`, `ReLUConvBN`, `POOLING`, `Zero`, `ResNetBasicblock`.

Inside an NB201 cell every edge maps C channels to C channels at stride 1 (strides and channel changes
happen only in the residual blocks between stages), so the ops here take one channel count `c`; AutoDL's
1x1 ReLU-Conv-BN before the pooling exists only when channels change, which never happens in a cell.

BatchNorm settings (`BNSettings`): the evaluation network uses affine BN with running statistics
(`FINAL_BN`); the search network uses BN without affine parameters, whose convolutions then carry a bias
(`bias = not affine`, as in AutoDL), and without running statistics (`SEARCH_BN`): batch statistics in
training and evaluation alike. NAS-Bench-201's search results depend on that choice by about 5 points
(AutoDL-Projects issue #70: DARTS/RSPS with `track_running_stats=0` much better than with 1; the
paper's appendix and Table 5) and NATS-Bench searches with batch statistics in every BN (issue #115).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRIMITIVES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # NB201's order
PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3")


@dataclass(frozen=True)
class BNSettings:
    """How the BatchNorms of the cell ops are built; a convolution has a bias exactly when BN is not affine."""

    affine: bool
    track_running_stats: bool


FINAL_BN = BNSettings(affine=True, track_running_stats=True)  # evaluation network (cell_infers)
SEARCH_BN = BNSettings(affine=False, track_running_stats=False)  # search network: see module docstring


class Zero(nn.Module):
    """`none`: zeros shaped like the input, kept in the autograd graph (`x * 0`, as AutoDL's `Zero`) so
    that a cell whose output receives only `none` still gives (zero) input gradients to attacks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Sequential):
    """`nor_conv_kxk`: ReLU -> Conv(k, stride, padding (k-1)/2) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 bn: BNSettings = FINAL_BN):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=not bn.affine),
            nn.BatchNorm2d(c_out, affine=bn.affine, track_running_stats=bn.track_running_stats),
        )


def make_op(name: str, c: int, bn: BNSettings = FINAL_BN) -> nn.Module:
    """One NB201 cell op on C channels at stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, bn=bn)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, bn=bn)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}; known: {', '.join(PRIMITIVES)}")


class ResidualBlock(nn.Module):
    """The reduction between stages (AutoDL's `ResNetBasicblock` at stride 2): ReLU-Conv3x3(s2)-BN,
    ReLU-Conv3x3-BN, plus a shortcut AvgPool2d(2, 2) -> Conv1x1 (no BN). AutoDL builds it affine with
    running statistics in the search network too (it is not searched), so `bn` defaults to FINAL_BN."""

    def __init__(self, c_in: int, c_out: int, bn: BNSettings = FINAL_BN):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, bn=bn)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, bn=bn)
        self.shortcut = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c_out, H/2, W/2)
        return self.shortcut(x) + self.conv_b(self.conv_a(x))
