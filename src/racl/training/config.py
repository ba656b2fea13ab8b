"""`TrainConfig`: every knob of an adversarial training run, one frozen dataclass per concern.

YAML layout, nested by section (every key optional; unknown keys are errors; `--set` names a key
`section.key`, e.g. `--set attack.eps=8/255`, or a top-level key alone, e.g. `--set epochs=3`):

    epochs: 100
    batch_size: 128
    seed: 0
    objective:  {adv: pgd, trades_beta: 6.0, attack_mode: null}
    attack:     {norm: linf, eps: 8/255, alpha: null, steps: 7, random_start: true, loss: ce}
    optim:      {lr: 0.1, momentum: 0.9, weight_decay: 2.0e-4, schedule: cosine,
                 step_milestones: [0.5, 0.75], step_gamma: 0.1, grad_clip: 5.0, amp: none}
    network:    {channels: null, layers: null, auxiliary: false, aux_weight: 0.4, drop_path: null}  # null: the space's
    augmentation: {augment: true, crop_padding: 4, cutout: 0}
    validation: {val_images: 500, val_steps: 10, val_batch_size: 256}

Defaults follow the field's protocol (method.md section 6): PGD-7 at eps 8/255 with step eps / 4 =
2/255 and a random start (Madry et al.), SGD lr 0.1, momentum 0.9, weight decay 2e-4, cosine
schedule, gradient clipping 5, crop + flip augmentation. The *resolved* config (method defaults
filled in) is written to `DIR/config.yaml` and into every checkpoint sidecar.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from racl import config as configs
from racl.amp import AMP_HELP, check_amp
from racl.config import Flag, check
from racl.attacks import AttackSpec, parse_eps

ADV_METHODS = ("pgd", "trades", "fgsm_rs", "none")
SCHEDULES = ("cosine", "step")
MODEL_MODES = ("train", "eval")
WHERE = "training config"


@dataclass(frozen=True)
class ObjectiveConfig:
    """What the weights minimise (losses.py); the attack that crafts x' is the `attack` section."""

    adv: str = "pgd"  # pgd (Madry) | trades | fgsm_rs (Wong et al.) | none
    trades_beta: float = 6.0
    # model mode while crafting x': None = the method's default (`TrainConfig.resolved`): eval for pgd
    # (Pang et al. 2021, "Bag of tricks for AT": eval-mode BN while crafting keeps robustness and raises
    # clean accuracy; it also lets the 7 attack passes run on a BN-folded copy, racl.attacks.base) and
    # trades (its code), train for fgsm_rs (Wong et al.'s code)
    attack_mode: str | None = None

    def __post_init__(self) -> None:
        check(self.adv in ADV_METHODS, f"adv must be one of {', '.join(ADV_METHODS)}, got {self.adv!r}")
        check(self.trades_beta >= 0, f"trades_beta must be >= 0, got {self.trades_beta}")
        check(self.attack_mode is None or self.attack_mode in MODEL_MODES,
               f"attack_mode must be train or eval, got {self.attack_mode!r}")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "cosine"  # cosine (per step, to 0) | step (x step_gamma at step_milestones)
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `epochs`
    step_gamma: float = 0.1  # step schedule: lr factor at each milestone
    grad_clip: float = 5.0  # max global grad norm; 0 = off
    amp: str = "none"  # none | bf16: autocast on the forward passes (racl.amp)

    def __post_init__(self) -> None:
        check_amp(self.amp)
        check(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.schedule in SCHEDULES,
               f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        check(all(0 < m <= 1 for m in self.step_milestones), "step_milestones must be fractions of epochs in (0, 1]")
        check(0 < self.step_gamma <= 1, f"step_gamma must be in (0, 1], got {self.step_gamma}")
        check(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass(frozen=True)
class NetworkConfig:
    """Width and depth of a cell network (hand-designed networks ignore them). null: the search
    space's default (DARTS: C = 36, 20 cells, drop-path 0.2; NAS-Bench-201: C = 16, 5 cells per stage,
    no drop-path)."""

    channels: int | None = None
    layers: int | None = None
    auxiliary: bool = False
    aux_weight: float = 0.4
    drop_path: float | None = None  # final drop-path probability, ramped linearly over epochs (DARTS)

    def __post_init__(self) -> None:
        check((self.channels or 1) >= 1 and (self.layers or 1) >= 1, "channels and layers must be >= 1")
        check(self.aux_weight >= 0, f"aux_weight must be >= 0, got {self.aux_weight}")
        check(self.drop_path is None or 0 <= self.drop_path < 1, f"drop_path must be in [0, 1), got {self.drop_path}")

    def size(self, space: Any) -> dict[str, Any]:
        """channels, layers, auxiliary, drop_path_prob for a network of `space` (nulls: its defaults)."""
        d = space.network_defaults
        return {"channels": d["channels"] if self.channels is None else self.channels,
                "layers": d["layers"] if self.layers is None else self.layers, "auxiliary": self.auxiliary,
                "drop_path_prob": d.get("drop_path", 0.0) if self.drop_path is None else self.drop_path}


@dataclass(frozen=True)
class AugmentSection:
    augment: bool = True  # random crop (crop_padding) + horizontal flip on the train split
    crop_padding: int = 4  # pixels of padding before the random crop
    cutout: int = 0

    def __post_init__(self) -> None:
        check(self.crop_padding >= 0 and self.cutout >= 0, "crop_padding and cutout must be >= 0")


@dataclass(frozen=True)
class ValidationConfig:
    """Per-epoch clean and PGD-`val_steps` accuracy on a fixed subset (validate.py)."""

    val_images: int = 500  # a fixed class-balanced subset of the val split; 0 = none
    val_steps: int = 10
    val_batch_size: int = 256  # batch size of the validation attack

    def __post_init__(self) -> None:
        check(self.val_batch_size >= 1, f"val_batch_size must be >= 1, got {self.val_batch_size}")
        check(self.val_images >= 0 and self.val_steps >= 1, "val_images must be >= 0 and val_steps >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `attack.alpha` / `objective.attack_mode` None = the method's default (`resolved`)."""

    epochs: int = 100
    batch_size: int = 128
    seed: int = 0
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    attack: AttackSpec = field(default_factory=AttackSpec)
    optim: OptimConfig = field(default_factory=OptimConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    augmentation: AugmentSection = field(default_factory=AugmentSection)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")

    def resolved(self) -> "TrainConfig":
        """The same config with method defaults filled in (what a run actually uses): alpha by
        `AttackSpec.resolved` (eps / 4, or 1.25 eps for fgsm_rs); the crafting mode (ObjectiveConfig)."""
        adv = self.objective.adv
        attack = self.attack.resolved(adv)
        mode = self.objective.attack_mode or ("train" if adv == "fgsm_rs" else "eval")
        return dataclasses.replace(self, attack=attack, objective=dataclasses.replace(self.objective, attack_mode=mode))

    def validation_attack(self) -> AttackSpec:
        """The attack of robust validation: PGD-`val_steps` at the training eps and norm, step by the
        one default rule, random start, cross-entropy (whatever the training attack's alpha or loss)."""
        return AttackSpec(norm=self.attack.norm, eps=self.attack.eps, steps=self.validation.val_steps)

    def to_dict(self) -> dict[str, Any]:
        return configs.to_dict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # tests: seconds on one CPU core (16x16 synthetic images, a C = 4, 3-cell network)
    "tiny": {"epochs": 1, "batch_size": 8, "network": {"channels": 4, "layers": 3, "drop_path": 0.0},
             "attack": {"steps": 2}, "validation": {"val_images": 16, "val_steps": 2, "val_batch_size": 16}},
    # CPU: a small network on a subset (e.g. --limit 200 --image-size 16), a few epochs
    "quick": {"epochs": 10, "batch_size": 64, "network": {"channels": 16, "layers": 8},
              "attack": {"steps": 5}, "validation": {"val_images": 200}},
    # the protocol of method.md section 6 (= the defaults)
    "paper": {},
}


# `racl train` / `racl compare` / `racl ablate` flags: each `--NAME VALUE` is `--set KEY=VALUE`
FLAGS = {
    "epochs": Flag("epochs", "epochs (default 100)"), "batch_size": Flag("batch_size", "batch size (default 128)"),
    "lr": Flag("optim.lr", "initial SGD learning rate (default 0.1)"),
    "momentum": Flag("optim.momentum", "SGD momentum (default 0.9)"),
    "weight_decay": Flag("optim.weight_decay", "weight decay (default 2e-4)"),
    "schedule": Flag("optim.schedule", "learning-rate schedule (default cosine)", SCHEDULES),
    "grad_clip": Flag("optim.grad_clip", "max gradient norm, 0 = off (default 5)"),
    "amp": Flag("optim.amp", AMP_HELP),
    "adv": Flag("objective.adv", "objective (default pgd)", ADV_METHODS),
    "eps": Flag("attack.eps", "budget of the training attack in [0, 1], e.g. 8/255 (default; the L-inf radius "
                "unless --set attack.norm=l2)", read=parse_eps),
    "alpha": Flag("attack.alpha", "attack step (default eps / 4; fgsm_rs 1.25 eps)", read=parse_eps),
    "steps": Flag("attack.steps", "attack steps for pgd/trades (default 7)"),
    "trades_beta": Flag("objective.trades_beta", "TRADES beta (default 6)"),
    "attack_mode": Flag("objective.attack_mode", "model mode while crafting training attacks (default eval; "
                        "fgsm_rs train)", MODEL_MODES),
    "channels": Flag("network.channels", "initial channels C of a cell network (default: the space's; DARTS 36)"),
    "layers": Flag("network.layers", "cells of a cell network (default: the space's; DARTS 20)"),
    "auxiliary": Flag("network.auxiliary", "DARTS auxiliary head (default off)"),
    "aux_weight": Flag("network.aux_weight", "auxiliary loss weight (default 0.4)"),
    "drop_path": Flag("network.drop_path", "final drop-path probability (default: the space's; DARTS 0.2)"),
    "augment": Flag("augmentation.augment", "random crop + flip (default on)"),
    "cutout": Flag("augmentation.cutout", "cutout square side in pixels, 0 = off (default 0)"),
    "seed": Flag("seed", "training seed: init, data order, attacks (default 0)"),
    "val_images": Flag("validation.val_images", "fixed validation subset size, 0 = none (default 500)"),
    "val_steps": Flag("validation.val_steps", "PGD steps of the validation attack (default 10)"),
}
SCHEMA = configs.Schema(TrainConfig, PRESETS, "train", WHERE, FLAGS)
# the module's API is the schema's (racl.config.Schema)
config_from_dict, load_config, get_preset = SCHEMA.from_dict, SCHEMA.load, SCHEMA.preset
apply_overrides, build_config = SCHEMA.override, SCHEMA.build


def add_config_arguments(parser: Any, exclude: tuple[str, ...] = ()) -> None:
    """--preset, --config, --set and the FLAGS of `racl train`, `racl compare` and `racl ablate` (less
    `exclude`: compare and ablate take --seeds, one run per seed, instead of --seed)."""
    SCHEMA.add_arguments(parser, "training (defaults: method.md section 6)",
                         "--set optim.lr=0.05 --set attack.steps=10", exclude)
