"""Step values kept on the device and read on the host only at logging points (sync-free steps).

A training or search step hands its losses and counts over as tensors (`add`, no `.item()`), and
the losses that must stay finite to `watch`, which records on the device the first step where a
watched value is not finite (and that value). `read()` copies everything to the host in one
transfer, the only host-device synchronisation of the loop, and raises `NonFinite` for the first
non-finite watched value. The loops read every `LOG_EVERY` steps (the progress bar) and at the end
of every epoch, so a run that diverges stops at most LOG_EVERY - 1 steps after the step it names,
before any checkpoint is written.
"""
from __future__ import annotations

import torch

LOG_EVERY = 50  # steps between logging points (and the checks of the watched values) inside an epoch


class NonFinite(FloatingPointError):
    """A watched value was not finite: `what` is `value` at (0-based) step `step`."""

    def __init__(self, what: str, value: float, step: int):
        super().__init__(f"{what} is {value}")
        self.what, self.value, self.step = what, value, step


def is_logging_point(step: int, steps: int) -> bool:
    """Whether (0-based) step `step` of an epoch of `steps` ends with a logging point."""
    return (step + 1) % LOG_EVERY == 0 or step + 1 == steps


class Tally:
    """Sums of step values (on the values' device) and the first non-finite watched value."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = {}
        self._bad: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # what -> (step or -1, value)

    def add(self, key: str, value: torch.Tensor | float, weight: float = 1.0) -> None:
        """sums[key] += weight * value (a tensor stays on its device: no synchronisation)."""
        if isinstance(value, torch.Tensor):
            value = value.detach().to(torch.float64) * weight
        else:
            value = float(value) * weight
        self._sums[key] = self._sums.get(key, 0.0) + value

    def watch(self, what: str, value: torch.Tensor, step: int) -> None:
        """Record `value` (0-dim) if it is the first non-finite value of `what` (checked at `read`)."""
        value = value.detach().to(torch.float64)
        if what not in self._bad:
            self._bad[what] = (torch.full((), -1, dtype=torch.int64, device=value.device), torch.zeros_like(value))
        first, saved = self._bad[what]
        new = (first < 0) & ~torch.isfinite(value)
        self._bad[what] = (torch.where(new, step, first), torch.where(new, value, saved))

    def read(self) -> dict[str, float]:
        """The sums as floats (one host copy); NonFinite for the earliest non-finite watched value."""
        tensors = [(k, v) for k, v in self._sums.items() if isinstance(v, torch.Tensor)]
        parts = [v for _, v in tensors] + [t.to(torch.float64) for pair in self._bad.values() for t in pair]
        host = torch.stack([p.to(parts[0].device) for p in parts]).tolist() if parts else []
        out = {k: v for k, v in self._sums.items() if not isinstance(v, torch.Tensor)}
        out.update({k: host[i] for i, (k, _) in enumerate(tensors)})
        bad = host[len(tensors):]
        found = [(int(bad[2 * i]), what, bad[2 * i + 1]) for i, what in enumerate(self._bad) if bad[2 * i] >= 0]
        if found:
            step, what, value = min(found, key=lambda f: f[0])
            raise NonFinite(what, value, step)
        return out
