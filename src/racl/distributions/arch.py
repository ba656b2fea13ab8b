"""Trainable multivariate log-normal distributions over the architecture weights (method spec, sec. 2).

For each cell type (normal, reduce):
  - alpha: for every edge e, log alpha_e ~ N(mu_e, L_e L_e^T) over the O ops;
  - beta: for every intermediate node j, log beta_.j ~ N(m_j, S_j S_j^T) over its j + 2 incoming edges.
L is lower-triangular: diagonal exp(raw) with raw clamped so that it stays in [1e-4, 5], strictly-lower
part clamped to [-5, 5] (cov="full") or absent (cov="diag"), so no factor can overflow. All factors
together form one block-diagonal matrix B, and all log-weights one Gaussian vector
log w = mean + B z,  z ~ N(0, I_Z)  (Z = 2 (E O + E), 252 for
the DARTS space). Parameters per cell type t: `{t}_alpha_mu` (E, O), `{t}_alpha_log_sigma` (E, O: log of
L's diagonal, the marginal log-std while the off-diagonals are 0), `{t}_alpha_offdiag` (E, O(O-1)/2,
row-major strictly-lower entries), and the same for beta with one block per node, flattened in edge
order: `{t}_beta_mu` (E,), `{t}_beta_log_sigma` (E,), `{t}_beta_offdiag` (sum_j (j+2)(j+1)/2,).
Noise layout in z (and row layout of B): [normal alpha (E*O, edge-major), normal beta
(E, node by node), reduce alpha, reduce beta]. The Lipschitz bound uses the same layout.

Normalisation [design], `normalize=True` (the search's default): the weights used by the supernet
and by the Lipschitz bound are those of the *expected discrete cell*: on every edge alpha over the 7
real ops sums to 1 (`none` is left out and gets weight 0: it computes zeros, so it would only be a
free way to lower the bound that discretisation then ignores), and on every node beta over the
incoming edges sums to EDGES_PER_NODE = 2, the number of edges a genotype keeps. Read alpha and
beta / 2 as the probabilities of picking an op and an edge: the bound of the mixture is then the
expected bound of a randomly drawn discrete cell (exactly so for one cell, whose bound is linear in
each edge's selection), and it no longer depends on the overall scale of the raw weights.

Weight decay [design]: `decay_gradients(wd)` pulls every parameter towards its *initial* value
(mean, log-std and off-diagonals of the initial distribution), not towards 0: decaying log alpha to 0
means alpha = 1 and log sigma to 0 means sigma = 1, neither of which is a neutral point.

Initialisation [design]: marginal std of every log-weight init_sigma (default 0.1: small, so the supernet starts close
to DARTS's uniform start, and the bound's spread starts small), zero off-diagonals, and means set so
that E[alpha] = 1/8 (mu = ln(1/O) - s^2/2) and E[beta] = 1 (m = -s^2/2).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import nn

from racl.distributions.lognormal import LogGaussian, log_normalize
from racl.errors import RaclError
from racl.supernet.cell import make_edges
from racl.supernet.network import ArchWeights

CELL_TYPES = ("normal", "reduce")
KEYS = ("normal_alpha", "normal_beta", "reduce_alpha", "reduce_beta")  # ArchWeights field order
SIGMA_RANGE = (1e-4, 5.0)   # allowed diagonal of L (exp of the clamped raw parameter)
LOG_RANGE = (-30.0, 30.0)   # log-weights are clamped here, far from float32 overflow
SCORE_KINDS = ("quantile", "mean", "median")
EDGES_PER_NODE = 2          # edges a genotype keeps per node: the mass of a node's normalised beta


class ArchDistribution(nn.Module):
    """Log-normal alpha per edge and beta per node for both cell types; all in parameters()."""

    def __init__(self, num_edges: int = 14, num_ops: int = 8, steps: int = 4, cov: str = "full",
                 init_sigma: float = 0.1, normalize: bool = False):
        super().__init__()
        edges = make_edges(steps)
        if len(edges) != num_edges:
            raise RaclError(f"num_edges={num_edges} does not match steps={steps} ({len(edges)} edges)")
        if cov not in ("full", "diag"):
            raise RaclError(f"cov must be 'full' or 'diag', got {cov!r}")
        if not SIGMA_RANGE[0] <= init_sigma <= SIGMA_RANGE[1]:
            raise RaclError(f"init_sigma must lie in {list(SIGMA_RANGE)}, got {init_sigma}")
        self.num_edges, self.num_ops, self.steps = num_edges, num_ops, steps
        self.cov, self.normalize = cov, normalize
        self.register_buffer("node_of_edge", torch.tensor([j for j, _ in edges]), persistent=False)
        self.node_sizes = [j + 2 for j in range(steps)]
        s2 = init_sigma ** 2
        for t in CELL_TYPES:
            self.register_parameter(f"{t}_alpha_mu", nn.Parameter(
                torch.full((num_edges, num_ops), math.log(1.0 / num_ops) - s2 / 2)))
            self.register_parameter(f"{t}_alpha_log_sigma", nn.Parameter(
                torch.full((num_edges, num_ops), math.log(init_sigma))))
            self.register_parameter(f"{t}_beta_mu", nn.Parameter(torch.full((num_edges,), -s2 / 2)))
            self.register_parameter(f"{t}_beta_log_sigma", nn.Parameter(
                torch.full((num_edges,), math.log(init_sigma))))
            if cov == "full":
                n_beta = sum(n * (n - 1) // 2 for n in self.node_sizes)
                self.register_parameter(f"{t}_alpha_offdiag", nn.Parameter(
                    torch.zeros(num_edges, num_ops * (num_ops - 1) // 2)))
                self.register_parameter(f"{t}_beta_offdiag", nn.Parameter(torch.zeros(n_beta)))
        for name, p in self.named_parameters():  # the centre of `decay_gradients`
            self.register_buffer(f"init_{name}", p.detach().clone(), persistent=False)  # = f(config)

    @torch.no_grad()
    def decay_gradients(self, wd: float) -> None:
        """Add wd * (theta - theta_init) to every parameter's gradient (decay towards the start)."""
        if wd == 0:
            return
        for name, p in self.named_parameters():
            if p.grad is not None:
                p.grad.add_(p - getattr(self, f"init_{name}"), alpha=wd)

    @property
    def noise_dim(self) -> int:
        """Z: the dimension of the standard normal noise of the whole distribution."""
        return 2 * (self.num_edges * self.num_ops + self.num_edges)

    def _sigma(self, raw: torch.Tensor) -> torch.Tensor:
        lo, hi = SIGMA_RANGE
        return raw.clamp(math.log(lo), math.log(hi)).exp()

    def _tril(self, diag: torch.Tensor, off: torch.Tensor | None) -> torch.Tensor:
        """Lower-triangular factor(s): diag (..., n), off (..., n(n-1)/2) -> (..., n, n)."""
        lower = torch.diag_embed(diag)
        if off is None:
            return lower
        n = diag.shape[-1]
        rows, cols = torch.tril_indices(n, n, -1, device=diag.device)
        strict = torch.zeros_like(lower)
        strict[..., rows, cols] = off.clamp(-SIGMA_RANGE[1], SIGMA_RANGE[1])  # bounded like the diagonal
        return lower + strict

    def _blocks(self, t: str) -> list[torch.Tensor]:
        """The lower-triangular factors of cell type t: E alpha blocks (O, O), then one beta block per node."""
        off = getattr(self, f"{t}_alpha_offdiag", None)
        la = self._tril(self._sigma(getattr(self, f"{t}_alpha_log_sigma")), off)  # (E, O, O)
        sb = self._sigma(getattr(self, f"{t}_beta_log_sigma"))
        boff = getattr(self, f"{t}_beta_offdiag", None)
        blocks, start, ostart = list(la.unbind(0)), 0, 0
        for n in self.node_sizes:
            k = n * (n - 1) // 2
            blocks.append(self._tril(sb[start:start + n], None if boff is None else boff[ostart:ostart + k]))
            start, ostart = start + n, ostart + k
        return blocks

    def mean_and_factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All log-weights as one Gaussian: mean (Z,), block-diagonal factor B (Z, Z), KEYS layout."""
        means, blocks = [], []
        for t in CELL_TYPES:
            means += [getattr(self, f"{t}_alpha_mu").flatten(), getattr(self, f"{t}_beta_mu")]
            blocks += self._blocks(t)
        return torch.cat(means).clamp(*LOG_RANGE), torch.block_diag(*blocks)

    def _split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., Z) in KEYS layout -> dict by KEYS: alpha (..., E, O), beta (..., E)."""
        eo, e = self.num_edges * self.num_ops, self.num_edges
        parts = flat.split([eo, e, eo, e], dim=-1)
        out = {}
        for key, p in zip(KEYS, parts):
            out[key] = p.unflatten(-1, (self.num_edges, self.num_ops)) if key.endswith("alpha") else p
        return out

    def _normalize_log(self, logs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Expected-cell weights in log space: alpha over the real ops of each edge sums to 1 (`none`
        gets -inf), beta over the incoming edges of each node sums to EDGES_PER_NODE."""
        out = {}
        for key, x in logs.items():
            if key.endswith("alpha"):
                x = x.clone()
                x[..., 0] = float("-inf")
                out[key] = x - torch.logsumexp(x, -1, keepdim=True)
            else:
                node_lse = torch.stack([torch.logsumexp(x[..., self.node_of_edge == j], -1)
                                        for j in range(self.steps)], -1)  # (..., steps)
                out[key] = x - node_lse[..., self.node_of_edge] + math.log(EDGES_PER_NODE)
        return out

    def reference_weights(self) -> ArchWeights:
        """The weights of the uniform start: E[w] of the initial distribution, normalised like the
        samples (alpha 1/7 on real ops and beta 2/(j+2) with `normalize`; else alpha 1/8, beta 1).
        The reference architecture of `ConstraintConfig.lbar_mode = "reference"`."""
        p = self.normal_alpha_mu
        sizes = torch.tensor(self.node_sizes, dtype=p.dtype, device=p.device)[self.node_of_edge]
        if self.normalize:
            alpha = torch.full((self.num_edges, self.num_ops), 1.0 / (self.num_ops - 1), dtype=p.dtype,
                               device=p.device)
            alpha[:, 0] = 0.0
            beta = EDGES_PER_NODE / sizes
        else:
            alpha = torch.full((self.num_edges, self.num_ops), 1.0 / self.num_ops, dtype=p.dtype, device=p.device)
            beta = torch.ones_like(sizes)
        return ArchWeights(alpha, beta, alpha.clone(), beta.clone())

    def draw_noise(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise (*shape, Z) on the parameters' device and dtype."""
        p = self.normal_alpha_mu
        return torch.randn(*shape, self.noise_dim, generator=generator, device=p.device, dtype=p.dtype)

    def log_weights(self, z: torch.Tensor) -> ArchWeights:
        """Log-weights for noise z (..., Z): log w = mean + B z (reparameterised), normalised if asked."""
        mean, factor = self.mean_and_factor()
        logs = self._split((mean + z @ factor.T).clamp(*LOG_RANGE))
        if self.normalize:
            logs = self._normalize_log(logs)
        return ArchWeights(*(logs[k] for k in KEYS))

    def sample_log(self, n: int, generator: torch.Generator | None = None) -> ArchWeights:
        """n independent samples of the log-weights, each field with leading dimension n."""
        return self.log_weights(self.draw_noise(n, generator=generator))

    def sample(self, generator: torch.Generator | None = None) -> ArchWeights:
        """One fresh reparameterised sample (differentiable), shared by all cells of a type."""
        return ArchWeights(*(w.exp() for w in self.log_weights(self.draw_noise(generator=generator))))

    def log_gaussians(self, lse: str = "fw") -> dict[str, LogGaussian]:
        """The log-weights as LogGaussians with loadings on z (after the delta-method normalisation,
        whose sums use the approximation `lse`: "fw" or "delta", see lognormal.py)."""
        mean, factor = self.mean_and_factor()
        ms, bs = self._split(mean), self._split(factor.T)  # factor.T: rows = noise, cols = weights
        out = {}
        for key in KEYS:
            b = bs[key].movedim(0, -1)  # (E, O, Z) or (E, Z)
            out[key] = LogGaussian(ms[key], b, torch.zeros_like(ms[key]))
        if self.normalize:
            out = {k: self._normalize_gaussian(k, g, lse) for k, g in out.items()}
        return out

    def _normalize_gaussian(self, key: str, g: LogGaussian, lse: str) -> LogGaussian:
        """`_normalize_log` for LogGaussians (delta method, see lognormal.log_normalize)."""
        if key.endswith("alpha"):
            m = g.m.clone()
            m[..., 0] = float("-inf")
            return log_normalize(LogGaussian(m, g.b, g.r2), None, lse)
        return log_normalize(g, self.node_of_edge, lse).shift(torch.tensor(math.log(EDGES_PER_NODE)).to(g.m))

    def scores(self, kind: str = "quantile", eta: float = 0.9) -> dict[str, torch.Tensor]:
        """Per-marginal scores: quantile exp(m + Phi^-1(1 - eta) s) (default), mean exp(m + s^2/2),
        median exp(m), for every key of KEYS, plus "{t}_edge" (E, O): the same score of the product
        beta_e * alpha_eo (the weight op o of edge e gets in its node; the quantile of the product,
        not the product of quantiles). With normalize=True they describe the normalised weights,
        whose marginals come from the delta method (see lognormal.py)."""
        _check_score(kind, eta)
        out = {}
        with torch.no_grad():
            gs = self.log_gaussians()
            for t in CELL_TYPES:
                gs[f"{t}_edge"] = edge_products(gs[f"{t}_alpha"], gs[f"{t}_beta"])
            for key, g in gs.items():
                out[key] = log_score(g, kind, eta).exp()
        return out


def _check_score(kind: str, eta: float) -> None:
    if kind not in SCORE_KINDS:
        raise RaclError(f"score kind must be one of {', '.join(SCORE_KINDS)}, got {kind!r}")
    if not 0.0 < eta < 1.0:
        raise RaclError(f"eta must lie strictly between 0 and 1, got {eta}")


def edge_products(alpha: LogGaussian, beta: LogGaussian) -> LogGaussian:
    """ln(beta_e * alpha_eo) for every edge and op: (E, O), loadings added (correlations kept)."""
    return LogGaussian(alpha.m + beta.m.unsqueeze(-1), alpha.b + beta.b.unsqueeze(-2),
                       alpha.r2 + beta.r2.unsqueeze(-1))


def log_score(g: LogGaussian, kind: str, eta: float) -> torch.Tensor:
    """ln of a score of the log-normal exp(X): quantile m + Phi^-1(1 - eta) s, mean m + s^2/2, median m."""
    if kind == "quantile":
        return g.m + NormalDist().inv_cdf(1.0 - eta) * g.var.sqrt()
    return g.m + 0.5 * g.var if kind == "mean" else g.m
