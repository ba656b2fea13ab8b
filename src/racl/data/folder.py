"""A folder of files, from a directory or a zip read in place: its listing and a way to read one file.

Zips are never extracted. Entry names that could escape a target directory (absolute, drive letter,
`..`) are refused outright. A `Folder` can be handed to DataLoader worker processes: a zip is
reopened once per process (a ZipFile shared across a fork would share one file position).
"""
from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from racl.errors import RaclError

Parts = tuple[str, ...]
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_parts(name: str, where: str) -> Parts:
    """Split a zip entry name, refusing names that would escape an extraction directory."""
    norm = name.replace("\\", "/")
    parts = tuple(norm.split("/"))
    if "" in parts or "." in parts:
        parts = tuple(p for p in parts if p not in ("", "."))
    if norm.startswith("/") or ".." in parts or (":" in norm and _DRIVE.match(norm)):
        raise RaclError(f"{where}: refusing unsafe zip entry {name!r} (absolute path or '..'); do not use this archive")
    return parts


def hidden(parts: Parts) -> bool:
    """Hidden files and folders (`.DS_Store`, `__MACOSX/`), skipped everywhere."""
    return any(p[0] == "." or p == "__MACOSX" for p in parts if p)


class Folder:
    """Files and folders as path parts (relative to `prefix`), readable by parts or by `key`.

    `key(parts)` is a plain string (a zip member name, or a path relative to the directory) that
    `read_key` reads back in any process; streaming datasets keep keys, not parts.
    """

    def __init__(self, path: Path, is_zip: bool, files: list[Parts], dirs: list[Parts],
                 members: dict[Parts, str] | None = None, prefix: Parts = ()):
        self.path, self.is_zip, self.files, self.dirs = path, is_zip, files, dirs
        self.members, self.prefix = members, prefix
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1

    @property
    def where(self) -> str:
        return self.name(()) if self.prefix else str(self.path)

    def name(self, parts: Parts) -> str:
        """How a file is named in messages: DIR/a/b.png or FILE.zip:a/b.png."""
        full = self.prefix + parts
        return f"{self.path}:{'/'.join(full)}" if self.is_zip else os.path.join(self.path, *full)

    def sub(self, prefix: Parts) -> "Folder":
        """The part of this folder under `prefix`, with parts relative to it."""
        n = len(prefix)
        files = [p[n:] for p in self.files if len(p) > n and p[:n] == prefix]
        dirs = [d[n:] for d in self.dirs if len(d) > n and d[:n] == prefix]
        return Folder(self.path, self.is_zip, files, dirs, self.members, self.prefix + prefix)

    def reader(self) -> "Folder":
        """The same files to read by key, without the listing (what DataLoader workers get)."""
        return Folder(self.path, self.is_zip, [], [], None, ())

    def key(self, parts: Parts) -> str:
        full = self.prefix + parts
        return self.members[full] if self.is_zip else "/".join(full)

    def read(self, parts: Parts) -> bytes:
        return self.read_key(self.key(parts))

    def read_key(self, key: str) -> bytes:
        if not self.is_zip:
            try:
                return self.path.joinpath(key).read_bytes()
            except OSError as e:
                raise RaclError(f"cannot read {self.path.joinpath(key)} ({e.strerror}); check the file") from e
        try:
            return self._handle().read(key)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, KeyError) as e:
            raise RaclError(f"{self.path}: cannot read member {key} ({e}); the zip may be corrupt") from e

    def image_size(self, parts: Parts) -> tuple[int, int]:
        """(width, height) of an image from its header only (PIL reads a few kB, not the pixels)."""
        key = self.key(parts)
        try:
            opened = self._handle().open(key) if self.is_zip else open(self.path.joinpath(key), "rb")
            with opened as f, Image.open(f) as im:
                return im.size
        except (UnidentifiedImageError, OSError, zipfile.BadZipFile, zlib.error, KeyError) as e:
            raise RaclError(f"cannot decode image {self.name(parts)} ({e}); the file is damaged or not an image") from e

    def _handle(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def close(self) -> None:
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict:  # DataLoader workers started by spawn: reopen the zip there
        return {**self.__dict__, "_zip": None, "_pid": -1}


def open_folder(path: Path) -> Folder:
    """List a directory or a zip (RaclError if it is neither readable)."""
    return _open_dir(path) if path.is_dir() else _open_zip(path)


def _open_zip(path: Path) -> Folder:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise RaclError(f"{path} is not a readable zip archive ({e}); it may be corrupt or truncated") from e
    files, dirs, members = [], [], {}
    for info in infos:
        parts = safe_parts(info.filename, str(path))
        (dirs if info.is_dir() else files).append(parts)
        members[parts] = info.filename
    implied = {f[:k] for f in files for k in range(1, len(f))} - set(dirs)  # zips need no folder entries
    return Folder(path, True, files, dirs + sorted(implied), members)


def _open_dir(root: Path) -> Folder:
    files, dirs = [], []
    for top, subdirs, names in os.walk(root):
        rel = Path(top).relative_to(root).parts
        subdirs[:] = sorted(d for d in subdirs if not hidden((d,)))
        dirs.extend(rel + (d,) for d in subdirs)
        files.extend(rel + (n,) for n in names)
    return Folder(root, False, files, dirs)
