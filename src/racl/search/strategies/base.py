"""What every search strategy provides to the loop (NASLib-style: space apart from strategy).

A strategy owns the supernet (a registered submodule) and where its architecture weights come from:
`sample_weights` for a weight step, `arch_step` on a batch of the distribution half, `epoch_end`
(dual updates, candidate evaluation, bound metrics) and `genotype()`. The loop owns the data, the
weight optimiser and the schedule. Everything a strategy needs comes through its constructor (space,
supernet, config, input shape, evaluator); `state_dict()` holds all of its state (supernet weights
and BN statistics, architecture parameters, the Lipschitz bound's buffers); the architecture
optimiser's state is saved by the loop beside it (`optimizer.state_dict()`).

The Lipschitz bound's constants are refreshed in one place, `refresh_bound`: with one power
iteration (`STEP_POWER_ITERS`, on persistent vectors) every `bound.lipschitz_refresh_every` steps (the constants the
architecture steps use), and with `bound.measure_power_iters` wherever a value is read (the start of
the architecture phase, each epoch's end). Strategies say which search spaces they support
(`spaces`); a new one is one module plus one line in racl/search/registry.py.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from racl import amp
from racl.distributed import Runtime
from racl.errors import RaclError
from racl.search.config import SearchConfig
from racl.search.discretize import selection_weights
from racl.search_space.base import ArchWeights, SearchSpace

STEP_POWER_ITERS = 1  # power iterations of the refreshes between architecture steps (no measurement)
Evaluator = Callable[[ArchWeights], float]  # weights -> accuracy on a fixed set of distribution-half images
BOUND_FIELDS = ("mu_F", "sigma_F", "prob_within_bound", "constraint_g", "dual_nu", "rho", "ln_lbar",
                "ln_l_ref", "ln_l_min", "ln_l_genotype", "constraint_regime")


class SearchStrategy(nn.Module):
    """Base class; subclasses override the methods that raise NotImplementedError."""

    name = "base"
    spaces: tuple[str, ...] | None = None  # the search spaces this strategy supports (None: every space)
    runtime = Runtime()  # a data-parallel run's process (build_strategy sets it); one process by default
    has_arch_step = True  # False: the loop draws no distribution-half batches (random search)
    samples_on_host = False  # True: sample_weights draws on the host (a CPU generator: no device sync)

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        super().__init__()
        if self.spaces is not None and space.name not in self.spaces:
            raise RaclError(f"the {self.name} strategy does not support the {space.name} space "
                            f"(it supports: {', '.join(self.spaces)})")
        self.space = space
        self.supernet = supernet
        self.topology = supernet.topology
        self.config = config
        self.input_shape = input_shape
        self.evaluator = evaluator  # weights -> accuracy on distribution-half images (used by `random`)
        self.optimizer: torch.optim.Optimizer | None = None
        self.bound: nn.Module | None = None  # set by with_bound (a registered submodule)

    @classmethod
    def supernet_options(cls, config: SearchConfig) -> dict[str, Any]:
        """Extra arguments of the space's `supernet(...)` this strategy needs (PC-DARTS: partial channels)."""
        return {}

    def with_bound(self) -> None:
        """Build the supernet's Lipschitz bound as `config.bound` says (BN counted or not)."""
        b = self.config.bound
        self.bound = self.space.bound(self.supernet, self.input_shape, n_iter=STEP_POWER_ITERS,
                                      count_bn=b.bn == "eval")

    @property
    def device(self) -> torch.device:
        return next(self.supernet.parameters()).device

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
        """Called at the start of every epoch of the architecture phase, before its first step."""

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, torch.Tensor]:
        """One update of the architecture parameters on a distribution-half batch, without a host-device
        synchronisation; the logged values as 0-dim tensors: arch_loss (the CE), arch_correct, and
        penalty where there is one (the loop checks that arch_loss + penalty is finite, racl.tally)."""
        return {}

    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """End-of-epoch work; returns the bound fields of the metrics (see BOUND_FIELDS)."""
        return self.point_bound_metrics()

    def genotype(self) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------ shared helpers
    @property
    def searched_epoch(self) -> int:
        """The `epoch` buffer (AdvRush, GDAS) as an int, read from the tensor only when it changed (its
        version counter, host metadata): once per epoch, not in every step (no device sync in a step)."""
        t = self.epoch
        key = (id(t), t._version)
        if getattr(self, "_epoch_key", None) != key:
            self._epoch_key, self._epoch_value = key, int(t)
        return self._epoch_value

    def network_logits(self, x: torch.Tensor, weights: ArchWeights) -> torch.Tensor:
        """supernet(x, weights) under the run's autocast (optim.amp, racl.amp), as float32 logits."""
        with amp.autocast(self.config.optim.amp, x.device):
            return self.supernet(x, weights).float()

    @torch.no_grad()
    def refresh_bound(self, measure: bool) -> None:
        """The one place the bound's constants are refreshed (see the module docstring)."""
        if self.bound is not None:
            b = self.config.bound
            with amp.full_precision(self.device):  # never bf16 constants, whatever the caller's autocast
                self.bound.refresh(n_iter=b.measure_power_iters if measure else STEP_POWER_ITERS)
            self.bound_refreshed()

    def bound_refreshed(self) -> None:
        """Called after every refresh (racl re-derives its reference threshold here)."""

    def _arch_update(self, loss: torch.Tensor) -> None:
        """Gradients of `loss` w.r.t. the architecture parameters only (no weight gradients), then Adam."""
        params = self.arch_parameters()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads, strict=True):
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

    def genotype_weights(self, genotype: Any) -> ArchWeights:
        """A genotype as 0/1 weights on this supernet (a single path; only its ops are computed)."""
        return selection_weights(self.space.selection(genotype), self.topology, self.device)

    @torch.no_grad()
    def point_bound_metrics(self) -> dict[str, Any]:
        """For point-weight strategies: mu_F = ln L_F at eval_weights(), sigma_F = 0, the rest null."""
        out: dict[str, Any] = dict.fromkeys(BOUND_FIELDS)
        if self.bound is not None:
            self.refresh_bound(measure=True)
            out["mu_F"] = float(self.bound.log_bound(self.eval_weights()))
            out["sigma_F"] = 0.0
            out["ln_l_genotype"] = self.genotype_log_bound()
            out["ln_lambda_by_op"] = self.op_constant_summary()
        return out

    @torch.no_grad()
    def genotype_log_bound(self) -> float:
        """ln L of the current genotype's own network (0/1 weights) under the current constants."""
        return float(self.bound.log_bound(self.genotype_weights(self.genotype())))

    @torch.no_grad()
    def op_constant_summary(self) -> dict[str, float]:
        """Mean ln lambda per primitive over the first cell type's cells, `none` left out."""
        first = self.topology.cell_types[0]
        rows = [k for k, t in enumerate(self.bound.cell_types) if t == first]
        logs = self.bound.log_op_constants[rows]  # (cells, E, O)
        return {name: round(float(logs[:, :, o].mean()), 3) for o, name in enumerate(self.topology.primitives)
                if name != "none"}

    def synced_tensors(self) -> list[torch.Tensor]:
        """What must be identical on every rank (torchrun): every parameter and buffer of the strategy
        (the supernet's, the architecture parameters, the bound's power-iteration vectors and constants)."""
        return [v for v in self.state_dict().values() if isinstance(v, torch.Tensor)]
