"""PC-DARTS (Xu et al., ICLR 2020) in the same framework: partial channel connections and edge normalisation.

Followed: yuhuixu1993/PC-DARTS `model_search.py` (`MixedOp`, `Cell.forward`, `Network.forward`,
`Network.genotype`) and `train_search.py` (first-order architecture step, Adam on alphas and betas).
  - partial channels: on every edge only C/k channels go through the mixed op, the rest bypass it
    (max-pooled on stride-2 edges), then a channel shuffle in k groups (racl.supernet.mixed_op
    `PartialMixedOp`; k = `pcdarts.k`, 4 as on CIFAR);
  - edge normalisation: a parameter beta_e per edge; node j weighs its incoming edges by the softmax
    of their betas (the node formula's beta), alphas by the softmax over each edge's ops, as DARTS;
  - genotype: DARTS's rule on the products softmax(beta)_e * softmax(alpha)_eo (`_parse`): per node
    the 2 edges of largest non-`none` product, on each its arg-max op.
Both alphas and betas start at 1e-3 N(0, 1) and are trained by the architecture step (Adam, first
order, the same settings as `darts`). The Lipschitz bound of a partial-channel supernet is not
computed (a mixed op passes 1 - 1/k of its input unchanged, outside the per-op constants): the
bound metrics of a pcdarts search are null; `racl lipschitz` measures the found cell after training.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from racl.search.config import SearchConfig
from racl.search.discretize import discretize
from racl.search.strategies.base import Evaluator
from racl.search.strategies.darts import INIT_SCALE, DartsStrategy
from racl.search_space.base import ArchWeights, CellWeights, SearchSpace


class PcDartsStrategy(DartsStrategy):
    name = "pcdarts"
    spaces = ("darts",)

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        nn.Module.__init__(self)  # DartsStrategy's set-up, then the betas, then one optimiser over both
        self._setup(space, supernet, config, input_shape, evaluator)
        g = torch.Generator().manual_seed(config.seed + 1)
        for t in self.topology.cell_types:
            self.register_parameter(f"{t}_beta", nn.Parameter(
                INIT_SCALE * torch.randn(self.topology.num_edges, generator=g).to(self.device)))
        self._make_optimizer()
        self.bound = None  # not computed for partial channels (module docstring)

    @classmethod
    def supernet_options(cls, config: SearchConfig) -> dict[str, Any]:
        return {"partial_channels": config.pcdarts.k}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [*super().arch_parameters(), *(getattr(self, f"{t}_beta") for t in self.topology.cell_types)]

    def _edge_weights(self, beta: torch.Tensor) -> torch.Tensor:
        """Edge normalisation: the softmax of the betas over each node's incoming edges. (E,)"""
        return torch.cat([F.softmax(beta[r.start:r.stop], dim=-1) for r in map(self.topology.edges_into,
                                                                                   range(self.topology.steps))])

    def _weights(self) -> ArchWeights:
        return {t: CellWeights(F.softmax(getattr(self, f"{t}_alpha"), dim=-1),
                               self._edge_weights(getattr(self, f"{t}_beta"))) for t in self.topology.cell_types}

    def genotype(self):
        w = self.eval_weights()
        alpha = {t: c.alpha for t, c in w.items()}
        edge = {t: c.beta.unsqueeze(-1) * c.alpha for t, c in w.items()}
        return self.space.genotype(discretize(alpha, edge, self.topology, seed=self.config.seed))
