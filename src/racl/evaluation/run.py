"""Whole evaluations of saved checkpoints, as `racl evaluate` runs them: load, attack, check, write.

`evaluate_checkpoint` writes DIR/results.json, results.md (and eps_sweep.png with an eps sweep);
`evaluate_transfer` writes DIR/transfer.json and transfer.md. Both return the result dict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from racl.amp import autocast
from racl.checkpoint import check_data, load_model_checkpoint
from racl.data import load_data_from_spec
from racl.distributed import Runtime
from racl.errors import RaclError
from racl.evaluation.checks import check_transfer_vs_whitebox, run_model_checks, run_result_checks, warnings_from
from racl.evaluation.evaluate import as_float_images, eps_sweep, evaluate_robustness, transfer_matrix
from racl.evaluation.plots import plot_eps_sweep
from racl.evaluation.report import results_markdown, transfer_markdown
from racl.evaluation.resume import BatchStore, fingerprint
from racl.io import write_json, write_text

Progress = Callable[[str], None]
DataLoader = Callable[[dict], Any]  # meta -> DataSplits (the data module's load_data_from_spec, or an override)


def load_split(meta: dict, split: str, load: DataLoader | None = None) -> tuple[Any, dict]:
    """(ArrayDataset, data spec) of the checkpoint's data; `load` overrides the sidecar's spec."""
    if load is None:
        if not isinstance(meta.get("data"), dict):
            raise RaclError("checkpoint sidecar has no 'data' entry; pass --dataset to say what to evaluate on")

        splits = load_data_from_spec(meta["data"])
    else:
        splits = load(meta)
    check_data(meta, splits.info())  # channels, image size, number and names of classes
    if split not in ("test", "val"):
        raise RaclError(f"--split must be test or val, got {split!r}")
    data = getattr(splits, split)
    if len(data) == 0:
        raise RaclError(f"the {split} split is empty; use --split {'val' if split == 'test' else 'test'}")
    spec = splits.spec() if callable(getattr(splits, "spec", None)) else meta.get("data")
    return data, spec


def pick_images(data: Any, n_images: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of n_images (all if None): (N, C, H, W) float in [0, 1], (N,) int64."""
    n = len(data.labels)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_images] if n_images else None
    images, labels = (data.images, data.labels) if idx is None else (data.images[idx], data.labels[idx])
    return as_float_images(images.cpu()), labels.cpu().long()


def _model_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  device: str) -> dict:
    n = min(batch_size, images.shape[0])
    return run_model_checks(model.to(device), images[:n].to(device), labels[:n].to(device))


def evaluate_checkpoint(checkpoint: str | Path, attacks: Sequence[str], eps: float, out: str | Path, *,
                        n_images: int | None = None, batch_size: int = 128, sweep: Sequence[float] = (),
                        sweep_attacks: Sequence[str] | None = None,
                        split: str = "test", seed: int = 0, device: str = "cpu",
                        load: DataLoader | None = None, progress: Progress | None = None,
                        resume: bool = False, amp: str = "none") -> dict[str, Any]:
    """Evaluate one checkpoint on its data (sidecar's spec or `load`); write results.json/.md (+ png).

    Finished attack batches are kept in OUT/.partial while it runs; `resume` reuses those of an
    interrupted run with the same checkpoint, images and settings (evaluation.resume). `amp`: "bf16"
    runs the forward passes of the accuracies and attacks under bf16 autocast (racl.amp); the
    model checks stay in float32."""
    rt = Runtime.current(progress)  # torchrun: the images sharded by batches, rank 0 reports and writes
    model, meta = load_model_checkpoint(checkpoint, device=device)
    data, spec = load_split(meta, split, load)
    images, labels = pick_images(data, n_images, seed)
    key = fingerprint(checkpoint, images, labels, split=split, seed=seed, batch_size=batch_size, world=rt.world,
                      **({"amp": amp} if amp != "none" else {}))  # (none: the keys of earlier versions)
    store = BatchStore(out, key, resume, rt.rank if rt.world > 1 else None)
    with autocast(amp, device):
        result = evaluate_robustness(model, images, labels, attacks, eps, batch_size, device, seed,
                                     progress=progress, store=store, runtime=rt)
    result.update(checkpoint=str(checkpoint), split=split, device=str(device), amp=amp, data=spec,
                  num_classes=meta.get("model_args", {}).get("num_classes"),
                  model={"model": meta.get("model"), "model_args": meta.get("model_args", {})})
    if sweep:
        with autocast(amp, device):
            result["eps_sweep"] = eps_sweep(model, images, labels, sweep_attacks or attacks, sweep, batch_size,
                                            device, seed, progress=progress, store=store, runtime=rt)
        result["eps_sweep"]["n_images"] = result["n_images"]
    checks = {**_model_checks(model, images, labels, batch_size, device), **run_result_checks(result)}
    result.update(checks=checks, warnings=warnings_from(checks), batches_reused=store.reused)
    out = Path(out)
    rt.write(write_json, out / "results.json", result)  # every process holds the summed result
    rt.write(write_text, out / "results.md", results_markdown(result))
    if sweep:
        rt.write(plot_eps_sweep, result["eps_sweep"], out / "eps_sweep.png")
    rt.barrier()
    store.finish()
    return result


def _names(paths: Sequence[str | Path]) -> list[str]:
    """Short, unique names for checkpoints: the file stem, or parent/stem when stems collide."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{Path(p).parent.name}/{Path(p).stem}" if stems.count(Path(p).stem) > 1 else Path(p).stem
            for p in paths]


def evaluate_transfer(checkpoints: Sequence[str | Path], attacks: Sequence[str], eps: float, out: str | Path, *,
                      n_images: int | None = None, batch_size: int = 128, split: str = "test", seed: int = 0,
                      device: str = "cpu", load: DataLoader | None = None,
                      progress: Progress | None = None, amp: str = "none") -> dict[str, Any]:
    """Source-by-target robust accuracy matrices (one per attack) between checkpoints on shared images
    (`amp`: as in evaluate_checkpoint)."""
    if len(checkpoints) < 2:
        raise RaclError("--transfer needs at least two checkpoints")
    names = _names(checkpoints)
    loaded = [load_model_checkpoint(p, device=device) for p in checkpoints]
    models = dict(zip(names, (m for m, _ in loaded)))
    data, spec = load_split(loaded[0][1], split, load)
    images, labels = pick_images(data, n_images, seed)
    matrices, checks = {}, {}
    for attack in attacks:
        with autocast(amp, device):
            matrices[attack] = transfer_matrix(models, images, labels, attack, eps, batch_size, device, seed)
        if progress is not None:
            progress(f"transfer {attack}: done ({len(names)} x {len(names)})")
        check = check_transfer_vs_whitebox(matrices[attack]["accuracy"], names)
        checks[f"transfer_vs_whitebox_{attack}"] = check
        matrices[attack]["warnings"] = warnings_from({attack: check})
    result = {"checkpoints": [str(p) for p in checkpoints], "names": names, "split": split, "seed": seed,
              "amp": amp, "data": spec, "matrices": matrices, "checks": checks, "warnings": warnings_from(checks)}
    out, rt = Path(out), Runtime.current()  # torchrun: not sharded; every process computes the matrices
    rt.write(write_json, out / "transfer.json", result)
    rt.write(write_text, out / "transfer.md", "\n".join(transfer_markdown(m) for m in matrices.values()))
    rt.barrier()
    return result
