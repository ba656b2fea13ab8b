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
from racl.models.layers import place


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


def checkpoint_path(path: str | Path) -> Path:
    """The X.safetensors a `--checkpoint` argument names; a run folder, a search checkpoint or a
    training run's resume state is refused with what to pass instead (before anything is loaded)."""
    path = Path(path)
    if path.is_dir():
        raise RaclError(_folder_message(path))
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if path.suffix != ".safetensors":
        raise RaclError(f"{path.name}: racl reads only X.safetensors checkpoints (with their X.json sidecar) and "
                        "never unpickles .pt/.pth/.pkl files; convert the weights to safetensors first")
    if path.is_file() and not sidecar_path(path).is_file():
        kind = _state_kind(path)
        if kind == "search":
            raise RaclError(f"{path} is a search checkpoint (the supernet of racl search), not a trained model; "
                            f"train its genotype first: racl train --genotype {path.parent / 'genotype.json'} ...")
        if kind == "training":
            raise RaclError(f"{path} is a training run's resume state, not a model checkpoint; pass "
                            f"{path.parent / 'best.safetensors'} (or last.safetensors)")
    return path


def _folder_message(path: Path) -> str:
    if (path / "best.safetensors").is_file() or (path / "last.safetensors").is_file():
        return (f"{path} is a training run folder; pass {path / 'best.safetensors'} (best robust validation "
                "accuracy) or last.safetensors")
    if (path / "genotype.json").is_file():
        return (f"{path} is a search run folder, not a trained model; train its genotype first: "
                f"racl train --genotype {path / 'genotype.json'} ...")
    return f"{path} is a folder; --checkpoint takes a model file X.safetensors (with its X.json sidecar)"


def _state_kind(path: Path) -> str | None:
    """"search" or "training" for a racl resume-state file (racl.state), None for anything else."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - unreadable: load_safetensors says so with the right message
        return None
    if meta.get("format") != '"racl-state-v1"':
        return None
    skeleton = meta.get("skeleton", "")
    return "search" if "racl-search-v" in skeleton else "training" if "data_generator" in skeleton else None


def check_data(meta: dict, info: dict, what: str = "the checkpoint") -> None:
    """RaclError unless data with `info` (DataSplits.info()) is what the model in `meta` (a sidecar
    or a run's saved state) was trained on: channels, image size, number and names of classes.
    Sidecars older than `data_info` are checked on what they record (channels, classes)."""
    args = meta.get("model_args") or {}
    spec = meta.get("data") if isinstance(meta.get("data"), dict) else meta.get("data_spec") or {}
    expected = dict(meta.get("data_info") or {})
    expected.setdefault("num_classes", args.get("num_classes"))
    expected.setdefault("channels", args.get("in_channels", 3 if args else None))
    expected.setdefault("image_size", spec.get("image_size") if isinstance(spec, dict) else None)
    diffs = [f"{label} {info[key]} (data) vs {expected[key]} ({what})"
             for key, label in (("num_classes", "classes"), ("channels", "channels"), ("image_size", "image size"))
             if expected.get(key) is not None and info.get(key) is not None and expected[key] != info[key]]
    names = expected.get("class_names")
    if not diffs and names and list(info.get("class_names") or []) != list(names):
        diffs.append(f"class names {_names(info.get('class_names'))} (data) vs {_names(names)} ({what})")
    if diffs:
        raise RaclError(f"the data does not match what the model was trained on: {'; '.join(diffs)}; "
                        "pass the data it was trained on (--dataset and the data flags)")


def _names(names: Any) -> str:
    names = [str(n) for n in names or []]
    return ",".join(names) if len(names) <= 4 else ",".join(names[:3]) + f",... ({len(names)})"


def load_model_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the network from the sidecar and load the weights; refuse mismatches with a clear error."""
    path = checkpoint_path(path)
    meta = read_json(sidecar_path(path), "checkpoint sidecar")
    tensors, _ = load_safetensors(path)
    model = build_from_spec(meta)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        first = first if len(first) <= 200 else first[:200] + " ..."
        raise RaclError(f"checkpoint {path} does not match the architecture in its sidecar: {first}") from e
    return place(model, device).eval(), meta
