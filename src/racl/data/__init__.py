"""Data: in-memory uint8 datasets, deterministic stratified splits, batched augmentation, batches in [0, 1].

Image folders (class folders, split folders, Tiny-ImageNet; directory or zip) too large for memory are
streamed from disk instead (racl.data.streaming), behind the same `load_data` and `iterate_batches`.

    splits = load_data("digits", seed=0)                     # DataSplits
    g = torch.Generator().manual_seed(0)
    for x, y in iterate_batches(splits.train, 64, shuffle=True, generator=g, augment=AugmentConfig()):
        ...                                                  # x (B, C, H, W) float32 in [0, 1]
"""
from racl.data.arrays import ArrayDataset, DataSplits, channel_stats, resize_images
from racl.data.augment import AugmentConfig, augment_batch
from racl.data.cli_args import add_data_arguments, data_for, data_from_args, given_data_flags
from racl.data.datasets import DATASETS, load_data, load_data_from_spec
from racl.data.loader import epoch_order, iterate_batches, num_batches
from racl.data.sources import STATS
from racl.data.splits import balanced_subset

__all__ = [
    "ArrayDataset",
    "balanced_subset",
    "DataSplits",
    "AugmentConfig",
    "DATASETS",
    "STATS",
    "load_data",
    "load_data_from_spec",
    "iterate_batches",
    "epoch_order",
    "num_batches",
    "augment_batch",
    "add_data_arguments",
    "data_for",
    "data_from_args",
    "given_data_flags",
    "channel_stats",
    "resize_images",
]
