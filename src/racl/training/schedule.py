"""Learning-rate schedules as pure functions of training progress (so resuming needs only the step)."""
from __future__ import annotations

from racl.lifecycle import cosine_lr
from racl.training.config import TrainConfig


def learning_rate(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """LR at `step` (0-based, within `epoch`, 0-based).

    cosine: racl.lifecycle.cosine_lr from lr to 0 over `epochs`, updated every step; step: lr
    times step_gamma for each milestone (a fraction of `epochs`) already reached, updated per epoch.
    """
    o = config.optim
    if o.schedule == "step":
        passed = sum(epoch >= round(m * config.epochs) for m in o.step_milestones)
        return o.lr * o.step_gamma ** passed
    return cosine_lr(o.lr, 0.0, epoch, step, steps_per_epoch, config.epochs)


def drop_path_prob(final: float, epoch: int, epochs: int) -> float:
    """DARTS's linear ramp to the final drop-path probability: final * epoch / epochs (0 in the first epoch)."""
    return final * epoch / epochs
