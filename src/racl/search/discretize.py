"""From architecture scores to a discrete genotype (method.md section 5; DARTS's `genotype()` rule).

Rule, per cell type, with alpha scores A (E, O) and edge scores P (E, O) (E edges in
`racl.supernet.make_edges` order, O ops in PRIMITIVES order, index 0 = `none`):
  - op of edge e:         op_e = argmax_{o != none} A[e, o];
  - edge score of edge e: P[e, op_e], the score of the weight beta_e * alpha_e,op_e that the edge's
    op gets in the node formula x_j = sum_i beta_ij sum_o alpha_o o(x_i) (`none` never counts, as
    in DARTS). RACL passes the score of the product's log-normal (the quantile of the product);
    without P it is b[e] * A[e, op_e] for beta scores b (DARTS: b = 1, exactly DARTS's rule);
  - per intermediate node keep the 2 incoming edges with the highest edge score, best first.
Exact ties (within a relative 1e-9) are broken at random by a generator seeded with `seed`, so no op
and no input is favoured by its position in PRIMITIVES or in the edge list (a short search that has
not moved the weights yet would otherwise always return the first op, max_pool_3x3).
The RACL scores come from `ArchDistribution.scores(kind, eta)` (default: the lower (1 - eta) quantile
exp(mu + Phi^-1(1 - eta) sigma), so a weight that is large *and* certain wins). A genotype never
contains `none`.
"""
from __future__ import annotations

from typing import Mapping

import torch

from racl.distributions.arch import log_score
from racl.distributions.lognormal import LogGaussian
from racl.errors import RaclError
from racl.search_space.genotype import Edge, Genotype
from racl.search_space.ops import PRIMITIVES

EDGES_PER_NODE = 2
TIE_RTOL = 1e-9


def _edges(steps: int) -> list[tuple[int, int]]:
    """(node j, input i) in edge-index order (the supernet's; kept local to avoid importing it)."""
    return [(j, i) for j in range(steps) for i in range(j + 2)]


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


def discretize_cell(alpha: torch.Tensor, beta: torch.Tensor | None = None, steps: int = 4,
                    primitives: tuple[str, ...] = PRIMITIVES, *, edge: torch.Tensor | None = None,
                    seed: int = 0) -> tuple[Edge, ...]:
    """alpha (E, O) op scores, beta (E,) or edge (E, O) scores -> 2 * steps (op, input) pairs."""
    edges = _edges(steps)
    alpha = alpha.detach().double().cpu()
    if edge is None:
        beta = torch.ones(alpha.shape[0], dtype=torch.float64) if beta is None else beta.detach().double().cpu()
        if beta.shape != (len(edges),):
            raise RaclError(f"beta scores must have shape ({len(edges)},), got {tuple(beta.shape)}")
        edge = beta.unsqueeze(-1) * alpha
    edge = edge.detach().double().cpu()
    if alpha.shape != (len(edges), len(primitives)) or edge.shape != alpha.shape:
        raise RaclError(f"scores must be alpha and edge ({len(edges)}, {len(primitives)}), "
                        f"got {tuple(alpha.shape)} and {tuple(edge.shape)}")
    if not (torch.isfinite(alpha).all() and torch.isfinite(edge).all()):
        raise RaclError("architecture scores contain NaN or inf; the search diverged")
    gen = torch.Generator().manual_seed(seed)
    real = [k for k, p in enumerate(primitives) if p != "none"]
    ops = [real[_ranked(alpha[e, real].tolist(), gen)[0]] for e in range(len(edges))]
    out: list[Edge] = []
    start = 0
    for j in range(steps):
        n_in = j + 2
        scores = [float(edge[start + i, ops[start + i]]) for i in range(n_in)]
        out += [(primitives[ops[start + i]], i) for i in _ranked(scores, gen)[:EDGES_PER_NODE]]
        start += n_in
    return tuple(out)


def discretize(scores: Mapping[str, torch.Tensor], steps: int = 4, seed: int = 0) -> Genotype:
    """{"normal_alpha": (E, O), optional "normal_beta": (E,) or "normal_edge": (E, O), "reduce_..."}
    -> Genotype. Missing betas count as ones (DARTS). Every intermediate node is in the concat."""
    cells = {}
    for k, cell in enumerate(("normal", "reduce")):
        if f"{cell}_alpha" not in scores:
            raise RaclError(f"discretize needs '{cell}_alpha' scores")
        cells[cell] = discretize_cell(scores[f"{cell}_alpha"], scores.get(f"{cell}_beta"), steps,
                                      edge=scores.get(f"{cell}_edge"), seed=seed * 2 + k)
    concat = tuple(range(2, 2 + steps))
    return Genotype(cells["normal"], concat, cells["reduce"], concat)


def _gap(g: LogGaussian, score: torch.Tensor, a: tuple, b: tuple) -> float:
    """(score_a - score_b) / std(X_a - X_b) for two entries of a LogGaussian (correlations included)."""
    var = float((g.b[a] - g.b[b]).pow(2).sum() + g.r2[a] + g.r2[b])
    return round(float(score[a] - score[b]) / max(var, 1e-30) ** 0.5, 4)


@torch.no_grad()  # a diagnostic: never differentiated
def decision_margins(alpha: LogGaussian, edge: LogGaussian, cell: tuple[Edge, ...], kind: str = "quantile",
                     eta: float = 0.9, primitives: tuple[str, ...] = PRIMITIVES) -> dict[str, list[float | None]]:
    """How decided a discretised cell is: score differences in units of the std of the difference
    of the two log-weights (scores as the discretisation computes them: `kind`, `eta`).

    op: per kept edge, the chosen op's score minus the runner-up real op's on that edge; edge: per
    node, the score of the weaker kept edge minus that of the best dropped edge (each at its best
    op; None for a node with only two inputs, which keeps both). A margin below ~1 means the choice
    would flip in a sizeable fraction of draws (noise, not a decision); > 0 always for the chosen."""
    a_score, e_score = log_score(alpha, kind, eta), log_score(edge, kind, eta)
    steps = len(cell) // EDGES_PER_NODE
    edges = _edges(steps)
    index = {ji: e for e, ji in enumerate(edges)}
    real = [k for k, p in enumerate(primitives) if p != "none"]
    best_op = {e: max(real, key=lambda o: float(a_score[e, o])) for e in range(len(edges))}
    ops, nodes = [], []
    for j in range(steps):
        kept = cell[EDGES_PER_NODE * j: EDGES_PER_NODE * (j + 1)]
        for op, i in kept:
            e, o = index[(j, i)], primitives.index(op)
            runner = max((k for k in real if k != o), key=lambda k: float(a_score[e, k]))
            ops.append(_gap(alpha, a_score, (e, o), (e, runner)))
        kept_edges = [(index[(j, i)], primitives.index(op)) for op, i in kept]
        dropped = [(index[(j, i)], best_op[index[(j, i)]]) for i in range(j + 2)
                   if index[(j, i)] not in {e for e, _ in kept_edges}]
        if not dropped:
            nodes.append(None)
            continue
        weak = min(kept_edges, key=lambda eo: float(e_score[eo]))
        strong = max(dropped, key=lambda eo: float(e_score[eo]))
        nodes.append(_gap(edge, e_score, weak, strong))
    return {"op": ops, "edge": nodes}


def genotype_to_weights(genotype: Genotype, num_ops: int = len(PRIMITIVES),
                        device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """0/1 weights selecting exactly the genotype's edges and ops (single path through the supernet).

    Returns {"normal_alpha": (E, O), "normal_beta": (E,), ...}; alpha is 1 at (edge, op) of every
    chosen edge and 0 elsewhere, beta is 1 on chosen edges and 0 elsewhere.
    """
    out = {}
    for cell in ("normal", "reduce"):
        pairs = getattr(genotype, cell)
        steps = len(pairs) // 2
        index = {ji: e for e, ji in enumerate(_edges(steps))}
        alpha = torch.zeros(len(index), num_ops, device=device)
        beta = torch.zeros(len(index), device=device)
        for k, (op, i) in enumerate(pairs):
            e = index[(k // 2, i)]
            alpha[e, PRIMITIVES.index(op)] += 1.0  # the same (input, op) twice counts twice
            beta[e] = 1.0
        out[f"{cell}_alpha"], out[f"{cell}_beta"] = alpha, beta
    return out
