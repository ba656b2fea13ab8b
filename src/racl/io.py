"""Atomic, pickle-free file writes: a temporary file in the same directory, fsync, rename.

A run killed at any moment leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from racl.errors import RaclError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise RaclError(f"cannot write to {path.parent}: {e.strerror}; choose a writable --out") from e
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files (and writers may recreate them)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a power cut, not only a killed process); best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(fd)


def remove_temp_files(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files a process killed mid-write leaves behind: `_atomic`'s `.NAME.XXXXXXXX.tmp`
    for each NAME given, and `.tmpXXXXXX` (safetensors writes through one of its own). Nothing else."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    patterns = [f".{glob.escape(n)}.*.tmp" for n in names] + [".tmp" + "[A-Za-z0-9]" * 6]
    stale = sorted({f for pattern in patterns for f in directory.glob(pattern) if f.is_file()})
    for f in stale:
        f.unlink(missing_ok=True)
    return stale


def make_dir(path: str | os.PathLike) -> Path:
    """mkdir -p, with a one-line RaclError when it cannot be made (a file in the way, permissions)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RaclError(f"cannot create the output folder {path} ({e.strerror}); choose a writable --out") from e
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return _atomic(path, write)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return _atomic(path, write)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))


def append_jsonl(path: str | os.PathLike, record: dict) -> Path:
    """Append one JSON line by rewriting the file atomically (files here are small)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    return write_text(path, old + json.dumps(record) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RaclError(f"{what} not found: {path}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RaclError(f"{what} {path} is not valid JSON: {e}") from e
    except RecursionError as e:
        raise RaclError(f"{what} {path} is nested too deeply to be a racl file") from e


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RaclError(f"{what} not found: {path}") from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RaclError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    except RecursionError as e:
        raise RaclError(f"{what} {path} is nested too deeply to be a racl file") from e


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> Path:
    """Save tensors (contiguous, CPU, unshared copies) atomically; metadata values become JSON."""
    from safetensors.torch import save_file

    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    return _atomic(path, lambda tmp: save_file(flat, tmp, metadata=meta))


def load_safetensors(path: str | os.PathLike) -> tuple[dict, dict]:
    """Load tensors and JSON metadata; a missing or damaged file is a RaclError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise RaclError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise RaclError(
            f"{path} is not a readable safetensors checkpoint ({str(e).splitlines()[0]}); "
            "it may be truncated or not a racl file"
        ) from e
    return tensors, meta
