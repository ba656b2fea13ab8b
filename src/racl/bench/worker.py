"""`python -m racl.bench.worker JSON`: build one case, time it, print one JSON line.

Each case runs in its own process, so its peak memory is its own.
"""
from __future__ import annotations

import json
import sys

import torch

from racl.bench import cases


def main(spec: dict) -> dict:
    spec = dict(spec)
    device = torch.device(spec.pop("device", "cpu"))
    case, repeats, count = spec.pop("case"), spec.pop("repeats", 3), spec.pop("count_flops", False)
    warmup = spec.pop("warmup", 1)
    fn = getattr(cases, case)(device=device, **spec)
    result = cases.measure(fn, device, repeats, warmup=warmup)
    if count and hasattr(fn, "gflop"):  # the case counts its own passes
        try:
            result["gflop"] = fn.gflop()
        except Exception as e:  # noqa: BLE001 (e.g. a compiled model under FlopCounterMode): no count
            result["gflop"], result["gflop_error"] = None, f"{type(e).__name__}: {e}"[:300]
    elif count:  # convolutions and matrix products of one call (what the FLOP peak is measured on)
        counter = cases.flop_counter()
        try:
            with counter:
                fn()
            result["gflop"] = counter.get_total_flops() / 1e9
        except RuntimeError:  # torch 2.14's FlopCounterMode rejects autograd.grad w.r.t. a leaf (attacks)
            result["gflop"] = None
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
