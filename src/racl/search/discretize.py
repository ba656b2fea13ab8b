"""From architecture scores to a discrete genotype (method.md section 5; DARTS's `genotype()` rule).

Rule, per cell type, with alpha scores A (E, O) and beta scores b (E,) (E edges in
`racl.supernet.make_edges` order, O ops in PRIMITIVES order, index 0 = `none`):
  - op score of edge e:   best_e = max_{o != none} A[e, o],  op_e = argmax_{o != none} A[e, o];
  - edge score of edge e: b[e] * best_e   (the weight the edge's best real op gets in the node formula
    x_j = sum_i beta_ij sum_o alpha_o o(x_i); `none` never counts, as in DARTS);
  - per intermediate node keep the 2 incoming edges with the highest edge score (ties: lower input
    index first), listed best first, each with its op_e.
The RACL scores come from `ArchDistribution.scores(kind, eta)` (default: the lower (1 - eta) quantile
exp(mu + Phi^-1(1 - eta) sigma), so a weight that is large *and* certain wins); DARTS passes
softmax(alpha) and b = 1, which is exactly DARTS's rule. A genotype never contains `none`.
"""
from __future__ import annotations

from typing import Mapping

import torch

from racl.errors import RaclError
from racl.search_space.genotype import Edge, Genotype
from racl.search_space.ops import PRIMITIVES

EDGES_PER_NODE = 2


def _edges(steps: int) -> list[tuple[int, int]]:
    """(node j, input i) in edge-index order (the supernet's; kept local to avoid importing it)."""
    return [(j, i) for j in range(steps) for i in range(j + 2)]


def discretize_cell(alpha: torch.Tensor, beta: torch.Tensor, steps: int = 4,
                    primitives: tuple[str, ...] = PRIMITIVES) -> tuple[Edge, ...]:
    """alpha (E, O), beta (E,) scores -> 2 * steps (op, input) pairs, nodes in order."""
    edges = _edges(steps)
    alpha, beta = alpha.detach().double().cpu(), beta.detach().double().cpu()
    if alpha.shape != (len(edges), len(primitives)) or beta.shape != (len(edges),):
        raise RaclError(f"scores must be alpha ({len(edges)}, {len(primitives)}) and beta ({len(edges)},), "
                        f"got {tuple(alpha.shape)} and {tuple(beta.shape)}")
    if not (torch.isfinite(alpha).all() and torch.isfinite(beta).all()):
        raise RaclError("architecture scores contain NaN or inf; the search diverged")
    real = [k for k, p in enumerate(primitives) if p != "none"]
    best, arg = alpha[:, real].max(dim=1)  # first maximum on ties: lower PRIMITIVES index
    edge_score = beta * best
    out: list[Edge] = []
    start = 0
    for j in range(steps):
        n_in = j + 2
        scores = edge_score[start:start + n_in].tolist()
        order = sorted(range(n_in), key=lambda i: (-scores[i], i))[:EDGES_PER_NODE]
        out += [(primitives[real[int(arg[start + i])]], i) for i in order]
        start += n_in
    return tuple(out)


def discretize(scores: Mapping[str, torch.Tensor], steps: int = 4) -> Genotype:
    """{"normal_alpha": (E, O), "normal_beta": (E,), "reduce_alpha", "reduce_beta"} -> Genotype.

    Missing betas count as ones (DARTS). Every intermediate node is in the concat, as in DARTS.
    """
    cells = {}
    for cell in ("normal", "reduce"):
        if f"{cell}_alpha" not in scores:
            raise RaclError(f"discretize needs '{cell}_alpha' scores")
        alpha = scores[f"{cell}_alpha"]
        beta = scores.get(f"{cell}_beta")
        cells[cell] = discretize_cell(alpha, torch.ones(alpha.shape[0]) if beta is None else beta, steps)
    concat = tuple(range(2, 2 + steps))
    return Genotype(cells["normal"], concat, cells["reduce"], concat)


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
