"""Finished attack batches kept on disk, so that an interrupted evaluation continues where it stopped.

Every attacked batch is a pure function of (model, images, attack, eps, seed, batch index): each batch
runs under its own seed (evaluate.attack_correct). `BatchStore` keeps the per-image results of the
finished batches in OUT/.partial/<fingerprint>.safetensors (rewritten atomically after every batch);
`racl evaluate --resume` reuses them when the fingerprint (checkpoint file, images, settings) matches,
so AutoAttack on thousands of images survives a kill with at most one batch lost. The file is removed
once the results are written.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from racl.io import load_safetensors, save_safetensors

PARTIAL = ".partial"


def fingerprint(checkpoint: str | Path, images: torch.Tensor, labels: torch.Tensor, **settings: Any) -> str:
    """A digest of what decides every batch's result: the checkpoint file's bytes, the images, labels
    and settings (split, seed, batch size, ...)."""
    h = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(images.contiguous().cpu().numpy().tobytes())
    h.update(labels.contiguous().cpu().numpy().tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


class BatchStore:
    """{"attack@eps/batch": (B,) bool} of finished batches; `resume` False starts from nothing."""

    def __init__(self, out: str | Path, key: str, resume: bool, rank: int | None = None):
        """`rank`: a data-parallel process keeps its own share (OUT/.partial/KEY-rankR); None: one process."""
        rank = "" if rank is None else f"-rank{rank}"
        self.path = Path(out) / PARTIAL / f"{key}{rank}.safetensors"
        self.done: dict[str, torch.Tensor] = {}
        if resume and self.path.is_file():
            self.done = dict(load_safetensors(self.path)[0])
        self.reused = 0

    def get(self, key: str) -> torch.Tensor | None:
        value = self.done.get(key)
        self.reused += value is not None
        return value

    def put(self, key: str, correct: torch.Tensor) -> None:
        self.done[key] = correct
        save_safetensors(self.path, self.done)

    def finish(self) -> None:
        """The evaluation is complete: the partial results go."""
        self.path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass
