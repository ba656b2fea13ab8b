"""AdvRush (Mok et al., ICCV 2021) in the same framework: first-order DARTS whose architecture loss adds
AdvRush's input-loss-curvature regulariser, as nutellamok/advrush computes it.

Followed: `advrush/regularizer.py` (`loss_cure._find_z`, `loss_cure.regularizer`), `advrush/architect.py`
(`Architect._backward_step`), `advrush/train_search.py` (`train`, the h schedule in `main`). The
architecture loss on a distribution-half batch (x, y), alpha's softmax as the weights w:

    L = CE(f(x; w), y) + a_gamma * cure_lambda * R,     R = mean_i || grad_u [l_i(u + z_i) - l_i(u)] ||_2
    z_i = h * (sign(g_i) + 1e-7) / (||sign(g_i)||_2 + 1e-7),  g_i = grad_u l_i(u)  (z detached)

u the normalised input (AdvRush's data loader normalises, so its h lives there), l_i the per-example
CE of the supernet in eval mode, create_graph so R is differentiated w.r.t. alpha. R is on from epoch
`a_warmup_epochs` (0 in the README's command; the script's default, 50 of 50 epochs, never turns it on);
h = h_schedule[epoch] by the search's epoch, its last value after the list's end. Defaults a_gamma
0.01, cure_lambda 4 (architect.py), h 0, 0.3, ..., 1.5 (train_search.py). The weight step is the
loop's (no regulariser: AdvRush's weight-side one starts at epoch 60 of 60, i.e. never).

The quirks of the original, each decided (docs/rivals.md says more):
- batch: R and the CE see the same architecture batch, as there; that batch is a fresh distribution-
  half batch here, where the original draws `next(iter(valid_queue))` of an unshuffled loader over the
  whole train set, the same first images every step (its comment says a random batch was meant): fixed.
- BN: the CE in train mode (the original calls model.train() before every step), R's passes in eval
  mode (running statistics, which R's passes do not update): reproduced. The original leaves the
  network in eval mode afterwards, so its weight steps run on running statistics from then on: fixed
  (the mode is restored); `quirk_eval_after_reg: true` reproduces it.
- reduction: lambda * sum_i reg_i / B, the mean of the per-example norms: reproduced. The gradient of
  the mean CE with grad_outputs=ones(B) relies on torch 1.2 (AdvRush's version) summing a gradient
  to the output's shape (the engine's `sum_to`; since torch 1.3, pytorch PR #25349, Python refuses the
  call): it is the gradient of B times the mean, i.e. each example's own gradient, as computed here.
- `_find_z`'s backward also accumulates B * grad_alpha CE_eval into alpha's gradient (the alphas are
  plain tensors, which `net.zero_grad()` does not clear), so the original steps on grad_alpha [CE_train
  + B CE_eval + gamma R]: fixed (the paper's loss); `quirk_find_z_grad: true` reproduces it.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from torch import nn

from racl.search.config import SearchConfig
from racl.search.strategies.base import Evaluator
from racl.search.strategies.darts import DartsStrategy
from racl.search_space.base import SearchSpace
from racl.search_space.depthwise import differentiable_twice

Z_EPS = 1e-7  # regularizer.py's guard in z (added to the signs and to their norm)


def cure_direction(grad: torch.Tensor, h: float) -> torch.Tensor:
    """z_i = h (sign(g_i) + 1e-7) / (||sign(g_i)||_2 + 1e-7) per example (loss_cure._find_z). (B, ...)"""
    signs = grad.sign()
    norms = signs.flatten(1).norm(dim=1).view(-1, *([1] * (signs.dim() - 1)))
    return h * (signs + Z_EPS) / (norms + Z_EPS)


class Curvature(NamedTuple):
    value: torch.Tensor   # R = mean_i ||grad_u [l_i(u + z_i) - l_i(u)]||_2, differentiable
    losses: torch.Tensor  # (B,) l_i at x, from the same pass (its graph kept)


def curvature(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, h: float,
              scale: torch.Tensor | float = 1.0) -> Curvature:
    """AdvRush's R before lambda (loss_cure.regularizer) for per-example losses `loss_fn(x)` -> (B,).

    `scale`: the per-channel std of the normalisation u = (x - mean) / std that the model applies
    first, so that z and the gradients are those w.r.t. u, as in AdvRush (whose inputs are normalised):
    sign(grad_u) = sign(grad_x), x moves by scale * z, and grad_u = scale * grad_x."""
    x = x.detach().requires_grad_(True)
    with differentiable_twice():  # depthwise convs whose second derivative is cheap (speed only)
        losses = loss_fn(x)  # (B,)
        # the gradient of the sum is each example's own: exact per example, the passes being in eval mode
        (g0,) = torch.autograd.grad(losses.sum(), x, create_graph=True)
        z = scale * cure_direction(g0.detach(), h)
        (g1,) = torch.autograd.grad(loss_fn(x + z).sum(), x, create_graph=True)
    diff = scale * (g1 - g0)  # grad_u l(u + z) - grad_u l(u)
    return Curvature(diff.flatten(1).norm(dim=1).mean(), losses)


def cure_step(schedule: Sequence[float], epoch: int) -> float:
    """h of `epoch` (train_search.py: h_all[epoch], the schedule's last value after its end)."""
    return float(schedule[min(epoch, len(schedule) - 1)])


class AdvRushStrategy(DartsStrategy):
    """DARTS's alphas, weights, discretisation and optimiser; the architecture loss above."""

    name = "advrush"
    spaces = ("darts",)

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        super().__init__(space, supernet, config, input_shape, evaluator)
        self.register_buffer("epoch", torch.tensor(0))  # the epoch being searched (set by epoch_end)

    def regularising(self) -> bool:
        return self.searched_epoch >= self.config.advrush.a_warmup_epochs

    def arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss the architecture step differentiates, the values it logs)."""
        a = self.config.advrush
        self.supernet.train()  # the CE with batch statistics, as the original's model.train() per step
        weights = self._weights()
        logits = self.network_logits(x, weights)  # (B, K) float32
        ce = F.cross_entropy(logits, y)
        loss, penalty = ce, torch.zeros((), device=ce.device)
        if self.regularising():
            def loss_fn(inputs: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(self.network_logits(inputs, weights), y, reduction="none")

            self.supernet.eval()
            try:
                cur = curvature(loss_fn, x, cure_step(a.h_schedule, self.searched_epoch), self.supernet.normalize.std)
            finally:
                self.supernet.train(not a.quirk_eval_after_reg)
            penalty = a.a_gamma * a.cure_lambda * cur.value
            loss = loss + penalty + (cur.losses.sum() if a.quirk_find_z_grad else 0.0)
        return loss, {"arch_loss": ce.detach(), "arch_correct": (logits.argmax(1) == y).sum(),
                      "penalty": penalty.detach()}

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, torch.Tensor]:
        loss, logged = self.arch_loss(x, y)
        self._arch_update(loss)
        return logged

    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """The point bound (DARTS's), and h of the epoch that ended (None when R was off)."""
        h = cure_step(self.config.advrush.h_schedule, epoch) if arch_phase and self.regularising() else None
        self.epoch.fill_(epoch + 1)
        return {**super().epoch_end(epoch, arch_phase, generator), "cure_h": h}
