"""Propagation of the Lipschitz bound through the supernet, in log space (method spec, section 3).

With lambda the per-op constants and p0, p1 the preprocessing constants of cell k:
  ln L(h0) = ln p0_k + ln L(s_{k-2}),   ln L(h1) = ln p1_k + ln L(s_{k-1}),
  ln L(h_j) = logsumexp_{i<j, o != none} (ln beta_ij + ln alpha_o^ij + ln lambda_o^(ij,k) + ln L(h_i))
      (composition, then the triangle inequality over the node's sum),
  ln L(s_k) = 0.5 logsumexp_j (2 ln L(h_j))
      (root of the sum of squares: ||Delta concat(h)||^2 = sum_j ||Delta h_j||^2 makes it exact for a
       concatenation, and never larger than the plain sum sum_j L(h_j)),
  ln L_F = ln L(s_last) + ln L_head,  starting from s_{-2} = s_{-1} = stem output with ln L_stem.
The same recursion runs over two "algebras": batches of sampled log-weights (exact for each sample,
vectorised over samples: the Monte-Carlo estimate and `log_bound`) and LogGaussians (the analytic
log-normal, with correlations carried by Gaussian loadings; each sum by Fenton-Wilkinson or by the
second-order log-space delta method, see distributions/lognormal.py).
"""
from __future__ import annotations

from typing import NamedTuple, Protocol, Sequence

import torch

from racl.distributions.lognormal import LSE_APPROXIMATIONS, LogGaussian


class LogConstants(NamedTuple):
    """Log Lipschitz constants of the supernet's pieces (no gradient)."""

    stem: torch.Tensor  # ()
    pre: torch.Tensor   # (cells, 2)
    ops: torch.Tensor   # (cells, E, O), -inf for `none`
    head: torch.Tensor  # ()


class Graph(NamedTuple):
    """The supernet's wiring: cell types, edge list (node j, input i), steps, concatenated nodes."""

    reductions: tuple[bool, ...]
    edges: tuple[tuple[int, int], ...]
    steps: int
    multiplier: int


class Algebra(Protocol):
    def const(self, c: torch.Tensor): ...
    def shift(self, x, c: torch.Tensor): ...
    def edge_terms(self, alpha, beta, e: int, log_lambda: torch.Tensor, state): ...
    def lse(self, terms: list): ...
    def rss(self, nodes: list): ...


class SampleAlgebra:
    """Log-weights of S samples: alpha (S, E, O), beta (S, E); states (S,)."""

    def __init__(self, n: int):
        self.n = n

    def const(self, c: torch.Tensor) -> torch.Tensor:
        return c.expand(self.n)

    def shift(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x + c

    def edge_terms(self, alpha, beta, e, log_lambda, state):  # -> (S, O)
        return alpha[:, e] + (beta[:, e] + state).unsqueeze(-1) + log_lambda

    def lse(self, terms: list[torch.Tensor]) -> torch.Tensor:
        return torch.logsumexp(torch.cat(terms, -1), -1)

    def rss(self, nodes: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * torch.logsumexp(2 * torch.stack(nodes, -1), -1)


class GaussianAlgebra:
    """LogGaussians: alpha m (E, O), b (E, O, Z); beta m (E,), b (E, Z); states m (), b (Z,)."""

    def __init__(self, noise_dim: int, like: torch.Tensor, lse: str = "fw"):
        self.zeros = like.new_zeros(noise_dim)
        self.sum = LSE_APPROXIMATIONS[lse]  # how a sum of log-normals becomes one

    def const(self, c: torch.Tensor) -> LogGaussian:
        return LogGaussian(c.to(self.zeros), self.zeros, self.zeros.new_zeros(()))

    def shift(self, x: LogGaussian, c: torch.Tensor) -> LogGaussian:
        return x.shift(c.to(self.zeros))

    def edge_terms(self, alpha, beta, e, log_lambda, state) -> LogGaussian:  # (O,)
        m = alpha.m[e] + beta.m[e] + state.m + log_lambda.to(self.zeros)
        b = alpha.b[e] + (beta.b[e] + state.b).unsqueeze(0)
        return LogGaussian(m, b, alpha.r2[e] + beta.r2[e] + state.r2)

    def lse(self, terms: list[LogGaussian]) -> LogGaussian:
        return self.sum(LogGaussian(*(torch.cat(parts, 0) for parts in zip(*terms))))

    def rss(self, nodes: list[LogGaussian]) -> LogGaussian:
        stacked = LogGaussian(*(torch.stack(parts, 0) for parts in zip(*nodes)))
        return self.sum(stacked.scale(2.0)).scale(0.5)


class LowestAlgebra:
    """The lowest bound any normalised weights can give (alpha summing to 1 over the real ops of an
    edge, beta summing to `edge_mass` over a node's edges): a node's bound is linear in each weight
    group, so its minimum puts all of alpha on the edge's smallest lambda * L(input) and all of beta
    on the node's smallest edge. Minimised per cell, i.e. a lower bound of what weights shared by all
    cells of a type can reach. States: 0-dim log-bounds."""

    def __init__(self, edge_mass: float):
        self.log_mass = torch.tensor(edge_mass).log()

    def const(self, c: torch.Tensor) -> torch.Tensor:
        return c

    def shift(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x + c

    def edge_terms(self, alpha, beta, e, log_lambda, state):  # -> (O,), `none` (-inf) left out
        return torch.where(torch.isfinite(log_lambda), log_lambda + state, torch.full_like(log_lambda, float("inf")))

    def lse(self, terms: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(terms).min() + self.log_mass.to(terms[0])

    def rss(self, nodes: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * torch.logsumexp(2 * torch.stack(nodes), 0)


def propagate(consts: LogConstants, graph: Graph, alg: Algebra, normal: tuple, reduce: tuple):
    """ln L_F through stem, cells and head. normal / reduce: (log alpha, log beta) in alg's form."""
    s_pp = s_p = alg.const(consts.stem)
    for k, reduction in enumerate(graph.reductions):
        alpha, beta = reduce if reduction else normal
        states = [alg.shift(s_pp, consts.pre[k, 0]), alg.shift(s_p, consts.pre[k, 1])]
        e = 0
        for j in range(graph.steps):
            terms = []
            for i in range(j + 2):
                terms.append(alg.edge_terms(alpha, beta, e, consts.ops[k, e], states[i]))
                e += 1
            states.append(alg.lse(terms))
        s_pp, s_p = s_p, alg.rss(states[-graph.multiplier:])
    return alg.shift(s_p, consts.head)


def propagate_samples(consts: LogConstants, graph: Graph, log_alpha_beta: Sequence[torch.Tensor]
                      ) -> torch.Tensor:
    """ln L_F per sample; log_alpha_beta = (normal alpha (S, E, O), normal beta (S, E), reduce ...)."""
    na, nb, ra, rb = log_alpha_beta
    return propagate(consts, graph, SampleAlgebra(na.shape[0]), (na, nb), (ra, rb))


def propagate_gaussian(consts: LogConstants, graph: Graph, normal: tuple[LogGaussian, LogGaussian],
                       reduce: tuple[LogGaussian, LogGaussian], lse: str = "fw") -> LogGaussian:
    """ln L_F as one LogGaussian (FW or delta at every sum, loadings carried through)."""
    alg = GaussianAlgebra(normal[0].b.shape[-1], normal[0].m, lse)
    return propagate(consts, graph, alg, normal, reduce)


def lowest_log_bound(consts: LogConstants, graph: Graph, edge_mass: float) -> torch.Tensor:
    """ln of the lowest bound over all normalised weights (see LowestAlgebra), 0-dim."""
    return propagate(consts, graph, LowestAlgebra(edge_mass), (None, None), (None, None))
