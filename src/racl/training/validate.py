"""Per-epoch robust validation: clean and PGD accuracy on a fixed validation subset, eval mode.

Runs under its own RNG (seeded with the run's seed, the training RNG forked and restored), so the
same weights always get the same numbers and validating does not change the training trajectory.
Under torchrun each rank validates its share of the batches and the counts are summed, so every rank
gets the same numbers (the attack's random starts then differ from a one-process run's).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from racl import distributed
from racl.attacks import PGD
from racl.data import ArrayDataset, iterate_batches
from racl.training.config import TrainConfig


def validate(model: nn.Module, val_set: ArrayDataset, config: TrainConfig, device: Any) -> dict:
    """{"val_clean_acc", "val_robust_acc"}: PGD-`val_steps` at the training eps, step 2.5 eps / steps
    (Madry et al.; 2/255 for eps = 8/255 and 10 steps), random start. As in racl evaluate (and
    AutoAttack), an image counts as robust only if it is also classified correctly when clean."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    was_training = model.training
    model.eval()
    attack = PGD(model, config.eps, alpha=2.5 * config.eps / config.val_steps, steps=config.val_steps,
                 random_start=True, model_mode="eval")
    clean = robust = 0
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(config.seed)
            shard = val_set.subset(distributed.shard_by_batches(len(val_set), config.val_batch_size))
            for x, y in iterate_batches(shard, config.val_batch_size, shuffle=False, generator=None,
                                        device=device):
                with torch.no_grad():
                    ok = model(x).argmax(1) == y  # (B,)
                x_adv = attack(x, y)  # (B, C, H, W)
                with torch.no_grad():
                    ok_adv = ok & (model(x_adv).argmax(1) == y)  # robust only if also clean-correct
                clean, robust = clean + int(ok.sum()), robust + int(ok_adv.sum())
    finally:
        model.train(was_training)
    clean, robust = distributed.all_reduce_sum([clean, robust])
    n = max(len(val_set), 1)
    return {"val_clean_acc": clean / n, "val_robust_acc": robust / n}
