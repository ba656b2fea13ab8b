"""`AttackSpec`: one frozen description of an Lp-bounded attack, used wherever racl attacks a model.

The training objective (racl.training.losses), robust validation (racl.training.validate), the
search's weight step and `racl evaluate`'s PGD all mean the same thing by (norm, eps, alpha, steps,
random start, loss): PGD-`steps` from a uniform random start in the eps ball, step `alpha` (None:
`default_step_size(eps)` = eps / 4, the one default rule), maximising `loss` (ce | margin).
In a config file it is the `attack:` section: `attack: {eps: 8/255, steps: 7}`.

Adversarial *training* (racl train's objective, the search's weight step) names a method as well:
`pgd` (this spec's PGD) or `fgsm_rs` (one FGSM step from a random start, Wong et al., whose step
default is 1.25 eps); `spec.resolved(method)` fills alpha by that rule and `spec.attack(model, method)`
builds the attack, so both callers share them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from racl.attacks.base import LOSSES, Attack
from racl.attacks.eps import default_step_size
from racl.attacks.fgsm import FGSM, FGSM_RS_STEP
from racl.attacks.pgd import NORMS, PGD
from racl.errors import RaclError

TRAINING_ATTACKS = ("pgd", "fgsm_rs")  # the methods `attack` builds (TRADES's own attack: racl.training.losses)


@dataclass(frozen=True)
class AttackSpec:
    norm: str = "linf"          # linf | l2
    eps: float = 8 / 255        # budget, pixel scale ([0, 1] images)
    alpha: float | None = None  # step size; None = eps / 4 (default_step_size)
    steps: int = 7              # PGD iterations
    random_start: bool = True   # uniform start in the eps ball (Madry et al.)
    loss: str = "ce"            # ce (cross-entropy) | margin (CW-inf)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise RaclError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.loss not in LOSSES:
            raise RaclError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 0 <= self.eps <= 1:
            raise RaclError(f"eps must be in [0, 1] (pixel scale; e.g. 8/255), got {self.eps}")
        if self.alpha is not None and not 0 < self.alpha <= 1:
            raise RaclError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.steps < 1:
            raise RaclError(f"steps must be >= 1, got {self.steps}")

    def step_size(self) -> float:
        return default_step_size(self.eps) if self.alpha is None else self.alpha

    def resolved(self, method: str = "pgd") -> "AttackSpec":
        """This spec with alpha filled in for `method`: eps / 4 (the one rule) or FGSM_RS_STEP * eps (fgsm_rs)."""
        if self.alpha is not None or self.eps == 0:
            return self
        alpha = FGSM_RS_STEP * self.eps if method == "fgsm_rs" else self.step_size()
        return replace(self, alpha=min(alpha, 1.0))

    def attack(self, model: nn.Module, method: str = "pgd", model_mode: str = "eval") -> Attack:
        """`method`'s attack on `model` (pgd: `self.pgd`; fgsm_rs: FGSM from a random start)."""
        if method not in TRAINING_ATTACKS:
            raise RaclError(f"method must be one of {', '.join(TRAINING_ATTACKS)}, got {method!r}")
        spec = self.resolved(method)
        if method == "fgsm_rs":
            return FGSM(model, spec.eps, alpha=spec.alpha, random_start=spec.random_start, model_mode=model_mode)
        return spec.pgd(model, model_mode)

    def pgd(self, model: nn.Module, model_mode: str = "eval") -> PGD:
        """The attack itself, on `model`, crafting in `model_mode` (train: BN batch statistics)."""
        return PGD(model, self.eps, alpha=self.step_size(), steps=self.steps, random_start=self.random_start,
                   norm=self.norm, loss=self.loss, model_mode=model_mode)
