"""Perturbation budgets written the way papers write them: "8/255", "0.031", or a float."""
from __future__ import annotations

import math

from racl.config import read_number
from racl.errors import RaclError


def parse_eps(text: str | float | int) -> float:
    """'8/255' -> 0.03137..., '0.031' -> 0.031; outside [0, 1] or unparsable -> RaclError."""
    if isinstance(text, bool):
        raise RaclError(f"eps must be a number like 8/255 or 0.031, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        number = read_number(str(text))
        if number is None:
            num, _, den = str(text).partition("/")
            if read_number(num) is not None and read_number(den) == 0:
                raise RaclError(f"eps {text!r} divides by zero; write it like 8/255")
            raise RaclError(f"cannot read eps {text!r}; write it like 8/255 or 0.031")
        value = number
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RaclError(f"eps {text!r} = {value} is outside [0, 1]; images are in [0, 1], e.g. 8/255")
    return value


def default_step_size(eps: float) -> float:
    """The one default step size of every iterative attack racl runs (PGD in training, validation,
    evaluation and the search's weight step; TRADES; CW): eps / 4. At eps = 8/255 that is 2/255,
    Madry et al.'s CIFAR-10 setting for PGD-7 training and PGD-20 evaluation. It does not shrink
    with the step count, so few steps (k < 4) cannot cross the ball: give `alpha` for those.
    (FGSM's single step is 1.25 eps, Wong et al.; MI-FGSM's eps / steps, its paper's.)"""
    return eps / 4


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
