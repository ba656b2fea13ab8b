"""PGD (Madry et al., 2018): iterated signed-gradient ascent projected onto the eps ball.

Step semantics follow torchattacks.PGD so numbers are comparable: uniform random start in the Linf
ball clipped to [0, 1]; `steps` updates x <- Proj(x + alpha sign(grad)); the last iterate is returned.
L2: Gaussian-direction random start with uniform radius, normalised-gradient steps, projection onto
the L2 ball (torchattacks.PGDL2). With restarts > 1, each example keeps the first restart that
fools the model (per-example worst case). `loss="margin"` gives CW-inf (see cw.py). The default step
is racl's one rule, eps / 4 for both norms (racl.attacks.eps.default_step_size).
"""
from __future__ import annotations

import torch
from torch import nn

from racl.attacks.base import Attack, LossFn, check_eps, get_loss
from racl.attacks.eps import default_step_size
from racl.errors import RaclError

NORMS = ("linf", "l2")


def _flat_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped (B, 1, ..., 1) to broadcast against x."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


class PGD(Attack):
    name = "pgd"

    def __init__(self, model: nn.Module, eps: float = 8 / 255, alpha: float | None = None, steps: int = 10,
                 random_start: bool = True, norm: str = "linf", restarts: int = 1, loss: str = "ce",
                 *, model_mode: str = "eval"):
        super().__init__(model, eps, model_mode=model_mode)
        norm = norm.lower()
        if norm not in NORMS:
            raise RaclError(f"PGD norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if steps < 0 or restarts < 1:
            raise RaclError(f"PGD needs steps >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
        self.norm, self.steps, self.restarts = norm, int(steps), int(restarts)
        self.random_start, self.loss = random_start, loss
        self.alpha = default_step_size(self.eps) if alpha is None else float(alpha)
        if norm == "linf":
            check_eps(self.alpha, "alpha")
        self._loss_fn: LossFn = get_loss(loss)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        best = self.run_once(images, labels)
        for _ in range(self.restarts - 1):
            with torch.no_grad():
                robust = self.logits(best).argmax(1) == labels  # (B,) still correct -> try again
            if not robust.any():
                break
            adv = self.run_once(images[robust], labels[robust])
            best[robust] = adv
        return best

    def run_once(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One PGD run from a (random) start; returns the last iterate."""
        adv = self.random_init(images) if self.random_start else images.clone()
        for _ in range(self.steps):
            grad = self.input_grad(adv, labels, self._loss_fn)  # (B, C, H, W)
            adv = self.step(adv, grad, images)
        return adv.detach()

    def random_init(self, images: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return (images + torch.empty_like(images).uniform_(-self.eps, self.eps)).clamp(0, 1)
        direction = torch.randn_like(images)
        radius = torch.rand(images.shape[0], device=images.device, dtype=images.dtype)
        radius = radius.view(-1, *([1] * (images.dim() - 1)))
        delta = direction / _flat_norm(direction).clamp_min(1e-12) * radius * self.eps
        return (images + delta).clamp(0, 1)

    def step(self, adv: torch.Tensor, grad: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return self.project(adv + self.alpha * grad.sign(), images)
        adv = adv + self.alpha * grad / (_flat_norm(grad) + 1e-10)
        return self.project_l2(adv, images)

    def project_l2(self, adv: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Scale delta onto the L2 ball of radius eps, then clamp to [0, 1] (a contraction, stays inside)."""
        delta = adv - images
        factor = (self.eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        return (images + delta * factor).clamp(0.0, 1.0).detach()
