"""First-order DARTS (Liu et al., ICLR 2019) in the same framework: same supernet, data and budget.

alpha (E, O) per cell type, weights softmax(alpha) over the ops of each edge, beta = 1 on every
edge; the architecture step is Adam on the validation (distribution-half) CE with the current
weights fixed (first order: no unrolled step). Discretisation is DARTS's: per node the 2 incoming
edges with the largest non-`none` softmax weight, on each the arg-max non-`none` op
(`discretize` with beta = 1). The racl-specific metrics hold the point bound ln L_F(softmax(alpha)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from racl.search.config import SearchConfig
from racl.search.discretize import discretize
from racl.search.strategies.base import Evaluator, SearchStrategy, make_bound
from racl.search_space.genotype import Genotype
from racl.supernet import ArchWeights, Supernet


class DartsStrategy(SearchStrategy):
    name = "darts"

    def __init__(self, supernet: Supernet, config: SearchConfig, input_shape: tuple[int, int, int],
                 evaluator: Evaluator | None = None):
        super().__init__(supernet, config, input_shape, evaluator)
        device = next(supernet.parameters()).device
        g = torch.Generator().manual_seed(config.seed)
        shape = (supernet.num_edges, supernet.num_ops)
        self.normal_alpha = nn.Parameter(config.darts.init_scale * torch.randn(shape, generator=g).to(device))
        self.reduce_alpha = nn.Parameter(config.darts.init_scale * torch.randn(shape, generator=g).to(device))
        self.attach_bound(make_bound(supernet, input_shape, config))
        self._make_optimizer()

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.normal_alpha, self.reduce_alpha]

    def _weights(self) -> ArchWeights:
        ones = torch.ones(self.normal_alpha.shape[0], device=self.normal_alpha.device)
        return ArchWeights(F.softmax(self.normal_alpha, dim=-1), ones,
                           F.softmax(self.reduce_alpha, dim=-1), ones)

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        with torch.no_grad():
            return self._weights()

    def eval_weights(self) -> ArchWeights:
        with torch.no_grad():
            return self._weights()

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                  global_step: int) -> dict[str, float]:
        logits = self.supernet(x, self._weights())  # (B, K)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"architecture loss is {loss.item()}")
        self._arch_update(loss)
        return {"arch_loss": loss.item(), "arch_correct": float((logits.argmax(1) == y).sum())}

    def genotype(self) -> Genotype:
        w = self.eval_weights()
        return discretize({"normal_alpha": w.normal_alpha, "reduce_alpha": w.reduce_alpha}, self.supernet.steps,
                          seed=self.config.seed)
