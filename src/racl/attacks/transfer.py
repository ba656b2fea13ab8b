"""Transfer (black-box) attacks: craft on a source model, measure accuracy on target models.

A transfer attack that beats the white-box attack on the target itself is a gradient-masking sign
(evaluation/checks.py looks for it).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from racl.attacks.registry import build_attack


@torch.no_grad()
def _correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = model(images)
    out = out[0] if isinstance(out, (tuple, list)) else out
    return out.argmax(1) == labels  # (B,)


def transfer_attack(source_model: nn.Module, target_models: Sequence[nn.Module] | Mapping[str, nn.Module],
                    attack_name: str, images: torch.Tensor, labels: torch.Tensor, eps: float,
                    *, batch_size: int = 128, **attack_kw: Any) -> list[float] | dict[str, float]:
    """Robust accuracy of each target on adversarial examples crafted on the source.

    images (N, C, H, W) in [0, 1]. Returns a list in target order, or a dict for a mapping of targets.
    An image counts as robust only if the target classifies it correctly both clean and attacked.
    Targets must live on the source's device. Each target is evaluated in eval mode and restored to
    its previous mode afterwards.
    """
    named = dict(target_models) if isinstance(target_models, Mapping) else dict(enumerate(target_models))
    attack = build_attack(attack_name, source_model, eps, **attack_kw)
    device = next(iter(source_model.parameters()), images).device
    correct = {k: 0 for k in named}
    for start in range(0, images.shape[0], batch_size):
        x, y = images[start:start + batch_size].to(device), labels[start:start + batch_size].to(device)
        adv = attack(x, y)
        for key, target in named.items():
            was_training = target.training
            target.eval()
            try:
                correct[key] += int((_correct(target, adv, y) & _correct(target, x, y)).sum())
            finally:
                target.train(was_training)
    accuracy = {k: c / max(images.shape[0], 1) for k, c in correct.items()}
    return accuracy if isinstance(target_models, Mapping) else [accuracy[k] for k in sorted(accuracy)]
