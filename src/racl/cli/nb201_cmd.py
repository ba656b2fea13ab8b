"""`racl nb201 lookup ARCH --benchmark PATH` and `racl nb201 random --benchmark PATH --k K --seed S`:
NAS-Bench-201 cells in the published robustness data sets (racl.search_space.nb201.benchmark)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from racl.search_space.nb201.benchmark import open_benchmark, random_search
from racl.search_space.nb201.benchmark_files import DATASETS
from racl.search_space.nb201.zoo import resolve_cell


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nb201", help="NAS-Bench-201 cells in the robustness benchmarks: lookup, random baseline")
    nsub = p.add_subparsers(dest="nb201_command", metavar="ACTION")
    nsub.required = True
    lookup = nsub.add_parser("lookup", help="a cell's published clean and robust accuracies and ranks")
    lookup.add_argument("arch", metavar="ARCH_OR_GENOTYPE_OR_INDEX",
                        help="architecture string, NB201 zoo name, benchmark index, or NB201 genotype JSON file")
    _common(lookup)
    lookup.set_defaults(func=_lookup)
    rand = nsub.add_parser("random", help="random search with the benchmark: best of K random cells")
    rand.add_argument("--k", type=int, required=True, help="cells drawn")
    rand.add_argument("--seed", type=int, default=0, help="seed of the random draw (default 0)")
    _common(rand)
    rand.set_defaults(func=_random)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, metavar="PATH",
                   help="robustness dataset root folder (meta.json, cifar10/, ...) or NAS-RobBench-201 folder / "
                        "NAS-RobBench-201_all.json")
    p.add_argument("--benchmark-dataset", dest="dataset", default="cifar10", choices=DATASETS,
                   help="which of the benchmark's data sets (default cifar10)")
    p.add_argument("--metric", default=None, help="one metric (default: lookup shows all; random uses "
                                                  "val_pgd_8.0_acc for NAS-RobBench-201)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _lookup(args: argparse.Namespace) -> int:
    cell = resolve_cell(args.arch)
    record = open_benchmark(args.benchmark).lookup(cell, args.dataset, args.metric)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"{record['arch']} (index {record['index']}, evaluated as {record['representative']})")
    print(f"{record['benchmark']}, {record['dataset']}:")
    print(metrics_table(record["metrics"]))
    return 0


def _random(args: argparse.Namespace) -> int:
    result = random_search(open_benchmark(args.benchmark), args.dataset, args.k, args.seed, args.metric)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    best = result["best"]
    print(f"best of {result['k']} random cells (seed {result['seed']}) by {result['metric']} on "
          f"{result['dataset']} ({result['benchmark']}):")
    print(f"{best['arch']} (index {best['index']}, evaluated as {best['representative']})")
    print(metrics_table(best["metrics"]))
    return 0


def metrics_table(metrics: dict[str, Any]) -> str:
    width = max([len("metric")] + [len(name) for name in metrics])
    lines = [f"  {'metric':<{width}}  accuracy %  rank"]
    for name, m in metrics.items():
        if m["value"] is None:
            lines.append(f"  {name:<{width}}  {'-':>10}  -")
        else:
            lines.append(f"  {name:<{width}}  {100 * m['value']:>10.2f}  {m['rank']} / {m['of']}")
    return "\n".join(lines)

