"""The NAS-Bench-201 evaluation network built from a cell (AutoDL-Projects `cell_infers/tiny_network.py`
`TinyNetwork` with `cell_infers/cells.py` `InferCell`).

Stem Conv3x3 + BN; three stages of N cells at C, 2C, 4C channels joined by the residual block (stride 2);
head BN-ReLU-global average pooling-Linear. Defaults C = 16, N = 5 (the benchmark's network). racl's
conventions: inputs in [0, 1] with the normalisation as the first layer, `forward(x) -> logits`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.models.layers import Normalize
from racl.search_space.nb201.genotype import NODES, Nb201Genotype
from racl.search_space.nb201.ops import FINAL_BN, BNSettings, ResidualBlock, make_op


class Nb201Cell(nn.Module):
    """A discrete cell: node j = sum over i < j of op_ij(node i); the output is node 3. A `none` edge adds
    zeros, so a cell whose output node receives only `none` outputs zeros (NB201 allows such cells)."""

    def __init__(self, genotype: Nb201Genotype, c: int, bn: BNSettings = FINAL_BN):
        super().__init__()
        self.edges = [(src, dst) for src, dst, _ in genotype.edges()]
        self.ops = nn.ModuleList(make_op(op, c, bn) for op in genotype.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        nodes = [x]
        for node in range(1, NODES):
            nodes.append(sum(op(nodes[src]) for op, (src, dst) in zip(self.ops, self.edges) if dst == node))
        return nodes[-1]


class Nb201Network(nn.Module):
    """Stem, 3 stages of `cells_per_stage` cells (C, 2C, 4C) joined by residual blocks, BN-ReLU-GAP-Linear."""

    def __init__(self, genotype: Nb201Genotype, num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 5, in_channels: int = 3,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25)):
        super().__init__()
        self.genotype = genotype
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualBlock(c, 2 * c))
                c *= 2
            layers += [Nb201Cell(genotype, c) for _ in range(cells_per_stage)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, with_aux: bool = False):  # (B, in_channels, H, W) in [0, 1] -> (B, classes)
        out = self.lastact(self.cells(self.stem(self.normalize(x))))
        logits = self.classifier(self.global_pooling(out).flatten(1))
        return (logits, None) if with_aux else logits  # no auxiliary head in NB201
