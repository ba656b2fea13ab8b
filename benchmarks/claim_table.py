"""Collect the claim comparison (PGD-20, all seeds) and its AutoAttack evaluations into one table.

Usage: .venv/bin/python benchmarks/claim_table.py [ROOT]   (default runs/claim)
"""
import json
import statistics
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/claim")


def pct(values):
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


print("| architecture | params | clean % | PGD-20 % | AutoAttack % (seeds) | ln L global / local (seed 0) |")
print("|---|---|---|---|---|---|")
for cmp in ("compare-searched", "compare-published"):
    for arch in json.loads((root / cmp / "results.json").read_text())["archs"]:
        label = arch["label"]
        cells = sorted((root / cmp / "runs" / label).glob("seed*"))
        res = [json.loads((c / "result.json").read_text()) for c in cells]
        aa = {}
        for c in cells:
            for name in ("result-autoattack.json", "eval-autoattack/results.json"):
                f = c / name
                if f.is_file():
                    aa[c.name] = json.loads(f.read_text())["robust_accuracy"]["autoattack"]
        lip = root / "lipschitz" / label / "lipschitz.json"
        lip_text = "-"
        if lip.is_file():
            lj = json.loads(lip.read_text())
            lip_text = f"{lj['log_global_bound']:.1f} / {lj['log_local_estimate']:.2f}"
        print(f"| {label} | {res[0]['params']:,} | {pct([r['clean_accuracy'] for r in res])} | "
              f"{pct([r['robust_accuracy']['pgd20'] for r in res])} | {pct(list(aa.values()))} "
              f"({', '.join(k.replace('seed', '') for k in sorted(aa)) or '-'}) | {lip_text} |")
