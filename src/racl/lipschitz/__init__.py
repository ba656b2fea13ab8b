"""Lipschitz bound of the supernet: per-op constants (power iteration) and their log-normal propagation."""
from racl.lipschitz.bound import METHODS, LipschitzBound
from racl.lipschitz.op_constants import MAXPOOL_GAIN, bn_scale
from racl.lipschitz.power_iteration import PowerIteration, spectral_norm
from racl.lipschitz.propagation import Graph, LogConstants

__all__ = ["Graph", "LipschitzBound", "LogConstants", "MAXPOOL_GAIN", "METHODS", "PowerIteration",
           "bn_scale", "spectral_norm"]
