"""Streaming image folders: images decoded batch by batch by DataLoader workers, never all in memory.

For folders too large to decode whole (ImageNet: 1.28M JPEGs). A `StreamingDataset` keeps only the
file keys (one NumPy byte-string array, so forked workers share it without copying) and labels, and
has the methods the search, training and evaluation loops call on an `ArrayDataset` (`len`,
`subset`, `to`, `labels`, `class_counts`); `racl.data.iterate_batches` hands its batches to a
torch DataLoader. Decoding is ImageFolder's (`pil_loader`: PIL, converted to RGB), the transforms are
the standard ImageNet ones from torchvision:
  training (an `augment` config given)  RandomResizedCrop(S) + RandomHorizontalFlip (if augment.flip),
                                         cutout if augment.cutout; augment.crop_padding does not apply
  evaluation (no augment)               Resize(S / 0.875) + CenterCrop(S)
Randomness: per epoch the loop's generator draws the order (as for in-memory data) and then one seed
per image; each image's transforms run under its own seed, so batches are the same for any number of
workers and an epoch can resume at a batch. Under torchrun a DistributedSampler gives each rank its
share of every global batch (the same images as the in-memory path's sharding).
"""
from __future__ import annotations

import io
import os
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision.transforms.v2 as T
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.datasets.folder import pil_loader

from racl.data.arrays import ArrayDataset, channel_stats
from racl.data.augment import AugmentConfig, cutout_mask
from racl.data.folder import Folder
from racl.data.layout import FileList, Listing
from racl.errors import RaclError

CROP_FRACTION = 0.875  # evaluation: resize to S / 0.875, centre crop S (224 from 256, as for ImageNet)
STATS_IMAGES = 1000  # images sampled to estimate the channel mean and std
_SEED_RANGE = 2**62


def default_workers() -> int:
    """DataLoader workers per process: the CPUs shared among the torchrun processes, at most 8."""
    return max(1, min(8, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))  # torchrun's


class StreamingDataset:
    """One split of an image folder, read from disk per batch (see the module docstring)."""

    channels = 3  # ImageFolder decoding converts every image to RGB

    def __init__(self, folder: Folder, keys: np.ndarray, labels: torch.Tensor, image_size: int, workers: int):
        self.folder, self.keys, self.labels = folder, keys, labels  # keys: (N,) bytes; labels: (N,) int64
        self.image_size, self.workers = image_size, workers

    @classmethod
    def from_files(cls, files: FileList, image_size: int, workers: int) -> "StreamingDataset":
        keys = np.array([files.folder.key(p).encode() for p in files.files], dtype=np.bytes_)
        return cls(files.folder.reader(), keys, torch.tensor(files.labels, dtype=torch.int64), image_size, workers)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "StreamingDataset":
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1).cpu()
        return StreamingDataset(self.folder, self.keys[idx.numpy()], self.labels[idx], self.image_size, self.workers)

    @property
    def images(self) -> "LazyImages":
        """The images as an indexable view: `images[idx]` decodes just those (evaluation transforms)."""
        return LazyImages(self)

    def to(self, device: torch.device | str) -> "StreamingDataset":
        return self  # stays on disk; batches go to the device as they are made

    def class_counts(self, num_classes: int) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=num_classes)

    def load(self, i: int) -> Image.Image:
        """Image i as ImageFolder decodes it (RGB PIL image)."""
        key = self.keys[i].decode()
        try:
            if self.folder.is_zip:
                with Image.open(io.BytesIO(self.folder.read_key(key))) as im:
                    return im.convert("RGB")
            return pil_loader(self.folder.path.joinpath(key))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            name = f"{self.folder.path}:{key}" if self.folder.is_zip else self.folder.path.joinpath(key)
            raise RaclError(f"cannot decode image {name} ({e}); the file is damaged or not an image") from e

    def transform(self, augment: AugmentConfig | None) -> T.Compose:
        s = self.image_size
        if augment is None:
            return T.Compose([T.Resize(round(s / CROP_FRACTION)), T.CenterCrop(s), T.PILToTensor()])
        flip = [T.RandomHorizontalFlip()] if augment.flip else []
        return T.Compose([T.RandomResizedCrop(s), *flip, T.PILToTensor()])

    def batches(self, order: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                augment: AugmentConfig | None, drop_last: bool, device: torch.device | str, start_batch: int = 0,
                shard: tuple[int, int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch in `order`: (x (B, 3, S, S) float32 in [0, 1], y (B,) int64) on `device`.

        `shard` (rank, world): this process's part of each global batch of batch_size x world images.
        The per-image seeds are drawn now, after the order (the caller drew it from `generator`).
        """
        seeds = None
        if augment is not None:
            seeds = torch.randint(0, _SEED_RANGE, (len(order),), generator=generator, device=generator.device).cpu()
        epoch = _Epoch(self, order.cpu().numpy(), None if seeds is None else seeds.numpy(), augment)
        if shard is not None:
            sampler = DistributedSampler(epoch, shard[1], shard[0], shuffle=False, drop_last=True)
            drop_last = True
        else:
            sampler = range(start_batch * batch_size, len(order))
        loader = DataLoader(epoch, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                            num_workers=self.workers, pin_memory=torch.device(device).type == "cuda")
        return _moved(loader, device)

    def decoded(self, batch_size: int = 256) -> ArrayDataset:
        """The whole split decoded with the evaluation transforms (for `racl evaluate`'s chosen images)."""
        order = torch.arange(len(self))
        parts = [(x.mul(255).round().to(torch.uint8), y) for x, y in self.batches(order, batch_size, None, None,
                                                                                   False, "cpu")]
        if not parts:
            return ArrayDataset(torch.zeros(0, 3, self.image_size, self.image_size, dtype=torch.uint8),
                                torch.zeros(0, dtype=torch.int64))
        return ArrayDataset(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]))

    def sample_stats(self, seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Channel mean and std estimated on STATS_IMAGES seeded random images (evaluation transforms)."""
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:STATS_IMAGES]
        return channel_stats(self.subset(pick).decoded().images)


class LazyImages:
    """`StreamingDataset.images`: what code written for in-memory uint8 images (N, 3, S, S) reads, such as
    a validation subset or evaluation's chosen images; indexing decodes only the images indexed."""

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, ds: StreamingDataset):
        self.ds = ds

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.ds), self.ds.channels, self.ds.image_size, self.ds.image_size))

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, idx: int | slice | torch.Tensor | Sequence[int]) -> torch.Tensor:
        if isinstance(idx, int):
            return self[[idx]][0]
        if isinstance(idx, slice):
            idx = torch.arange(len(self.ds))[idx]
        return self.ds.subset(idx).decoded().images

    def cpu(self) -> torch.Tensor:
        return self[:]  # every image, decoded

    def to(self, *args, **kwargs) -> torch.Tensor:
        return self[:].to(*args, **kwargs)


class _Epoch(Dataset):
    """Position p of an epoch: image order[p], transformed under seeds[p] (uint8 (3, S, S), label)."""

    def __init__(self, ds: StreamingDataset, order: np.ndarray, seeds: np.ndarray | None,
                 augment: AugmentConfig | None):
        self.ds, self.order, self.seeds, self.augment = ds, order, seeds, augment
        self.tf = ds.transform(augment)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.order[p])
        image = self.ds.load(i)
        if self.seeds is None:
            return self.tf(image), self.ds.labels[i]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seeds[p]))
            x = self.tf(image)
            if self.augment.cutout:
                s = self.ds.image_size
                centre = torch.stack([torch.randint(0, s, (1,)), torch.randint(0, s, (1,))], dim=1)  # (1, 2)
                x = x.masked_fill(cutout_mask(centre, self.augment.cutout, s, s)[0], 0)
        return x, self.ds.labels[i]


def _moved(loader: DataLoader, device: torch.device | str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    try:
        for x, y in loader:  # x: (B, 3, S, S) uint8
            yield x.to(device, non_blocking=True).float().div_(255), y.to(device, non_blocking=True)
    except RaclError as e:  # from a worker: the message carries its traceback; keep the one line
        raise RaclError(str(e).strip().splitlines()[-1].removeprefix("racl.errors.RaclError: ")) from None


def streaming_splits(listing: Listing, image_size: int, workers: int | None) -> dict[str, StreamingDataset]:
    """A StreamingDataset per split of `listing`."""
    n = default_workers() if workers is None else workers
    return {s: StreamingDataset.from_files(fl, image_size, n) for s, fl in listing.splits.items()}
