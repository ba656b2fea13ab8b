"""Search strategies on one shared supernet: racl (log-normal + Lipschitz constraint), darts, random."""
from __future__ import annotations

from racl.search.config import SearchConfig
from racl.search.strategies.base import BOUND_FIELDS, SearchStrategy
from racl.supernet import Supernet


def build_strategy(config: SearchConfig, supernet: Supernet, input_shape: tuple[int, int, int]) -> SearchStrategy:
    """The strategy named by `config.strategy`, on `supernet` (its device is used)."""
    if config.strategy == "racl":
        from racl.search.strategies.racl import RaclStrategy as cls
    elif config.strategy == "darts":
        from racl.search.strategies.darts import DartsStrategy as cls
    else:
        from racl.search.strategies.random import RandomStrategy as cls
    return cls(supernet, config, input_shape)


__all__ = ["BOUND_FIELDS", "SearchStrategy", "build_strategy"]
