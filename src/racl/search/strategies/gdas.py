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
(`cell_rule: edges` gives DARTS's rule instead: top-2 edges, each with its best op); on NAS-Bench-201
it is each edge's arg-max op, `none` included (`TinyNetworkGDAS.genotype`). The point weights
(val_acc, the point bound) are each edge's arg-max op, one-hot.

Decisions: the sampled op's index is read on the host (one sync per sample, as the original's
`argmax().item()`) so that only that op is computed (racl.supernet.active_ops); on NAS-Bench-201
GDAS's own cell also adds the unchosen ops' weights (0 in value) to the edge's output, which gives
their alphas a gradient through the sum; racl uses the DARTS-space arrangement above on both spaces
(only the chosen op's weight enters), docs/rivals.md.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from torch import nn

from racl.search.config import SearchConfig
from racl.search.discretize import discretize
from racl.search.strategies.base import Evaluator
from racl.search.strategies.darts import DartsStrategy
from racl.search_space.base import ArchWeights, CellTopology, CellWeights, SearchSpace, Selection


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


def gdas_cell(probs: torch.Tensor, topo: CellTopology) -> Selection:
    """GDAS's DARTS-space rule (NASNetworkGDAS.genotype): per node, the `keep_edges` (2) largest
    weights over every (input, op != none) pair of its incoming edges; ties keep (input, op) order, as
    its stable sort does. probs: (E, O) softmax weights."""
    probs = probs.detach()
    out: list[tuple[int, int, str]] = []
    for j in range(topo.steps):
        pairs = [(float(probs[e, o]), topo.edges[e][1], o) for e in topo.edges_into(j)
                 for o, name in enumerate(topo.primitives) if name != "none"]
        out += [(j, i, topo.primitives[o]) for _, i, o in sorted(pairs, key=lambda p: -p[0])[:topo.keep_edges]]
    return tuple(out)


def one_hot_weights(hard: torch.Tensor) -> CellWeights:
    """A one-hot (E, O) sample as cell weights: beta 1, and the mask of the chosen ops (read on the host),
    so that only those are computed."""
    chosen = hard.detach().argmax(-1).tolist()
    mask = tuple(tuple(o == k for o in range(hard.shape[-1])) for k in chosen)
    return CellWeights(hard, torch.ones(hard.shape[0], device=hard.device), mask)


class GdasStrategy(DartsStrategy):
    """DARTS's alphas and optimiser; hard Gumbel samples in both steps; GDAS's genotype."""

    name = "gdas"
    spaces = ("darts", "nb201")

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        super().__init__(space, supernet, config, input_shape, evaluator)
        self.register_buffer("epoch", torch.tensor(0))  # the epoch being searched (set by epoch_end)

    def tau(self) -> float:
        c = self.config
        return gdas_tau(self.searched_epoch, c.warmup_epochs, c.epochs - 1, c.gdas.tau_max, c.gdas.tau_min)

    def _sample(self, generator: torch.Generator) -> ArchWeights:
        tau = self.tau()
        return {t: one_hot_weights(gumbel_hard(a, tau, generator)) for t, a in self._alphas().items()}

    def _alphas(self) -> dict[str, torch.Tensor]:
        return {t: getattr(self, f"{t}_alpha") for t in self.topology.cell_types}

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        with torch.no_grad():
            return self._sample(generator)

    def eval_weights(self) -> ArchWeights:
        """Each edge's arg-max op, one-hot (the mode of the sampling distribution)."""
        with torch.no_grad():
            return {t: one_hot_weights(torch.zeros_like(a).scatter_(-1, a.argmax(-1, keepdim=True), 1.0))
                    for t, a in self._alphas().items()}

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, torch.Tensor]:
        logits = self.network_logits(x, self._sample(generator))  # (B, K) float32
        loss = F.cross_entropy(logits, y)
        self._arch_update(loss)
        return {"arch_loss": loss.detach(), "arch_correct": (logits.argmax(1) == y).sum()}

    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """The point bound, and the temperature of the epoch that ended (None in warm-up)."""
        tau = self.tau() if arch_phase else None
        self.epoch.fill_(epoch + 1)
        return {**super().epoch_end(epoch, arch_phase, generator), "tau": tau}

    def genotype(self):
        with torch.no_grad():
            probs = {t: w.alpha for t, w in self._weights().items()}
        if self.config.gdas.cell_rule == "edges" or not self.topology.has_beta:  # NB201: argmax per edge
            return self.space.genotype(discretize(probs, None, self.topology, seed=self.config.seed))
        return self.space.genotype({t: gdas_cell(p, self.topology) for t, p in probs.items()})
