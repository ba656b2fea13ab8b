"""Step time of racl on a shared CPU: quiet, and with one competing busy process.

Times the PGD-7 training step (the trainer's own objective; batch 32) of a C = 16, 8-cell RACL network
(the 20-cell C = 36 step of `racl bench train` takes minutes per step under load) in fresh
processes, for each thread setting, alternating the settings, quiet and then with a competitor:
a single-threaded busy Python loop (one "other process" as on a shared 2-core machine).

Settings: 2 threads (torch's default here), 1 thread, 2 threads with OMP_WAIT_POLICY=PASSIVE
(idle OpenMP threads sleep instead of spinning), and `auto` (what `racl` picks by itself:
racl.threads, the cores not busy when the process starts).

Usage: .venv/bin/python benchmarks/under_load.py [--rounds 3] [--steps 3] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "2 threads": {"OMP_NUM_THREADS": "2"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads, passive wait": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "auto (racl.threads)": {},
}

WORKER = r"""
import sys, time
import racl.threads
racl.threads.configure()
import torch
from racl.bench.cases import train_step
step = train_step("fast", 32, torch.device("cpu"), channels=16, layers=8)
step()
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(torch.get_num_threads(), *times)
"""


def run(setting: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(SETTINGS[setting])
    out = subprocess.run([sys.executable, "-c", WORKER, str(steps)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return {"threads": int(out[0]), "seconds": [float(t) for t in out[1:]]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--conditions", nargs="+", default=["quiet", "loaded"])
    args = p.parse_args()
    results: dict = {}
    for condition in args.conditions:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "loaded" else None
        time.sleep(1 if busy else 0)
        try:
            for r in range(args.rounds):
                for setting in SETTINGS:
                    res = run(setting, args.steps)
                    results.setdefault(condition, {}).setdefault(setting, []).append(res)
                    print(f"{condition:6s} round {r} {setting:26s} threads {res['threads']} "
                          f"median {statistics.median(res['seconds']):.2f} s {res['seconds']}", flush=True)
        finally:
            if busy:
                busy.kill()
    print("\n| setting | " + " | ".join(f"{c}: median step s (runs)" for c in results) + " |")
    print("|---|" + "---|" * len(results))
    for setting in SETTINGS:
        cells = []
        for c in results:
            meds = [statistics.median(r["seconds"]) for r in results[c][setting]]
            cells.append(f"{statistics.median(meds):.2f} ({', '.join(f'{m:.2f}' for m in meds)}; "
                         f"{results[c][setting][0]['threads']} thr)")
        print(f"| {setting} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
