"""ResNet-18 for 32 x 32 inputs (He et al., 2016; the CIFAR variant used by Madry et al. and RobNet)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from racl.models.layers import Normalize


class BasicBlock(nn.Module):
    BN_FOLD_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))  # racl.models.fuse: BN applied to the conv's output

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    BN_FOLD_PAIRS = (("conv1", "bn1"),)  # racl.models.fuse

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, c_in = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**i
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = F.adaptive_avg_pool2d(self.layers(out), 1).flatten(1)
        logits = self.classifier(out)
        return (logits, None) if with_aux else logits
