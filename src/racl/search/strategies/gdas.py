"""GDAS (Dong & Yang, CVPR 2019) in the same framework: one op per edge, drawn by Gumbel-softmax.

Followed: D-X-Y/AutoDL-Projects `lib/models/cell_searchs/search_model_gdas_nasnet.py` (`NASNetworkGDAS`:
`forward`'s `get_gumbel_prob`, `genotype`), `xautodl/models/cell_searchs/search_cells.py`
(`MixedOp.forward_gdas`, `NASNetSearchCell.forward_gdas`), `exps/NAS-Bench-201-algos/GDAS.py`
(`search_func`, the temperature in `main`) and `scripts-search/NASNet-space-search-by-GDAS.sh`
(tau 10 -> 0.1, Adam 3e-4, weight decay 1e-3).

Per edge and cell type, every forward pass draws Gumbel noise G and takes
    p = softmax((log_softmax(alpha) + G) / tau),  k = argmax p,  w = onehot(k) + p - stop_grad(p):
w is exactly one-hot, so the supernet (which never computes an op of weight exactly 0) runs one op
per edge, and w_k's gradient flows into p_k and through the softmax into every entry of the edge's
alpha. Only the chosen op's weight enters the edge's output, as in GDAS's DARTS-space
`MixedOp.forward_gdas` (op_k(x) * w_k); a `none` draw makes the edge 0 and gives its alphas no
gradient, there as here. Both steps of a loop iteration draw afresh: the weight step (weight half,
no gradient to alpha) and then the architecture step (distribution half, Adam on alpha), which is
`search_func`'s order and data split. tau falls linearly from tau_max at the first architecture
epoch to tau_min at the last, as `main` sets it once per epoch (GDAS.py counts from epoch 0: the same
when warmup_epochs = 0). The genotype is GDAS's for the DARTS space (`genotype`): per node the two
largest softmax weights over every (input, non-`none` op) pair, so two ops may share an input
(`cell_rule: edges` gives DARTS's rule instead: top-2 edges, each with its best op). The point
weights (val_acc, the point bound) are each edge's arg-max op, one-hot.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from racl.search.config import SearchConfig
from racl.search.discretize import discretize
from racl.search.strategies.base import Evaluator
from racl.search.strategies.darts import DartsStrategy
from racl.search_space.genotype import Edge, Genotype
from racl.search_space.ops import PRIMITIVES
from racl.supernet import ArchWeights, Supernet


def gumbel_hard(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """GDAS's straight-through sample (get_gumbel_prob): one-hot per row in value, the gradient of
    softmax((log_softmax(alpha) + Gumbel) / tau); drawn again while the noise or p is not finite. (E, O)"""
    while True:
        gumbels = -torch.empty_like(alpha).exponential_(generator=generator).log()
        probs = ((alpha.log_softmax(dim=-1) + gumbels) / tau).softmax(dim=-1)
        if torch.isfinite(gumbels).all() and torch.isfinite(probs).all():
            break
    one_hot = torch.zeros_like(probs).scatter_(-1, probs.argmax(dim=-1, keepdim=True), 1.0)
    return one_hot + (probs - probs.detach())  # exactly 0/1 in value (the original's 1 - p + p is ~1)


def gdas_tau(epoch: int, first: int, last: int, tau_max: float, tau_min: float) -> float:
    """tau_max - (tau_max - tau_min) (epoch - first) / (last - first), held at the ends (tau_max when
    first == last). GDAS.py: first = 0, last = total epochs - 1. Written as a weighted mean of the
    ends, so that both are exact."""
    if last <= first:
        return tau_max
    t = min(max(epoch - first, 0) / (last - first), 1.0)
    return (1.0 - t) * tau_max + t * tau_min


def gdas_cell(probs: torch.Tensor, steps: int, primitives: tuple[str, ...] = PRIMITIVES) -> tuple[Edge, ...]:
    """GDAS's DARTS-space rule (NASNetworkGDAS.genotype): per node, the 2 largest weights over every
    (input, op != none) pair of its incoming edges (edges in racl.supernet.make_edges order); ties keep
    (input, op) order, as its stable sort does. probs: (E, O) softmax weights."""
    probs, start = probs.detach(), 0
    out: list[Edge] = []
    for j in range(steps):
        pairs = [(float(probs[start + i, o]), i, o) for i in range(j + 2)
                 for o, name in enumerate(primitives) if name != "none"]
        out += [(primitives[o], i) for _, i, o in sorted(pairs, key=lambda p: -p[0])[:2]]
        start += j + 2
    return tuple(out)


class GdasStrategy(DartsStrategy):
    """DARTS's alphas and optimiser; hard Gumbel samples in both steps; GDAS's genotype."""

    name = "gdas"
    spaces = ("darts",)

    def __init__(self, supernet: Supernet, config: SearchConfig, input_shape: tuple[int, int, int],
                 evaluator: Evaluator | None = None):
        super().__init__(supernet, config, input_shape, evaluator)
        self.register_buffer("epoch", torch.tensor(0))  # the epoch being searched (set by epoch_end)

    def tau(self) -> float:
        c = self.config
        return gdas_tau(int(self.epoch), c.warmup_epochs, c.epochs - 1, c.gdas.tau_max, c.gdas.tau_min)

    def _sample(self, generator: torch.Generator) -> ArchWeights:
        tau, ones = self.tau(), torch.ones(self.normal_alpha.shape[0], device=self.normal_alpha.device)
        return ArchWeights(gumbel_hard(self.normal_alpha, tau, generator), ones,
                           gumbel_hard(self.reduce_alpha, tau, generator), ones)

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        with torch.no_grad():
            return self._sample(generator)

    def eval_weights(self) -> ArchWeights:
        """Each edge's arg-max op, one-hot (the mode of the sampling distribution)."""
        with torch.no_grad():
            w = self._weights()
            hard = [torch.zeros_like(a).scatter_(-1, a.argmax(-1, keepdim=True), 1.0)
                    for a in (w.normal_alpha, w.reduce_alpha)]
            return ArchWeights(hard[0], w.normal_beta, hard[1], w.reduce_beta)

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, float]:
        logits = self.supernet(x, self._sample(generator))  # (B, K)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"architecture loss is {loss.item()}")
        self._arch_update(loss)
        return {"arch_loss": loss.item(), "arch_correct": float((logits.argmax(1) == y).sum())}

    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """The point bound, and the temperature of the epoch that ended (None in warm-up)."""
        tau = self.tau() if arch_phase else None
        self.epoch.fill_(epoch + 1)
        return {**super().epoch_end(epoch, arch_phase, generator), "tau": tau}

    def genotype(self) -> Genotype:
        with torch.no_grad():
            w = self._weights()
        if self.config.gdas.cell_rule == "edges":
            return discretize({"normal_alpha": w.normal_alpha, "reduce_alpha": w.reduce_alpha},
                              self.supernet.steps, seed=self.config.seed)
        steps = self.supernet.steps
        concat = tuple(range(2, 2 + steps))
        return Genotype(gdas_cell(w.normal_alpha, steps), concat, gdas_cell(w.reduce_alpha, steps), concat)
