"""AutoAttack (Croce & Hein, 2020) behind racl's Attack API: a thin adapter over `pyautoattack`.

The package runs its attacks only on points still robust and returns x itself for the others, which
is what a robust-accuracy number needs. Its own reliability warnings (randomised model, softmax
outputs, ...) are captured in `self.warnings`. Targeted attacks use min(9, K - 1) target classes.
The custom version can change iterations and restarts (n_iter, n_restarts) for quick runs; the
standard version is left exactly as published (100 iterations, 1 restart for APGD-CE, 9 targets).
The package checks the model for signs of a defence it cannot evaluate (randomness, softmax outputs,
dynamic code: 7 forward passes, one under a Python tracer) at every call; they concern the model, not
the batch, so one AutoAttack object runs them on its first batch only (`_model_checks_done`).
"""
from __future__ import annotations

import importlib
import logging
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from racl.attacks.base import Attack
from racl.errors import RaclError

VERSIONS = ("standard", "plus", "rand", "custom")
KNOWN = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")


def _import_autoattack() -> Any:
    for module in ("autoattack", "pyautoattack"):  # original repo name / PyPI package name
        try:
            return importlib.import_module(module).AutoAttack
        except ImportError:
            continue
    raise RaclError("AutoAttack needs the `pyautoattack` package: pip install pyautoattack")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


MODEL_CHECKS = ("check_randomized", "check_range_output", "check_dynamic", "check_n_classes")


@contextmanager
def _without_model_checks(adversary: Any) -> Iterator[None]:
    """The package's per-call model checks (its `checks` module, looked up at call time) as no-ops
    (check_range_output's class count only feeds check_n_classes)."""
    checks = importlib.import_module(type(adversary).__module__).checks
    saved = {name: getattr(checks, name) for name in MODEL_CHECKS}
    try:
        for name in MODEL_CHECKS:
            setattr(checks, name, lambda *a, **k: None)
        yield
    finally:
        for name, fn in saved.items():
            setattr(checks, name, fn)


class AutoAttack(Attack):
    name = "autoattack"

    def __init__(self, model: nn.Module, eps: float = 8 / 255, norm: str = "Linf", version: str = "standard",
                 attacks_to_run: Sequence[str] = (), seed: int = 0, batch_size: int = 250,
                 n_iter: int | None = None, n_restarts: int | None = None, *, model_mode: str = "eval"):
        super().__init__(model, eps, model_mode=model_mode)
        if version not in VERSIONS:
            raise RaclError(f"AutoAttack version must be one of {', '.join(VERSIONS)}, got {version!r}")
        unknown = [a for a in attacks_to_run if a not in KNOWN]
        if unknown or (version == "custom" and not attacks_to_run):
            raise RaclError(f"AutoAttack custom version needs attacks_to_run from {', '.join(KNOWN)}; "
                            f"got {list(attacks_to_run)}")
        norm = {"linf": "Linf", "l2": "L2", "l1": "L1"}.get(norm.lower(), norm)
        self.norm, self.version, self.seed, self.batch_size = norm, version, int(seed), int(batch_size)
        self.attacks_to_run = tuple(attacks_to_run)
        if version != "custom" and (n_iter is not None or n_restarts is not None):
            raise RaclError("n_iter / n_restarts change AutoAttack; they are only allowed with version='custom'")
        self.n_iter, self.n_restarts = n_iter, n_restarts
        self.warnings: list[str] = []
        self._model_checks_done = False

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        adversary = self._build(images)
        logger = logging.getLogger("auto-attack")
        handler = _Collect()
        logger.addHandler(handler)
        try:
            with _without_model_checks(adversary) if self._model_checks_done else nullcontext():
                adv, _ = adversary.run_standard_evaluation(images, labels, batch_size=self.batch_size)
            self._model_checks_done = True
        finally:
            logger.removeHandler(handler)
        self.warnings.extend(m for m in handler.messages if m not in self.warnings)
        return adv.clamp(0, 1)

    def _build(self, images: torch.Tensor) -> Any:
        cls = _import_autoattack()
        kwargs: dict[str, Any] = dict(eps=self.eps, norm=self.norm, seed=self.seed, version=self.version,
                                      device=images.device)
        if self.version == "custom":
            kwargs["attacks"] = list(self.attacks_to_run)
        adversary = cls(self.model, **kwargs)
        with torch.no_grad():
            n_classes = self.logits(images[:1]).shape[1]
        targets = max(1, min(9, n_classes - 1))  # apgd-t / fab-t need K - 1 >= targets
        adversary.apgd_targeted.n_target_classes = targets
        adversary.fab.n_target_classes = targets
        for sub in (adversary.apgd, adversary.apgd_targeted, adversary.fab):
            if self.n_iter is not None:
                sub.n_iter = int(self.n_iter)
            if self.n_restarts is not None:
                sub.n_restarts = int(self.n_restarts)
        return adversary
