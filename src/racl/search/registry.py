"""The search strategies by name (NASLib-style: the search space apart from the strategy).

A new strategy is one module with a `SearchStrategy` subclass plus one line here; `racl search
--strategy NAME` and `SearchConfig.strategy` accept every name listed. Entries are "module:Class"
strings, imported on first use, so the config can list the names without importing the strategies.
"""
from __future__ import annotations

import importlib

REGISTRY: dict[str, str] = {
    "racl": "racl.search.strategies.racl:RaclStrategy",     # log-normal + Lipschitz confidence constraint
    "darts": "racl.search.strategies.darts:DartsStrategy",  # first-order DARTS
    "random": "racl.search.strategies.random:RandomStrategy",  # random search with weight sharing
    "pcdarts": "racl.search.strategies.pcdarts:PcDartsStrategy",  # partial channels + edge normalisation
    "advrush": "racl.search.strategies.advrush:AdvRushStrategy",  # DARTS + input-curvature regulariser
    "gdas": "racl.search.strategies.gdas:GdasStrategy",  # Gumbel-softmax, one op per edge per step
}


def strategy_class(name: str) -> type:
    """The class registered as `name` (KeyError for an unknown name; SearchConfig checks names first)."""
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)
