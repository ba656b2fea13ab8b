"""Command-line flags for choosing data, shared by every subcommand that loads a dataset."""
from __future__ import annotations

import argparse

from racl.data.arrays import DataSplits
from racl.data.datasets import DATASETS, load_data


def add_data_arguments(parser: argparse.ArgumentParser, default_dataset: str = "digits") -> None:
    """Add --dataset, --data-dir, --download, --limit, --val-fraction, --test-fraction, --image-size,
    --data-seed and --no-data-cache to `parser` (values are checked by `load_data`)."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=default_dataset, help=f"one of {', '.join(DATASETS)} (default: %(default)s)")
    g.add_argument("--data-dir", default=None, help="dataset folder (torchvision sets) or image folder / .zip")
    g.add_argument("--download", action="store_true", help="download CIFAR/SVHN into --data-dir if missing")
    g.add_argument("--limit", type=int, default=None, help="at most this many images per class (quick runs)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="validation share (default: %(default)s)")
    g.add_argument("--test-fraction", type=float, default=0.1,
                   help="test share for sets without an official test split (default: %(default)s)")
    g.add_argument("--image-size", type=int, default=None, help="resize images to N x N")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the train/val/test split (default: %(default)s)")
    g.add_argument("--no-data-cache", action="store_true", help="do not cache decoded image-folder zips")


def data_from_args(args: argparse.Namespace) -> DataSplits:
    """Load the data named by the flags of `add_data_arguments`."""
    options = {}
    if args.dataset == "imagefolder" and getattr(args, "no_data_cache", False):
        options["cache"] = False
    return load_data(
        args.dataset,
        args.data_dir,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.data_seed,
        limit=args.limit,
        download=args.download,
        **options,
    )
