"""Search strategies on one shared supernet, by name (racl.search.registry): racl, darts, random."""
from __future__ import annotations

from torch import nn

from racl.distributed import Runtime
from racl.search.config import SearchConfig
from racl.search.registry import REGISTRY, strategy_class
from racl.search.strategies.base import BOUND_FIELDS, Evaluator, SearchStrategy
from racl.search_space.base import SearchSpace


def build_strategy(config: SearchConfig, space: SearchSpace, supernet: nn.Module, input_shape: tuple[int, int, int],
                   evaluator: Evaluator | None = None, runtime: Runtime | None = None) -> SearchStrategy:
    """The strategy named by `config.strategy`, owning `supernet` (its device is used). `evaluator`:
    weights -> accuracy on a fixed set of distribution-half images (needed by `random`). `runtime`:
    the process of a data-parallel run (racl.distributed.Runtime; default one process)."""
    strategy = strategy_class(config.strategy)(space, supernet, config, input_shape, evaluator)
    if runtime is not None:
        strategy.runtime = runtime
    return strategy


__all__ = ["BOUND_FIELDS", "Evaluator", "REGISTRY", "SearchStrategy", "build_strategy", "strategy_class"]
