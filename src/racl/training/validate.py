"""Per-epoch robust validation: clean and PGD accuracy on a fixed validation subset, eval mode.

It is `racl evaluate`'s computation (racl.evaluation.evaluate: predict_correct, attack_correct) with
the config's validation attack (`TrainConfig.validation_attack`: PGD-`val_steps` at the training eps,
step eps / 4, random start): batch k is attacked under `batch_seed(seed, k)` with the caller's RNG
forked and restored, so the same weights always get the same numbers, validating does not change the
training trajectory, and under torchrun each rank's share of the batches sums to a one-process run's.
As in racl evaluate (and AutoAttack), an image counts as robust only if it is also correct when clean.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from racl.data import ArrayDataset
from racl.distributed import Runtime
from racl.evaluation.evaluate import as_float_images, attack_correct, predict_correct
from racl.training.config import TrainConfig


def validate(model: nn.Module, val_set: ArrayDataset, config: TrainConfig, device: Any,
             rt: Runtime = Runtime()) -> dict:
    """{"val_clean_acc", "val_robust_acc"} of `model` (left in the train/eval mode it was in); `rt`: the
    process of a data-parallel run (its share of the batches; the counts summed over processes)."""
    batch = config.validation.val_batch_size
    ids = list(rt.eval_batches(-(-len(val_set) // batch)))  # this process's batches (all in one process)
    shard = rt.eval_shard(len(val_set), batch)
    images, labels = as_float_images(val_set.images[shard].cpu()), val_set.labels[shard].cpu().long()
    was_training = model.training
    model.eval()
    try:
        attack = config.validation_attack().pgd(model, model_mode="eval")
        clean = predict_correct(model, images, labels, batch, device)
        robust = clean & attack_correct(attack, model, images, labels, batch, device, config.seed, ids)
    finally:
        model.train(was_training)
    counts = rt.sum([int(clean.sum()), int(robust.sum())])
    n = max(len(val_set), 1)
    return {"val_clean_acc": counts[0] / n, "val_robust_acc": counts[1] / n}
