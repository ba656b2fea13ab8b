"""Learning-rate schedules as pure functions of training progress (so resuming needs only the step)."""
from __future__ import annotations

import math

from racl.training.config import TrainConfig


def learning_rate(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """LR at `step` (0-based, within `epoch`, 0-based).

    cosine: lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2 with t in fractional epochs, updated every
    step (SGDR without restarts, Loshchilov & Hutter 2017); step: lr times step_gamma for each
    milestone (a fraction of `epochs`) already reached, updated per epoch.
    """
    if config.schedule == "step":
        passed = sum(epoch >= round(m * config.epochs) for m in config.step_milestones)
        return config.lr * config.step_gamma ** passed
    t = (epoch + step / max(steps_per_epoch, 1)) / config.epochs
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * t))


def drop_path_prob(config: TrainConfig, epoch: int) -> float:
    """DARTS's linear ramp: drop_path * epoch / epochs (0 in the first epoch)."""
    return config.drop_path * epoch / config.epochs
