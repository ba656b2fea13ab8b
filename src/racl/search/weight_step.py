"""The weight step of the search (method.md section 5, step 1).

    w ~ strategy (fixed for this step), x' = x or an adversarial example of f(.; w)
    loss = CE(f(x'; w), y) + gamma * mean_i ||grad_x' CE_i||_2      (double backprop when gamma > 0)
SGD (momentum, weight decay) on the supernet weights with global-norm clipping. The input-gradient
norm is a lower bound of the local Lipschitz constant; per-example gradients come from the gradient
of the *sum* of per-example losses (exact per example up to the coupling through BN batch statistics).
robust.gradnorm_subset < 1 computes the term on part of the batch (weight_loss), a cheaper estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from racl import amp as amps
from racl.attacks import AttackSpec
from racl.distributed import Runtime
from racl.search.config import RobustConfig
from racl.search_space.base import ArchWeights
from racl.search_space.depthwise import differentiable_twice
from racl.supernet import FixedArch
from racl.supernet.batchnorm import untracked


def adversarial_inputs(supernet: nn.Module, weights: ArchWeights, x: torch.Tensor, y: torch.Tensor,
                       cfg: RobustConfig, attack: AttackSpec) -> torch.Tensor:
    """x itself (robust.adv = none), or `attack`'s FGSM-RS or PGD example against f(.; weights), crafted in
    train mode (as in Madry's training)."""
    if cfg.adv == "none" or attack.eps == 0:
        return x
    crafter = attack.attack(FixedArch(supernet, weights), cfg.adv, model_mode="train")
    crafter.check_range = False  # the loop's batches are in [0, 1] (no synchronising check per step)
    return crafter(x, y)


@dataclass
class WeightStepResult:
    """0-dim tensors on the device (read at logging points: racl.tally)."""

    loss: torch.Tensor              # the total loss minimised
    ce: torch.Tensor
    grad_norm: torch.Tensor | None  # mean_i ||grad_x CE_i||_2 (None when gamma = 0)
    correct: torch.Tensor           # correctly classified inputs (of those trained on)


def weight_loss(supernet: nn.Module, weights: ArchWeights, x: torch.Tensor, y: torch.Tensor,
                gamma: float, subset: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(total loss, CE, logits (B, K), mean input-gradient norm or None).
    subset < 1 (robust.gradnorm_subset): the norm's mean over the first ceil(subset * B) examples only,
    from a second forward pass of those (BN on their batch statistics, running statistics untouched)."""
    m = max(2, math.ceil(subset * len(x))) if subset < 1 else len(x)  # BN needs 2 examples
    whole = gamma > 0 and m >= len(x)  # the term on the whole batch: one forward for both
    if whole:
        x = x.detach().clone().requires_grad_(True)
    with differentiable_twice(gamma > 0):  # depthwise convs whose second derivative is cheap (speed only)
        logits = supernet(x, weights).float()  # float32 under bf16 autocast (racl.amp)
        per_example = F.cross_entropy(logits, y, reduction="none")  # (B,)
        ce = per_example.mean()
        if gamma == 0:
            return ce, ce, logits, None
        if whole:
            grad_norm = _input_grad_norm(x, per_example)
        else:
            xs = x[:m].detach().clone().requires_grad_(True)
            with untracked(supernet):
                grad_norm = _input_grad_norm(xs, F.cross_entropy(supernet(xs, weights), y[:m], reduction="none"))
    return ce + gamma * grad_norm, ce, logits, grad_norm


def _input_grad_norm(x: torch.Tensor, per_example: torch.Tensor) -> torch.Tensor:
    """mean_i ||d per_example.sum() / d x_i||_2, differentiable (double backprop)."""
    (gx,) = torch.autograd.grad(per_example.sum(), x, create_graph=True)  # (B, C, H, W)
    return (gx.flatten(1).pow(2).sum(1) + 1e-12).sqrt().mean()  # eps: finite second derivative at 0


def weight_step(supernet: nn.Module, optimizer: torch.optim.Optimizer, weights: ArchWeights,
                x: torch.Tensor, y: torch.Tensor, cfg: RobustConfig, attack: AttackSpec, grad_clip: float,
                gamma: float, rt: Runtime = Runtime(), amp: str = "none") -> WeightStepResult:
    """One SGD step on the supernet weights, without a host-device synchronisation (the caller
    checks that the loss is finite at its logging points, racl.tally).
    gamma: the weight of the input-gradient norm (SearchConfig.gamma: robust.gamma resolved).
    rt: a data-parallel run's process (the gradients are averaged over processes; see Runtime).
    amp: "bf16" runs the attack's and the loss's forward passes under bf16 autocast (racl.amp)."""
    with amps.autocast(amp, x.device):
        x_used = adversarial_inputs(supernet, weights, x, y, cfg, attack)
        optimizer.zero_grad(set_to_none=True)
        loss, ce, logits, grad_norm = weight_loss(supernet, weights, x_used, y, gamma, cfg.gradnorm_subset)
    loss.backward()
    rt.average_gradients(supernet.parameters())  # the mean over processes (one process: nothing to do)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
    optimizer.step()
    return WeightStepResult(loss.detach(), ce.detach(), None if grad_norm is None else grad_norm.detach(),
                            (logits.argmax(1) == y).sum())
