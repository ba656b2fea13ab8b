"""Command-line flags for choosing data, shared by every subcommand that loads a dataset.

Every data flag defaults to None on the parser (its real default is in `DEFAULTS`), so a command can
tell which flags were given: a run resumed with `--resume`, or a checkpoint evaluated without
`--dataset`, keeps its recorded data spec and only the given flags replace their settings
(`spec_with_flags`); with `--dataset` the flags describe the data from scratch.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from racl.data.arrays import DataSplits
from racl.data.datasets import DATASETS, load_data, load_data_from_spec
from racl.data.sources import STREAM_ABOVE_BYTES
from racl.errors import RaclError

STREAMING = {"auto": None, "on": True, "off": False}
FOLDER_SETS = ("imagefolder", "tinyimagenet")
# dest -> default of every data flag but --dataset (whose default each command chooses)
DEFAULTS: dict[str, Any] = {"data_dir": None, "download": False, "limit": None, "val_fraction": 0.1,
                            "test_fraction": 0.1, "image_size": None, "data_seed": 0, "no_data_cache": False,
                            "test_dir": None, "streaming": "auto", "workers": None}


def add_data_arguments(parser: argparse.ArgumentParser, default_dataset: str | None = "digits") -> None:
    """Add --dataset, --data-dir, --download, --limit, --val-fraction, --test-fraction, --image-size,
    --data-seed, --no-data-cache, --test-dir, --streaming and --workers to `parser` (values are checked
    by `load_data`). `default_dataset` None: the data recorded with the checkpoint or run."""
    g = parser.add_argument_group("data")
    d = DEFAULTS
    g.add_argument("--dataset", default=None, help=f"one of {', '.join(DATASETS)} (default: "
                   + (default_dataset or "the data the checkpoint was trained on") + ")")
    g.add_argument("--data-dir", help="dataset folder (torchvision sets) or image folder / .zip")
    g.add_argument("--download", action="store_true", default=None, help="download CIFAR/SVHN into --data-dir if missing")
    g.add_argument("--limit", type=int, help="at most this many images per class (quick runs)")
    g.add_argument("--val-fraction", type=float, help=f"validation share (default: {d['val_fraction']})")
    g.add_argument("--test-fraction", type=float,
                   help=f"test share for sets without an official test split (default: {d['test_fraction']})")
    g.add_argument("--image-size", type=int, help="resize images to N x N")
    g.add_argument("--data-seed", type=int, help=f"seed of the train/val/test split (default: {d['data_seed']})")
    g.add_argument("--no-data-cache", action="store_true", default=None,
                   help="do not cache decoded image-folder zips")
    g.add_argument("--test-dir", help="imagefolder: a separate <class>/<image> folder or .zip holding the test split")
    g.add_argument("--streaming", choices=STREAMING,
                   help="image folders: decode batch by batch from disk (on), into memory (off), or on when the "
                        f"decoded images would exceed {STREAM_ABOVE_BYTES / 2**30:g} GiB (auto, the default)")
    g.add_argument("--workers", type=int,
                   help="DataLoader worker processes when streaming (default: CPUs per process, at most 8)")
    parser.set_defaults(default_dataset=default_dataset)


def given_data_flags(args: argparse.Namespace) -> dict[str, Any]:
    """{dest: value} of the data flags given on the command line (--dataset included)."""
    return {k: getattr(args, k) for k in ("dataset", *DEFAULTS) if getattr(args, k, None) is not None}


def flag_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def data_from_args(args: argparse.Namespace) -> DataSplits:
    """Load the data named by the flags of `add_data_arguments` (defaults filled in)."""
    dataset = getattr(args, "dataset", None) or getattr(args, "default_dataset", None) or "digits"
    v = {k: (getattr(args, k, None) if getattr(args, k, None) is not None else d) for k, d in DEFAULTS.items()}
    options: dict[str, Any] = {}
    folders = dataset in FOLDER_SETS
    if folders and v["no_data_cache"]:
        options["cache"] = False
    if v["test_dir"] is not None:
        if dataset != "imagefolder":
            raise RaclError(f"--test-dir applies to --dataset imagefolder only, not {dataset}")
        options["test_dir"] = v["test_dir"]
    for flag, value in (("--streaming", STREAMING[v["streaming"]]), ("--workers", v["workers"])):
        if value is not None:
            if not folders:
                raise RaclError(f"{flag} applies to image folders ({', '.join(FOLDER_SETS)}) only, not {dataset}")
            options[flag.lstrip("-")] = value
    return load_data(dataset, v["data_dir"], image_size=v["image_size"], val_fraction=v["val_fraction"],
                     test_fraction=v["test_fraction"], seed=v["data_seed"], limit=v["limit"],
                     download=v["download"], **options)


def _path(text: str) -> str:
    return os.path.abspath(os.path.expanduser(str(text)))


def spec_with_flags(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """A recorded data spec (racl.data.load_data_from_spec) with each given data flag replacing its
    setting: --data-dir, --image-size, --limit, --val-fraction, --test-fraction, --data-seed, --test-dir,
    --streaming, --workers, --no-data-cache (--dataset is not handled here: it starts a new spec)."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise RaclError("no data spec is recorded here; pass --dataset and the data flags")
    out = {**spec, "options": dict(spec.get("options") or {})}
    given = given_data_flags(args)
    top = {"data_dir": "data_dir", "image_size": "image_size", "limit": "limit", "val_fraction": "val_fraction",
           "test_fraction": "test_fraction", "data_seed": "seed"}
    for dest, key in top.items():
        if dest in given:
            out[key] = _path(given[dest]) if dest == "data_dir" else given[dest]
    if "test_dir" in given:
        if spec["name"] != "imagefolder":
            raise RaclError(f"--test-dir applies to --dataset imagefolder only, and this data is {spec['name']}")
        out["options"]["test_dir"] = _path(given["test_dir"])
    if "streaming" in given:
        out["options"]["streaming"] = STREAMING[given["streaming"]]
        if out["options"]["streaming"] is None:
            out["options"].pop("streaming")
    if "workers" in given:
        out["options"]["workers"] = given["workers"]
    if given.get("no_data_cache"):
        out["options"]["cache"] = False
    if out != spec:
        out.pop("sizes", None)  # other data: the recorded split sizes no longer apply
    return out


def data_from_spec_and_flags(spec: dict[str, Any], args: argparse.Namespace) -> DataSplits:
    """The recorded data, with the given flags replacing their settings (`spec_with_flags`)."""
    return load_data_from_spec(spec_with_flags(spec, args), download=bool(getattr(args, "download", None)))


def data_for(args: argparse.Namespace, recorded: dict[str, Any] | None) -> DataSplits:
    """The data a command's flags name: the flags alone when --dataset is given or nothing is
    recorded; else the `recorded` spec (a checkpoint's or a resumed run's) with the given flags
    replacing their settings."""
    if recorded is None or getattr(args, "dataset", None) is not None:
        return data_from_args(args)
    return data_from_spec_and_flags(recorded, args)
