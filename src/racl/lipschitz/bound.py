"""LipschitzBound: the supernet's Lipschitz bound, for fixed weights and as a log-normal (section 3).

Per-piece log-constants are constants for the architecture step (no gradient); `refresh()` updates
them (power iteration, persistent vectors as buffers). Power-iteration estimates are lower bounds of
the true spectral norms that converge from below, so a bound computed right after construction with
one iteration is optimistic: call `refresh(n_iter=50)` (or more) when an accurate value matters.
The supernet is referenced, not registered: this module's state_dict holds only its own buffers.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.distributions.arch import ArchDistribution
from racl.errors import RaclError
from racl.lipschitz.op_constants import (Factor, head_log_constant, op_factors, out_shape,
                                         preprocess_linear, stem_linear)
from racl.lipschitz.power_iteration import PowerIteration
from racl.lipschitz.propagation import (Graph, LogConstants, lowest_log_bound, propagate_gaussian,
                                       propagate_samples)
from racl.search_space.ops import Zero
from racl.supernet.network import ArchWeights, Supernet

METHODS = ("analytic", "mc", "independent", "delta")


def record_input_shapes(net: Supernet, input_shape: Sequence[int]) -> dict[nn.Module, tuple[int, ...]]:
    """Input shape (without batch) of the stem, every preprocess, every MixedOp and the pooling.

    A shape pass along the supernet's wiring (s_{-2} = s_{-1} = stem output; inputs of cell k are
    s_{k-2}, s_{k-1}), calling only the stem and the preprocessings, in eval mode on one zero image,
    so it holds whichever cell forward (plain or fast) the network uses."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    p = next(net.parameters())
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            x = net.normalize(p.new_zeros(1, *input_shape))
            shapes[net.stem] = tuple(x.shape[1:])
            s0 = s1 = net.stem(x)
            for cell in net.cells:
                shapes[cell.preprocess0], shapes[cell.preprocess1] = tuple(s0.shape[1:]), tuple(s1.shape[1:])
                h = cell.preprocess1(s1)                       # (1, C, H, W), the shape of h0 too
                node = Zero(2 if cell.reduction else 1)(h)     # an intermediate node's shape
                for mixed, (_, i) in zip(cell.ops, cell.edges):
                    shapes[mixed] = tuple((h if i < 2 else node).shape[1:])
                s0, s1 = s1, node.new_zeros(1, cell.multiplier * node.shape[1], *node.shape[2:])
            shapes[net.global_pooling] = tuple(s1.shape[1:])
    finally:
        net.train(was_training)
    return shapes


class LipschitzBound(nn.Module):
    """ln L_F of a Supernet: `log_bound(weights)`, `lognormal(dist, method)`; constants by `refresh()`."""

    def __init__(self, supernet: Supernet, input_shape: Sequence[int] = (3, 32, 32), n_iter: int = 1,
                 seed: int = 0, count_bn: bool = True):
        super().__init__()
        self._net = (supernet,)  # a tuple, so the supernet is not registered as a submodule
        self.n_iter = n_iter
        self.count_bn = count_bn  # False: every BN counts 1 (convolutions' spectral norms only)
        cells = supernet.cells
        self.graph = Graph(tuple(c.reduction for c in cells), cells[0].edges, cells[0].steps,
                           cells[0].multiplier)
        self.powers = nn.ModuleDict()
        self._entries: list[tuple[tuple, list]] = []
        self._build(supernet, input_shape, torch.Generator().manual_seed(seed))
        self.register_buffer("log_stem", torch.zeros(()))
        self.register_buffer("log_pre", torch.zeros(len(cells), 2))
        self.register_buffer("log_op_constants",  # (cells, E, O); `none` stays -inf
                             torch.full((len(cells), supernet.num_edges, supernet.num_ops), float("-inf")))
        self.register_buffer("log_head", torch.zeros(()))
        self.refresh(n_iter)

    @property
    def supernet(self) -> Supernet:
        return self._net[0]

    def _add(self, target: tuple, factors: list[Factor] | None, n: int, in_shape: tuple[int, ...],
             gen: torch.Generator, like: torch.Tensor) -> None:
        """Register N constants of one form: each power piece gets persistent vectors (N, *shape)."""
        if factors is None:
            return
        entries, shape = [], in_shape
        for kind, fn in factors:
            if kind == "power":
                name = f"p{len(self.powers)}"
                self.powers[name] = PowerIteration(shape, n, gen)
                entries.append((name, fn))
                shape = out_shape(fn, n, shape, like)
            else:
                entries.append(("", fn))
        self._entries.append((target, entries))

    def _build(self, net: Supernet, input_shape: Sequence[int], gen: torch.Generator) -> None:
        """Group the pieces: stem; per cell the 2 preprocessings; per cell, op and (stride, shape) its edges."""
        shapes = record_input_shapes(net, input_shape)
        like = next(net.parameters()).detach()
        bn = self.count_bn
        self._add(("stem",), [("power", stem_linear(net.normalize, net.stem, bn))], 1, shapes[net.stem], gen, like)
        for k, cell in enumerate(net.cells):
            for p, pre in enumerate((cell.preprocess0, cell.preprocess1)):
                self._add(("pre", k, p), [("power", preprocess_linear(pre, bn))], 1, shapes[pre], gen, like)
            groups: dict[tuple, list[int]] = {}
            for e, mixed in enumerate(cell.ops):
                groups.setdefault((mixed.stride, shapes[mixed]), []).append(e)
            for (stride, shape), edges in groups.items():
                for o, name in enumerate(cell.ops[edges[0]].primitives):
                    ops = [cell.ops[e].ops[o] for e in edges]
                    self._add(("ops", k, edges, o), op_factors(name, ops, stride, bn), len(edges), shape, gen, like)
        self._head_hw = shapes[net.global_pooling][1:]

    def _log_values(self, entries: list, n_iter: int) -> torch.Tensor:
        """Sum of the log-factors of one group of constants. (N,) or a 0-dim 0 for no factor."""
        total = self.log_op_constants.new_zeros(())
        for name, fn in entries:
            value = self.powers[name].step(fn, n_iter) if name else fn()
            total = total + value.detach().to(total)
        return total

    @torch.no_grad()
    def refresh(self, n_iter: int | None = None) -> None:
        """Recompute every log-constant: n_iter power iterations per piece (default self.n_iter).

        The vectors and constants follow the supernet's device and dtype (moved here if needed)."""
        n = self.n_iter if n_iter is None else n_iter
        p = next(self.supernet.parameters())
        if self.log_op_constants.device != p.device or self.log_op_constants.dtype != p.dtype:
            self.to(p)
        for target, entries in self._entries:
            values = self._log_values(entries, n)
            if target[0] == "stem":
                self.log_stem.copy_(values.reshape(()))
            elif target[0] == "pre":
                self.log_pre[target[1], target[2]] = values.reshape(())
            else:
                _, k, edges, o = target
                self.log_op_constants[k, edges, o] = values
        self.log_head.fill_(head_log_constant(self.supernet.classifier, *self._head_hw))

    def constants(self, like: torch.Tensor | None = None) -> LogConstants:
        """The log-constants, on like's device and dtype when given."""
        consts = (self.log_stem, self.log_pre, self.log_op_constants, self.log_head)
        return LogConstants(*(c if like is None else c.to(like) for c in consts))

    def log_bound(self, weights: ArchWeights) -> torch.Tensor:
        """ln L_F for fixed positive weights (zero weights drop out). 0-dim tensor."""
        logs = [w.log().unsqueeze(0) for w in weights]
        return propagate_samples(self.constants(logs[0]), self.graph, logs)[0]

    def lowest_log_bound(self, edge_mass: float = 2.0) -> torch.Tensor:
        """ln of the lowest bound normalised weights can reach (alpha sums to 1 over the real ops of
        each edge, beta to edge_mass over each node's edges), minimised per cell; 0-dim."""
        return lowest_log_bound(self.constants(), self.graph, edge_mass)

    def lognormal(self, dist: ArchDistribution, method: str = "analytic", samples: int = 256,
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
        if dist.num_edges != self.supernet.num_edges or dist.num_ops != self.supernet.num_ops:
            raise RaclError("the distribution's edges/ops do not match the supernet's")
        if method == "mc":
            if samples < 2:
                raise RaclError(f"the Monte-Carlo bound needs at least 2 samples, got {samples}")
            logs = dist.sample_log(samples, generator)
            log_f = propagate_samples(self.constants(logs[0]), self.graph, logs)
            return log_f.mean(), log_f.std()
        lse = "delta" if method == "delta" else "fw"
        g = {k: v.to(torch.float64) for k, v in dist.log_gaussians(lse).items()}
        if method == "independent":
            g = {k: v.independent() for k, v in g.items()}
        out = propagate_gaussian(self.constants(), self.graph, (g["normal_alpha"], g["normal_beta"]),
                                 (g["reduce_alpha"], g["reduce_beta"]), lse)
        dtype = dist.normal_alpha_mu.dtype
        return out.m.to(dtype), out.var.clamp_min(1e-30).sqrt().to(dtype)
