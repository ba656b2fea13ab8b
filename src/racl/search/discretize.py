"""From architecture scores to a discrete cell (method.md section 5; DARTS's `genotype()` rule).

Rule, per cell type, with op scores A (E, O) and edge scores P (E, O) (edges and ops in the space's
topology order):
  - op of edge e:         op_e = argmax over the ops a discrete edge may keep of A[e, o] (never `none`
    in the DARTS space; NAS-Bench-201 lets `none` win);
  - edge score of edge e: P[e, op_e], the score of the weight beta_e * alpha_e,op_e that the edge's op
    gets in the node formula x_j = sum_i beta_ij sum_o alpha_o o(x_i). RACL passes the score of the
    product's log-normal (the quantile of the product); DARTS passes A itself (beta = 1: exactly
    DARTS's rule);
  - per node keep the `keep_edges` incoming edges with the highest edge score, best first (spaces
    without an edge choice keep every edge, in input order).
Exact ties (within a relative 1e-9) are broken at random by a generator seeded with `seed`, so no op
and no input is favoured by its position (a short search that has not moved the weights yet would
otherwise always return the first op). The result is a `Selection` per cell type; the space turns it
into its genotype (`SearchSpace.genotype`).
"""
from __future__ import annotations

from typing import Mapping

import torch

from racl.distributions.arch import log_score
from racl.distributions.lognormal import LogGaussian
from racl.errors import RaclError
from racl.search_space.base import ArchWeights, CellTopology, CellWeights, Selection

TIE_RTOL = 1e-9


def _ranked(scores: list[float], gen: torch.Generator) -> list[int]:
    """Indices by decreasing score; runs of exact ties (relative TIE_RTOL) in a random order from gen."""
    noise = torch.rand(len(scores), generator=gen, dtype=torch.float64).tolist()
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    rank, bucket = {}, 0
    for prev, k in zip([None, *order], order):
        if prev is not None and scores[prev] - scores[k] > TIE_RTOL * max(abs(scores[prev]), abs(scores[k])):
            bucket += 1
        rank[k] = bucket
    return sorted(range(len(scores)), key=lambda k: (rank[k], noise[k]))


def choose(alpha: torch.Tensor, edge: torch.Tensor | None, topo: CellTopology, seed: int = 0) -> Selection:
    """alpha (E, O) op scores, edge (E, O) edge scores (None: alpha) -> the kept (node, input, op)."""
    alpha = alpha.detach().double().cpu()
    edge = alpha if edge is None else edge.detach().double().cpu()
    shape = (topo.num_edges, topo.num_ops)
    if alpha.shape != shape or edge.shape != shape:
        raise RaclError(f"scores must be alpha and edge {shape}, got {tuple(alpha.shape)} and {tuple(edge.shape)}")
    if not (torch.isfinite(alpha).all() and torch.isfinite(edge).all()):
        raise RaclError("architecture scores contain NaN or inf; the search diverged")
    gen = torch.Generator().manual_seed(seed)
    allowed = list(topo.choosable_ops)
    ops = [allowed[_ranked(alpha[e, allowed].tolist(), gen)[0]] for e in range(topo.num_edges)]
    out = []
    for j in range(topo.steps):
        edges = list(topo.edges_into(j))
        if topo.has_beta:
            ranked = _ranked([float(edge[e, ops[e]]) for e in edges], gen)[:topo.keep_edges]
            edges = [edges[k] for k in ranked]
        out += [(j, topo.edges[e][1], topo.primitives[ops[e]]) for e in edges]
    return tuple(out)


def discretize(alpha: Mapping[str, torch.Tensor], edge: Mapping[str, torch.Tensor] | None, topo: CellTopology,
               seed: int = 0) -> dict[str, Selection]:
    """Per cell type: `choose` with that type's scores (edge None: alpha, DARTS's rule)."""
    missing = [t for t in topo.cell_types if t not in alpha]
    if missing:
        raise RaclError(f"discretize needs op scores for the cell type(s): {', '.join(missing)}")
    return {t: choose(alpha[t], None if edge is None else edge[t], topo, seed=seed * 2 + k)
            for k, t in enumerate(topo.cell_types)}


def selection_weights(selection: Mapping[str, Selection], topo: CellTopology,
                      device: torch.device | str = "cpu") -> ArchWeights:
    """0/1 weights selecting exactly the chosen edges and ops (a single path through the supernet):
    alpha 1 at (edge, op) of every kept edge (the same (input, op) twice counts twice), beta 1 on kept
    edges; the mask tells the supernet to compute those ops only."""
    out = {}
    for t in topo.cell_types:
        alpha = torch.zeros(topo.num_edges, topo.num_ops)
        beta = torch.zeros(topo.num_edges)
        for j, i, op in selection[t]:
            e = topo.edge_index(j, i)
            alpha[e, topo.primitives.index(op)] += 1.0
            beta[e] = 1.0
        mask = tuple(tuple(bool(v) for v in row) for row in (alpha != 0).tolist())
        # non_blocking: random search builds these every step; no synchronising copy to the device
        out[t] = CellWeights(alpha.to(device, non_blocking=True), beta.to(device, non_blocking=True), mask)
    return out


def _gap(g: LogGaussian, score: torch.Tensor, a: tuple, b: tuple) -> float:
    """(score_a - score_b) / std(X_a - X_b) for two entries of a LogGaussian (correlations included)."""
    var = float((g.b[a] - g.b[b]).pow(2).sum() + g.r2[a] + g.r2[b])
    return round(float(score[a] - score[b]) / max(var, 1e-30) ** 0.5, 4)


@torch.no_grad()  # a diagnostic: never differentiated
def decision_margins(alpha: LogGaussian, edge: LogGaussian, selection: Selection, topo: CellTopology,
                     kind: str = "quantile", eta: float = 0.9) -> dict[str, list[float | None]]:
    """How decided a discretised cell is: score differences in units of the std of the difference
    of the two log-weights (scores as the discretisation computes them: `kind`, `eta`).

    op: per kept edge, the chosen op's score minus the runner-up's on that edge; edge: per node, the
    score of the weaker kept edge minus that of the best dropped edge (each at its best op; None for a
    node that keeps all its inputs). A margin below ~1 means the choice would flip in a sizeable
    fraction of draws (noise, not a decision); > 0 always for the chosen."""
    a_score, e_score = log_score(alpha, kind, eta), log_score(edge, kind, eta)
    allowed = list(topo.choosable_ops)
    best_op = {e: max(allowed, key=lambda o: float(a_score[e, o])) for e in range(topo.num_edges)}
    ops, nodes = [], []
    for j in range(topo.steps):
        kept = [(topo.edge_index(jj, i), topo.primitives.index(op)) for jj, i, op in selection if jj == j]
        for e, o in kept:
            runner = max((k for k in allowed if k != o), key=lambda k: float(a_score[e, k]))
            ops.append(_gap(alpha, a_score, (e, o), (e, runner)))
        dropped = [(e, best_op[e]) for e in topo.edges_into(j) if e not in {k for k, _ in kept}]
        if not dropped:
            nodes.append(None)
            continue
        weak = min(kept, key=lambda eo: float(e_score[eo]))
        strong = max(dropped, key=lambda eo: float(e_score[eo]))
        nodes.append(_gap(edge, e_score, weak, strong))
    return {"op": ops, "edge": nodes}
