"""RACL: log-normal architecture distributions under a confidence constraint on the Lipschitz bound.

Architecture step (method.md sections 4-5; first-order, no unrolling), on a distribution-half batch:
    w ~ q_theta (fresh reparameterised sample)
    loss = CE(f(x; w), y) + nu * g + (rho / 2) * max(0, g)^2,
    g = mu_F + Phi^-1(eta) sigma_F - ln L_bar,  (mu_F, sigma_F) = LipschitzBound.lognormal(q_theta)
Adam on theta only, its weight decay pulling theta towards the initial distribution
(`distribution.decay_to`). The per-op Lipschitz constants are constants here, refreshed (base.py,
`refresh_bound`) every `lipschitz_refresh_every` global steps, at the start of every search epoch
and at each epoch's end for the metrics. L_bar (`constraint.lbar_mode`): `reference` (default) re-derives
ln L_bar = ln L_ref - ln k at every refresh, L_ref the bound of the uniform start under the current
constants; `initial` sets it once from the bound when the architecture updates start; `absolute`.
Metrics also say which regime the constraint is in: `inactive` (nu = 0, g <= 0), `active` (nu > 0),
or `unreachable` (even the lowest bound any normalised weights can give lies above L_bar).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from torch import nn

from racl.distributions import ArchDistribution
from racl.distributions.arch import edge_products
from racl.search.config import SearchConfig
from racl.search.constraint import ConfidenceConstraint
from racl.search.discretize import decision_margins, discretize
from racl.search.strategies.base import Evaluator, SearchStrategy
from racl.search_space.base import ArchWeights, SearchSpace


class RaclStrategy(SearchStrategy):
    name = "racl"

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        super().__init__(space, supernet, config, input_shape, evaluator)
        d, c = config.distribution, config.constraint
        self.dist = ArchDistribution(self.topology, cov=d.cov, init_sigma=d.init_sigma, normalize=d.normalize)
        self.constraint = ConfidenceConstraint(c.eta, c.rho, c.nu0)
        self.with_bound()
        self.to(self.device)
        self._make_optimizer(coupled_decay=d.decay_to == "zero")

    def _decay(self) -> None:
        if self.config.distribution.decay_to == "init":
            self.dist.decay_gradients(self.config.optim.arch_wd)

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        """The distributions' parameters (only the means with `learn_sigma: false`)."""
        if self.config.distribution.learn_sigma:
            return list(self.dist.parameters())
        return [p for name, p in self.dist.named_parameters() if name.endswith("_mu")]

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        with torch.no_grad():
            return self.dist.sample(generator)

    def eval_weights(self) -> ArchWeights:
        """E[alpha], E[beta] (the distribution's mean point)."""
        return self.dist.scores("mean")

    def lognormal(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_F, sigma_F) of ln L_F, differentiable w.r.t. the distribution parameters."""
        b = self.config.bound
        return self.bound.lognormal(self.dist, method=b.bound_method, samples=b.mc_samples, generator=generator)

    @torch.no_grad()
    def bound_refreshed(self) -> None:
        """In reference mode, re-derive ln L_bar under the refreshed constants."""
        c = self.config.constraint
        if c.lbar_mode == "reference" and self.constraint.is_set:  # a tensor: no host sync in a step
            self.constraint.set_log_lbar(self.bound.log_bound(self.dist.reference_weights()) - math.log(c.lbar))

    def reference_log_bound(self) -> float:
        """ln L_ref: the bound of the uniform start (reference_weights) under the current constants."""
        return float(self.bound.log_bound(self.dist.reference_weights()))

    @torch.no_grad()
    def start_arch_phase(self) -> None:
        """Refresh the per-op constants (`measure_power_iters` iterations, so the bound is measured
        accurately); the first time, set ln L_bar as `lbar_mode` says."""
        c = self.config.constraint
        self.refresh_bound(measure=True)  # re-derives a set reference threshold
        if self.constraint.is_set:
            return
        if c.lbar_mode == "absolute":
            self.constraint.set_log_lbar(math.log(c.lbar))
        elif c.lbar_mode == "reference":
            self.constraint.set_log_lbar(self.reference_log_bound() - math.log(c.lbar))
        else:
            mu, sigma = self.lognormal(self._fixed_generator())
            self.constraint.set_relative(float(mu), float(sigma), c.lbar)

    def _fixed_generator(self) -> torch.Generator:
        """A generator for Monte-Carlo bounds that must not disturb the run's sampling stream."""
        return torch.Generator(device=self.device).manual_seed(self.config.seed)

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, torch.Tensor]:
        if global_step % self.config.bound.lipschitz_refresh_every == 0:
            self.refresh_bound(measure=False)
        logits = self.network_logits(x, self.dist.sample(generator))  # (B, K) float32
        ce = F.cross_entropy(logits, y)
        mu, sigma = self.lognormal(generator)
        penalty = self.constraint.penalty(mu, sigma)
        loss = ce + penalty.to(ce.dtype)
        self._arch_update(loss)
        return {"arch_loss": ce.detach(), "arch_correct": (logits.argmax(1) == y).sum(), "penalty": penalty.detach()}

    @torch.no_grad()
    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """Refresh, measure (mu_F, sigma_F, g, Pr, the reference, lowest and genotype bounds, the
        regime); per-epoch dual update in the architecture phase."""
        self.refresh_bound(measure=True)
        mu, sigma = (float(v) for v in self.lognormal(self._fixed_generator()))
        lowest = float(self.bound.lowest_log_bound()) if self.dist.normalize else None
        out: dict[str, Any] = {"mu_F": mu, "sigma_F": sigma, "prob_within_bound": None, "constraint_g": None,
                               "dual_nu": float(self.constraint.nu), "rho": float(self.constraint.rho),
                               "ln_lbar": None, "ln_l_ref": self.reference_log_bound(), "ln_l_min": lowest,
                               "ln_l_genotype": self.genotype_log_bound(), "constraint_regime": None}
        if self.constraint.is_set:
            mu_t, sigma_t = torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
            g = float(self.constraint.g(mu_t, sigma_t))
            if arch_phase:
                self.constraint.dual_update(g)
            ln_lbar = float(self.constraint.log_lbar)
            regime = ("unreachable" if lowest is not None and lowest > ln_lbar
                      else "active" if float(self.constraint.nu) > 0 else "inactive")
            out.update(constraint_g=g, prob_within_bound=float(self.constraint.prob_within_bound(mu_t, sigma_t)),
                       dual_nu=float(self.constraint.nu), rho=float(self.constraint.rho), ln_lbar=ln_lbar,
                       constraint_regime=regime)
        out["decision_margins"] = self.decision_margins()
        out["ln_lambda_by_op"] = self.op_constant_summary()
        return out

    def decision_margins(self) -> dict[str, dict[str, list[float]]]:
        """Per cell type, how decided each choice of the genotype is (see discretize.decision_margins)."""
        with torch.no_grad():
            g = self.dist.log_gaussians()
        selection, kind, eta = self.selection(), self.config.distribution.discretize, self.config.constraint.eta
        return {t: decision_margins(w.alpha, edge_products(w.alpha, w.beta), selection[t], self.topology, kind, eta)
                for t, w in g.items()}

    def selection(self):
        """The discrete choice: the scores' op per edge, and per node the edges of largest product score."""
        d, eta = self.config.distribution, self.config.constraint.eta
        alpha = {t: w.alpha for t, w in self.dist.scores(d.discretize, eta).items()}
        return discretize(alpha, self.dist.edge_scores(d.discretize, eta), self.topology, seed=self.config.seed)

    def genotype(self):
        return self.space.genotype(self.selection())
