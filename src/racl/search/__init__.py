"""Architecture search: config, the confidence constraint, discretisation, strategies and the loop.

    from racl.data import load_data
    from racl.search import get_preset, run_search
    result = run_search(get_preset("tiny"), load_data("synthetic", image_size=16), "runs/s")
    result.genotype   # the space's genotype (racl.search_space.Genotype for DARTS)
"""
from racl.search.config import (PRESETS, STRATEGIES, SearchConfig, apply_overrides, config_from_dict,
                                 config_to_dict, get_preset, load_search_config, save_search_config)
from racl.search.constraint import ConfidenceConstraint
from racl.search.discretize import choose, discretize, selection_weights
from racl.search.loop import SearchResult, run_search

__all__ = ["ConfidenceConstraint", "PRESETS", "STRATEGIES", "SearchConfig", "SearchResult", "apply_overrides",
           "choose", "config_from_dict", "config_to_dict", "discretize", "selection_weights",
           "get_preset", "load_search_config", "run_search", "save_search_config"]
