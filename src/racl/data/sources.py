"""Where the images come from: torchvision sets, image folders, sklearn digits, synthetic patterns.

Each source returns a `RawData`: a pool to split (`train`), the official validation and test splits
where there are any, class names and, for the torchvision sets, the standard normalisation constants.
Image folders and Tiny-ImageNet are decoded into memory (uint8) or, above STREAM_ABOVE_BYTES of
decoded pixels or when asked, streamed from disk (racl.data.streaming).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from racl.data.arrays import ArrayDataset, resize_images
from racl.data import cache as decode_cache
from racl.data import imagefolder
from racl.data.splits import limit_per_class
from racl.errors import RaclError

# Standard per-channel constants (computed on each official train split, in [0, 1] units).
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
# What torchvision expects under data_dir, for the "files missing" message.
_EXPECTED = {
    "cifar10": "cifar-10-batches-py/ (from cifar-10-python.tar.gz, extracted)",
    "cifar100": "cifar-100-python/ (from cifar-100-python.tar.gz, extracted)",
    "svhn": "train_32x32.mat and test_32x32.mat",
}


STREAM_ABOVE_BYTES = 4 * 2**30  # image folders whose decoded pixels would exceed this are streamed
STREAM_IMAGE_SIZE = 224  # streamed images are cropped to this size unless --image-size says otherwise
TINYIMAGENET_SIZE = 64


@dataclass(frozen=True, eq=False)
class RawData:
    train: ArrayDataset  # the pool that train/val (and test, if `test` is None) are drawn from
    test: ArrayDataset | None  # official test split, or None
    class_names: tuple[str, ...]
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std), None = compute
    val: ArrayDataset | None = None  # official validation split (only together with `test`), or None


def _limited(ds: ArrayDataset, limit: int | None) -> ArrayDataset:
    return ds if limit is None else ds.subset(limit_per_class(ds.labels, limit))


def _sized(ds: ArrayDataset, image_size: int | None) -> ArrayDataset:
    return ds if image_size is None else ArrayDataset(resize_images(ds.images, image_size), ds.labels)


def _torchvision_split(name: str, root: Path, train: bool, download: bool) -> tuple[ArrayDataset, tuple[str, ...]]:
    from torchvision import datasets as tvd

    if name == "svhn":
        ds = tvd.SVHN(str(root), split="train" if train else "test", download=download)
        images, labels, classes = ds.data, ds.labels, tuple(str(i) for i in range(10))  # data: (N, 3, 32, 32)
    else:
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        ds = cls(str(root), train=train, download=download)
        images, labels, classes = ds.data.transpose(0, 3, 1, 2), ds.targets, tuple(ds.classes)  # (N, H, W, 3)
    x = torch.from_numpy(np.ascontiguousarray(images))
    return ArrayDataset(x, torch.as_tensor(np.asarray(labels), dtype=torch.int64)), classes


def load_torchvision(
    name: str, data_dir: str | None, *, image_size: int | None, limit: int | None, download: bool
) -> RawData:
    """CIFAR-10/100 or SVHN via torchvision; downloads only when asked. `limit` applies to both splits."""
    if data_dir is None:
        raise RaclError(f"{name} needs --data-dir DIR (holding {_EXPECTED[name]}, or where to --download it)")
    root = Path(data_dir).expanduser()
    if not root.is_dir() and not download:
        raise RaclError(f"data dir not found: {root}; create it with {_EXPECTED[name]} inside, or pass --download")
    try:
        train, classes = _torchvision_split(name, root, True, download)
        test, _ = _torchvision_split(name, root, False, download)
    except RuntimeError as e:
        msg = f"{name} files missing or damaged in {root}: put {_EXPECTED[name]} there, or pass --download"
        raise RaclError(msg) from e
    except OSError as e:
        raise RaclError(f"could not get {name} into {root} ({e}); download it by hand: {_EXPECTED[name]}") from e
    train, test = _sized(_limited(train, limit), image_size), _sized(_limited(test, limit), image_size)
    return RawData(train, test, classes, STATS[name])


def load_imagefolder(data_dir: str | None, *, image_size: int | None, limit: int | None, cache: bool = True,
                     test_dir: str | None = None, streaming: bool | None = None,
                     workers: int | None = None) -> RawData:
    """A directory or .zip of class folders or split folders (racl.data.layout); `test_dir`: a separate
    <class>/<image> folder for the test split; `streaming`: True, False or None (by size)."""
    if data_dir is None:
        raise RaclError("imagefolder needs --data-dir PATH (a folder or .zip of <class>/<image> files)")
    return _folder_source("imagefolder", data_dir, image_size, limit, cache, test_dir, streaming, workers)


def load_tinyimagenet(data_dir: str | None, *, image_size: int | None, limit: int | None, cache: bool = True,
                      streaming: bool | None = None, workers: int | None = None) -> RawData:
    """Tiny-ImageNet's official train and val splits (racl.data.tinyimagenet), directory or .zip."""
    if data_dir is None:
        raise RaclError("tinyimagenet needs --data-dir PATH (tiny-imagenet-200/ or tiny-imagenet-200.zip)")
    return _folder_source("tinyimagenet", data_dir, image_size, limit, cache, None, streaming, workers)


def _folder_source(layout: str, data_dir: str, image_size: int | None, limit: int | None, use_cache: bool,
                   test_dir: str | None, streaming: bool | None, workers: int | None) -> RawData:
    if streaming not in (None, True, False):
        raise RaclError(f"streaming must be true, false or unset (by size), got {streaming!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise RaclError(f"--workers must be a non-negative integer, got {workers!r}")
    key = None
    if streaming is not True:
        key = imagefolder.folder_cache_key(data_dir, layout, limit=limit, image_size=image_size,
                                           test_dir=test_dir, use_cache=use_cache)
        hit = decode_cache.load(key) if key else None
        if hit is not None:
            return _raw(*hit)
    listing = imagefolder.list_folder(data_dir, layout, limit=limit, test_dir=test_dir)
    if streaming is None:
        streaming = imagefolder.decoded_bytes(listing, image_size) > STREAM_ABOVE_BYTES
    if streaming:
        # imported here: the streaming module imports torchvision's transforms (~1 s), which in-memory
        # loads (the common case, and the offline demo) never need
        from racl.data.streaming import streaming_splits

        size = image_size or (TINYIMAGENET_SIZE if layout == "tinyimagenet" else STREAM_IMAGE_SIZE)
        splits = streaming_splits(listing, size, workers)
        return _raw(splits, listing.classes)
    return _raw(imagefolder.decode_and_cache(listing, image_size, key, str(data_dir)), listing.classes)


def _raw(splits: dict, classes: tuple[str, ...], stats: tuple | None = None) -> RawData:
    """The official splits as RawData: with only one of val/test, that one is the test split."""
    val, test = splits.get("val"), splits.get("test")
    if test is None:
        val, test = None, val
    return RawData(splits["train"], test, classes, stats, val)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 64) pixels 0..16 and (1797,) targets, as sklearn.datasets.load_digits returns them.

    Reads sklearn's bundled digits.csv.gz directly when it is where sklearn keeps it, because
    importing sklearn takes ~3 s here and digits is the default for the offline demo.
    """
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        data = np.loadtxt(csv, delimiter=",")
        if data.shape == (1797, 65):
            return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return d.data, d.target


def load_digits(*, image_size: int | None, limit: int | None) -> RawData:
    """scikit-learn's bundled 1797 8x8 digits (values 0..16), bilinearly resized to image_size (default 32)."""
    pixels, targets = _digits_arrays()
    x = torch.from_numpy(pixels).float().div(16).view(-1, 1, 8, 8)  # (N, 1, 8, 8) in [0, 1]
    size = image_size or 32
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < 8)
    images = x.mul(255).round().clamp(0, 255).to(torch.uint8)
    ds = ArrayDataset(images, torch.from_numpy(targets).to(torch.int64))
    return RawData(_limited(ds, limit), None, tuple(str(i) for i in range(10)))


def load_synthetic(
    *,
    image_size: int | None,
    limit: int | None,
    num_classes: int = 10,
    count: int = 1000,
    channels: int = 3,
    noise: float = 0.25,
    synthetic_seed: int = 0,
) -> RawData:
    """`count` images: each class has a smooth random template (4x4 upsampled), plus Gaussian noise.

    Learnable by a tiny model in a few steps (class templates differ at every pixel), deterministic
    given `synthetic_seed` (independent of the split seed). image_size defaults to 32.
    """
    if num_classes < 2 or count < num_classes or channels < 1 or noise < 0:
        raise RaclError(
            f"synthetic needs num_classes >= 2, count >= num_classes, channels >= 1, noise >= 0; "
            f"got {num_classes}, {count}, {channels}, {noise}"
        )
    g = torch.Generator().manual_seed(int(synthetic_seed))
    size = image_size or 32
    coarse = torch.rand(num_classes, channels, 4, 4, generator=g)
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)  # (K, C, S, S)
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=g)]
    x = templates[labels] + noise * torch.randn(count, channels, size, size, generator=g)
    images = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    ds = ArrayDataset(images, labels)
    return RawData(_limited(ds, limit), None, tuple(f"class{i}" for i in range(num_classes)))
