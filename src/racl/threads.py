"""How many CPU threads racl's compute uses: the cores that are free, not all of them.

torch starts one OpenMP thread per physical core. On a shared machine that oversubscribes the cores:
when another busy process holds one of 2 cores, racl's 2-thread steps wait for the descheduled
thread at every parallel region and run several times slower than with 1 thread
(benchmarks/under_load.py, README "Performance"). `configure()` (called by the `racl` command)
sets torch's thread count to the cores not busy when the process starts:

- `RACL_THREADS=N` or `OMP_NUM_THREADS=N` set: that is used, nothing is measured;
- otherwise the CPU time of the machine's other processes is sampled for `SAMPLE_S` seconds from
  /proc/stat, and threads = cores available to this process (sched_getaffinity, at most torch's
  default) minus the cores busy, at least 1. Where /proc/stat is missing, torch's default stays.

It is measured once, at start-up: a competitor that starts later is not seen.
"""
from __future__ import annotations

import os
import time

import torch

SAMPLE_S = 0.2


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from /proc/stat, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(sample_s: float = SAMPLE_S) -> float | None:
    """Cores' worth of CPU time used by the machine over `sample_s` seconds (this process sleeps)."""
    first = _cpu_times()
    time.sleep(sample_s)
    second = _cpu_times()
    if first is None or second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def choose_threads(available: int, busy: float | None) -> int:
    """Threads for `available` cores of which `busy` are in use (None: unknown -> all of them)."""
    if busy is None:
        return available
    return max(1, min(available, available - int(round(busy))))


def configure() -> int:
    """Set torch's intra-op threads (module docstring); returns the number set."""
    for name in ("RACL_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            torch.set_num_threads(int(value))
            return int(value)
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    threads = choose_threads(min(available, torch.get_num_threads()), busy_cores())
    torch.set_num_threads(threads)
    return threads
