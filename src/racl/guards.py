"""Numerical guards: stop a run at the first non-finite value, before it can reach a checkpoint.

The search loop and the trainer check every loss (and gradient norm) at their logging points
(racl.tally: the first non-finite value and its step are recorded on the device); `check_finite`
also looks at the weights and statistics just before a checkpoint is written, so the checkpoint on
disk is always the last good one. The error names the problem, the step, the checkpoint that is
left, and what to do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from racl.errors import RaclError


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None."""
    for name, t in named:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def _tensors(modules: Mapping[str, nn.Module], buffers: bool) -> Iterable[tuple[str, torch.Tensor]]:
    for prefix, module in modules.items():
        items = module.state_dict(keep_vars=True).items() if buffers else module.named_parameters()
        for name, t in items:
            yield f"{prefix}.{name}", t.detach()


def stopped(problem: str, where: str, checkpoint: Path, advice: str) -> RaclError:
    """The one-line error of a run stopped by a non-finite value."""
    left = (f"the last good checkpoint {checkpoint} is intact" if Path(checkpoint).exists()
            else "no checkpoint was written yet")
    return RaclError(f"{problem} at {where}; the run stopped ({left}); {advice}")


def check_finite(modules: Mapping[str, nn.Module], where: str, checkpoint: Path, advice: str,
                 buffers: Iterable[str] = ()) -> None:
    """RaclError if a parameter of any module (or any state_dict entry of those named in `buffers`)
    is not finite; called just before a checkpoint is written."""
    with_buffers = set(buffers)
    bad = first_non_finite(_tensors({k: m for k, m in modules.items() if k in with_buffers}, True))
    bad = bad or first_non_finite(_tensors({k: m for k, m in modules.items() if k not in with_buffers}, False))
    if bad is not None:
        raise stopped(f"non-finite values in {bad}", where, checkpoint, advice)
