"""A supernet with fixed architecture weights, as a plain `model(x) -> logits`."""
from __future__ import annotations

import torch
from torch import nn

from racl.search_space.base import ArchWeights


class FixedArch(nn.Module):
    """`supernet(x, weights)` with the weights fixed (attacks, BN updates)."""

    def __init__(self, supernet: nn.Module, weights: ArchWeights):
        super().__init__()
        self.supernet = supernet
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.weights)
