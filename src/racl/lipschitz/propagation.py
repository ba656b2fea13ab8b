"""The bound through a cell, in log space (method spec, section 3), over three "algebras".

Node formula of the bound (composition, then the triangle inequality over the node's sum), with
lambda the per-op constants of the cell:
    ln L(h_j) = logsumexp_{e = (i -> j), o != none} (ln beta_e + ln alpha_eo + ln lambda_eo + ln L(h_i)).
How a cell's inputs and output are bounded (DARTS: preprocessing constants, root-sum-square over the
concatenated nodes; NAS-Bench-201: the last node) and the macro network around the cells are the
space's (its `lipschitz` module); they use the operations below, so one recursion runs over:
  - SampleAlgebra: batches of sampled log-weights, exact for each sample, vectorised over samples
    (the Monte-Carlo estimate and `LipschitzBound.log_bound`);
  - GaussianAlgebra: LogGaussians, the analytic log-normal with correlations carried by Gaussian
    loadings, each sum by Fenton-Wilkinson or the second-order delta method (distributions/lognormal.py);
  - LowestAlgebra: the lowest bound any normalised weights can give (the "unreachable" diagnostic).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch

from racl.distributions.lognormal import LSE_APPROXIMATIONS, LogGaussian
from racl.search_space.base import CellTopology, CellWeights


class Algebra(Protocol):
    def const(self, c: torch.Tensor): ...
    def shift(self, x, c: torch.Tensor): ...
    def edge_terms(self, w: CellWeights, e: int, log_lambda: torch.Tensor, state): ...
    def node(self, terms: list, mass: float): ...
    def lse(self, xs: list): ...
    def rss(self, xs: list): ...


def cell_nodes(alg: Algebra, inputs: Sequence, w: CellWeights, log_lambda: torch.Tensor,
               topo: CellTopology) -> list:
    """The bounds of a cell's inputs followed by those of its nodes. log_lambda: (E, O) of this cell."""
    states = list(inputs)
    for j in range(topo.steps):
        terms = [alg.edge_terms(w, e, log_lambda[e], states[topo.edges[e][1]]) for e in topo.edges_into(j)]
        states.append(alg.node(terms, topo.edge_mass(j)))
    return states


class SampleAlgebra:
    """Log-weights of S samples: alpha (S, E, O), beta (S, E); states (S,)."""

    def __init__(self, n: int):
        self.n = n

    def const(self, c: torch.Tensor) -> torch.Tensor:
        return c.expand(self.n)

    def shift(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x + c

    def edge_terms(self, w: CellWeights, e: int, log_lambda: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return w.alpha[:, e] + (w.beta[:, e] + state).unsqueeze(-1) + log_lambda  # (S, O)

    def node(self, terms: list[torch.Tensor], mass: float) -> torch.Tensor:
        return torch.logsumexp(torch.cat(terms, -1), -1)

    def lse(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.logsumexp(torch.stack(xs, -1), -1)

    def rss(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * torch.logsumexp(2 * torch.stack(xs, -1), -1)


class GaussianAlgebra:
    """LogGaussians: alpha m (E, O), b (E, O, Z); beta m (E,), b (E, Z); states m (), b (Z,)."""

    def __init__(self, noise_dim: int, like: torch.Tensor, lse: str = "fw"):
        self.zeros = like.new_zeros(noise_dim)
        self.sum = LSE_APPROXIMATIONS[lse]  # how a sum of log-normals becomes one

    def const(self, c: torch.Tensor) -> LogGaussian:
        return LogGaussian(c.to(self.zeros), self.zeros, self.zeros.new_zeros(()))

    def shift(self, x: LogGaussian, c: torch.Tensor) -> LogGaussian:
        return x.shift(c.to(self.zeros))

    def edge_terms(self, w: CellWeights, e: int, log_lambda: torch.Tensor, state: LogGaussian) -> LogGaussian:
        alpha, beta = w.alpha, w.beta
        m = alpha.m[e] + beta.m[e] + state.m + log_lambda.to(self.zeros)
        b = alpha.b[e] + (beta.b[e] + state.b).unsqueeze(0)
        return LogGaussian(m, b, alpha.r2[e] + beta.r2[e] + state.r2)  # (O,)

    def node(self, terms: list[LogGaussian], mass: float) -> LogGaussian:
        return self.sum(LogGaussian(*(torch.cat(parts, 0) for parts in zip(*terms))))

    def lse(self, xs: list[LogGaussian]) -> LogGaussian:
        return self.sum(LogGaussian(*(torch.stack(parts, 0) for parts in zip(*xs))))

    def rss(self, xs: list[LogGaussian]) -> LogGaussian:
        return self.lse([x.scale(2.0) for x in xs]).scale(0.5)


class LowestAlgebra:
    """The lowest bound any normalised weights can give (alpha summing to 1 over the choosable ops of
    an edge; beta summing to the node's edge mass over its edges, or fixed at 1 without an edge
    choice): a node's bound is linear in each weight group, so its minimum puts all of alpha on the
    edge's smallest lambda * L(input) and all of beta on the node's smallest edge (without an edge
    choice: every edge at its smallest op). Minimised per cell, i.e. a lower bound of what weights
    shared by all cells of a type can reach. States: 0-dim log-bounds. Weights are ignored."""

    def __init__(self, topo: CellTopology):
        self.has_beta = topo.has_beta
        self.choosable = torch.zeros(topo.num_ops, dtype=torch.bool)
        self.choosable[list(topo.choosable_ops)] = True
        self.none = topo.none_index

    def const(self, c: torch.Tensor) -> torch.Tensor:
        return c

    def shift(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x + c

    def edge_terms(self, w, e: int, log_lambda: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The edge's smallest choosable term, 0-dim (`none`, when choosable, gives -inf)."""
        terms = log_lambda + state
        if self.none is not None:
            terms = terms.clone()
            terms[self.none] = float("-inf")  # `none` adds exactly 0 (its constant is -inf already)
        choosable = self.choosable.to(terms.device)
        return torch.where(choosable, terms, torch.full_like(terms, float("inf"))).min()

    def node(self, terms: list[torch.Tensor], mass: float) -> torch.Tensor:
        stacked = torch.stack(terms)
        if self.has_beta:
            return stacked.min() + torch.tensor(mass).log().to(stacked)
        return torch.logsumexp(stacked, 0)

    def lse(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.logsumexp(torch.stack(xs), 0)

    def rss(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * torch.logsumexp(2 * torch.stack(xs), 0)
