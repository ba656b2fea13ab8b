"""Resumable run state without pickle: nested dicts/lists of tensors and JSON scalars.

`save_state` splits a nested structure into tensors (safetensors) and a JSON skeleton that points at
them; `load_state` puts it back together. Optimiser state dicts, RNG states and counters all fit.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from racl.errors import RaclError
from racl.io import load_safetensors, save_safetensors

_TENSOR = "__tensor__"
_NDARRAY = "__ndarray__"
_TUPLE = "__tuple__"


def _split(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj
        return {_TENSOR: key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {_NDARRAY: key}
    if isinstance(obj, dict):
        return {"__dict__": [[_split(k, tensors, f"{key}.k{i}"), _split(v, tensors, f"{key}.{i}")]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {_TUPLE: [_split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a racl state file")


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _NDARRAY in obj:
            return tensors[obj[_NDARRAY]].numpy()
        if _TUPLE in obj:
            return tuple(_join(v, tensors) for v in obj[_TUPLE])
        if "__dict__" in obj:
            return {_join(k, tensors): _join(v, tensors) for k, v in obj["__dict__"]}
        raise RaclError("state file is damaged: unknown entry in its skeleton")
    return obj


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write a nested state (tensors + JSON-able values) to one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, tensors, "s")
    return save_safetensors(path, tensors, {"skeleton": skeleton, "format": "racl-state-v1"})


def load_state(path: str | Path) -> dict[str, Any]:
    tensors, meta = load_safetensors(path)
    if meta.get("format") != "racl-state-v1" or "skeleton" not in meta:
        raise RaclError(f"{path} is not a racl state file")
    try:
        return _join(meta["skeleton"], tensors)
    except KeyError as e:
        raise RaclError(f"state file {path} is damaged: missing tensor {e}") from e


def read_entry(path: str | Path, key: str) -> Any:
    """One top-level entry of a state file that holds no tensor (e.g. a run's data spec), read from
    the file's header alone, without loading its tensors; None when the file has no such entry."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
        skeleton = json.loads(meta.get("skeleton", "null"))
    except Exception as e:  # noqa: BLE001 - damaged or not a safetensors file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RaclError(f"{path} is not a readable safetensors checkpoint ({first}); it may be truncated or not a "
                        "racl file") from e
    for k, v in (skeleton or {}).get("__dict__", []):
        if k == key:
            return _join(v, {})
    return None


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and, when present, CUDA) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    np.random.set_state(_as_tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # the CPU generator and every CUDA device's


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process `rank`'s own random stream: `seed` for rank 0, for rank r > 0 a 32-bit seed
    from NumPy's SeedSequence of (seed, r) (well-mixed, distinct streams, the same on every run)."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def seed_rank(seed: int, rank: int) -> None:
    """Give this process its own stream for what is random within a step (attack random starts,
    drop-path masks; Python, NumPy, torch CPU and CUDA), called once the weights are initialised from
    the common `seed`. Rank 0 keeps the stream it has, so a one-process run is unchanged."""
    if rank > 0:
        seed_everything(rank_seed(seed, rank))


def restore_rank_rng(saved: list[dict[str, Any]] | dict[str, Any], rank: int, world: int,
                     fresh_seed: int) -> str | None:
    """This process's RNG state from a checkpoint's per-rank list (rank r takes entry r; a single dict
    is one process's). A process the checkpoint holds no state for (it was written by fewer
    processes) starts the stream of seed_rank(fresh_seed, rank). Returns a one-line note when the
    number of processes changed (the resumed run then differs from an uninterrupted one), else None."""
    states = saved if isinstance(saved, list) else [saved]
    if rank < len(states):
        set_rng_state(states[rank])
    else:
        seed_rank(fresh_seed, rank)
    if len(states) == world:
        return None
    return (f"the checkpoint was written by {len(states)} process(es), this run has {world}: the global "
            "batch and the random streams differ from an uninterrupted run")
