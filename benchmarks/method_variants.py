"""RACL's threshold/BN/normalisation alternatives side by side (issue: a constraint that can be met).

Each variant is a set of `--set` overrides on top of a base search config; every (variant, seed)
is one search written to OUT/<variant>/seed<k> (skipped when its genotype.json exists: resumable).
Then one table: per epoch g, Pr(L_F <= L_bar), nu and the regime; the found cells, their
parameter-free ops, the bound of the found genotype's own network, and the per-op constants.

    .venv/bin/python benchmarks/method_variants.py --data demo --seeds 0 1 2 --out runs/method
    .venv/bin/python benchmarks/method_variants.py --data cifar --seeds 0 1 2 --variants default
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from racl.data import load_data
from racl.demo import DemoConfig, _search_config
from racl.search.config import apply_overrides, get_preset, override_top
from racl.search.loop import parameter_free, run_search
from racl.search_space.genotype import Genotype

VARIANTS = {
    # the method as it was before this change: threshold fixed once, eval-mode BN, raw weights, no gamma
    "before": ["lbar_mode=initial", "bn=eval", "recalibrate_batches=0", "normalize=false", "gamma=0",
               "decay_to=zero"],
    "initial-eval-recal": ["lbar_mode=initial", "bn=eval", "normalize=true"],
    "reference-eval": ["lbar_mode=reference", "bn=eval", "normalize=true"],
    "reference-none-mixture": ["lbar_mode=reference", "bn=none", "normalize=false"],
    "default": [],  # reference threshold, BN not counted, expected-cell weights, gamma 0.1
    "default-k4": ["lbar=4"],
    "unconstrained": ["rho=0", "nu0=0"],
    "darts": ["strategy=darts"],
}


def base_config(data: str, seed: int):
    if data == "demo":
        return override_top(_search_config(DemoConfig()), seed=seed)
    return override_top(get_preset("quick"), seed=seed)


def load(data: str):
    if data == "demo":
        return load_data("digits", image_size=16, seed=0)
    return load_data("imagefolder", "../shared/data/cifar10-train-jpg.zip", image_size=16, limit=200, seed=0)


def summary(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    last = records[-1]
    g = Genotype.load(run_dir / "genotype.json")
    search = [r for r in records if r["phase"] == "search"]
    return {
        "trajectory": [(r["epoch"], r.get("constraint_g"), r.get("prob_within_bound"), r.get("dual_nu"),
                        r.get("constraint_regime")) for r in search],
        "reached_eta": any((r.get("prob_within_bound") or 0) >= 0.9 for r in search),
        "normal": g.normal, "reduce": g.reduce, "parameter_free_normal": parameter_free(g.normal),
        "parameter_free_reduce": parameter_free(g.reduce), "ln_l_genotype": last.get("ln_l_genotype"),
        "ln_l_ref": last.get("ln_l_ref"), "ln_l_min": last.get("ln_l_min"), "ln_lbar": last.get("ln_lbar"),
        "mu_F": last.get("mu_F"), "ln_lambda_by_op": last.get("ln_lambda_by_op"),
        "decision_margin": last.get("decision_margin"), "genotype_val_acc": last.get("genotype_val_acc"),
        "seconds": sum(r["seconds"] for r in records),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=("demo", "cifar"), default="demo")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--set", nargs="*", default=[], dest="extra", help="extra overrides for every variant")
    p.add_argument("--out", default="runs/method")
    args = p.parse_args()
    data = load(args.data)
    results = {}
    for variant in args.variants:
        for seed in args.seeds:
            run_dir = Path(args.out) / args.data / variant / f"seed{seed}"
            if not (run_dir / "normal.png").exists():  # written when a search completes
                cfg = apply_overrides(base_config(args.data, seed), VARIANTS[variant] + args.extra)
                start = time.perf_counter()
                run_search(cfg, data, run_dir, overwrite=True, log=lambda m: print(f"[{variant} s{seed}] {m}", flush=True))
                print(f"[{variant} s{seed}] {time.perf_counter() - start:.0f} s", flush=True)
            results[f"{variant}/seed{seed}"] = summary(run_dir)
    out = Path(args.out) / args.data / "summary.json"
    out.write_text(json.dumps(results, indent=1))
    for key, r in results.items():
        print(key, json.dumps(r))


if __name__ == "__main__":
    main()
