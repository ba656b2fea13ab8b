"""`load_data`: one entry point from a dataset name to deterministic train/val/test splits.

Sets with an official test split (CIFAR-10/100, SVHN; image folders with a test/ split folder or a
`test_dir`) take train and val from the official train split (`val_fraction` of it) and keep the
official test split; `test_fraction` is then unused. Where there is one official held-out split only
(Tiny-ImageNet's val/, an image folder with train/ and val/ but no test/), it is the test split, and
val is carved from train, so model selection never sees the images a result is reported on. With
both val/ and test/ folders, all three splits are the folders. The others are split three ways,
stratified by class, from `seed`.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable

from racl.data import sources
from racl.data.arrays import ArrayDataset, DataSplits, channel_stats
from racl.data.splits import check_fractions, stratified_split
from racl.errors import RaclError

DATASETS = ("cifar10", "cifar100", "svhn", "imagefolder", "digits", "synthetic", "tinyimagenet")
SPEC_FORMAT = "racl-data-v1"


def _tv(name: str) -> Callable[..., sources.RawData]:
    def load(data_dir: str | None, *, image_size: int | None, limit: int | None, download: bool) -> sources.RawData:
        return sources.load_torchvision(name, data_dir, image_size=image_size, limit=limit, download=download)

    return load


_LOADERS: dict[str, Callable[..., sources.RawData]] = {
    "cifar10": _tv("cifar10"),
    "cifar100": _tv("cifar100"),
    "svhn": _tv("svhn"),
    "imagefolder": sources.load_imagefolder,
    "digits": sources.load_digits,
    "synthetic": sources.load_synthetic,
    "tinyimagenet": sources.load_tinyimagenet,
}
_COMMON = {"data_dir", "image_size", "limit", "download"}


def _call_source(name: str, options: dict[str, Any], **common: Any) -> sources.RawData:
    loader = _LOADERS[name]
    params = inspect.signature(loader).parameters
    allowed = sorted(set(params) - _COMMON)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise RaclError(f"unknown option(s) for {name}: {', '.join(unknown)}; known: {', '.join(allowed) or 'none'}")
    return loader(**{k: v for k, v in common.items() if k in params}, **options)


def _check_args(name: str, image_size: int | None, limit: int | None, val: float, test: float, seed: int) -> None:
    if name not in _LOADERS:
        raise RaclError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise RaclError(f"--image-size must be a positive integer, got {image_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise RaclError(f"--limit (images per class) must be a positive integer, got {limit!r}")
    check_fractions(val, test)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RaclError(f"--data-seed must be an integer, got {seed!r}")


def load_data(
    name: str,
    data_dir: str | None = None,
    *,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    download: bool = False,
    **source_options: Any,
) -> DataSplits:
    """Load dataset `name` and split it deterministically (see module docstring).

    `source_options` go to the source: for imagefolder `cache`, `test_dir`, `streaming`, `workers`;
    for tinyimagenet `cache`, `streaming`, `workers` (racl.data.sources); for synthetic its settings.
    """
    _check_args(name, image_size, limit, val_fraction, test_fraction, seed)
    if source_options.get("test_dir") is not None:  # the spec must name it from any working directory
        source_options = {**source_options, "test_dir": os.path.abspath(os.path.expanduser(str(source_options["test_dir"])))}
    raw = _call_source(name, source_options, data_dir=data_dir, image_size=image_size, limit=limit, download=download)
    pool = raw.train
    if raw.val is not None:
        train, val, test = pool, raw.val, raw.test
    elif raw.test is None:
        train_idx, val_idx, test_idx = stratified_split(pool.labels, [val_fraction, test_fraction], seed)
        train, val, test = pool.subset(train_idx), pool.subset(val_idx), pool.subset(test_idx)
    else:
        train_idx, val_idx = stratified_split(pool.labels, [val_fraction], seed)
        train, val, test = pool.subset(train_idx), pool.subset(val_idx), raw.test
    mean, std = raw.stats if raw.stats is not None else _train_stats(train)
    spec = {
        "format": SPEC_FORMAT,
        "name": name,
        "data_dir": None if data_dir is None else os.path.abspath(os.path.expanduser(str(data_dir))),
        "image_size": image_size,  # as asked (None = native size), so zip caches are shared
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": seed,
        "limit": limit,
        "options": dict(source_options),
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
    }
    return _splits(name, train, val, test, raw, tuple(mean), tuple(std), spec)


def _train_stats(train: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Channel mean and std of the train split: exact in memory, from a seeded sample when streamed."""
    return train.sample_stats() if hasattr(train, "sample_stats") else channel_stats(train.images)


def _splits(name: str, train: ArrayDataset, val: ArrayDataset, test: ArrayDataset, raw: sources.RawData,
            mean: tuple, std: tuple, spec: dict) -> DataSplits:
    return DataSplits(
        name=name, train=train, val=val, test=test, num_classes=len(raw.class_names), channels=raw.train.channels,
        image_size=raw.train.image_size, mean=mean, std=std, class_names=raw.class_names, load_spec=spec,
    )


def load_data_from_spec(spec: dict[str, Any], download: bool = False) -> DataSplits:
    """Reload the splits described by `DataSplits.spec()`; RaclError if the data changed since.
    `download`: fetch a torchvision set that is missing (as `load_data`)."""
    known = {"format", "name", "data_dir", "image_size", "val_fraction", "test_fraction", "seed", "limit",
             "options", "sizes"}
    if not isinstance(spec, dict) or "name" not in spec:
        raise RaclError("data spec must be a mapping with at least a 'name'")
    unknown = sorted(set(spec) - known)
    if unknown:
        raise RaclError(f"unknown data spec key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if spec.get("format", SPEC_FORMAT) != SPEC_FORMAT:
        raise RaclError(f"data spec format {spec['format']!r} is not {SPEC_FORMAT!r}")
    kwargs = {k: spec[k] for k in ("image_size", "val_fraction", "test_fraction", "seed", "limit") if k in spec}
    splits = load_data(spec["name"], spec.get("data_dir"), **kwargs, download=download,
                       **dict(spec.get("options") or {}))
    expected, got = spec.get("sizes"), splits.load_spec["sizes"]
    if expected is not None and expected != got:
        raise RaclError(f"data for {spec['name']} changed since the spec was written: sizes {got}, expected {expected}")
    return splits
