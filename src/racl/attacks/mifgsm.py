"""MI-FGSM (Dong et al., 2018): signed steps along an accumulated, L1-normalised gradient momentum.

g_{t+1} = decay * g_t + grad / mean|grad|;  x <- Proj(x + alpha sign(g_{t+1})). No random start.
The step defaults to alpha = eps / steps as in the paper (torchattacks defaults to 2/255).
"""
from __future__ import annotations

import torch
from torch import nn

from racl.attacks.base import Attack, ce_loss
from racl.errors import RaclError


class MIFGSM(Attack):
    name = "mifgsm"

    def __init__(self, model: nn.Module, eps: float = 8 / 255, alpha: float | None = None, steps: int = 10,
                 decay: float = 1.0, *, model_mode: str = "eval"):
        super().__init__(model, eps, model_mode=model_mode)
        if steps < 1:
            raise RaclError(f"MI-FGSM needs steps >= 1, got {steps}")
        self.steps, self.decay = int(steps), float(decay)
        self.alpha = self.eps / self.steps if alpha is None else float(alpha)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        momentum = torch.zeros_like(images)  # (B, C, H, W)
        adv = images.clone()
        dims = tuple(range(1, images.dim()))
        for _ in range(self.steps):
            grad = self.input_grad(adv, labels, ce_loss)
            grad = grad / grad.abs().mean(dim=dims, keepdim=True).clamp_min(1e-12)
            momentum = self.decay * momentum + grad
            adv = self.project(adv + self.alpha * momentum.sign(), images)
        return adv
