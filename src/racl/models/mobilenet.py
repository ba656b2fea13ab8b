"""MobileNetV2 at CIFAR size: torchvision's network with the CIFAR stem of the common CIFAR versions.

The paper compares RACL's cells with "efficient human-designed models"; MobileNetV2 (Sandler et al.,
CVPR 2018) is the usual one. The network is torchvision's `MobileNetV2` (inverted residual blocks,
ReLU6, last 1x1 conv to 1280 channels, dropout 0.2 and a linear classifier) with the two changes that
kuangliu/pytorch-cifar (`models/mobilenetv2.py`) makes for 32 x 32 images: the first convolution has
stride 1 instead of 2, and the second stage (24 channels) stride 1 instead of 2, so the network
downsamples 8x (32 -> 4) instead of 32x. Strides do not change the parameters: with 10 classes it
has torchvision's ImageNet count (3,504,872, torchvision's model card) less the 1000-class classifier
plus a 10-class one: 2,236,682 (tests/test_models.py checks both).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.models import MobileNetV2 as TorchvisionMobileNetV2
from torchvision.ops.misc import Conv2dNormActivation

from racl.models.layers import Normalize

# (expansion t, channels c, blocks n, first stride s): torchvision's setting, stage 2 at stride 1
CIFAR_SETTING = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                 [6, 320, 1, 1]]
STEM_CHANNELS = 32


class MobileNetV2(TorchvisionMobileNetV2):
    """torchvision's MobileNetV2 with a stride-1 stem for 32 x 32 inputs; x in [0, 1] (Normalize first)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.25, 0.25, 0.25)):
        super().__init__(num_classes=num_classes, inverted_residual_setting=CIFAR_SETTING)
        self.normalize = Normalize(mean, std)
        stem = Conv2dNormActivation(in_channels, STEM_CHANNELS, stride=1, activation_layer=nn.ReLU6)
        nn.init.kaiming_normal_(stem[0].weight, mode="fan_out")  # torchvision's initialisation of convs
        self.features[0] = stem

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        """x: (B, C, H, W) in [0, 1] -> logits (B, K); with_aux: (logits, None) like the other networks."""
        logits = super().forward(self.normalize(x))
        return (logits, None) if with_aux else logits
