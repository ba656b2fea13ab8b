"""BatchNorm statistics that belong to the architecture being evaluated or measured.

The supernet's BN layers (affine-free) keep running statistics of the *mixture* that the weight
steps train; a sub-architecture (a genotype as 0/1 weights, a random candidate, DARTS's softmax
point) sees other activations, and early in a search the running statistics still hold much of their
initial value. Two remedies, both leaving the training untouched:
- `batch_statistics(model)`: inside, every BN normalises with the statistics of the batch it sees
  (train mode), the rest of the model is in eval mode, and all BN buffers are restored on exit, so
  evaluating an architecture changes nothing (used for val_acc, genotype_val_acc and the random
  strategy's candidate scores);
- `recalibrate(model, weights, batches)`: reset the running statistics and recompute them as the
  cumulative average over the given batches (torch.optim.swa_utils.update_bn), for measurements that
  read eval-mode BN factors (the Lipschitz bound with `bound.bn = eval`);
- `untracked(model)`: inside, train-mode BN layers normalise with batch statistics and leave their
  running statistics alone (the weight step's second pass for robust.gradnorm_subset < 1).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from racl.search_space.base import ArchWeights
from racl.supernet.fixed import FixedArch


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """BN layers use batch statistics inside the block; modes and every BN buffer restored after."""
    was_training = model.training
    layers = bn_layers(model)
    saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in layers]
    model.eval()
    for m in layers:
        m.train()
    try:
        yield model
    finally:
        with torch.no_grad():
            for m, buffers in zip(layers, saved):
                for k, b in m.named_buffers(recurse=False):
                    b.copy_(buffers[k])
        model.train(was_training)


@torch.no_grad()
def recalibrate(supernet: nn.Module, weights: ArchWeights, batches: Iterable[torch.Tensor]) -> None:
    """Running statistics = cumulative averages over `batches` of the supernet at `weights`."""
    update_bn(batches, FixedArch(supernet, weights))


@contextmanager
def untracked(model: nn.Module) -> Iterator[nn.Module]:
    """Inside, every BN layer has track_running_stats off (train mode: batch statistics, running
    statistics and num_batches_tracked untouched); restored on exit."""
    layers = bn_layers(model)
    saved = [m.track_running_stats for m in layers]
    for m in layers:
        m.track_running_stats = False
    try:
        yield model
    finally:
        for m, flag in zip(layers, saved):
            m.track_running_stats = flag
