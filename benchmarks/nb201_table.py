"""The tables of the NAS-Bench-201 experiment (benchmarks/nb201.sh), in Markdown on stdout.

Reads whatever has finished under ROOT (default runs/nb201): the zoo's reference cells, the searches
(racl, darts, random), each found cell's comparison. Nothing is hard-coded: rerun it as runs finish.
Found cells are printed as NB201 architecture strings, so a reader with the published robustness data
sets can look them up (`racl nb201 lookup 'ARCH' --benchmark PATH`).

Usage: .venv/bin/python benchmarks/nb201_table.py [ROOT [PROTOCOL]]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from claim_table import by_label, diff_table, mdd, mflops, pct, runs_of  # noqa: E402

from racl.search_space.nb201 import NB201, Nb201Genotype  # noqa: E402

STRATEGIES = ("racl", "darts", "random", "racl-nonone", "darts-nonone")  # -nonone: supernet.keep_none=false
METRICS = {"clean": lambda r: r["clean_accuracy"], "PGD-20": lambda r: r["robust_accuracy"]["pgd20"],
           "CW": lambda r: r["robust_accuracy"]["cw"]}


def search_rows(root: Path) -> list[str]:
    lines = ["| search | epochs | seconds | cell (NB201 string) | conv / pool / skip / none | Pr(L<=Lbar) | nu | "
             "ln L genotype | val acc (genotype) |", "|---|---|---|---|---|---|---|---|---|"]
    for d in sorted((root / "search").glob("*-seed*")):
        if not d.is_dir() or not (d / "genotype.json").is_file():
            continue
        metrics = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if x.strip()]
        g = Nb201Genotype.load(d / "genotype.json")
        last, pr = metrics[-1], metrics[-1].get("prob_within_bound")
        counts = " / ".join(str(sum(kind in op for op in g.ops)) for kind in ("conv", "pool", "skip", "none"))
        acc = last.get("genotype_val_acc")
        lines.append(f"| {d.name} | {len(metrics)} | {sum(m.get('seconds') or 0 for m in metrics):.0f} | "
                     f"`{g.to_string()}` | {counts} | {'-' if pr is None else f'{pr:.3f}'} | "
                     f"{last.get('dual_nu') or 0:.3f} | {last.get('ln_l_genotype') or float('nan'):.2f} | "
                     f"{'-' if acc is None else f'{100 * acc:.1f}'} |")
    return lines


def arch_row(label: str, runs: list[dict], flops: float) -> str:
    return (f"| {label} | {runs[0]['params']:,} | {flops:.1f} | {pct([r['clean_accuracy'] for r in runs])} | "
            f"{pct([r['robust_accuracy']['pgd20'] for r in runs])} | {pct([r['robust_accuracy']['cw'] for r in runs])} | "
            f"{statistics.mean(r['train_seconds'] for r in runs):.0f} | {len(runs)} |")


def main(root: Path, protocol: str) -> None:
    runs_root = root / protocol
    reference = by_label(runs_of(runs_root / "compare-reference"))
    searched = by_label([r for c in sorted((runs_root / "compare-searched").glob("*")) for r in runs_of(c)])
    print(f"# NAS-Bench-201 at CPU scale ({protocol})\n")
    print("## Searches\n")
    print("\n".join(search_rows(root)))
    print("\n## Trained cells (mean ± std over training seeds)\n")
    print("| architecture | params | MFLOPs | clean % | PGD-20 % | CW % | train s | seeds |\n|---|---|---|---|---|---|---|---|")
    for label, runs in {**reference, **searched}.items():
        ckpt = runs[0]["cell"] / "train" / Path(runs[0]["checkpoint"]).name
        print(arch_row(label, runs, mflops(ckpt)))
    every = [r for runs in {**reference, **searched}.values() if len(runs) >= 2 for r in runs]
    groups = [runs for runs in {**reference, **searched}.values() if len(runs) >= 2]
    if groups:
        print("\n## Power\n")
        for name, get in METRICS.items():
            var = sum((len(g) - 1) * statistics.variance([get(r) for r in g]) for g in groups)
            s = (var / sum(len(g) - 1 for g in groups)) ** 0.5
            print(f"- {name}: pooled seed std {100 * s:.2f} points over {len(groups)} architectures "
                  f"({len(every)} runs); minimum detectable difference, 3 vs 3 seeds: {100 * mdd(s, 3):.1f} points")
    control = [("NB201_BEST_CIFAR10 - NB201_ALL_SKIP (control)", reference.get("NB201_BEST_CIFAR10", []),
                reference.get("NB201_ALL_SKIP", []))]
    control = [c for c in control if c[1] and c[2]]
    if control:
        print("\n## Control (95% CI, points)\n")
        diff_table("difference", METRICS, control)
    def strategy(label: str) -> str:
        return label.rsplit("-seed", 1)[0]

    by_strategy = {s: [r for label, runs in searched.items() if strategy(label) == s for r in runs] for s in STRATEGIES}
    # unit: the search (mean over its training seeds), so the interval is over search seeds
    means = {s: [{k: statistics.mean(get(r) for r in runs) for k, get in METRICS.items()}
                 for label, runs in searched.items() if strategy(label) == s] for s in STRATEGIES}
    pairs = [(f"{a} - {b}", means[a], means[b]) for a, b in (("racl", "darts"), ("racl", "random"), ("darts", "random"),
                                                              ("racl-nonone", "darts-nonone"), ("racl-nonone", "random"))
             if means[a] and means[b]]
    if pairs:
        print("\n## Strategies (unit: a search, its cell's mean over training seeds; 95% CI, points)\n")
        diff_table("difference", {k: (lambda m, k=k: m[k]) for k in METRICS}, pairs)
    print("\n## Runs per strategy\n")
    for s in STRATEGIES:
        print(f"- {s}: {len(means[s])} searched cell(s) trained, {len(by_strategy[s])} runs")
    print(f"\n(space: {NB201.description}; rerun: `.venv/bin/python benchmarks/nb201_table.py {root} {protocol}`)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else Path("runs/nb201"), args[1] if len(args) > 1 else "pgd2")
