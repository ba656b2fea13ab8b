"""Perturbation budgets written the way papers write them: "8/255", "0.031", or a float."""
from __future__ import annotations

import math
import re

from racl.errors import RaclError

_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$", re.I)


def parse_eps(text: str | float | int) -> float:
    """'8/255' -> 0.03137..., '0.031' -> 0.031; outside [0, 1] or unparsable -> RaclError."""
    if isinstance(text, bool):
        raise RaclError(f"eps must be a number like 8/255 or 0.031, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _FRACTION.match(str(text))
        if not match:
            raise RaclError(f"cannot read eps {text!r}; write it like 8/255 or 0.031")
        num, den = float(match.group(1)), float(match.group(2) or 1.0)
        if den == 0:
            raise RaclError(f"eps {text!r} divides by zero; write it like 8/255")
        value = num / den
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RaclError(f"eps {text!r} = {value} is outside [0, 1]; images are in [0, 1], e.g. 8/255")
    return value


def parse_eps_list(text: str) -> list[float]:
    """'0,2/255,8/255' -> [0.0, 0.00784, 0.03137]; empty items are errors."""
    items = [s for s in str(text).split(",")]
    if not items or any(not s.strip() for s in items):
        raise RaclError(f"cannot read the eps list {text!r}; write it like 0,2/255,4/255,8/255")
    return [parse_eps(s) for s in items]


def format_eps(eps: float) -> str:
    """0.0313725 -> '8/255' when eps is a whole number of 1/255 steps, else '0.031'."""
    steps = eps * 255
    if abs(steps - round(steps)) < 1e-6:
        return "0" if round(steps) == 0 else f"{round(steps)}/255"
    return f"{eps:.4g}"
