"""A search run's folder: what it holds, refusing to clobber it, checkpoints, metrics and pictures.

    DIR/config.yaml             resolved SearchConfig
    DIR/metrics.jsonl           one JSON object per epoch (see loop.py for the fields)
    DIR/genotype.json           the current genotype (bare Genotype JSON, for `racl train --genotype`)
    DIR/checkpoint.safetensors  everything needed to resume exactly (racl.state format)
    DIR/normal.{dot,png}, DIR/reduction.{dot,png}   cell pictures (racl.search_space.draw)
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from racl.errors import RaclError
from racl.io import make_dir, remove_temp_files, write_text
from racl.search_space.genotype import Genotype

CONFIG, METRICS, GENOTYPE, CHECKPOINT = "config.yaml", "metrics.jsonl", "genotype.json", "checkpoint.safetensors"
RUN_FILES = (CONFIG, METRICS, GENOTYPE, CHECKPOINT)
PICTURES = ("normal.dot", "normal.png", "reduction.dot", "reduction.png")
STATE_FORMAT = "racl-search-v1"


def prepare_out_dir(out_dir: str | Path, *, resume: bool, overwrite: bool) -> bool:
    """Create DIR; True if there is a checkpoint to resume from.

    A folder that already holds a run is refused unless `resume` (continue it) or `overwrite`
    (delete the run's own files, nothing else, and start again).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RaclError(f"--out {out} is a file, not a folder")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not (resume or overwrite):
        raise RaclError(f"{out} already holds a search run ({', '.join(existing)}); "
                        "use --resume to continue it or --overwrite to replace it")
    remove_temp_files(out, RUN_FILES + PICTURES)  # left by a run killed mid-write
    if resume and (out / CHECKPOINT).exists():
        return True
    if existing and overwrite:
        for name in RUN_FILES + PICTURES:
            (out / name).unlink(missing_ok=True)
    make_dir(out)
    return False


def write_metrics(out_dir: str | Path, records: list[dict[str, Any]]) -> Path:
    """Rewrite metrics.jsonl from the records (atomic; always consistent with the checkpoint)."""
    return write_text(Path(out_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in records))


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def draw_cells(genotype: Genotype, out_dir: str | Path) -> list[Path]:
    """DOT + PNG pictures of both cells; a missing or failing drawer is a warning, not an error."""
    try:
        from racl.search_space.draw import draw_genotype
    except ImportError as e:
        warnings.warn(f"cell pictures skipped: racl.search_space.draw is not available ({e})", stacklevel=2)
        return []
    try:
        return list(draw_genotype(genotype, out_dir))
    except (OSError, RuntimeError, ValueError) as e:
        warnings.warn(f"cell pictures skipped: {e}", stacklevel=2)
        return []


def check_resumable(saved: dict[str, Any], config: dict[str, Any], data_spec: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint written with other settings (only `epochs` may change) or data."""
    if saved.get("format") != STATE_FORMAT:
        raise RaclError("the checkpoint is not a racl search checkpoint; use --overwrite to start again")
    old = _flatten(saved["config"])
    new = _flatten(config)
    diff = sorted(k for k in set(old) | set(new) if k != "epochs" and old.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise RaclError(f"cannot resume with different settings ({shown}); "
                        "use the run's config.yaml, or --overwrite to start again")
    if _normal(saved.get("data_spec")) != _normal(data_spec):
        raise RaclError("cannot resume on different data than the run started with; "
                        "use the same dataset flags, or --overwrite to start again")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def _normal(obj: Any) -> Any:
    """JSON round trip, so tuples and lists compare equal."""
    return json.loads(json.dumps(obj))
