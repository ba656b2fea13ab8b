"""Networks that racl trains and attacks, behind one factory: `build_model(name_or_genotype, ...)`."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from racl.errors import RaclError
from racl.models.darts_net import DartsNetwork
from racl.models.layers import OPS_MODES, use_fast_path
from racl.models.resnet import ResNet18
from racl.models.wide_resnet import WideResNet
from racl.search_space.genotype import Genotype
from racl.search_space.zoo import ZOO, resolve_genotype

HAND_DESIGNED = ("resnet18", "wrn34_10")


def list_models() -> list[str]:
    return list(ZOO) + list(HAND_DESIGNED)


def resolve_model(name: str) -> str | Genotype:
    """A model name as `build_model` takes it, checked now (before any data loads): resnet18 or
    wrn34_10, a zoo name, or a genotype JSON file / search run folder (read and validated here).
    Anything else is a RaclError listing the names and suggesting the closest."""
    key = name.lower().replace("-", "_")
    if key in (*HAND_DESIGNED, "wideresnet34_10"):
        return key
    return resolve_genotype(name, also=HAND_DESIGNED)


def build_model(name_or_genotype: str | Genotype, num_classes: int = 10, channels: int = 36,
                layers: int = 20, auxiliary: bool = False, drop_path_prob: float = 0.0,
                in_channels: int = 3, mean: Sequence[float] = (0.5, 0.5, 0.5),
                std: Sequence[float] = (0.25, 0.25, 0.25), ops: str = "fast", width: int | None = None) -> nn.Module:
    """A zoo name, a genotype JSON path, a `Genotype`, `resnet18` or `wrn34_10`.

    `channels`, `layers`, `auxiliary` and `drop_path_prob` apply to DARTS-space networks only;
    `width` (first-stage channels, default 64) to resnet18 only (`racl compare` matches its size).
    `ops`: "fast" (channels-last, the default) or "reference" (plain NCHW); same parameters.
    """
    if ops not in OPS_MODES:
        raise RaclError(f"ops must be one of {', '.join(OPS_MODES)}, got {ops!r}")
    return use_fast_path(_build(name_or_genotype, num_classes, channels, layers, auxiliary, drop_path_prob,
                                in_channels, mean, std, width), ops)


def _build(name_or_genotype: str | Genotype, num_classes: int, channels: int, layers: int, auxiliary: bool,
           drop_path_prob: float, in_channels: int, mean: Sequence[float], std: Sequence[float],
           width: int | None = None) -> nn.Module:
    common = dict(num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
    if isinstance(name_or_genotype, str):
        key = name_or_genotype.lower().replace("-", "_")
        if key == "resnet18":
            return ResNet18(**common, width=64 if width is None else width)
        if key in ("wrn34_10", "wideresnet34_10"):
            return WideResNet(34, 10, **common)
        genotype = resolve_genotype(name_or_genotype)
    elif isinstance(name_or_genotype, Genotype):
        genotype = name_or_genotype
    else:
        raise RaclError(f"cannot build a model from {type(name_or_genotype).__name__}")
    return DartsNetwork(genotype, channels=channels, layers=layers, auxiliary=auxiliary,
                        drop_path_prob=drop_path_prob, **common)


def count_parameters(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Trainable parameters; the auxiliary head is left out unless asked (the field's convention)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if p.requires_grad and (include_auxiliary or not n.startswith("auxiliary_head")))


__all__ = ["DartsNetwork", "HAND_DESIGNED", "ResNet18", "WideResNet", "build_model", "count_parameters",
           "list_models", "resolve_model"]
