"""Networks that racl trains and attacks, behind one factory: `build_model(name_or_genotype, ...)`.

Cell networks come from their search space (racl.search_space.registry: `space.network`), the
hand-designed ones from here.
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from racl.errors import RaclError
from racl.models.layers import OPS_MODES, use_fast_path
from racl.models.mobilenet import MobileNetV2
from racl.models.resnet import ResNet18
from racl.models.wide_resnet import WideResNet

HAND_DESIGNED = ("resnet18", "wrn34_10", "mobilenet_v2")
ALIASES = {"resnet_18": "resnet18", "wideresnet34_10": "wrn34_10", "mobilenetv2": "mobilenet_v2"}


def hand_designed(name: object) -> str | None:
    """The hand-designed network `name` names (case, dashes and ALIASES aside), or None."""
    if not isinstance(name, str):
        return None
    key = name.lower().replace("-", "_")
    key = ALIASES.get(key, key)
    return key if key in HAND_DESIGNED else None


def list_models() -> list[str]:
    from racl.search_space.resolve import zoo_names
    return zoo_names() + list(HAND_DESIGNED)


def resolve_model(name: str) -> Any:
    """A model name as `build_model` takes it, checked now (before any data loads): a hand-designed
    name, a zoo name of any space, a genotype JSON file / search run folder (read and validated here)
    or an NB201 architecture string. Anything else is a RaclError listing the names and suggesting
    the closest."""
    from racl.search_space.resolve import resolve_genotype

    return hand_designed(name) or resolve_genotype(name, also=HAND_DESIGNED)


def build_model(name_or_genotype: Any, num_classes: int = 10, channels: int = 36, layers: int = 20,
                auxiliary: bool = False, drop_path_prob: float = 0.0, in_channels: int = 3,
                mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.25, 0.25, 0.25),
                ops: str = "fast", width: int | None = None) -> nn.Module:
    """A zoo name (of any search space), a genotype JSON path, a genotype value, or a hand-designed
    name (HAND_DESIGNED).

    `channels`, `layers`, `auxiliary` and `drop_path_prob` apply to cell networks (the space says which
    it supports); `width` (first-stage channels, default 64) to resnet18 only (`racl compare` matches
    its size). `ops`: "fast" (channels-last, the default) or "reference" (plain NCHW); same parameters.
    """
    if ops not in OPS_MODES:
        raise RaclError(f"ops must be one of {', '.join(OPS_MODES)}, got {ops!r}")
    common = dict(num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
    key = hand_designed(name_or_genotype)
    if key == "resnet18":
        model: nn.Module = ResNet18(**common, width=64 if width is None else width)
    elif key == "wrn34_10":
        model = WideResNet(34, 10, **common)
    elif key == "mobilenet_v2":
        model = MobileNetV2(**common)
    else:
        from racl.search_space.registry import get_space, list_spaces, space_of
        from racl.search_space.resolve import resolve_genotype

        genotype = resolve_genotype(name_or_genotype) if isinstance(name_or_genotype, str) else name_or_genotype
        if not any(isinstance(genotype, get_space(s).genotype_type) for s in list_spaces()):
            raise RaclError(f"cannot build a model from {type(name_or_genotype).__name__}; give a zoo name, a "
                            f"genotype (file), {' or '.join(HAND_DESIGNED)}")
        model = space_of(genotype).network(genotype, **common, channels=channels, layers=layers,
                                           auxiliary=auxiliary, drop_path_prob=drop_path_prob)
    return use_fast_path(model, ops)


def count_parameters(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Trainable parameters; the auxiliary head is left out unless asked (the field's convention)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if p.requires_grad and (include_auxiliary or not n.startswith("auxiliary_head")))


__all__ = ["ALIASES", "HAND_DESIGNED", "MobileNetV2", "ResNet18", "WideResNet", "build_model", "count_parameters",
           "hand_designed", "list_models", "resolve_model"]
