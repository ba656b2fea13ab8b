"""Trainable multivariate log-normal distributions over the architecture weights (method spec, sec. 2).

For each cell type t of the space's topology (DARTS: normal, reduce; NAS-Bench-201: one):
  - alpha: for every edge e, log alpha_e ~ N(mu_e, L_e L_e^T) over the O ops;
  - beta (spaces that choose edges): for every node j, log beta_.j ~ N(m_j, S_j S_j^T) over its
    incoming edges; without an edge choice beta = 1 (no parameters, zero variance).
L is lower-triangular: diagonal exp(raw) with raw clamped so that it stays in [1e-4, 5], strictly-lower
part clamped to [-5, 5] (cov="full") or absent (cov="diag"), so no factor can overflow. All factors
together form one block-diagonal matrix B, and all log-weights one Gaussian vector
log w = mean + B z, z ~ N(0, I_Z) (Z = 2 (E O + E) = 252 for the DARTS space). Parameters per cell type t:
`{t}_alpha_mu` (E, O), `{t}_alpha_log_sigma` (E, O: log of L's diagonal, the marginal log-std while the
off-diagonals are 0), `{t}_alpha_offdiag` (E, O(O-1)/2, row-major strictly-lower entries), and the same
for beta with one block per node, flattened in edge order: `{t}_beta_mu` (E,), `{t}_beta_log_sigma`
(E,), `{t}_beta_offdiag` (sum_j n_j(n_j-1)/2,). Noise layout in z (and row layout of B): per cell type
in order, alpha (E*O, edge-major) then beta (E, node by node). The Lipschitz bound uses the same layout.

Normalisation [design], `normalize=True` (the search's default): the weights used by the supernet
and by the Lipschitz bound are those of the *expected discrete cell*: on every edge alpha over the ops a
discrete edge may keep sums to 1 (DARTS: the 7 real ops, `none` gets weight 0: it computes zeros, so
it would only be a free way to lower the bound that discretisation then ignores; NAS-Bench-201: all 5,
`none` included, since a discrete NB201 edge may be `none`), and on every node beta over the incoming
edges sums to the number of edges a genotype keeps (DARTS: 2). Read alpha and beta / 2 as the
probabilities of picking an op and an edge: the bound of the mixture is then the expected bound of a
randomly drawn discrete cell (exactly so for one cell, whose bound is linear in each edge's
selection), and it no longer depends on the overall scale of the raw weights.

Weight decay [design]: `decay_gradients(wd)` pulls every parameter towards its *initial* value
(mean, log-std and off-diagonals of the initial distribution), not towards 0: decaying log alpha to 0
means alpha = 1 and log sigma to 0 means sigma = 1, neither of which is a neutral point.

Initialisation [design]: marginal std of every log-weight init_sigma (default 0.1: small, so the
supernet starts close to DARTS's uniform start, and the bound's spread starts small), zero
off-diagonals, and means set so that E[alpha] = 1/O (mu = ln(1/O) - s^2/2) and E[beta] = 1 (m = -s^2/2).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import nn

from racl.distributions.lognormal import LogGaussian, log_normalize
from racl.errors import RaclError
from racl.search_space.base import ArchWeights, CellTopology, CellWeights, map_weights

SIGMA_RANGE = (1e-4, 5.0)   # allowed diagonal of L (exp of the clamped raw parameter)
LOG_RANGE = (-30.0, 30.0)   # log-weights are clamped here, far from float32 overflow
SCORE_KINDS = ("quantile", "mean", "median")


class ArchDistribution(nn.Module):
    """Log-normal alpha per edge (and beta per node where the space chooses edges); all in parameters()."""

    def __init__(self, topology: CellTopology, cov: str = "full", init_sigma: float = 0.1,
                 normalize: bool = False):
        super().__init__()
        if cov not in ("full", "diag"):
            raise RaclError(f"cov must be 'full' or 'diag', got {cov!r}")
        if not SIGMA_RANGE[0] <= init_sigma <= SIGMA_RANGE[1]:
            raise RaclError(f"init_sigma must lie in {list(SIGMA_RANGE)}, got {init_sigma}")
        self.topology, self.cov, self.normalize = topology, cov, normalize
        self.nodes = [topology.edges_into(j) for j in range(topology.steps)]  # edge ranges, node by node
        e, o, s2 = topology.num_edges, topology.num_ops, init_sigma ** 2
        for t in topology.cell_types:
            self.register_parameter(f"{t}_alpha_mu", nn.Parameter(torch.full((e, o), math.log(1.0 / o) - s2 / 2)))
            self.register_parameter(f"{t}_alpha_log_sigma", nn.Parameter(torch.full((e, o), math.log(init_sigma))))
            if cov == "full":
                self.register_parameter(f"{t}_alpha_offdiag", nn.Parameter(torch.zeros(e, o * (o - 1) // 2)))
            if topology.has_beta:
                self.register_parameter(f"{t}_beta_mu", nn.Parameter(torch.full((e,), -s2 / 2)))
                self.register_parameter(f"{t}_beta_log_sigma", nn.Parameter(torch.full((e,), math.log(init_sigma))))
                if cov == "full":
                    n_off = sum(len(r) * (len(r) - 1) // 2 for r in self.nodes)
                    self.register_parameter(f"{t}_beta_offdiag", nn.Parameter(torch.zeros(n_off)))
        for name, p in self.named_parameters():  # the centre of `decay_gradients`
            self.register_buffer(f"init_{name}", p.detach().clone(), persistent=False)  # = f(config)
        # fixed by the topology, on the parameters' device (no host tensor copied in a step): the ops a
        # discrete edge may not keep, and each edge's number of incoming edges of its node
        excluded = [k not in topology.choosable_ops for k in range(o)]
        self.register_buffer("excluded_ops", torch.tensor(excluded), persistent=False)
        self.register_buffer("node_sizes", torch.tensor([float(len(r)) for r in self.nodes for _ in r]),
                             persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @torch.no_grad()
    def decay_gradients(self, wd: float) -> None:
        """Add wd * (theta - theta_init) to every parameter's gradient (decay towards the start)."""
        if wd == 0:
            return
        for name, p in self.named_parameters():
            if p.grad is not None:
                p.grad.add_(p - getattr(self, f"init_{name}"), alpha=wd)

    @property
    def _per_type(self) -> int:
        """Noise dimensions of one cell type: E O for alpha, E for beta (if learned)."""
        t = self.topology
        return t.num_edges * t.num_ops + (t.num_edges if t.has_beta else 0)

    @property
    def noise_dim(self) -> int:
        """Z: the dimension of the standard normal noise of the whole distribution."""
        return len(self.topology.cell_types) * self._per_type

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
        """Lower-triangular factors of cell type t: E alpha blocks (O, O), then one beta block per node."""
        la = self._tril(self._sigma(getattr(self, f"{t}_alpha_log_sigma")), getattr(self, f"{t}_alpha_offdiag", None))
        blocks = list(la.unbind(0))
        if self.topology.has_beta:
            sb = self._sigma(getattr(self, f"{t}_beta_log_sigma"))
            boff, start = getattr(self, f"{t}_beta_offdiag", None), 0
            for r in self.nodes:
                k = len(r) * (len(r) - 1) // 2
                blocks.append(self._tril(sb[r.start:r.stop], None if boff is None else boff[start:start + k]))
                start += k
        return blocks

    def mean_and_factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All log-weights as one Gaussian: mean (Z,), block-diagonal factor B (Z, Z), noise layout."""
        means, blocks = [], []
        for t in self.topology.cell_types:
            means.append(getattr(self, f"{t}_alpha_mu").flatten())
            if self.topology.has_beta:
                means.append(getattr(self, f"{t}_beta_mu"))
            blocks += self._blocks(t)
        return torch.cat(means).clamp(*LOG_RANGE), torch.block_diag(*blocks)

    def _split(self, flat: torch.Tensor, beta_fill: torch.Tensor) -> ArchWeights:
        """(..., Z) in the noise layout -> per cell type alpha (..., E, O), beta (..., E) (beta_fill
        (..., E) where the space has no beta)."""
        e, o = self.topology.num_edges, self.topology.num_ops
        out = {}
        for k, t in enumerate(self.topology.cell_types):
            part = flat[..., k * self._per_type:(k + 1) * self._per_type]
            beta = part[..., e * o:] if self.topology.has_beta else beta_fill
            out[t] = CellWeights(part[..., :e * o].unflatten(-1, (e, o)), beta)
        return out

    def _normalize_log(self, logs: ArchWeights) -> ArchWeights:
        """Expected-cell weights in log space: alpha over the choosable ops of each edge sums to 1
        (the others get -inf), beta over the incoming edges of each node sums to the edges it keeps."""
        out = {}
        for t, w in logs.items():
            alpha = w.alpha.masked_fill(self.excluded_ops, float("-inf"))
            alpha = alpha - torch.logsumexp(alpha, -1, keepdim=True)
            beta = w.beta
            if self.topology.has_beta:
                log_mass = math.log(self.topology.keep_edges)
                beta = torch.cat([w.beta[..., r.start:r.stop] - torch.logsumexp(w.beta[..., r.start:r.stop], -1,
                                                                                  keepdim=True) + log_mass
                                  for r in self.nodes], -1)
            out[t] = CellWeights(alpha, beta)
        return out

    def reference_weights(self) -> ArchWeights:
        """The weights of the uniform start: E[w] of the initial distribution, normalised like the
        samples (alpha uniform over the choosable ops, beta = kept edges / incoming edges, with
        `normalize`; else alpha 1/O, beta 1). The reference architecture of `lbar_mode = reference`."""
        p, topo = next(self.parameters()), self.topology
        sizes = self.node_sizes.to(p.dtype)
        if self.normalize:
            alpha = (~self.excluded_ops).to(p.dtype).expand(topo.num_edges, -1) * (1.0 / len(topo.choosable_ops))
            beta = topo.keep_edges / sizes if topo.has_beta else torch.ones_like(sizes)
        else:
            alpha = p.new_full((topo.num_edges, topo.num_ops), 1.0 / topo.num_ops)
            beta = torch.ones_like(sizes)
        return {t: CellWeights(alpha.clone(), beta.clone()) for t in topo.cell_types}

    def draw_noise(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise (*shape, Z) on the parameters' device and dtype."""
        p = next(self.parameters())
        return torch.randn(*shape, self.noise_dim, generator=generator, device=p.device, dtype=p.dtype)

    def log_weights(self, z: torch.Tensor) -> ArchWeights:
        """Log-weights for noise z (..., Z): log w = mean + B z (reparameterised), normalised if asked."""
        mean, factor = self.mean_and_factor()
        logs = self._split((mean + z @ factor.T).clamp(*LOG_RANGE), z.new_zeros(*z.shape[:-1], self.topology.num_edges))
        return self._normalize_log(logs) if self.normalize else logs

    def sample_log(self, n: int, generator: torch.Generator | None = None) -> ArchWeights:
        """n independent samples of the log-weights, each tensor with leading dimension n."""
        return self.log_weights(self.draw_noise(n, generator=generator))

    def sample(self, generator: torch.Generator | None = None) -> ArchWeights:
        """One fresh reparameterised sample (differentiable), shared by all cells of a type."""
        return map_weights(torch.exp, self.log_weights(self.draw_noise(generator=generator)))

    def log_gaussians(self, lse: str = "fw") -> dict[str, CellWeights]:
        """The log-weights as LogGaussians with loadings on z, per cell type (after the delta-method
        normalisation, whose sums use the approximation `lse`: "fw" or "delta", see lognormal.py)."""
        mean, factor = self.mean_and_factor()
        e = self.topology.num_edges
        zero_m = mean.new_zeros(e)
        ms = self._split(mean, zero_m)
        bs = self._split(factor.T, mean.new_zeros(self.noise_dim, e))  # factor.T: rows = noise
        out = {}
        for t in self.topology.cell_types:
            alpha = LogGaussian(ms[t].alpha, bs[t].alpha.movedim(0, -1), torch.zeros_like(ms[t].alpha))
            beta = LogGaussian(ms[t].beta, bs[t].beta.movedim(0, -1), torch.zeros_like(ms[t].beta))
            out[t] = CellWeights(alpha, beta)
        return {t: self._normalize_gaussian(w, lse) for t, w in out.items()} if self.normalize else out

    def _normalize_gaussian(self, w: CellWeights, lse: str) -> CellWeights:
        """`_normalize_log` for LogGaussians (delta method, see lognormal.log_normalize)."""
        m = w.alpha.m.masked_fill(self.excluded_ops, float("-inf"))
        alpha = log_normalize(LogGaussian(m, w.alpha.b, w.alpha.r2), None, lse)
        beta = w.beta
        if self.topology.has_beta:
            beta = log_normalize(beta, self.nodes, lse).shift(m.new_full((), math.log(self.topology.keep_edges)))
        return CellWeights(alpha, beta)

    def scores(self, kind: str = "quantile", eta: float = 0.9) -> dict[str, CellWeights]:
        """Per-marginal scores per cell type: quantile exp(m + Phi^-1(1 - eta) s) (default), mean
        exp(m + s^2/2), median exp(m), as CellWeights(alpha (E, O), beta (E,)). With normalize=True
        they describe the normalised weights, whose marginals come from the delta method."""
        _check_score(kind, eta)
        with torch.no_grad():
            return {t: CellWeights(log_score(w.alpha, kind, eta).exp(), log_score(w.beta, kind, eta).exp())
                    for t, w in self.log_gaussians().items()}

    def edge_scores(self, kind: str = "quantile", eta: float = 0.9) -> dict[str, torch.Tensor]:
        """The same score of the product beta_e * alpha_eo per cell type (E, O): the weight op o of edge
        e gets in its node (the quantile of the product, not the product of quantiles)."""
        _check_score(kind, eta)
        with torch.no_grad():
            return {t: log_score(edge_products(w.alpha, w.beta), kind, eta).exp()
                    for t, w in self.log_gaussians().items()}


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
