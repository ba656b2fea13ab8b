"""RACL's threshold/BN/normalisation alternatives side by side (issue: a constraint that can be met).

Each variant is a set of `--set` overrides on top of a base search config; every (variant, seed)
is one search written to OUT/<variant>/seed<k> (skipped when its genotype.json exists: resumable).
benchmarks/method_table.py then tabulates them: per epoch g, Pr(L_F <= L_bar), nu and the regime;
the found cells, their parameter-free ops, the bound of the found genotype's own network, the per-op
constants and the agreement across seeds.

    .venv/bin/python benchmarks/method_variants.py --data demo --seeds 0 1 2 --out runs/method
    .venv/bin/python benchmarks/method_variants.py --data cifar --seeds 0 1 2 --variants default
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from racl.data import load_data
from racl.demo import search_config
from racl.search.config import SCHEMA
from racl.search.loop import run_search

VARIANTS = {
    # the method as it was before this change: threshold fixed once, eval-mode BN, raw weights, no gamma
    "before": ["constraint.lbar_mode=initial", "bound.bn=eval", "bound.recalibrate_batches=0",
               "distribution.normalize=false", "robust.gamma=0", "distribution.decay_to=zero"],
    "initial-eval-recal": ["constraint.lbar_mode=initial", "bound.bn=eval", "distribution.normalize=true"],
    "reference-eval": ["constraint.lbar_mode=reference", "bound.bn=eval", "distribution.normalize=true"],
    "reference-none-mixture": ["constraint.lbar_mode=reference", "bound.bn=none", "distribution.normalize=false"],
    "default": [],  # reference threshold, BN not counted, expected-cell weights, gamma 0.1
    "default-k4": ["constraint.lbar=4"],
    "unconstrained": ["constraint.rho=0", "constraint.nu0=0"],
    "darts": ["strategy=darts"],
}


def base_config(data: str, seed: int):
    return SCHEMA.set(search_config() if data == "demo" else SCHEMA.preset("quick"), {"seed": seed})


def load(data: str):
    if data == "demo":
        return load_data("digits", image_size=16, seed=0)
    return load_data("imagefolder", "../shared/data/cifar10-train-jpg.zip", image_size=16, limit=200, seed=0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=("demo", "cifar"), default="demo")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--set", nargs="*", default=[], dest="extra", help="extra overrides for every variant")
    p.add_argument("--out", default="runs/method")
    args = p.parse_args()
    data = load(args.data)
    for variant in args.variants:
        for seed in args.seeds:
            run_dir = Path(args.out) / args.data / variant / f"seed{seed}"
            if not (run_dir / "normal.png").exists():  # written when a search completes
                cfg = SCHEMA.override(base_config(args.data, seed), VARIANTS[variant] + args.extra)
                start = time.perf_counter()
                run_search(cfg, data, run_dir, overwrite=True, log=lambda m: print(f"[{variant} s{seed}] {m}", flush=True))
                print(f"[{variant} s{seed}] {time.perf_counter() - start:.0f} s", flush=True)
    print(f"tables: .venv/bin/python benchmarks/method_table.py {Path(args.out) / args.data}")


if __name__ == "__main__":
    main()
