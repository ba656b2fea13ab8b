"""Clean and robust accuracy of a model under a list of named attacks, plus an eps sweep.

Each attack runs on *all* images (so per-attack numbers are comparable with papers that report them
one by one); the per-image worst case over all attacks is reported as well ("worst_case"). An image
counts as robust under an attack only if it is classified correctly both clean and adversarially
(AutoAttack's convention), so robust accuracy <= clean accuracy by construction.

Every batch k is attacked under its own seed (`batch_seed(seed, k)`, `seed` for the first), so a
batch's result does not depend on which batches ran before it: in a data-parallel run
(racl.distributed.Runtime) each process attacks whole batches r, r + W, ... and the summed counts
equal a one-process run's exactly.
"""
from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from racl.attacks import build_attack, format_eps, transfer_attack
from racl.attacks.registry import describe
from racl.evaluation.report import settings_text
from racl.attacks.base import check_eps
from racl.distributed import Runtime
from racl.errors import RaclError
from racl.lifecycle import progress_bar
from racl.models.layers import place


def batch_seed(seed: int, k: int) -> int:
    """The RNG seed of evaluation batch k: `seed` itself for the first batch."""
    return seed + 1_000_003 * k


@contextmanager
def seeded(seed: int, device: str | torch.device) -> Iterator[None]:
    """Seed torch's RNG (CPU and the device's) for a block, leaving the caller's RNG state untouched."""
    device = torch.device(device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] (x / 255); floats are checked to lie in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not torch.is_floating_point(images):
        raise RaclError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise RaclError("float images must be in [0, 1] (normalisation is the model's first layer)")
    return images


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def predict_correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    device: str | torch.device) -> torch.Tensor:
    """(N,) bool on CPU: argmax of the model's logits equals the label."""
    out = [(_logits(model, images[i:i + batch_size].to(device)).argmax(1).cpu() == labels[i:i + batch_size])
           for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def attack_correct(attack: Any, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int, device: str | torch.device, seed: int | None = None,
                   batch_ids: Sequence[int] | None = None, store: Any = None, store_key: str = ""
                   ) -> torch.Tensor:
    """(N,) bool on CPU: the model still classifies the attacked image correctly.

    With `seed`, the i-th batch runs under batch_seed(seed, batch_ids[i]) (default ids 0, 1, ...).
    `store` (evaluation.resume.BatchStore): batches already in it are not attacked again, and each
    newly attacked batch is added under "store_key/batch id"."""
    out = []
    starts = range(0, images.shape[0], batch_size)
    enabled = None if len(starts) >= 2 else False  # a bar on a terminal, for more than one batch
    with progress_bar(len(starts), getattr(attack, "name", "attack"), enabled, unit="batch") as bar:
        for b, i in enumerate(starts):
            k = b if batch_ids is None else batch_ids[b]
            k_seed = None if seed is None else batch_seed(seed, k)
            saved = None if store is None else store.get(f"{store_key}/{k}")
            if saved is None:
                saved = _attacked_correct(attack, model, images[i:i + batch_size], labels[i:i + batch_size],
                                          device, k_seed)
                if store is not None:
                    store.put(f"{store_key}/{k}", saved)
            out.append(saved)
            bar.update(1)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _attacked_correct(attack: Any, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      device: str | torch.device, seed: int | None) -> torch.Tensor:
    """One batch: (B,) bool, attacked under its own `seed` when one is given."""
    x, y = images.to(device), labels.to(device)
    with seeded(seed, device) if seed is not None else nullcontext():
        adv = attack(x, y)
    with torch.no_grad():
        return (_logits(model, adv).argmax(1) == y).cpu()


def run_attack(name: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
               batch_size: int, device: str | torch.device, seed: int,
               attack_kw: dict | None = None, batch_ids: Sequence[int] | None = None,
               store: Any = None) -> tuple[torch.Tensor, float, list[str], dict[str, Any]]:
    """One named attack on every image: (adversarially correct (N,), seconds, the attack's warnings,
    what it ran: norm, eps, steps, step size, ... (racl.attacks.registry.describe)).

    `batch_ids`: the global indices of the batches `images` holds (a torchrun shard); default 0, 1, ..."""
    kw = dict((attack_kw or {}).get(name, {}))
    if name in ("autoattack", "apgd"):
        kw.setdefault("seed", seed)
    attack = build_attack(name, model, eps, **kw)
    start = time.perf_counter()  # every batch starts from its own seeded RNG state: reruns agree
    correct = attack_correct(attack, model, images, labels, batch_size, device, seed, batch_ids, store,
                             f"{name}@{eps!r}")
    seconds = time.perf_counter() - start
    return correct, seconds, list(getattr(attack, "warnings", [])), describe(attack)


def evaluate_robustness(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attacks: Sequence[str],
                        eps: float, batch_size: int = 128, device: str | torch.device = "cpu", seed: int = 0,
                        attack_kw: dict[str, dict] | None = None,
                        progress: Callable[[str], None] | None = None, store: Any = None,
                        runtime: Runtime | None = None) -> dict[str, Any]:
    """Clean accuracy, robust accuracy and seconds per attack, and the per-image worst case.
    `store`: finished batches kept for a resumed evaluation (evaluation.resume.BatchStore).
    `runtime`: the process of a data-parallel run (default: this process's, racl.distributed); each
    process attacks its whole batches, the counts are summed, rank 0 reports `progress`.

    images (N, C, H, W) uint8 or float in [0, 1]; labels (N,). The model is put in eval mode on
    `device` and left there. Accuracies are fractions in [0, 1]; `progress` gets one line per attack.
    """
    eps = check_eps(eps)
    images, labels = as_float_images(images), labels.long()
    if images.shape[0] == 0 or images.shape[0] != labels.shape[0]:
        raise RaclError(f"need a matching, non-empty set of images and labels, got {images.shape[0]} "
                        f"images and {labels.shape[0]} labels")
    rt = runtime or Runtime.current()
    place(model, device).eval()
    n, ids = images.shape[0], list(rt.eval_batches(-(-images.shape[0] // batch_size)))
    if rt.world > 1:  # this process's whole batches (ids), the counts summed in _fraction
        shard = rt.eval_shard(n, batch_size)
        images, labels = images[shard], labels[shard]
    clean = predict_correct(model, images, labels, batch_size, device)
    worst = clean.clone()
    robust, seconds, warnings, settings = {}, {}, {}, {}
    for name in attacks:
        if eps == 0:  # the ball is x itself: every attack returns x, so it is not run (AutoAttack would
            # attack every correct image in full for nothing); robust = clean by definition
            correct, secs, attack_warnings = clean.clone(), 0.0, []
            settings[name] = describe(build_attack(name, model, eps, **(attack_kw or {}).get(name, {})))
        else:
            correct, secs, attack_warnings, settings[name] = run_attack(name, model, images, labels, eps,
                                                                        batch_size, device, seed, attack_kw, ids,
                                                                        store)
        correct &= clean
        worst &= correct
        robust[name], seconds[name] = _fraction(correct, n, rt), round(secs, 3)
        if progress is not None and rt.is_main:
            progress(f"eps {format_eps(eps)} {name} ({settings_text(settings[name])}): "
                     f"{100 * robust[name]:.2f}% robust ({secs:.1f} s)")
        if attack_warnings:
            warnings[name] = attack_warnings
    return {"eps": eps, "eps_text": format_eps(eps), "n_images": n, "seed": seed,
            "clean_accuracy": _fraction(clean, n, rt), "robust_accuracy": robust,
            "worst_case_accuracy": _fraction(worst, n, rt), "seconds": seconds,
            "attacks": settings, "attack_warnings": warnings}



def _fraction(correct: torch.Tensor, n: int, rt: Runtime) -> float:
    """The fraction of n images marked True, summed over processes; bit-identical to the float32
    `correct.float().mean()` of one process (a float32 sum of 0/1 is exact, then one division)."""
    count = rt.sum([int(correct.sum())])[0]
    return (torch.tensor(count, dtype=torch.float32) / n).item()


def eps_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attacks: Sequence[str],
              eps_values: Sequence[float], batch_size: int = 128, device: str | torch.device = "cpu",
              seed: int = 0, attack_kw: dict[str, dict] | None = None,
              progress: Callable[[str], None] | None = None, store: Any = None,
              runtime: Runtime | None = None) -> dict[str, Any]:
    """Robust accuracy of every attack at every eps: {"eps": [...], "robust_accuracy": {name: [...]}}."""
    curves: dict[str, list[float]] = {name: [] for name in attacks}
    clean, norms = None, {}
    for eps in eps_values:
        res = evaluate_robustness(model, images, labels, attacks, eps, batch_size, device, seed, attack_kw,
                                  progress, store, runtime)
        clean = res["clean_accuracy"]
        for name in attacks:
            curves[name].append(res["robust_accuracy"][name])
            norms[name] = res["attacks"][name]["norm"]
    return {"eps": [float(e) for e in eps_values], "eps_text": [format_eps(e) for e in eps_values],
            "clean_accuracy": clean, "robust_accuracy": curves, "norms": norms}


def transfer_matrix(models: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, attack: str,
                    eps: float, batch_size: int = 128, device: str | torch.device = "cpu",
                    seed: int = 0) -> dict[str, Any]:
    """Robust accuracy of each target (column) on examples crafted on each source (row).

    The diagonal is the white-box attack. Returns {"sources": names, "targets": names, "accuracy": rows}.
    """
    images, labels = as_float_images(images), labels.long()
    for model in models.values():
        place(model, device).eval()
    rows = []
    for source in models.values():
        with seeded(seed, device):
            acc = transfer_attack(source, models, attack, images, labels, eps, batch_size=batch_size)
        rows.append([acc[name] for name in models])
    clean = {name: predict_correct(m, images, labels, batch_size, device).float().mean().item()
             for name, m in models.items()}
    settings = describe(build_attack(attack, next(iter(models.values())), eps))
    return {"attack": attack, "eps": eps, "eps_text": format_eps(eps), "n_images": int(images.shape[0]),
            "settings": settings, "sources": list(models), "targets": list(models), "accuracy": rows,
            "clean_accuracy": clean}
