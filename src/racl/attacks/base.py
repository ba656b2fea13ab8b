"""The attack base class: inputs and outputs in [0, 1], the model's state left exactly as found.

Subclasses override only `forward(images, labels)` (torchattacks' convention). `__call__` checks the
inputs, puts the model in the requested train/eval mode, turns off `requires_grad` on every parameter
(so no weight gradients are computed or stored: attack steps only need d loss / d input, and skipping
the weight-gradient kernels makes them faster), calls `forward`, and restores both, also on exceptions.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from racl.errors import RaclError
from racl.models.fuse import FoldedCopy

MODEL_MODES = ("eval", "train", "keep")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (B, K), labels (B,)) -> (B,)


@contextmanager
def attack_context(model: nn.Module, model_mode: str = "eval") -> Iterator[nn.Module]:
    """Set train/eval mode and freeze parameters; restore every module's mode and every flag after."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        if model_mode != "keep":
            model.train(model_mode == "train")
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy, (B,), in float32 (bf16 logits under autocast are cast up first)."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def margin_loss(logits: torch.Tensor, labels: torch.Tensor, kappa: float | None = None) -> torch.Tensor:
    """CW margin max_{i != y} z_i - z_y, (B,); positive = misclassified. kappa caps it (CW's confidence)."""
    logits = logits.float()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    margin = others.amax(dim=1) - true
    return margin if kappa is None else margin.clamp(max=kappa)


LOSSES: dict[str, LossFn] = {"ce": ce_loss, "margin": margin_loss}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise RaclError(f"unknown attack loss {name!r}; use one of {', '.join(LOSSES)}")
    return LOSSES[name]


def check_eps(eps: float, what: str = "eps") -> float:
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise RaclError(f"{what} = {eps} is outside [0, 1]; images are in [0, 1], e.g. use 8/255")
    return eps


class Attack:
    """Base class: `attack(images, labels) -> adv_images`, images (B, C, H, W) floats in [0, 1]."""

    name = "attack"
    fold_bn = True  # eval mode: attack a BN-folded copy of the model (see _folded_model)
    check_range = True  # refuse images outside [0, 1] (a host-device sync; loops whose batches are in
    # [0, 1] by construction turn it off so that a step does not synchronise)

    def __init__(self, model: nn.Module, eps: float, *, model_mode: str = "eval"):
        if model_mode not in MODEL_MODES:
            raise RaclError(f"model_mode must be one of {', '.join(MODEL_MODES)}, got {model_mode!r}")
        self.model = model
        self.eps = check_eps(eps)
        self.model_mode = model_mode
        self._folded: FoldedCopy | None = None  # made at the first eval-mode call, refreshed at the next ones

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images, labels = self._check_inputs(images, labels)
        with attack_context(self.model, self.model_mode), torch.enable_grad(), self._folded_model():
            adv = self.forward(images, labels)
        return adv.detach()

    @contextmanager
    def _folded_model(self) -> Iterator[None]:
        """In eval mode, attack a copy with BN folded into the convs (same function, fewer kernels;
        racl.models.fuse). The copy is kept and refreshed in place from the model at every call (a
        training objective's attack runs once per step: no deep copy per step). `attack.fold_bn =
        False`, or a model built with ops="reference" (the plain formulation,
        racl.models.layers.use_fast_path), is attacked as it is."""
        original = self.model
        if self.fold_bn and self.model_mode == "eval" and getattr(original, "ops", "fast") == "fast":
            if getattr(self, "_folded", None) is None or self._folded.source is not original:
                self._folded = FoldedCopy(original)
            self.model = self._folded.model()
        try:
            yield
        finally:
            self.model = original

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """model(x) -> logits (B, K); a (logits, aux) tuple is reduced to its logits."""
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    def input_grad(self, x: torch.Tensor, labels: torch.Tensor, loss_fn: LossFn) -> torch.Tensor:
        """d sum_i loss_i / d x, (B, C, H, W): per-example gradients, no weight gradients."""
        x = x.detach().requires_grad_(True)
        loss = loss_fn(self.logits(x), labels).sum()
        return torch.autograd.grad(loss, x)[0]

    def project(self, adv: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Linf projection: clamp to [x - eps, x + eps], then to [0, 1]."""
        delta = (adv - images).clamp(-self.eps, self.eps)
        return (images + delta).clamp(0.0, 1.0).detach()

    def _check_inputs(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.is_floating_point(images) or images.dim() < 2:
            raise RaclError(f"{self.name}: images must be a float tensor (B, C, H, W) in [0, 1]; "
                            f"got {images.dtype} {tuple(images.shape)} (divide uint8 images by 255)")
        if labels.shape != images.shape[:1]:
            raise RaclError(f"{self.name}: labels shape {tuple(labels.shape)} does not match "
                            f"{images.shape[0]} images")
        if self.check_range and images.numel() and (images.min() < 0 or images.max() > 1):
            raise RaclError(f"{self.name}: images must be in [0, 1] (normalisation is the model's first "
                            f"layer); got range [{images.min():.3g}, {images.max():.3g}]")
        return images.detach(), labels.detach().long()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k != "model" and not k.startswith("_"))
        return f"{type(self).__name__}({args})"
