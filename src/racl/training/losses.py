"""Adversarial training objectives: one function per method, all `(model, x, y) -> StepOutput`.

- pgd (Madry et al., 2018, eq. 2.1): min_theta E max_{||d|| <= eps} CE(f(x + d), y), the inner max
  approximated by PGD-`steps` with a random start.
- trades (Zhang et al., 2019, eq. 5): CE(f(x), y) + beta KL(f(x) || f(x')), x' maximising the KL term.
- fgsm_rs (Wong et al., 2020): Madry's objective with one FGSM step of alpha = 1.25 eps from a uniform
  random start ("fast is better than free").
- none: standard training, CE(f(x), y).
The DARTS auxiliary head, when present, adds aux_weight * CE(aux(x_train), y) on the same inputs the
main loss sees (adversarial for pgd/fgsm_rs, clean for trades/none).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from racl.attacks import PGD
from racl.training.config import TrainConfig


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, to minimise
    clean_logits: torch.Tensor  # (B, K), for the clean training accuracy
    adv_logits: torch.Tensor | None  # (B, K), None when training is not adversarial


Objective = Callable[[torch.Tensor, torch.Tensor], StepOutput]


class TradesAttack(PGD):
    """TRADES's inner maximisation: PGD steps on KL(f(x) || f(x')) from x + 0.001 N(0, I).

    Reuses PGD's step and projection; only the loss (KL to the clean prediction, not CE to the
    label) and the start (a tiny Gaussian: the KL gradient vanishes at x' = x) differ.
    """

    name = "trades"

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            p_clean = F.softmax(self.logits(images).float(), dim=1)  # (B, K)
        self._loss_fn = lambda logits, _: kl_per_example(logits, p_clean)
        return self.run_once(images, labels)

    def random_init(self, images: torch.Tensor) -> torch.Tensor:
        return (images + 0.001 * torch.randn_like(images)).clamp(0, 1)


def kl_per_example(logits: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || softmax(logits)) per example, (B,)."""
    return F.kl_div(F.log_softmax(logits.float(), dim=1), p_clean.float(), reduction="none").sum(dim=1)


def forward_with_aux(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE + aux_weight * CE_aux, logits); the aux term only when the model returns aux logits."""
    logits, aux = model(x, with_aux=True)
    logits = logits.float()  # the cross-entropy in float32 under bf16 autocast (racl.amp)
    loss = F.cross_entropy(logits, y)
    if aux is not None and aux_weight > 0:
        loss = loss + aux_weight * F.cross_entropy(aux.float(), y)
    return loss, logits


def eval_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits in eval mode without gradients or BN-statistics updates, mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


def make_objective(model: nn.Module, config: TrainConfig, forward_model: nn.Module | None = None) -> Objective:
    """The training objective for `config.objective.adv` (config must be `resolved()`), its inner
    maximisation the config's `attack` (racl.attacks.AttackSpec).

    `forward_model`: what the trained forward passes go through (a DistributedDataParallel wrapper of
    `model`, racl.distributed); attacks and the clean-accuracy forward always use `model` itself.
    """
    o, a, fwd = config.objective, config.attack, model if forward_model is None else forward_model
    aux_weight = config.network.aux_weight
    if o.adv == "none":
        return lambda x, y: _standard(fwd, x, y, aux_weight)
    if o.adv == "trades":
        attack = TradesAttack(model, a.eps, alpha=a.step_size(), steps=a.steps, norm=a.norm, model_mode=o.attack_mode)
        attack.check_range = False  # the loader's batches are in [0, 1] (no synchronising check per step)
        return lambda x, y: _trades(fwd, attack, x, y, o.trades_beta, aux_weight)
    attack = a.attack(model, o.adv, model_mode=o.attack_mode)  # pgd | fgsm_rs
    attack.check_range = False
    return lambda x, y: _madry(model, attack, x, y, aux_weight, fwd)


def _standard(model: nn.Module, x: torch.Tensor, y: torch.Tensor, aux_weight: float) -> StepOutput:
    loss, logits = forward_with_aux(model, x, y, aux_weight)
    return StepOutput(loss, logits.detach(), None)


def _madry(model: nn.Module, attack: Callable, x: torch.Tensor, y: torch.Tensor,
           aux_weight: float, fwd: nn.Module | None = None) -> StepOutput:
    """Train on the attack's examples only; clean accuracy from an eval-mode forward (no side effects)."""
    clean_logits = eval_logits(model, x)
    x_adv = attack(x, y)  # (B, C, H, W), within eps of x
    loss, adv_logits = forward_with_aux(model if fwd is None else fwd, x_adv, y, aux_weight)
    return StepOutput(loss, clean_logits, adv_logits.detach())


def _trades(model: nn.Module, attack: TradesAttack, x: torch.Tensor, y: torch.Tensor, beta: float,
            aux_weight: float) -> StepOutput:
    """CE on clean inputs + beta * batch-mean KL(f(x) || f(x')) (TRADES eq. 5)."""
    x_adv = attack(x, y)
    natural, logits = forward_with_aux(model, x, y, aux_weight)
    adv_logits = model(x_adv)
    robust = kl_per_example(adv_logits, F.softmax(logits.float(), dim=1)).mean()
    return StepOutput(natural + beta * robust, logits.detach(), adv_logits.detach())
