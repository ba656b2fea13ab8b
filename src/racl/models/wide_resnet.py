"""WideResNet-34-10 for 32 x 32 inputs (Zagoruyko & Komodakis, 2016; as in TRADES and Madry et al.)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from racl.models.layers import Normalize


class WideBlock(nn.Module):
    """Pre-activation block: BN, ReLU, conv, BN, ReLU, conv, plus a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    def __init__(self, depth: int = 34, widen: int = 10, num_classes: int = 10, in_channels: int = 3,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25)):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, c_in = [], widths[0]
        for g, stride in enumerate((1, 2, 2)):
            for b in range(n):
                blocks.append(WideBlock(c_in, widths[g + 1], stride if b == 0 else 1))
                c_in = widths[g + 1]
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        out = F.relu(self.bn(self.blocks(self.conv1(self.normalize(x)))))
        logits = self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))
        return (logits, None) if with_aux else logits
