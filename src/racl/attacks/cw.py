"""CW-inf: PGD on the Carlini-Wagner margin loss max_{i != y} z_i - z_y (Carlini & Wagner, 2017).

This is the Linf "CW" of the robust-NAS papers (PGD steps, margin instead of cross-entropy), not the
original L2 optimisation attack. `kappa` caps the margin (CW's confidence): with kappa = 0 the loss
stops rewarding an example once it is misclassified.
"""
from __future__ import annotations

import functools

from torch import nn

from racl.attacks.base import margin_loss
from racl.attacks.pgd import PGD


class CW(PGD):
    name = "cw"

    def __init__(self, model: nn.Module, eps: float = 8 / 255, alpha: float | None = None, steps: int = 30,
                 random_start: bool = True, kappa: float | None = None, restarts: int = 1,
                 *, model_mode: str = "eval"):
        super().__init__(model, eps, alpha=alpha, steps=steps, random_start=random_start, norm="linf",
                         restarts=restarts, loss="margin", model_mode=model_mode)
        self.kappa = kappa
        if kappa is not None:
            self._loss_fn = functools.partial(margin_loss, kappa=float(kappa))
