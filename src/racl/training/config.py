"""`TrainConfig`: every knob of an adversarial training run, one frozen dataclass per concern.

YAML layout (every key optional; unknown keys are errors; a bare key such as `eps: 8/255` is read
into its section, as `--set eps=8/255` and `TrainConfig(eps=8/255)` are):

    epochs: 100
    batch_size: 128
    seed: 0
    objective:  {adv: pgd, trades_beta: 6.0, attack_mode: null}
    attack:     {norm: linf, eps: 8/255, alpha: null, steps: 7, random_start: true, loss: ce}
    optim:      {lr: 0.1, lr_min: 0.0, momentum: 0.9, weight_decay: 2.0e-4, schedule: cosine,
                 step_milestones: [0.5, 0.75], step_gamma: 0.1, grad_clip: 5.0, amp: none}
    network:    {channels: 36, layers: 20, auxiliary: false, aux_weight: 0.4, drop_path: 0.2}
    augmentation: {augment: true, crop_padding: 4, flip: true, cutout: 0}
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
from pathlib import Path
from typing import Any

from racl import config as configs
from racl.amp import check_amp
from racl.config import check
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
    lr_min: float = 0.0  # the cosine schedule's final learning rate
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "cosine"  # cosine (per step, to lr_min) | step (x step_gamma at step_milestones)
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `epochs`
    step_gamma: float = 0.1  # step schedule: lr factor at each milestone
    grad_clip: float = 5.0  # max global grad norm; 0 = off
    amp: str = "none"  # none | bf16: autocast on the forward passes (racl.amp)

    def __post_init__(self) -> None:
        check_amp(self.amp)
        check(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0 <= self.lr_min <= self.lr, f"lr_min must be in [0, lr], got {self.lr_min}")
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
    flip: bool = True  # random horizontal flip
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


@configs.sectioned
@dataclass(frozen=True)
class TrainConfig:
    """One training run. `alpha` / `attack_mode` None = the method's default (see `resolved`)."""

    WHERE = WHERE
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
        return configs.config_to_dict(self)


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


def config_from_dict(data: dict[str, Any] | None, base: TrainConfig | None = None) -> TrainConfig:
    """TrainConfig from a nested or bare-key dict, on top of `base` (unknown keys are errors)."""
    return configs.config_from_dict(TrainConfig, data, base, WHERE)


def load_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """TrainConfig from a YAML file."""
    return configs.load_config(TrainConfig, path, base, WHERE)


def get_preset(name: str) -> TrainConfig:
    return configs.get_preset(TrainConfig, PRESETS, name, WHERE)


def apply_overrides(config: TrainConfig, items: list[str] | tuple[str, ...]) -> TrainConfig:
    """`--set key=value` (section.key or a bare key; all keys are unique across sections)."""
    return configs.apply_overrides(config, items, WHERE)


def build_config(*, preset: str | None = None, file: str | Path | None = None, values: dict | None = None,
                 overrides: list[str] | tuple[str, ...] = (), base: TrainConfig | dict | None = None) -> TrainConfig:
    """The layers of a command line, later ones winning: `base` (a saved run's config) or the preset
    (default: paper = the defaults) < --config FILE < flags (`values`, bare keys) < --set key=value."""
    if isinstance(base, dict):
        base = config_from_dict(base)
    config = base if base is not None and preset is None else get_preset(preset or "paper")
    if file is not None:
        config = load_config(file, config)
    config = config_from_dict(values or {}, config)
    return apply_overrides(config, overrides)


# `racl train` / `racl compare` flags: each `--KEY VALUE` is `--set KEY=VALUE` (every key has --set)
FLAGS = {
    "epochs": "epochs (default 100)", "batch_size": "batch size (default 128)",
    "lr": "initial SGD learning rate (default 0.1)", "momentum": "SGD momentum (default 0.9)",
    "weight_decay": "weight decay (default 2e-4)", "schedule": "learning-rate schedule (default cosine)",
    "grad_clip": "max gradient norm, 0 = off (default 5)", "adv": "objective (default pgd)",
    "amp": "mixed precision: none (default) or bf16 (autocast on the forward passes; fp16 is refused)",
    "eps": "budget of the training attack in [0, 1], e.g. 8/255 (default; the L-inf radius unless "
           "--set attack.norm=l2)", "alpha": "attack step (default eps / 4; fgsm_rs 1.25 eps)",
    "steps": "attack steps for pgd/trades (default 7)", "trades_beta": "TRADES beta (default 6)",
    "attack_mode": "model mode while crafting training attacks (default eval; fgsm_rs train)",
    "channels": "initial channels C of a DARTS network (default 36)",
    "layers": "cells of a DARTS network (default 20)", "auxiliary": "DARTS auxiliary head (default off)",
    "aux_weight": "auxiliary loss weight (default 0.4)", "drop_path": "final drop-path probability (default 0.2)",
    "augment": "random crop + flip (default on)", "cutout": "cutout square side in pixels, 0 = off (default 0)",
    "seed": "training seed: init, data order, attacks (default 0)",
    "val_images": "fixed validation subset size, 0 = none (default 500)",
    "val_steps": "PGD steps of the validation attack (default 10)",
}
CHOICES = {"adv": ADV_METHODS, "schedule": SCHEDULES, "attack_mode": MODEL_MODES}
TEXT_FLAGS = ("eps", "alpha")  # read like papers write them: 8/255


def add_config_arguments(parser: Any, exclude: tuple[str, ...] = ()) -> None:
    """--preset, --config, --set and the FLAGS of `racl train` and `racl compare` (less `exclude`:
    compare and ablate take --seeds, one run per seed, instead of --seed)."""
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="starting config: tiny (tests), quick (CPU minutes), paper (the defaults)")
    parser.add_argument("--config", metavar="FILE.yaml", help="training config; flags and --set override its values (racl config show train prints "
                             "every key)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set lr=0.05 --set attack.steps=10 (repeatable)")
    flags = {k: v for k, v in FLAGS.items() if k not in exclude}
    configs.add_flags(parser.add_argument_group("training (defaults: method.md section 6)"), TrainConfig, flags,
                      CHOICES, TEXT_FLAGS)


def config_arguments(args: Any) -> dict[str, Any]:
    """`build_config`'s keyword arguments from the parsed flags of `add_config_arguments`."""
    values = configs.flag_values(args, FLAGS)
    for key in TEXT_FLAGS:
        if key in values:
            values[key] = parse_eps(values[key])
    return {"preset": args.preset, "file": args.config, "values": values, "overrides": tuple(args.overrides)}
