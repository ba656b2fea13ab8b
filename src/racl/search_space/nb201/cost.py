"""Parameters and FLOPs counted as NAS-Bench-201 counts them (the API's `get_cost_info`).

NB201 measured each network with AutoDL-Projects `lib/utils/flop_benchmark.py` (`get_model_infos`):
- FLOPs are **multiply-adds** (one per weight per output position) of the Conv2d and Linear layers only,
  plus one addition per output element for a bias; BatchNorm, ReLU, pooling and the additions of the
  sums are not counted. Reported per image in millions ("MFLOPs"), on a 1 x 3 x 32 x 32 input for
  CIFAR (16 x 16 for ImageNet16-120).
- Parameters: every parameter of the model in millions (`params`, "MB" in AutoDL's naming). The
  published NB201 figures divide by 1e6 (checked against them in the tests); later AutoDL versions
  divide by 2**20.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """All parameters (NB201 counts every parameter, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 32)) -> float:
    """Multiply-adds of one forward pass per image, NB201's convention (module docstring)."""
    total = [0.0]

    def conv_hook(m: nn.Conv2d, _inputs: tuple, out: torch.Tensor) -> None:
        per_position = m.kernel_size[0] * m.kernel_size[1] * m.in_channels * m.out_channels / m.groups
        positions = out.shape[0] * out.shape[2] * out.shape[3]
        total[0] += per_position * positions + (m.out_channels * positions if m.bias is not None else 0)

    def linear_hook(m: nn.Linear, inputs: tuple, _out: torch.Tensor) -> None:
        batch = inputs[0].shape[0]
        total[0] += batch * m.in_features * m.out_features + (batch * m.out_features if m.bias is not None else 0)

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.rand(*input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0] / input_shape[0]
