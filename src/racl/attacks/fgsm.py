"""FGSM (Goodfellow et al., 2015): one signed-gradient step of size eps, x' = x + eps sign(grad_x L).

With `random_start=True` it is the "fast" FGSM of Wong et al. (2020) used for cheap adversarial
training: start uniformly in the eps ball, step alpha (default 1.25 eps), project back.
"""
from __future__ import annotations

import torch
from torch import nn

from racl.attacks.base import Attack, ce_loss, check_eps

FGSM_RS_STEP = 1.25  # x eps: the step from a random start (Wong et al., 2020)


class FGSM(Attack):
    name = "fgsm"

    def __init__(self, model: nn.Module, eps: float = 8 / 255, *, alpha: float | None = None,
                 random_start: bool = False, model_mode: str = "eval"):
        super().__init__(model, eps, model_mode=model_mode)
        self.random_start = random_start
        default = FGSM_RS_STEP * self.eps if random_start else self.eps
        self.alpha = default if alpha is None else check_eps(alpha, "alpha")

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        start = images
        if self.random_start:
            start = (images + torch.empty_like(images).uniform_(-self.eps, self.eps)).clamp(0, 1)
        grad = self.input_grad(start, labels, ce_loss)  # (B, C, H, W)
        return self.project(start + self.alpha * grad.sign(), images)
