"""racl: adversarially robust neural architecture search (RACL, Dong et al., TPAMI 2025)."""

__version__ = "0.1.0"
