"""Where one fast default-supernet step (weight + distribution step, batch 32) spends its CPU time.

Usage: .venv/bin/python benchmarks/profile_supernet.py [fast|reference]
"""
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from racl.bench.cases import supernet_step


def main(ops: str) -> None:
    step = supernet_step(ops, "default", 32, torch.device("cpu"))
    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:14]:
        print(f"{e.key:45s} {100 * e.self_cpu_time_total / total:5.1f}%")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fast")
