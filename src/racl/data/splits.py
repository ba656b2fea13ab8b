"""Deterministic, stratified train/validation/test splits and per-class limits."""
from __future__ import annotations

import math

import torch

from racl.errors import RaclError


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Each fraction in [0, 1) and together below 1, or RaclError."""
    for name, f in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not isinstance(f, (int, float)) or not 0 <= f < 1:
            raise RaclError(f"{name} must be in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise RaclError(f"--val-fraction + --test-fraction must be below 1, got {val_fraction} + {test_fraction}")


def stratified_split(labels: torch.Tensor, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Split indices per class: returns [rest, part_1, ..., part_k] with part_i ~ fractions[i] of each class.

    Per class c (n_c examples, shuffled by a generator seeded with `seed`): part i takes
    round(fractions[i] * n_c) examples, keeping at least one for `rest`. Each output is sorted.
    """
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for i, f in enumerate(fractions):
            k = min(math.floor(f * len(idx) + 0.5), max(len(idx) - 1 - start, 0))
            parts[i + 1].append(idx[start : start + k])
            start += k
        parts[0].append(idx[start:])
    return [torch.sort(torch.cat(p)).values if p else torch.empty(0, dtype=torch.int64) for p in parts]


def limit_per_class(labels: torch.Tensor, limit: int | None) -> torch.Tensor:
    """Indices of the first `limit` examples of each class, in their original order."""
    labels = labels.cpu()
    if limit is None:
        return torch.arange(len(labels))
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for c in torch.unique(labels).tolist():
        keep[(labels == c).nonzero().flatten()[:limit]] = True
    return keep.nonzero().flatten()


def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a fixed, class-balanced subset of `n` examples: each class shuffled by a generator
    seeded with `seed`, then the classes taken in turn (the first of each class, then the second, ...).

    Splits are sorted by index, and image folders list their classes one after another, so "the first
    n" of a split would be its first few classes; the per-epoch validation subsets use this instead."""
    labels = labels.cpu()
    g = torch.Generator().manual_seed(int(seed))
    rank = torch.empty(len(labels), dtype=torch.int64)
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        rank[idx[torch.randperm(len(idx), generator=g)]] = torch.arange(len(idx))
    if len(labels) == 0:
        return torch.empty(0, dtype=torch.int64)
    order = torch.argsort(rank * (int(labels.max()) + 1) + labels.long())  # keys unique: (rank, class)
    return order[: max(n, 0)]
