"""A search run's folder (racl.lifecycle.RunFolder): what it holds, checkpoints, metrics and pictures.

    DIR/checkpoint.safetensors  everything needed to resume exactly (racl.state format)
    DIR/config.yaml             resolved SearchConfig
    DIR/metrics.jsonl           one JSON object per epoch (see loop.py for the fields)
    DIR/genotype.json           the current genotype (its space's JSON, for `racl train --genotype`)
    DIR/*.{dot,png}             cell pictures (the space's `draw`: DARTS normal.*, reduction.*)

Preparing the folder and the resume rule (every setting as it was except `epochs`, the same data)
are racl.lifecycle's, as for `racl train` and `racl compare`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from racl.errors import RaclError
from racl.lifecycle import CONFIG, METRICS, RunFolder
from racl.lifecycle import check_resumable as check_same
from racl.search.config import config_from_dict, config_to_dict
from racl.search_space.registry import space_of

GENOTYPE, CHECKPOINT = "genotype.json", "checkpoint.safetensors"
RUN_FILES = (CHECKPOINT, CONFIG, METRICS, GENOTYPE)
PICTURES = ("normal.dot", "normal.png", "reduction.dot", "reduction.png", "cell.dot", "cell.png")  # the spaces' draw
STATE_FORMAT = "racl-search-v3"  # v3: the strategy owns the supernet; its optimiser saved beside it


def search_folder(out_dir: str | Path) -> RunFolder:
    return RunFolder(out_dir, "search run", RUN_FILES, extra=PICTURES,
                     normalise=lambda saved: config_to_dict(config_from_dict(saved)))  # as this version writes it


def prepare_out_dir(out_dir: str | Path, *, resume: bool, overwrite: bool) -> bool:
    """Create DIR; True if there is a checkpoint to resume from (racl.lifecycle.RunFolder.prepare)."""
    return search_folder(out_dir).prepare(resume=resume, overwrite=overwrite)


def write_metrics(out_dir: str | Path, records: list[dict[str, Any]]) -> Path:
    """Rewrite metrics.jsonl from the records (atomic; always consistent with the checkpoint)."""
    return search_folder(out_dir).write_metrics(records)


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    return search_folder(out_dir).read_metrics()


def draw_cells(genotype: Any, out_dir: str | Path) -> list[Path]:
    """DOT + PNG pictures of the cells; a failing drawer (no Graphviz, ...) is a warning, not an error."""
    try:
        return list(space_of(genotype).draw(genotype, out_dir))
    except (OSError, RuntimeError, ValueError) as e:
        warnings.warn(f"cell pictures skipped: {e}", stacklevel=2)
        return []


def check_resumable(saved: dict[str, Any], config: dict[str, Any], data_spec: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint written with other settings (only `epochs` may change) or data."""
    if saved.get("format") != STATE_FORMAT:
        raise RaclError("the checkpoint is not a search checkpoint of this racl version (0.x checkpoints do not "
                        "carry over); use --overwrite to start again")
    check_same("this search", "config", saved["config"], config)
    check_same("this search", "data spec", saved.get("data_spec"), data_spec, may_change=())
