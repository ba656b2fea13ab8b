"""Lipschitz bounds: per-piece constants (power iteration), their log-normal propagation through a
supernet (a space describes its network: racl.lipschitz.bound.BoundLayout), trained networks' bounds."""
from racl.lipschitz.bound import METHODS, BoundLayout, Group, LipschitzBound
from racl.lipschitz.linear import bn_scale
from racl.lipschitz.power_iteration import PowerIteration, spectral_norm

__all__ = ["BoundLayout", "Group", "LipschitzBound", "METHODS", "PowerIteration", "bn_scale", "spectral_norm"]
