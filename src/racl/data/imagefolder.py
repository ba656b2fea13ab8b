"""Image folders decoded whole into memory: the uint8 path for CIFAR-size data (directory or zip).

The layouts are in racl.data.layout (class folders, split folders) and racl.data.tinyimagenet; this
module decodes a listing's splits together (one colour mode and one size for all of them) and caches
decoded zips as safetensors (racl.data.cache). A 300-image load of a zip reads only 300 members.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from racl.data import cache
from racl.data.arrays import ArrayDataset
from racl.data.decode import ImageStack, decode_many
from racl.data.folder import open_folder
from racl.data.layout import Listing, folder_listing, with_test_folder
from racl.data.tinyimagenet import tinyimagenet_listing
from racl.errors import RaclError

__all__ = ["decode_and_cache", "decode_listing", "decoded_bytes", "folder_cache_key", "list_folder",
           "load_folder_splits", "load_image_folder"]
_CHUNK = 1024  # files decoded per batch
_BATCHED_FROM = 4096  # from this many images on, torchvision's batched decoder pays for its import


def _existing(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        flag = "--test-dir" if what.startswith("--test-dir") else "--data-dir"
        raise RaclError(f"{what} not found: {p}; pass {flag} DIR or a .zip in <class>/<image> layout")
    return p


def list_folder(path: str | os.PathLike, layout: str = "imagefolder", *, limit: int | None = None,
                test_dir: str | os.PathLike | None = None) -> Listing:
    """Which images make up each split (no decoding); RaclError on a wrong layout."""
    folder = open_folder(_existing(path, "image folder"))
    listing = tinyimagenet_listing(folder, limit) if layout == "tinyimagenet" else folder_listing(folder, limit)
    if test_dir is not None:
        listing = with_test_folder(listing, open_folder(_existing(test_dir, "--test-dir folder")), limit)
    return listing


def decode_listing(listing: Listing, image_size: int | None) -> dict[str, ArrayDataset]:
    """Decode every split of `listing` into uint8 (N, C, S, S): one mode and size across the splits."""
    chosen = [(split, fl.folder, parts, label) for split, fl in listing.splits.items()
              for parts, label in zip(fl.files, fl.labels)]
    if not chosen:
        raise RaclError("no images to load")
    names = [folder.name(parts) for _, folder, parts, _ in chosen]
    stack = ImageStack(len(chosen), image_size)
    for start in range(0, len(chosen), _CHUNK):  # chunks: raw bytes never all in memory at once
        datas = [folder.read(parts) for _, folder, parts, _ in chosen[start : start + _CHUNK]]
        chunk = names[start : start + _CHUNK]
        stack.add(decode_many(datas, chunk, batched=len(chosen) >= _BATCHED_FROM), chunk)
    for fl in listing.splits.values():
        fl.folder.close()
    stacked = stack.result()  # (N, C, S, S) uint8
    labels = torch.tensor([label for *_, label in chosen], dtype=torch.int64)
    out, start = {}, 0
    for split, fl in listing.splits.items():
        out[split] = ArrayDataset(stacked[start : start + len(fl)], labels[start : start + len(fl)])
        start += len(fl)
    return out


def folder_cache_key(path: str | os.PathLike, layout: str, *, limit: int | None, image_size: int | None,
                     test_dir: str | os.PathLike | None, use_cache: bool) -> str | None:
    """The cache key of a decode, or None when not cached (`use_cache` off, or a source is a directory)."""
    sources = [_existing(path, "image folder")] + ([_existing(test_dir, "--test-dir folder")] if test_dir else [])
    if not use_cache or not all(p.is_file() for p in sources):
        return None
    return cache.cache_key(sources, limit=limit, image_size=image_size, layout=layout)


def decoded_bytes(listing: Listing, image_size: int | None) -> int:
    """What decoding `listing` into memory would take: images x 3 x S x S (S from the first image's header)."""
    n = sum(len(fl) for fl in listing.splits.values())
    if image_size is None:
        train = listing.splits["train"]
        image_size = max(train.folder.image_size(train.files[0]))
    return n * 3 * image_size * image_size


def load_folder_splits(path: str | os.PathLike, layout: str = "imagefolder", *, limit: int | None = None,
                       image_size: int | None = None, use_cache: bool = True,
                       test_dir: str | os.PathLike | None = None) -> tuple[dict[str, ArrayDataset], tuple[str, ...]]:
    """Decode an image folder's splits into memory ({"train": ..., "val"/"test" if found}, classes).

    Zips (with a zipped --test-dir, if any) are cached as safetensors; directories are decoded each time.
    """
    key = folder_cache_key(path, layout, limit=limit, image_size=image_size, test_dir=test_dir, use_cache=use_cache)
    hit = cache.load(key) if key else None
    if hit is not None:
        return hit
    listing = list_folder(path, layout, limit=limit, test_dir=test_dir)
    return decode_and_cache(listing, image_size, key, str(path)), listing.classes


def decode_and_cache(listing: Listing, image_size: int | None, key: str | None, source: str) -> dict[str, ArrayDataset]:
    """`decode_listing`, saved in the cache under `key` (None: not cached)."""
    splits = decode_listing(listing, image_size)
    if key:
        cache.save(key, splits, listing.classes, source=source)
    return splits


def load_image_folder(path: str | os.PathLike, *, limit: int | None = None, image_size: int | None = None,
                      use_cache: bool = True) -> tuple[ArrayDataset, tuple[str, ...]]:
    """The training pool of an image folder (its only split, or train/), decoded into memory."""
    splits, classes = load_folder_splits(path, limit=limit, image_size=image_size, use_cache=use_cache)
    return splits["train"], classes
