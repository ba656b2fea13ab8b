"""First-order DARTS (Liu et al., ICLR 2019) in the same framework: same supernet, data and budget.

alpha (E, O) per cell type, weights softmax(alpha) over the ops of each edge, beta = 1 on every
edge; the architecture step is Adam on the validation (distribution-half) CE with the current
weights fixed (first order: no unrolled step). Discretisation is DARTS's: per node the incoming
edges with the largest non-`none` softmax weight (as many as the space keeps), on each the arg-max
op (racl.search.discretize with the softmax as both scores). The racl-specific metrics hold the point
bound ln L_F(softmax(alpha)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from racl.search.config import SearchConfig
from racl.search.discretize import discretize
from racl.search.strategies.base import Evaluator, SearchStrategy
from racl.search_space.base import ArchWeights, CellWeights, SearchSpace

INIT_SCALE = 1e-3  # [DARTS] alpha ~ N(0, INIT_SCALE^2)


class DartsStrategy(SearchStrategy):
    name = "darts"

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        nn.Module.__init__(self)
        self._setup(space, supernet, config, input_shape, evaluator)
        self.with_bound()
        self._make_optimizer()

    def _setup(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
               input_shape: tuple[int, int, int], evaluator: Evaluator | None) -> None:
        """The base set-up and one alpha (E, O) per cell type, N(0, INIT_SCALE^2) (DARTS)."""
        SearchStrategy.__init__(self, space, supernet, config, input_shape, evaluator)
        g = torch.Generator().manual_seed(config.seed)
        shape = (self.topology.num_edges, self.topology.num_ops)
        for t in self.topology.cell_types:
            self.register_parameter(f"{t}_alpha", nn.Parameter(
                INIT_SCALE * torch.randn(shape, generator=g).to(self.device)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, f"{t}_alpha") for t in self.topology.cell_types]

    def _weights(self) -> ArchWeights:
        ones = torch.ones(self.topology.num_edges, device=self.device)
        return {t: CellWeights(F.softmax(getattr(self, f"{t}_alpha"), dim=-1), ones) for t in self.topology.cell_types}

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        with torch.no_grad():
            return self._weights()

    def eval_weights(self) -> ArchWeights:
        with torch.no_grad():
            return self._weights()

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, torch.Tensor]:
        logits = self.network_logits(x, self._weights())  # (B, K) float32
        loss = F.cross_entropy(logits, y)
        self._arch_update(loss)
        return {"arch_loss": loss.detach(), "arch_correct": (logits.argmax(1) == y).sum()}

    def genotype(self):
        w = self.eval_weights()
        return self.space.genotype(discretize({t: c.alpha for t, c in w.items()}, None, self.topology,
                                              seed=self.config.seed))
