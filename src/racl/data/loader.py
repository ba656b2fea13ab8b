"""Batch iteration over an in-memory ArrayDataset, fully determined by one torch.Generator.

A StreamingDataset (racl.data.streaming) gets the same order and makes its own batches.

Per epoch the generator is used, in this order: one permutation (if shuffle), then each batch's
augmentation draws. To resume an epoch at batch k, restore the generator state saved at the epoch
start and pass `start_batch=k`: the skipped batches' augmentation draws are replayed (cheap, no
image work), so batches k, k+1, ... and the generator's final state equal an uninterrupted run.

Sharding (data-parallel runs, racl.distributed.Runtime.batches): `shard=(rank, world)` makes
`batch_size` per process, one step a *global* batch of batch_size x world images. The epoch order is
the same on every process; inside each global batch process r takes positions r, r + W, r + 2W, ...
(torch's DistributedSampler(shuffle=False) order). Augmentation parameters are drawn for the whole
global batch and sliced the same way, so the union of the processes' batches at step k is exactly
the one-process batch k at batch size batch_size x world. Sharded epochs drop the last partial batch.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from racl.data.arrays import ArrayDataset
from racl.data.augment import AugmentConfig, AugmentParams, apply_params, draw_params


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def epoch_order(n: int, *, shuffle: bool, generator: torch.Generator | None) -> torch.Tensor:
    """The epoch's example order (N,) int64 on the generator's device (the CPU without shuffling); draws
    one permutation when shuffling. A generator on the data's device keeps the batches' indices there
    (no host-device copy per batch)."""
    if not shuffle:
        return torch.arange(n)
    if generator is None:
        raise ValueError("shuffle=True needs an explicit torch.Generator so the order is reproducible")
    return torch.randperm(n, generator=generator, device=generator.device)


def iterate_batches(
    ds: ArrayDataset,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    augment: AugmentConfig | None = None,
    drop_last: bool = False,
    device: torch.device | str = "cpu",
    start_batch: int = 0,
    shard: tuple[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x (B, C, H, W) float32 in [0, 1], y (B,) int64) on `device`, one epoch.

    The permutation is drawn when this function is called (not at the first `next`). `shard`:
    (rank, world), this process's share of every global batch (see the module docstring).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if augment is not None and generator is None:
        raise ValueError("augmentation needs an explicit torch.Generator so it is reproducible")
    if shard is not None and shard[1] == 1:
        shard = None
    if shard is not None and (not drop_last or start_batch):
        raise ValueError("sharded batches need drop_last=True and start_batch=0 (equal batches on every process)")
    order = epoch_order(len(ds), shuffle=shuffle, generator=generator)
    if hasattr(ds, "batches"):  # a StreamingDataset makes its batches with a DataLoader (racl.data.streaming)
        return ds.batches(order, batch_size, generator, augment, drop_last, device, start_batch, shard)
    if shard is not None:
        return _shard_batches(ds, order, batch_size, generator, augment, device, *shard)
    return _batches(ds, order, batch_size, generator, augment, drop_last, device, start_batch)


def _batches(
    ds: ArrayDataset,
    order: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None,
    augment: AugmentConfig | None,
    drop_last: bool,
    device: torch.device | str,
    start_batch: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    _, _, h, w = ds.images.shape
    for b in range(num_batches(len(order), batch_size, drop_last)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        params = draw_params(len(idx), h, w, generator, augment) if augment is not None else None
        if b < start_batch:
            continue
        idx = idx.to(ds.images.device)
        x = ds.images[idx].to(device, non_blocking=True)  # (B, C, H, W) uint8
        y = ds.labels[idx].to(device, non_blocking=True)
        if params is not None:
            x = apply_params(x, params, augment)
        yield x.float().div_(255), y


def _shard_batches(ds: ArrayDataset, order: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                   augment: AugmentConfig | None, device: torch.device | str, rank: int,
                   world: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This process's part (positions rank, rank + world, ...) of every global batch of batch_size x world."""
    gb, (_, _, h, w) = batch_size * world, ds.images.shape
    mine = torch.arange(rank, gb, world, device=order.device)  # (b,) = DistributedSampler(range(gb), world, rank)
    for k in range(len(order) // gb):
        idx = order[k * gb:(k + 1) * gb]  # (gb,) the one-process batch k at batch size gb
        params = draw_params(gb, h, w, generator, augment) if augment is not None else None
        idx = idx[mine].to(ds.images.device)
        x = ds.images[idx].to(device, non_blocking=True)  # (b, C, H, W) uint8
        y = ds.labels[idx].to(device, non_blocking=True)
        if params is not None:
            p = AugmentParams(*(v[mine.to(v.device)] for v in (params.shifts, params.flips, params.centres)))
            x = apply_params(x, p, augment)
        yield x.float().div_(255), y
