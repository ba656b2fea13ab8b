"""`TrainConfig`: every knob of an adversarial training run, as one frozen dataclass.

Built from YAML (`--config FILE`), overridden by CLI flags, validated on construction; the
*resolved* config (method defaults filled in) is written to `DIR/config.yaml` and into every
checkpoint sidecar. Defaults follow the field's protocol (method.md section 6): PGD-7 at
eps 8/255 with step 2/255 and a random start (Madry et al.), SGD lr 0.1, momentum 0.9,
weight decay 2e-4, cosine schedule, gradient clipping 5, crop + flip augmentation.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from racl.config import from_dict, to_dict
from racl.errors import RaclError

ADV_METHODS = ("pgd", "trades", "fgsm_rs", "none")
SCHEDULES = ("cosine", "step")
MODEL_MODES = ("train", "eval")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `alpha` / `attack_mode` None = the method's default (see `resolved`)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "cosine"  # cosine (per step, to lr_min) | step (x step_gamma at step_milestones)
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `epochs`
    step_gamma: float = 0.1
    grad_clip: float = 5.0  # max global grad norm; 0 = off
    adv: str = "pgd"  # pgd (Madry) | trades | fgsm_rs (Wong et al.) | none
    eps: float = 8 / 255
    alpha: float | None = None  # pgd/trades: 2/255; fgsm_rs: 1.25 * eps
    steps: int = 7
    random_start: bool = True
    trades_beta: float = 6.0
    attack_mode: str | None = None  # model mode while crafting: pgd/fgsm_rs "train" (Madry), trades "eval"
    channels: int = 36
    layers: int = 20
    auxiliary: bool = False
    aux_weight: float = 0.4
    drop_path: float = 0.2  # final drop-path probability, ramped linearly over epochs (DARTS)
    augment: bool = True  # random crop (crop_padding) + horizontal flip on the train split
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    seed: int = 0
    val_images: int = 500  # fixed subset: the first val_images of the val split; 0 = no validation
    val_steps: int = 10
    val_batch_size: int = 256

    def __post_init__(self) -> None:
        _validate(self)

    def resolved(self) -> "TrainConfig":
        """The same config with method defaults filled in (what a run actually uses)."""
        alpha = self.alpha
        if alpha is None:
            alpha = 1.25 * self.eps if self.adv == "fgsm_rs" else 2 / 255
        mode = self.attack_mode or ("eval" if self.adv == "trades" else "train")
        return dataclasses.replace(self, alpha=alpha, attack_mode=mode)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RaclError(message)


def _validate(c: TrainConfig) -> None:
    """Refuse settings that cannot make a sensible run, naming the key."""
    _check(c.epochs >= 1, f"epochs must be >= 1, got {c.epochs}")
    _check(c.batch_size >= 1, f"batch_size must be >= 1, got {c.batch_size}")
    _check(c.val_batch_size >= 1, f"val_batch_size must be >= 1, got {c.val_batch_size}")
    _check(math.isfinite(c.lr) and c.lr > 0, f"lr must be > 0, got {c.lr}")
    _check(0 <= c.lr_min <= c.lr, f"lr_min must be in [0, lr], got {c.lr_min}")
    _check(0 <= c.momentum < 1, f"momentum must be in [0, 1), got {c.momentum}")
    _check(c.weight_decay >= 0, f"weight_decay must be >= 0, got {c.weight_decay}")
    _check(c.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {c.schedule!r}")
    _check(all(0 < m <= 1 for m in c.step_milestones), "step_milestones must be fractions of epochs in (0, 1]")
    _check(0 < c.step_gamma <= 1, f"step_gamma must be in (0, 1], got {c.step_gamma}")
    _check(c.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {c.grad_clip}")
    _check(c.adv in ADV_METHODS, f"adv must be one of {', '.join(ADV_METHODS)}, got {c.adv!r}")
    _check(0 <= c.eps <= 1, f"eps must be in [0, 1] (pixel scale; e.g. 8/255), got {c.eps}")
    _check(c.alpha is None or 0 < c.alpha <= 1, f"alpha must be in (0, 1], got {c.alpha}")
    _check(c.steps >= 1, f"steps must be >= 1, got {c.steps}")
    _check(c.trades_beta >= 0, f"trades_beta must be >= 0, got {c.trades_beta}")
    _check(c.attack_mode is None or c.attack_mode in MODEL_MODES,
           f"attack_mode must be train or eval, got {c.attack_mode!r}")
    _check(c.channels >= 1 and c.layers >= 3, "channels must be >= 1 and layers >= 3")
    _check(c.aux_weight >= 0, f"aux_weight must be >= 0, got {c.aux_weight}")
    _check(0 <= c.drop_path < 1, f"drop_path must be in [0, 1), got {c.drop_path}")
    _check(c.crop_padding >= 0 and c.cutout >= 0, "crop_padding and cutout must be >= 0")
    _check(c.val_images >= 0 and c.val_steps >= 1, "val_images must be >= 0 and val_steps >= 1")


def _parse_fractions(data: dict[str, Any]) -> dict[str, Any]:
    """Allow eps/alpha written as "8/255" in YAML, like on the command line."""
    from racl.attacks import parse_eps

    out = dict(data)
    for key in ("eps", "alpha"):
        if isinstance(out.get(key), str):
            out[key] = parse_eps(out[key])
    return out


def config_from_dict(data: dict[str, Any] | None) -> TrainConfig:
    """TrainConfig from a plain dict (unknown keys are errors)."""
    if data is not None and not isinstance(data, dict):
        raise RaclError("a training config must be a YAML mapping of key: value")
    return from_dict(TrainConfig, _parse_fractions(data or {}), "training config")


def load_config(path: str | Path) -> TrainConfig:
    """TrainConfig from a YAML file."""
    from racl.io import read_yaml

    return config_from_dict(read_yaml(path, "training config"))
