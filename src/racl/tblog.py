"""Optional TensorBoard event files, written from the same per-epoch records as metrics.jsonl.

`TensorBoardLog(out_dir, enabled)` writes every finite numeric field of a record as a scalar at
step = the record's `epoch`, into event files next to metrics.jsonl (so `tensorboard --logdir runs/`
finds every run). Strings, lists, dicts (phase, genotype) and None stay in metrics.jsonl only.
Without the `tensorboard` package (`pip install 'racl[tensorboard]'`) it warns once and does nothing:
metrics.jsonl is the record of a run, the event files only a view of it.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'racl[tensorboard]'"


def _writer_class() -> Any:
    """torch's SummaryWriter, or None when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's finite int/float fields (bools, strings, containers and None left out)."""
    out = {}
    for key, value in record.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class TensorBoardLog:
    """Scalars per epoch into `out_dir`; a no-op when disabled or when tensorboard is not installed.

    `start_step`: the first epoch this writer will log (1 for a new run, done + 1 after a resume);
    events left at or after it by an earlier, interrupted or overwritten run are purged from view.
    """

    def __init__(self, out_dir: str | Path, enabled: bool, *, start_step: int = 1):
        self.writer: Any = None
        if not enabled:
            return
        writer_class = _writer_class()
        if writer_class is None:
            warnings.warn(f"--tensorboard needs the tensorboard package ({INSTALL_HINT}); writing metrics.jsonl only",
                          stacklevel=2)
            return
        self.writer = writer_class(log_dir=str(out_dir), purge_step=max(int(start_step), 0))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def write(self, record: dict[str, Any], step: int | None = None) -> None:
        """Log the record's scalars at `step` (default: its `epoch` field) and flush."""
        if self.writer is None:
            return
        step = int(record.get("epoch", 0) if step is None else step)
        for key, value in scalars(record).items():
            if key != "epoch":
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
