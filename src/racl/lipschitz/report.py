"""The Lipschitz view of a trained model (`racl lipschitz`): global upper bound vs local estimate per part.

Both are l2 constants with respect to the [0, 1] input. The global bound (network.py) holds everywhere;
the local estimate (local.py) is the largest Jacobian norm found on the given images, a lower bound of
the true constant. Their ratio says how loose the product-of-layers bound is on this network.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from racl.checkpoint import load_model_checkpoint
from racl.evaluation.run import load_split, pick_images
from racl.lipschitz.local import local_estimates
from racl.lipschitz.network import network_bound


def lipschitz_report(model: nn.Module, images: torch.Tensor, *, n_iter: int = 100, local_iters: int = 10,
                     batch_size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Per-part global bounds and local estimates of `model` on `images` (N, C, H, W) in [0, 1]."""
    start = time.perf_counter()
    images = images.to(next(model.parameters()).device)
    parts = network_bound(model, tuple(images.shape[1:]), n_iter=n_iter, seed=seed)
    global_s = time.perf_counter() - start
    local = local_estimates(model, [p.module for p in parts], images, batch_size, local_iters, seed)
    rows = []
    for part, est in zip(parts, local):
        log_local = math.log(est["max"]) if est["max"] > 0 else -math.inf
        rows.append({"part": part.name, "log_global": part.log_constant,
                     "log_global_cumulative": part.log_cumulative, "log_local_max": log_local,
                     "local_max": est["max"], "local_mean": est["mean"], "argmax_image": est["argmax"],
                     "log_ratio": part.log_cumulative - log_local, **part.detail})
    total = rows[-1]
    return {"parts": rows, "log_global_bound": total["log_global_cumulative"],
            "log_local_estimate": total["log_local_max"], "n_images": int(images.shape[0]),
            "power_iterations": n_iter, "local_iterations": local_iters, "seed": seed,
            "seconds": {"global": global_s, "local": time.perf_counter() - start - global_s}}


def _num(x: float) -> str:
    return "-inf" if x == -math.inf else f"{x:.2f}"


def lipschitz_table(result: dict[str, Any], markdown: bool = False) -> str:
    """Console (or markdown) table: ln of each part's own bound, cumulative bound, local max, and the gap."""
    header = ["part", "ln L own", "ln L input->part", "ln local max", "gap (ln)"]
    rows = [[r["part"], _num(r["log_global"]), _num(r["log_global_cumulative"]), _num(r["log_local_max"]),
             _num(r["log_ratio"])] for r in result["parts"]]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [header, *rows])


def lipschitz_markdown(result: dict[str, Any]) -> str:
    return "\n".join([
        "# Lipschitz view", "",
        f"- checkpoint: `{result.get('checkpoint', '-')}`",
        f"- global bound (product of layer bounds, as in the search): ln L = "
        f"{_num(result['log_global_bound'])}",
        f"- local estimate (largest Jacobian norm on {result['n_images']} {result.get('split', '')} images): "
        f"ln L = {_num(result['log_local_estimate'])}",
        f"- power iterations per piece: {result['power_iterations']}; per image: {result['local_iterations']}",
        "", lipschitz_table(result, markdown=True), ""])


def lipschitz_checkpoint(checkpoint: str | Path, *, n_images: int = 64, split: str = "test", seed: int = 0,
                         device: str = "cpu", load=None, **options: Any) -> dict[str, Any]:
    """`lipschitz_report` of a saved checkpoint on a seeded subset of its data."""
    model, meta = load_model_checkpoint(checkpoint, device=device)
    data, spec = load_split(meta, split, load)
    images, _ = pick_images(data, n_images, seed)
    result = lipschitz_report(model, images, seed=seed, **options)
    result.update(checkpoint=str(checkpoint), split=split, data=spec,
                  model={"model": meta.get("model"), "model_args": meta.get("model_args", {})})
    return result
