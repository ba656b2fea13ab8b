"""Which files are which images: class folders, split folders, and the listing both loaders share.

Two image-folder layouts (directory or zip, optionally under single top folders such as `cifar10/`):
  class folders  <class>/<image>                      one pool; racl carves val and test out of it
  split folders  train/<class>/<image>, plus any of   the folders are the splits; every split folder
                 val/ | valid/ | validation/, test/   must hold the same class folders
A class folder beside split folders (`train/`, `cat/`) is refused rather than guessed at. Hidden files
and folders are skipped; any other non-image file is an error. `Listing` is what the in-memory
decoder (racl.data.imagefolder) and the streaming dataset (racl.data.streaming) both start from.
"""
from __future__ import annotations

from dataclasses import dataclass

from racl.data.folder import Folder, Parts, hidden
from racl.errors import RaclError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp", ".gif")
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class FileList:
    """The images of one split: files (parts relative to `folder`) and their labels."""

    folder: Folder
    files: list[Parts]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True, eq=False)
class Listing:
    """Class names and, per split folder found ("train" always; "val", "test" if present), its images."""

    classes: tuple[str, ...]
    splits: dict[str, FileList]
    layout: str  # "class folders", "split folders", "tinyimagenet"

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return f"{self.layout}: {len(self.classes)} classes; {sizes}"


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _visible(folder: Folder) -> list[Parts]:
    visible = sorted(p for p in folder.files if not hidden(p))
    if not visible:
        raise RaclError(f"{folder.where} contains no images; expected <class>/<image> folders")
    return visible


def _top(visible: list[Parts], folder: Folder) -> Parts:
    """Single top folders to strip (`cifar10/`, or `train/` when it is the only folder, even an empty one)."""
    dirs = [d for d in folder.dirs if not hidden(d)]
    prefix: Parts = ()
    while all(len(p) >= len(prefix) + 3 for p in visible) and len(_names(visible, dirs, prefix)) == 1:
        prefix = visible[0][: len(prefix) + 1]
    return prefix


def _names(visible: list[Parts], dirs: list[Parts], prefix: Parts) -> set[str]:
    """Names of the folders right under `prefix` (from the files in them, and the folders listed)."""
    n = len(prefix)
    return ({p[n] for p in visible if len(p) > n + 1 and p[:n] == prefix}
            | {d[n] for d in dirs if len(d) > n and d[:n] == prefix})


def class_layout(folder: Folder, strip: bool = True, limit: int | None = None) -> tuple[Parts, dict[str, list[Parts]]]:
    """The class level (after single top folders if `strip`) and each class's files (first `limit`)."""
    visible = _visible(folder)
    prefix = _top(visible, folder) if strip else ()
    depth = len(prefix)
    for p in visible:
        if len(p) == depth + 1:
            raise RaclError(f"{folder.name(p)} is not inside a class folder; use the layout <class>/<image>")
        if not is_image(p[-1]):
            raise RaclError(f"{folder.name(p)} is not an image file ({', '.join(IMAGE_EXTENSIONS)}); remove it")
    members: dict[str, list[Parts]] = {}
    for p in visible:
        members.setdefault(p[depth], []).append(p)
    for d in folder.dirs:
        if len(d) > depth and d[:depth] == prefix and not hidden(d):
            members.setdefault(d[depth], [])
    members = {c: members[c][:limit] for c in sorted(members)}
    for c, files in members.items():
        if not files:
            raise RaclError(f"class folder {folder.name(prefix + (c,))} has no images; remove it or add images")
    if len(members) < 2:
        raise RaclError(f"{folder.where} has {len(members)} class folder(s); classification needs at least 2")
    return prefix, members


def _file_list(folder: Folder, members: dict[str, list[Parts]], classes: tuple[str, ...]) -> FileList:
    label = {c: i for i, c in enumerate(classes)}
    files = [p for c in members for p in members[c]]
    return FileList(folder, files, [label[c] for c in members for _ in members[c]])


def folder_listing(folder: Folder, limit: int | None = None) -> Listing:
    """The layout of an image folder (class folders or split folders; see the module docstring)."""
    visible = _visible(folder)
    prefix = _top(visible, folder)
    depth = len(prefix)
    names = _names(visible, [d for d in folder.dirs if not hidden(d)], prefix)
    split_dirs = sorted(n for n in names if n.lower() in SPLIT_FOLDERS)
    if not split_dirs:
        _, members = class_layout(folder, limit=limit)
        classes = tuple(members)
        return Listing(classes, {"train": _file_list(folder, members, classes)}, "class folders")
    top = folder.sub(prefix)
    if any(p[depth:] == ("wnids.txt",) for p in visible):
        raise RaclError(f"{top.where} is in the Tiny-ImageNet layout (wnids.txt, val/val_annotations.txt); "
                        "use --dataset tinyimagenet")
    for p in visible:
        if len(p) == depth + 1:
            raise RaclError(f"{folder.name(p)} is not inside a split folder ({', '.join(split_dirs)}); "
                            "move it or remove it")
    strays = sorted(names - set(split_dirs))
    if strays:
        raise RaclError(f"class folder {top.name((strays[0],))} sits beside split folders "
                        f"{', '.join(d + '/' for d in split_dirs)}; move it into a split folder or remove it")
    by_split: dict[str, str] = {}
    for d in split_dirs:
        split = SPLIT_FOLDERS[d.lower()]
        if split in by_split:
            raise RaclError(f"{top.where} has two {split} folders, {by_split[split]}/ and {d}/; keep one")
        by_split[split] = d
    if "train" not in by_split:
        raise RaclError(f"{top.where} has split folders {', '.join(d + '/' for d in split_dirs)} but no train/; "
                        "add the training images as train/<class>/<image>")
    subs = {s: top.sub((by_split[s],)) for s in SPLITS if s in by_split}
    layouts = {s: class_layout(sub, strip=False, limit=limit)[1] for s, sub in subs.items()}
    classes = tuple(layouts["train"])
    for s, members in layouts.items():
        check_same_classes(classes, tuple(members), subs["train"].where, subs[s].where)
    splits = {s: _file_list(subs[s], members, classes) for s, members in layouts.items()}
    return Listing(classes, splits, "split folders")


def check_same_classes(classes: tuple[str, ...], other: tuple[str, ...], where: str, other_where: str) -> None:
    """RaclError naming what differs when `other` (a split's class folders) is not `classes`."""
    if set(other) == set(classes):
        return
    lacks, extra = sorted(set(classes) - set(other)), sorted(set(other) - set(classes))
    said = [f"lacks {', '.join(lacks[:3])}{' ...' if len(lacks) > 3 else ''}"] if lacks else []
    said += [f"has {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''} that {where} lacks"] if extra else []
    raise RaclError(f"split folders disagree on classes: {other_where} {' and '.join(said)}; "
                    "every split folder needs the same class folders")


def with_test_folder(listing: Listing, test: Folder, limit: int | None = None) -> Listing:
    """`listing` with its test split taken from the separate <class>/<image> folder `test` (--test-dir)."""
    if "test" in listing.splits:
        raise RaclError(f"--test-dir {test.where} given, but the data folder has its own test/ split folder; "
                        "drop --test-dir or the test/ folder")
    other = folder_listing(test, limit)
    if other.layout != "class folders":
        raise RaclError(f"--test-dir {test.where} holds split folders; point it at the test images' "
                        "<class>/<image> folder")
    check_same_classes(listing.classes, other.classes, "the training folder", f"--test-dir {test.where}")
    return Listing(listing.classes, {**listing.splits, "test": other.splits["train"]}, listing.layout)
