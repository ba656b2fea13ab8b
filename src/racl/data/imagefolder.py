"""Image-folder datasets (`<class>/<image>`, optionally under one top folder) from a directory or a zip.

Zips are read in place (never extracted), so a 300-image load touches only 300 members. Entry
names that could escape a target directory (absolute, drive letter, `..`) are refused outright.
Hidden files and folders (`.DS_Store`, `__MACOSX/`) are skipped; any other non-image file is an error.
"""
from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import torch

from racl.data import cache
from racl.data.arrays import ArrayDataset
from racl.data.decode import decode_many, harmonise
from racl.errors import RaclError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp", ".gif")
Parts = tuple[str, ...]
_CHUNK = 1024  # files decoded per batch
_BATCHED_FROM = 4096  # from this many images on, torchvision's batched decoder pays for its import
_DRIVE = re.compile(r"^[A-Za-z]:")


class _Folder:
    """A listing of files and folders (as path parts) plus a way to read one file's bytes."""

    def __init__(self, where: str, files: list[Parts], dirs: list[Parts], read: Callable[[Parts], bytes]):
        self.where, self.files, self.dirs, self.read = where, files, dirs, read

    def name(self, parts: Parts) -> str:
        return f"{self.where}:{'/'.join(parts)}" if self.where.endswith(".zip") else os.path.join(self.where, *parts)


def _safe_parts(name: str, where: str) -> Parts:
    """Split a zip entry name, refusing names that would escape an extraction directory."""
    norm = name.replace("\\", "/")
    parts = tuple(norm.split("/"))
    if "" in parts or "." in parts:
        parts = tuple(p for p in parts if p not in ("", "."))
    if norm.startswith("/") or ".." in parts or (":" in norm and _DRIVE.match(norm)):
        raise RaclError(f"{where}: refusing unsafe zip entry {name!r} (absolute path or '..'); do not use this archive")
    return parts


def _hidden(parts: Parts) -> bool:
    return any(p[0] == "." or p == "__MACOSX" for p in parts if p)


def _open_zip(path: Path) -> tuple[zipfile.ZipFile, _Folder]:
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise RaclError(f"{path} is not a readable zip archive ({e}); it may be corrupt or truncated") from e
    files, dirs, by_parts = [], [], {}
    for info in infos:
        parts = _safe_parts(info.filename, str(path))
        (dirs if info.is_dir() else files).append(parts)
        by_parts[parts] = info

    def read(parts: Parts) -> bytes:
        try:
            return zf.read(by_parts[parts])
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
            raise RaclError(f"{path}: cannot read member {'/'.join(parts)} ({e}); the zip may be corrupt") from e

    return zf, _Folder(str(path), files, dirs, read)


def _open_dir(root: Path) -> _Folder:
    files, dirs = [], []
    for top, subdirs, names in os.walk(root):
        rel = Path(top).relative_to(root).parts
        subdirs[:] = sorted(d for d in subdirs if not _hidden((d,)))
        dirs.extend(rel + (d,) for d in subdirs)
        files.extend(rel + (n,) for n in names)
    def read(parts: Parts) -> bytes:
        try:
            return root.joinpath(*parts).read_bytes()
        except OSError as e:
            raise RaclError(f"cannot read {root.joinpath(*parts)} ({e.strerror}); check the file") from e

    return _Folder(str(root), files, dirs, read)


def class_layout(folder: _Folder) -> tuple[Parts, dict[str, list[Parts]]]:
    """Find the class level (stripping single top folders like `train/`) and each class's files."""
    visible = sorted(p for p in folder.files if not _hidden(p))
    if not visible:
        raise RaclError(f"{folder.where} contains no images; expected <class>/<image> folders")
    prefix: Parts = ()
    while all(len(p) >= len(prefix) + 3 for p in visible) and len({p[len(prefix)] for p in visible}) == 1:
        prefix = visible[0][: len(prefix) + 1]
    depth = len(prefix)
    for p in visible:
        if len(p) == depth + 1:
            raise RaclError(f"{folder.name(p)} is not inside a class folder; use the layout <class>/<image>")
        if not p[-1].lower().endswith(IMAGE_EXTENSIONS):
            raise RaclError(f"{folder.name(p)} is not an image file ({', '.join(IMAGE_EXTENSIONS)}); remove it")
    members: dict[str, list[Parts]] = {}
    for p in visible:
        members.setdefault(p[depth], []).append(p)
    for d in folder.dirs:
        if len(d) > depth and d[:depth] == prefix and not _hidden(d):
            members.setdefault(d[depth], [])
    members = {c: members[c] for c in sorted(members)}
    for c, files in members.items():
        if not files:
            raise RaclError(f"class folder {folder.name(prefix + (c,))} has no images; remove it or add images")
    if len(members) < 2:
        raise RaclError(f"{folder.where} has {len(members)} class folder(s); classification needs at least 2")
    return prefix, members


def _decode_folder(folder: _Folder, limit: int | None, image_size: int | None) -> tuple[ArrayDataset, tuple[str, ...]]:
    _, members = class_layout(folder)
    chosen = [(parts, label) for label, files in enumerate(members.values()) for parts in files[:limit]]
    names = [folder.name(parts) for parts, _ in chosen]
    images: list[torch.Tensor] = []
    for start in range(0, len(chosen), _CHUNK):  # chunks: raw bytes never all in memory at once
        datas = [folder.read(parts) for parts, _ in chosen[start : start + _CHUNK]]
        images.extend(decode_many(datas, names[start : start + _CHUNK], batched=len(chosen) >= _BATCHED_FROM))
    labels = [label for _, label in chosen]
    stacked = harmonise(images, names, image_size)  # (N, C, S, S) uint8
    return ArrayDataset(stacked, torch.tensor(labels, dtype=torch.int64)), tuple(members)


def load_image_folder(
    path: str | os.PathLike, *, limit: int | None = None, image_size: int | None = None, use_cache: bool = True
) -> tuple[ArrayDataset, tuple[str, ...]]:
    """Decode an image folder (directory or .zip) into memory; zips are cached as safetensors."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _decode_folder(_open_dir(path), limit, image_size)
    if not path.is_file():
        raise RaclError(f"image folder not found: {path}; pass --data-dir DIR or a .zip in <class>/<image> layout")
    key = cache.cache_key(path, limit=limit, image_size=image_size) if use_cache else None
    hit = cache.load(key) if key else None
    if hit is not None:
        return hit
    zf, folder = _open_zip(path)
    with zf:
        ds, class_names = _decode_folder(folder, limit, image_size)
    if key:
        cache.save(key, ds, class_names, source=str(path))
    return ds, class_names
