"""Which network a run trains: a `racl.checkpoint.model_spec` dict built from a name and the data."""
from __future__ import annotations

import math
from typing import Any

from racl.checkpoint import model_spec
from racl.data import DataSplits
from racl.errors import RaclError
from racl.models import HAND_DESIGNED, hand_designed
from racl.search_space.registry import get_space, list_spaces, space_of
from racl.search_space.resolve import from_zoo, load_genotype, resolve_genotype
from racl.training.config import TrainConfig


def _is_hand_designed(name: Any) -> bool:
    return hand_designed(name) is not None


def _is_genotype(value: Any) -> bool:
    return any(isinstance(value, get_space(s).genotype_type) for s in list_spaces())


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
        if not _is_hand_designed(name):
            args.update(_cell_args(config, name))
        args.update(model.get("model_args", {}))
        return model_spec(name, **args)
    if isinstance(model, str) and not _is_hand_designed(model) and from_zoo(model) is None:
        model = resolve_genotype(model)  # a genotype JSON file
    elif not isinstance(model, str) and not _is_genotype(model):
        raise RaclError(f"cannot train a {type(model).__name__}; give a zoo name, genotype file, "
                        f"Genotype, {' or '.join(HAND_DESIGNED)}")
    if not _is_hand_designed(model):
        args.update(_cell_args(config, model))
    return model_spec(model, **args)


def _cell_args(config: TrainConfig, model: Any) -> dict[str, Any]:
    """The network section's size for the model's space (its defaults where the config says null)."""
    if isinstance(model, str):
        genotype = from_zoo(model)
    elif isinstance(model, dict):
        genotype = load_genotype(model)
    else:
        genotype = model
    return config.network.size(space_of(genotype))


def check_inputs(spec: dict, data: DataSplits) -> None:
    """Refuse, before any file is written, data the run cannot use: an empty train split, or images
    too small for the DARTS CIFAR auxiliary head (5x5 pool, then a 2x2 conv: it needs >= 8x8 maps
    at 2/3 depth, i.e. images of at least 29 pixels) rather than a shape error deep in the first step."""
    if len(data.train) == 0:
        raise RaclError(f"the train split of {data.name} is empty; use more data (--limit, --val-fraction)")
    args, model = spec.get("model_args", {}), spec["model"]
    darts = (from_zoo(model, "darts") is not None if isinstance(model, str)
             else isinstance(model, dict) and model.get("space", "darts") == "darts")
    if args.get("auxiliary") and darts:
        side = math.ceil(math.ceil(data.image_size / 2) / 2)  # two stride-2 reduction cells
        if side < 8:
            raise RaclError(f"the auxiliary head needs images of at least 29x29 (got {data.image_size}x"
                            f"{data.image_size}); use --no-auxiliary or a larger --image-size")
