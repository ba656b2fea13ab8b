"""Which network a run trains: a `racl.checkpoint.model_spec` dict built from a name and the data."""
from __future__ import annotations

import math
from typing import Any

from racl.checkpoint import model_spec
from racl.data import DataSplits
from racl.errors import RaclError
from racl.models import HAND_DESIGNED, hand_designed
from racl.search_space import ZOO, Genotype, resolve_genotype
from racl.training.config import TrainConfig


def make_model_spec(model: Any, config: TrainConfig, data: DataSplits) -> dict:
    """model_spec(name_or_genotype, **build args): classes, channels and statistics from the data,
    width/depth/aux/drop-path from the config. A genotype file is read now and stored as a genotype,
    so checkpoints do not depend on the file staying where it was. A spec dict keeps its own args."""
    args: dict[str, Any] = dict(num_classes=data.num_classes, in_channels=data.channels,
                                mean=tuple(data.mean), std=tuple(data.std))
    if isinstance(model, dict):
        if "model" not in model:
            raise RaclError("a model spec needs a 'model' entry (name or genotype)")
        name = model["model"]
        if not hand_designed(name):
            args.update(_darts_args(config))
        args.update(model.get("model_args", {}))
        return model_spec(name, **args)
    if isinstance(model, str) and not hand_designed(model) and model.upper().replace("-", "_") not in ZOO:
        model = resolve_genotype(model)  # a genotype JSON file
    elif not isinstance(model, (str, Genotype)):
        raise RaclError(f"cannot train a {type(model).__name__}; give a zoo name, genotype file, "
                        f"Genotype, {' or '.join(HAND_DESIGNED)}")
    if not hand_designed(model):
        args.update(_darts_args(config))
    return model_spec(model, **args)


def _darts_args(config: TrainConfig) -> dict[str, Any]:
    n = config.network
    return dict(channels=n.channels, layers=n.layers, auxiliary=n.auxiliary, drop_path_prob=n.drop_path)


def check_inputs(spec: dict, data: DataSplits) -> None:
    """Refuse, before any file is written, data the run cannot use: an empty train split, or images
    too small for the DARTS CIFAR auxiliary head (5x5 pool, then a 2x2 conv: it needs >= 8x8 maps
    at 2/3 depth, i.e. images of at least 29 pixels) rather than a shape error deep in the first step."""
    if len(data.train) == 0:
        raise RaclError(f"the train split of {data.name} is empty; use more data (--limit, --val-fraction)")
    args = spec.get("model_args", {})
    if args.get("auxiliary") and not hand_designed(spec["model"]):
        side = math.ceil(math.ceil(data.image_size / 2) / 2)  # two stride-2 reduction cells
        if side < 8:
            raise RaclError(f"the auxiliary head needs images of at least 29x29 (got {data.image_size}x"
                            f"{data.image_size}); use --no-auxiliary or a larger --image-size")
