"""Command-line flags for choosing data, shared by every subcommand that loads a dataset."""
from __future__ import annotations

import argparse

from racl.data.arrays import DataSplits
from racl.data.datasets import DATASETS, load_data
from racl.data.sources import STREAM_ABOVE_BYTES
from racl.errors import RaclError

STREAMING = {"auto": None, "on": True, "off": False}
FOLDER_SETS = ("imagefolder", "tinyimagenet")


def add_data_arguments(parser: argparse.ArgumentParser, default_dataset: str = "digits") -> None:
    """Add --dataset, --data-dir, --download, --limit, --val-fraction, --test-fraction, --image-size,
    --data-seed, --no-data-cache, --test-dir, --streaming and --workers to `parser` (values are checked
    by `load_data`)."""
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
    g.add_argument("--test-dir", default=None,
                   help="imagefolder: a separate <class>/<image> folder or .zip holding the test split")
    g.add_argument("--streaming", choices=STREAMING, default="auto",
                   help="image folders: decode batch by batch from disk (on), into memory (off), or on when the "
                        f"decoded images would exceed {STREAM_ABOVE_BYTES / 2**30:g} GiB (auto, the default)")
    g.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes when streaming (default: CPUs per process, at most 8)")


def data_from_args(args: argparse.Namespace) -> DataSplits:
    """Load the data named by the flags of `add_data_arguments`."""
    options = {}
    folders = args.dataset in FOLDER_SETS
    if folders and getattr(args, "no_data_cache", False):
        options["cache"] = False
    if getattr(args, "test_dir", None) is not None:
        if args.dataset != "imagefolder":
            raise RaclError(f"--test-dir applies to --dataset imagefolder only, not {args.dataset}")
        options["test_dir"] = args.test_dir
    for flag, value in (("--streaming", STREAMING[getattr(args, "streaming", "auto")]),
                        ("--workers", getattr(args, "workers", None))):
        if value is not None:
            if not folders:
                raise RaclError(f"{flag} applies to image folders ({', '.join(FOLDER_SETS)}) only, not {args.dataset}")
            options[flag.lstrip("-")] = value
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
