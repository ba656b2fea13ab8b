"""The standard DARTS CIFAR evaluation network built from a genotype (Liu et al., 2019)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.models.layers import Normalize, drop_path
from racl.search_space.darts.genotype import Edge, Genotype
from racl.search_space.darts.ops import FactorizedReduce, Identity, ReLUConvBN, make_op


class Cell(nn.Module):
    """A discrete cell: each intermediate node sums two ops of earlier nodes."""

    fast = False  # set by racl.models.layers.use_fast_path: racl.search_space.darts.fast (same function)

    def __init__(self, edges: Sequence[Edge], concat: Sequence[int], c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.indices = [idx for _, idx in edges]
        self.concat = list(concat)
        self.multiplier = len(concat)
        self.ops = nn.ModuleList(
            make_op(op, c, 2 if reduction and idx < 2 else 1, affine=True) for op, idx in edges
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        if self.fast:  # s0, s1 as fast.Node
            from racl.search_space.darts import fast
            return fast.eval_cell(self, s0, s1, drop_prob)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            total = 0
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.indices[k]])
                if not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob, self.training)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier, attached at 2/3 depth (input 8 x 8 for 32 x 32 images)."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """Stem, `layers` cells (reductions at 1/3 and 2/3), global pooling, linear classifier.

    `forward(x)` returns logits; `forward(x, with_aux=True)` returns (logits, aux_logits or None).
    """

    fast = False  # set by racl.models.layers.use_fast_path: racl.search_space.darts.fast (same function)

    def __init__(self, genotype: Genotype, num_classes: int = 10, channels: int = 36, layers: int = 20,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, in_channels: int = 3,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25),
                 stem_multiplier: int = 3):
        super().__init__()
        self.genotype = genotype
        self.drop_path_prob = drop_path_prob
        self.normalize = Normalize(mean, std)
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        self.aux_index = 2 * layers // 3
        c_aux = None
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            edges, concat = (genotype.reduce, genotype.reduce_concat) if reduction else (
                genotype.normal, genotype.normal_concat)
            cell = Cell(edges, concat, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary and c_aux else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        if self.fast:
            from racl.search_space.darts import fast
            s1, aux = fast.network_features(self, x, with_aux)
        else:
            s1, aux = self.features(x, with_aux)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if with_aux else logits

    def features(self, x: torch.Tensor, with_aux: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The cells on x: (last cell output, auxiliary logits when asked in training, else None)."""
        s0 = s1 = self.stem(self.normalize(x))
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training and with_aux:
                aux = self.auxiliary_head(s1)
        return s1, aux
