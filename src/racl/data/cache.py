"""Cache of decoded image-folder zips as safetensors files (decoding 50k JPEGs takes seconds).

Location: `$RACL_CACHE` or `~/.cache/racl`, under `imagefolder/`. The key is the zip's absolute
path, size and mtime (and a zipped --test-dir's) plus the load options, so an edited or replaced zip is decoded afresh. A
damaged or unwritable cache is never an error: the zip is decoded instead.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

from racl.data.arrays import ArrayDataset
from racl.errors import RaclError
from racl.io import load_safetensors, save_safetensors

CACHE_VERSION = 2  # bump when decoding changes, so old caches are ignored (2: one file holds all splits)


def cache_dir() -> Path:
    return Path(os.environ.get("RACL_CACHE") or Path.home() / ".cache" / "racl") / "imagefolder"


def cache_key(paths: Sequence[Path], *, limit: int | None, image_size: int | None, layout: str) -> str:
    """From each source zip's absolute path, size and mtime, plus the load options."""
    ident: list = [limit, image_size, layout, CACHE_VERSION]
    for path in paths:
        st = path.stat()
        ident += [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:24]


def load(key: str) -> tuple[dict[str, ArrayDataset], tuple[str, ...]] | None:
    path = cache_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        tensors, meta = load_safetensors(path)
        splits = {s: ArrayDataset(tensors[f"{s}.images"], tensors[f"{s}.labels"]) for s in meta["splits"]}
        return splits, tuple(meta["class_names"])
    except (RaclError, KeyError, ValueError, TypeError):
        return None


def save(key: str, splits: dict[str, ArrayDataset], class_names: tuple[str, ...], source: str) -> None:
    tensors = {f"{s}.{k}": getattr(ds, k) for s, ds in splits.items() for k in ("images", "labels")}
    meta = {"class_names": list(class_names), "splits": list(splits), "source": source, "version": CACHE_VERSION}
    try:
        save_safetensors(cache_dir() / f"{key}.safetensors", tensors, meta)
    except (RaclError, OSError):
        pass  # caching is an optimisation only


def clear_cache() -> int:
    """Delete all cached decodes; returns how many files were removed."""
    files = list(cache_dir().glob("*.safetensors")) if cache_dir().is_dir() else []
    for f in files:
        f.unlink(missing_ok=True)
    return len(files)
