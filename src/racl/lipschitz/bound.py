"""LipschitzBound: a supernet's Lipschitz bound, for fixed weights and as a log-normal (section 3).

A search space describes its network's bound as a `BoundLayout` (its `lipschitz` module): the log-
constant buffers (always "log_ops": (cells, E, O), -inf for `none`), the groups of pieces whose constants
fill them, and the propagation through its cells and macro network (racl.lipschitz.propagation).
This module owns what is common: the power iterations (persistent vectors as buffers), `refresh()`,
and the three readings of the bound (`log_bound`, `lognormal`, `lowest_log_bound`).

Per-piece log-constants are constants for the architecture step (no gradient). Power-iteration
estimates converge from below, so a bound computed right after construction with one iteration is
optimistic: refresh with more iterations (BoundConfig.measure_power_iters) when its value matters.
The bound holds no reference to the supernet as a module: its pieces are closures over the supernet's
layers, so its state_dict holds only its own buffers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from racl.errors import RaclError
from racl.lipschitz.linear import Factor, out_shape
from racl.lipschitz.power_iteration import PowerIteration
from racl.lipschitz.propagation import GaussianAlgebra, LowestAlgebra, SampleAlgebra
from racl.models.layers import reference_mode
from racl.search_space.base import ArchWeights, CellTopology, CellWeights

METHODS = ("analytic", "mc", "independent", "delta")


@dataclass
class Group:
    """N constants of one form: `factors` (None: the constant 0, e.g. `none`) on inputs of `in_shape`,
    written to buffer `target` at `index` (N values, reshaped to the indexed part)."""

    target: str
    index: Any
    factors: list[Factor] | None
    n: int
    in_shape: tuple[int, ...]


@dataclass
class BoundLayout:
    """What a space says about its supernet's bound (see the module docstring)."""

    topology: CellTopology
    cell_types: tuple[str, ...]                      # cell type of each row of "log_ops"
    buffers: dict[str, tuple[int, ...]]              # log-constant buffers and their shapes
    groups: list[Group]
    propagate: Callable[[dict[str, torch.Tensor], Any, dict[str, CellWeights]], Any]  # (consts, alg, w)
    parameter: Callable[[], torch.Tensor]            # a supernet parameter: the device and dtype to follow


class LipschitzBound(nn.Module):
    """ln L_F of a supernet: `log_bound(weights)`, `lognormal(dist, method)`; constants by `refresh()`."""

    def __init__(self, layout: BoundLayout, like: torch.Tensor, n_iter: int = 1, seed: int = 0):
        super().__init__()
        self.layout, self.n_iter = layout, n_iter
        self.topology, self.cell_types = layout.topology, layout.cell_types
        gen = torch.Generator().manual_seed(seed)
        self.powers = nn.ModuleDict()
        self._entries: list[tuple[Group, list[tuple[str, Callable]]]] = []
        self._indices: dict[tuple[int, torch.device], Any] = {}  # group.index with its lists as device tensors
        for group in layout.groups:
            self._entries.append((group, self._register(group, gen, like.detach())))
        for name, shape in layout.buffers.items():
            fill = float("-inf") if name == "log_ops" else 0.0  # an op never refreshed (`none`) stays -inf
            self.register_buffer(name, torch.full(shape, fill))
        self.to(like)
        self.refresh(n_iter)

    def _register(self, group: Group, gen: torch.Generator, like: torch.Tensor) -> list[tuple[str, Callable]]:
        """Persistent power-iteration vectors (N, *shape) for each power factor of the group."""
        entries, shape = [], group.in_shape
        for kind, fn in group.factors or []:
            if kind == "power":
                name = f"p{len(self.powers)}"
                self.powers[name] = PowerIteration(shape, group.n, gen)
                entries.append((name, fn))
                shape = out_shape(fn, group.n, shape, like)
            else:
                entries.append(("", fn))
        return entries

    @torch.no_grad()
    def refresh(self, n_iter: int | None = None) -> None:
        """Recompute every log-constant: n_iter power iterations per piece (default self.n_iter)."""
        n = self.n_iter if n_iter is None else n_iter
        p = self.layout.parameter()
        if self.log_ops.device != p.device or self.log_ops.dtype != p.dtype:
            self.to(p)  # the supernet was moved or cast after the bound was built
        for group, entries in self._entries:
            if group.factors is None:
                continue
            buf = getattr(self, group.target)
            total = buf.new_zeros(group.n)
            for name, fn in entries:
                value = self.powers[name].step(fn, n) if name else fn()
                total = total + value.detach().to(total).reshape(-1)
            index = self._device_index(group, buf.device)
            buf[index] = total.reshape(buf[index].shape)

    def _device_index(self, group: Group, device: torch.device) -> Any:
        """group.index with every list made a tensor on `device`, once (indexing with a Python list
        copies a new index tensor to the device at every refresh)."""
        key = (id(group), device)
        if key not in self._indices:
            index = group.index if isinstance(group.index, tuple) else (group.index,)
            self._indices[key] = tuple(torch.tensor(i, device=device) if isinstance(i, list) else i for i in index)
        return self._indices[key]

    def constants(self, like: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The log-constants by buffer name, on like's device and dtype when given."""
        return {k: getattr(self, k) if like is None else getattr(self, k).to(like) for k in self.layout.buffers}

    @property
    def log_op_constants(self) -> torch.Tensor:
        return self.log_ops  # (cells, E, O)

    def log_bound(self, weights: ArchWeights) -> torch.Tensor:
        """ln L_F for fixed positive weights (zero weights drop out). 0-dim tensor."""
        logs = {t: CellWeights(w.alpha.log().unsqueeze(0), w.beta.log().unsqueeze(0)) for t, w in weights.items()}
        like = next(iter(logs.values())).alpha
        return self.layout.propagate(self.constants(like), SampleAlgebra(1), logs)[0]

    def sample_log_bounds(self, logs: ArchWeights) -> torch.Tensor:
        """ln L_F per sample of log-weights (alpha (S, E, O), beta (S, E) per cell type). (S,)"""
        like = next(iter(logs.values())).alpha
        return self.layout.propagate(self.constants(like), SampleAlgebra(like.shape[0]), logs)

    def lowest_log_bound(self) -> torch.Tensor:
        """ln of the lowest bound normalised weights can reach, minimised per cell; 0-dim."""
        return self.layout.propagate(self.constants(), LowestAlgebra(self.topology), {})

    def lognormal(self, dist: nn.Module, method: str = "analytic", samples: int = 256,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_F, sigma_F) of ln L_F ~ N(mu_F, sigma_F^2), differentiable w.r.t. dist's parameters.

        "analytic": Fenton-Wilkinson with correlations (Gaussian loadings on the distribution's noise,
        see distributions/lognormal.py), in float64; with dist.normalize the normalised weights come
        from the delta method. "mc": mean and std of ln L_F over `samples` reparameterised samples
        (exact per sample, vectorised). "independent": FW ignoring all correlations (every term
        treated as independent; only for comparison: it underestimates sigma_F several-fold).
        "delta": as "analytic" but each sum by the second-order log-space delta method instead of FW:
        measured far closer to "mc" once per-weight log-stds exceed ~0.5 (FW then drives mu_F far
        too low, so a constraint on it could be met by inflating sigma), see lognormal.py.
        """
        if method not in METHODS:
            raise RaclError(f"bound method must be one of {', '.join(METHODS)}, got {method!r}")
        if dist.topology != self.topology:
            raise RaclError("the distribution's cell topology does not match the supernet's")
        if method == "mc":
            if samples < 2:
                raise RaclError(f"the Monte-Carlo bound needs at least 2 samples, got {samples}")
            log_f = self.sample_log_bounds(dist.sample_log(samples, generator))
            return log_f.mean(), log_f.std()
        lse = "delta" if method == "delta" else "fw"
        g = {t: CellWeights(*(x.to(torch.float64) for x in (w.alpha, w.beta)))
             for t, w in dist.log_gaussians(lse).items()}
        if method == "independent":
            g = {t: CellWeights(w.alpha.independent(), w.beta.independent()) for t, w in g.items()}
        first = next(iter(g.values())).alpha
        out = self.layout.propagate(self.constants(), GaussianAlgebra(first.b.shape[-1], first.m, lse), g)
        dtype = dist.dtype
        return out.m.to(dtype), out.var.clamp_min(1e-30).sqrt().to(dtype)


def record_shapes(supernet: nn.Module, input_shape: Sequence[int], run: Callable[[torch.Tensor], None]
                  ) -> dict[nn.Module, tuple[int, ...]]:
    """Input shape (without batch) of every submodule that `run(x)` calls as a module, for one zero
    image, in eval mode, reference formulation and without gradients (running statistics untouched)."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def hook(module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            shapes.setdefault(module, tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(hook) for m in supernet.modules()]
    was_training = supernet.training
    try:
        supernet.eval()
        with torch.no_grad(), reference_mode(supernet):
            run(next(supernet.parameters()).new_zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        supernet.train(was_training)
    return shapes
