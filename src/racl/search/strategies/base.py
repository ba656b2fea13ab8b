"""What every search strategy provides to the loop (NASLib-style: space apart from strategy).

The loop owns the supernet, the data and the weight steps; a strategy owns where the architecture
weights come from: `sample_weights` for a weight step, `arch_step` on a batch of the distribution
half, `epoch_end` (dual updates, candidate evaluation, bound metrics) and `genotype()`. Everything a
strategy needs comes through its constructor (supernet, config, input shape, evaluator). A strategy
is an nn.Module and its `state_dict()` is complete: parameters and buffers, plus (as the module's
extra state) the optimiser's state dict and the Lipschitz bound's own buffers (power-iteration
vectors, constants). The shared supernet is referenced, not registered: the loop saves it once.
Register a new strategy in racl/search/registry.py.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from racl.distributed import Runtime
from racl.errors import RaclError
from racl.lipschitz import LipschitzBound
from racl.search.config import SearchConfig
from racl.search.discretize import genotype_to_weights
from racl.search_space.genotype import Genotype
from racl.supernet import ArchWeights, Supernet

Evaluator = Callable[[ArchWeights], float]  # weights -> accuracy on a fixed set of distribution-half images
BOUND_FIELDS = ("mu_F", "sigma_F", "prob_within_bound", "constraint_g", "dual_nu", "rho", "ln_lbar",
                "ln_l_ref", "ln_l_min", "ln_l_genotype", "constraint_regime")


def make_bound(supernet: Supernet, input_shape: tuple[int, int, int], config: SearchConfig) -> LipschitzBound:
    """LipschitzBound(supernet, input_shape) as `config.bound` says (BN counted or not)."""
    b = config.bound
    return LipschitzBound(supernet, input_shape, n_iter=b.power_iters, count_bn=b.bn == "eval")


class SearchStrategy(nn.Module):
    """Base class; subclasses override the methods that raise NotImplementedError."""

    name = "base"
    runtime = Runtime()  # a data-parallel run's process (build_strategy sets it); one process by default
    has_arch_step = True  # False: the loop draws no distribution-half batches (random search)

    def __init__(self, supernet: Supernet, config: SearchConfig, input_shape: tuple[int, int, int],
                 evaluator: Evaluator | None = None):
        super().__init__()
        object.__setattr__(self, "supernet", supernet)  # referenced, not a submodule (saved by the loop)
        self.config = config
        self.input_shape = input_shape
        self.evaluator = evaluator  # weights -> accuracy on distribution-half images (used by `random`)
        self.optimizer: torch.optim.Optimizer | None = None
        object.__setattr__(self, "bound", None)  # LipschitzBound or None; see attach_bound

    def attach_bound(self, bound: nn.Module | None) -> None:
        """Keep the bound out of the submodules: it references the supernet, which the loop saves;
        its own buffers (power-iteration vectors, op constants) are saved in the extra state."""
        if bound is not None:
            bound.to(next(self.supernet.parameters()).device)
        object.__setattr__(self, "bound", bound)

    # ------------------------------------------------------------ the interface
    def arch_parameters(self) -> list[nn.Parameter]:
        return []

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        """Architecture weights for one weight step (no gradient to the architecture parameters)."""
        raise NotImplementedError

    def eval_weights(self) -> ArchWeights:
        """A deterministic point of the architecture weights (for val_acc and the point bound)."""
        raise NotImplementedError

    def start_arch_phase(self) -> None:
        """Called once, before the first architecture step (after the warm-up)."""

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, float]:
        """One update of the architecture parameters on a distribution-half batch; logged values."""
        return {}

    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """End-of-epoch work; returns the bound fields of the metrics (see BOUND_FIELDS)."""
        return self.point_bound_metrics()

    def genotype(self) -> Genotype:
        raise NotImplementedError

    # ------------------------------------------------------------ shared helpers
    def _arch_update(self, loss: torch.Tensor) -> None:
        """Gradients of `loss` w.r.t. the architecture parameters only (no weight gradients), then Adam."""
        params = self.arch_parameters()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        self.runtime.average_gradients(params)  # the mean over processes (one process: nothing to do)
        self._decay()
        self.optimizer.step()

    def _decay(self) -> None:
        """Weight decay outside Adam's coupled one (see _make_optimizer); none by default."""

    def _make_optimizer(self, coupled_decay: bool = True) -> None:
        """Adam on arch_parameters(); with coupled_decay, Adam's weight decay (towards 0) is arch_wd."""
        o = self.config.optim
        self.optimizer = torch.optim.Adam(self.arch_parameters(), lr=o.arch_lr, betas=tuple(o.arch_betas),
                                          weight_decay=o.arch_wd if coupled_decay else 0.0)

    @torch.no_grad()
    def point_bound_metrics(self) -> dict[str, Any]:
        """For point-weight strategies: mu_F = ln L_F at eval_weights(), sigma_F = 0, the rest null."""
        out: dict[str, Any] = dict.fromkeys(BOUND_FIELDS)
        if self.bound is not None:
            self.bound.refresh(n_iter=self.config.bound.measure_power_iters)
            out["mu_F"] = float(self.bound.log_bound(self.eval_weights()))
            out["sigma_F"] = 0.0
            out["ln_l_genotype"] = self.genotype_log_bound()
            out["ln_lambda_by_op"] = self.op_constant_summary()
        return out

    @torch.no_grad()
    def genotype_log_bound(self) -> float:
        """ln L of the current genotype's own network (0/1 weights) under the current constants."""
        w = genotype_to_weights(self.genotype(), self.supernet.num_ops, next(self.supernet.parameters()).device)
        return float(self.bound.log_bound(ArchWeights(*(w[k] for k in ArchWeights._fields))))

    @torch.no_grad()
    def op_constant_summary(self) -> dict[str, float]:
        """Mean ln lambda per primitive over the normal cells' edges (stride 1), `none` left out."""
        normal = [k for k, c in enumerate(self.supernet.cells) if not c.reduction]
        logs = self.bound.log_op_constants[normal]  # (cells, E, O)
        names = self.supernet.cells[0].ops[0].primitives
        return {name: round(float(logs[:, :, o].mean()), 3) for o, name in enumerate(names) if name != "none"}

    # ------------------------------------------------------------ resumable state
    def _bound_buffers(self) -> dict[str, torch.Tensor]:
        """The bound's own buffers (the supernet's, which it references, are left out)."""
        if self.bound is None:
            return {}
        shared = {id(t) for t in self.supernet.state_dict(keep_vars=True).values()}
        return {k: v.detach() for k, v in self.bound.state_dict(keep_vars=True).items() if id(v) not in shared}

    def get_extra_state(self) -> dict[str, Any]:
        """Part of state_dict(): the optimiser's state dict and the bound's buffers."""
        return {"optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "bound": self._bound_buffers()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.bound is not None and state.get("bound"):
            result = self.bound.load_state_dict(state["bound"], strict=False)
            if result.unexpected_keys:
                raise RaclError(f"checkpoint's Lipschitz state does not match: {result.unexpected_keys[:3]}")

    def synced_tensors(self) -> list[torch.Tensor]:
        """What must be identical on every rank (torchrun): parameters, buffers, the bound's buffers."""
        return [*(v for v in self.state_dict(keep_vars=False).values() if isinstance(v, torch.Tensor)),
                *self._bound_buffers().values()]
