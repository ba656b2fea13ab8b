"""Model checkpoints: weights in safetensors, everything else in a JSON sidecar (`X.safetensors` + `X.json`).

The sidecar holds what is needed to rebuild the network (`model`: zoo name, hand-designed name or
genotype dict; `model_args`: build_model keyword arguments) plus free-form run metadata.
No pickle anywhere: a file from a stranger can at worst fail to load.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from racl.errors import RaclError
from racl.io import load_safetensors, read_json, save_safetensors, write_json
from racl.models import build_model


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def model_spec(name_or_genotype: Any, **model_args: Any) -> dict:
    """The sidecar's description of a network: enough for `build_model` to rebuild it."""
    model = name_or_genotype if isinstance(name_or_genotype, (str, dict)) else name_or_genotype.to_dict()
    return {"model": model, "model_args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in model_args.items()}}


def save_model_checkpoint(path: str | Path, model: nn.Module, spec: dict, **metadata: Any) -> Path:
    """Write weights (safetensors) then the sidecar, both atomically."""
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DDP
    save_safetensors(path, model.state_dict(), {"format": "racl-model-v1"})
    write_json(sidecar_path(path), {"format": "racl-model-v1", **spec, **metadata})
    return path


def build_from_spec(spec: dict) -> nn.Module:
    from racl.search_space.resolve import load_genotype

    model = spec.get("model")
    if isinstance(model, dict):
        model = load_genotype(model)
    elif not isinstance(model, str):
        raise RaclError("checkpoint sidecar has no usable 'model' entry")
    return build_model(model, **spec.get("model_args", {}))


def load_model_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the network from the sidecar and load the weights; refuse mismatches with a clear error."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if path.suffix != ".safetensors":
        raise RaclError(f"{path.name}: racl reads only X.safetensors checkpoints (with their X.json sidecar) and "
                        "never unpickles .pt/.pth/.pkl files; convert the weights to safetensors first")
    meta = read_json(sidecar_path(path), "checkpoint sidecar")
    tensors, _ = load_safetensors(path)
    model = build_from_spec(meta)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        first = first if len(first) <= 200 else first[:200] + " ..."
        raise RaclError(f"checkpoint {path} does not match the architecture in its sidecar: {first}") from e
    return model.to(device).eval(), meta
