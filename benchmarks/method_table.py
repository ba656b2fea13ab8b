"""Markdown tables of the method-variant searches (benchmarks/method_variants.py) found under a folder.

    .venv/bin/python benchmarks/method_table.py runs/method/demo [runs/method/cifar ...]

Per run: the constraint's trajectory (g, Pr(L_F <= L_bar), nu, regime per search epoch), the found
cells, parameter-free ops, the bound of the genotype's own network next to the mixture's, the lowest
reachable bound and the reference, per-op constants, the smallest decision margin; then, per variant
with several seeds, how many of the 16 (op, input) choices agree across seeds.
"""
from __future__ import annotations

import json
import sys
from itertools import combinations
from pathlib import Path

from racl.search_space.darts.ops import count_parameter_free as parameter_free
from racl.search_space.genotype import Genotype

SHORT = {"max_pool_3x3": "max", "avg_pool_3x3": "avg", "skip_connect": "skip", "sep_conv_3x3": "sep3",
         "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5"}


def cell(pairs) -> str:
    return " ".join(f"{SHORT[op]}{i}" for op, i in pairs)


def fmt(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def runs(root: Path):
    for run in sorted(root.glob("*/seed*")):
        if (run / "normal.png").exists():
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
            yield run.parent.name, run.name, records, Genotype.load(run / "genotype.json")


def agreement(a: Genotype, b: Genotype) -> int:
    return sum(x == y for x, y in zip(a.normal + a.reduce, b.normal + b.reduce))


def main() -> None:
    for root in map(Path, sys.argv[1:]):
        print(f"\n## {root}\n")
        print("| variant | seed | g / Pr / nu / regime per search epoch | normal cell | reduce cell | "
              "param-free n/r | ln L genotype | ln L mixture | ln L ref | ln L min | min margin | s |")
        print("|" + "---|" * 12)
        found: dict[str, list[Genotype]] = {}
        lam = {}
        for variant, seed, records, g in runs(root):
            search = [r for r in records if r["phase"] == "search"]
            traj = "; ".join(f"{fmt(r.get('constraint_g'))} / {fmt(r.get('prob_within_bound'), 3)} / "
                             f"{fmt(r.get('dual_nu'))} / {r.get('constraint_regime') or '-'}" for r in search)
            last = records[-1]
            print(f"| {variant} | {seed[4:]} | {traj} | {cell(g.normal)} | {cell(g.reduce)} | "
                  f"{parameter_free(g.normal)} / {parameter_free(g.reduce)} | {fmt(last.get('ln_l_genotype'))} | "
                  f"{fmt(last.get('mu_F'))} | {fmt(last.get('ln_l_ref'))} | {fmt(last.get('ln_l_min'))} | "
                  f"{fmt(last.get('decision_margin'))} | {sum(r['seconds'] for r in records):.0f} |")
            found.setdefault(variant, []).append(g)
            lam.setdefault(variant, last.get("ln_lambda_by_op"))
        print("\nmean ln lambda per op (normal cells, end of search):\n")
        for variant, values in lam.items():
            if values:
                print(f"- {variant}: " + ", ".join(f"{SHORT[k]} {v:.2f}" for k, v in values.items()))
        for variant, gs in found.items():
            if len(gs) > 1:
                pairs = [agreement(a, b) for a, b in combinations(gs, 2)]
                print(f"- {variant}: choices agreeing across seed pairs (of 16): {pairs}")


if __name__ == "__main__":
    main()
