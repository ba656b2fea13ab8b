"""The tables of the claim experiment (benchmarks/claim.sh), in Markdown on stdout.

Reads whatever has finished under ROOT (default runs/claim32): the reference comparison, the
searches, each searched cell's comparison, the strong evaluations (PGD-100, AutoAttack, eps sweep),
the Lipschitz reports and the ablation. Nothing is hard-coded: rerun it as runs finish.

Power: the seed-to-seed standard deviation s of an accuracy, pooled over the architectures with at
least two finished seeds, gives the smallest difference between two architectures' means over n
seeds each that a two-sided two-sample t-test at level 0.05 detects with 80% power:
    MDD = (t_{0.975, 2n-2} + t_{0.80, 2n-2}) * s * sqrt(2 / n).

Usage: .venv/bin/python benchmarks/claim_table.py [ROOT [PROTOCOL]]   (ROOT/search: the searches;
ROOT/PROTOCOL: the comparisons, ablation and evaluations of one training protocol; default runs/claim32 es)
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import torch

from racl.ablate import ablation_markdown, ablation_table, search_row
from racl.checkpoint import load_model_checkpoint
from racl.search_space.darts.ops import count_parameter_free as parameter_free
from racl.search_space import Genotype

# Student t quantiles by degrees of freedom (two-sided 0.05 -> 0.975; power 0.8 -> 0.80)
T975 = {2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 10: 2.228, 12: 2.179, 16: 2.120}
T80 = {2: 1.061, 3: 0.978, 4: 0.941, 5: 0.920, 6: 0.906, 7: 0.896, 8: 0.889, 10: 0.879, 12: 0.873, 16: 0.865}


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def pct(values: list[float], digits: int = 1) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {100 * statistics.stdev(values):.{digits}f}"


def ablation(root: Path, runs_root: Path) -> tuple[dict, list[dict]] | None:
    """The ablation table and its runs (labelled VARIANT-s0): full RACL from the searches/searched stages'
    racl seed 0, the other variants from `racl ablate` (claim.sh runs it without full, so the full cell
    is not trained twice)."""
    done = load(runs_root / "ablation" / "ablation.json")
    full_search = root / "search" / "racl-seed0"
    full_runs = load(runs_root / "compare-searched" / "racl-seed0" / "results.json")
    if not done and not full_runs:
        return None
    variants, searches, runs, failures = [], {}, [], []
    metrics = (done or full_runs)["metrics"]
    if full_runs and (full_search / "genotype.json").is_file():
        variants.append("full")
        searches["full-s0"] = search_row(full_search)
        runs += [{**r, "label": "full-s0"} for r in full_runs["runs"]]
    if done:
        compare = load(runs_root / "ablation" / "train" / "results.json") or {"runs": [], "failures": []}
        kept = set()
        for row in done["rows"]:
            if row["variant"] in variants:  # an older ablation run that still trained full itself
                continue
            variants.append(row["variant"])
            for label in row["cells"]:
                searches[label] = search_row(runs_root / "ablation" / "search" / label)
                kept.add(label)
        runs += [r for r in compare["runs"] if r["label"] in kept]
        failures += compare["failures"]
    return ablation_table(variants, [0], searches, {"runs": runs, "metrics": metrics, "failures": failures}), runs


def diff_ci(a: list[float], b: list[float]) -> str:
    """mean(a) - mean(b) in points with its 95% confidence interval (two-sample t, pooled variance)."""
    d = 100 * (statistics.mean(a) - statistics.mean(b))
    df = len(a) + len(b) - 2
    if len(a) < 2 or len(b) < 2:
        return f"{d:+.1f} (n = {len(a)} vs {len(b)})"
    pooled = ((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b)) / df
    half = T975[max(k for k in T975 if k <= df)] * 100 * math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
    return f"{d:+.1f} [{d - half:+.1f}, {d + half:+.1f}] (n = {len(a)} vs {len(b)})"


def diff_table(first: str, metric: dict, pairs: list[tuple[str, list[dict], list[dict]]]) -> None:
    """One Markdown row per (name, runs a, runs b): mean(a) - mean(b) with its 95% CI for every metric."""
    print(f"| {first} | " + " | ".join(metric) + " |\n|---|" + "---|" * len(metric))
    for name, a, b in pairs:
        print(f"| {name} | " + " | ".join(diff_ci([get(r) for r in a], [get(r) for r in b])
                                          for get in metric.values()) + " |")


def mdd(s: float, n: int) -> float:
    df = 2 * n - 2
    key = max(k for k in T975 if k <= df)
    return (T975[key] + T80[key]) * s * math.sqrt(2 / n)


def mflops(checkpoint: Path) -> float:
    """Forward MFLOPs of one image (convolutions and matrix products; torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, meta = load_model_checkpoint(checkpoint)
    model.eval()
    shape = meta.get("input_shape") or [3, 32, 32]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return counter.get_total_flops() / 1e6


def runs_of(compare: Path) -> list[dict]:
    """Every finished run of a comparison folder, with its strong evaluation and Lipschitz report."""
    out = []
    for result in sorted(compare.glob("runs/*/seed*/result.json")):
        run = json.loads(result.read_text())
        cell = result.parent
        run["strong"] = load(cell / "eval-strong" / "results.json")
        run["lipschitz"] = load(cell / "lipschitz" / "lipschitz.json")
        run["cell"] = cell
        epochs = [json.loads(x).get("seconds") or 0.0 for x in (cell / "train" / "metrics.jsonl").read_text().splitlines()
                  if x.strip()]
        # robust to an epoch stretched by a pause (the quiet-window benchmarks stop the experiment)
        run["train_estimate_s"] = statistics.median(epochs) * len(epochs) if epochs else run["train_seconds"]
        out.append(run)
    return out


def by_label(runs: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["label"], []).append(r)
    return groups


def strong(runs: list[dict], name: str) -> list[float]:
    return [r["strong"]["robust_accuracy"][name] for r in runs if r["strong"]]


def row(label: str, runs: list[dict], flops: dict[str, float]) -> str:
    first = runs[0]
    lip = next((r["lipschitz"] for r in runs if r["lipschitz"]), None)
    lip_text = f"{lip['log_global_bound']:.1f} / {lip['log_local_estimate']:.2f}" if lip else "-"
    n_strong = sum(1 for r in runs if r["strong"])
    return (f"| {label} | {first['params']:,} | {flops.get(label, float('nan')):.1f} | "
            f"{pct([r['clean_accuracy'] for r in runs])} | {pct([r['robust_accuracy']['pgd20'] for r in runs])} | "
            f"{pct([r['robust_accuracy']['cw'] for r in runs])} | {pct([r['worst_case_accuracy'] for r in runs])} | "
            f"{pct(strong(runs, 'pgd100'))} | {pct(strong(runs, 'autoattack'))} ({n_strong}) | "
            f"{statistics.mean(r['train_estimate_s'] for r in runs):.0f} | {len(runs)} | "
            f"{', '.join(str(r.get('best_epoch') or '-') for r in runs)} | {lip_text} |")


HEADER = ("| architecture | params | MFLOPs | clean % | PGD-20 % | CW % | worst % | PGD-100 % * | AutoAttack % * (n) "
          "| train s ** | seeds | kept epoch | ln L global / local |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def short(edges) -> str:
    """sep_conv_3x3 -> sep3, skip_connect -> skip, max_pool_3x3 -> max, ..."""
    names = {"sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
             "max_pool_3x3": "max", "avg_pool_3x3": "avg", "skip_connect": "skip", "none": "none"}
    return ", ".join(names.get(op, op) for op, _ in edges)


def search_seconds(folder: Path) -> float:
    return sum(json.loads(x).get("seconds") or 0 for f in folder.glob("*/metrics.jsonl")
               for x in f.read_text().splitlines() if x.strip())


def strategy_searches(root: Path) -> dict[str, list[Path]]:
    """Finished search folders (genotype.json present) by strategy."""
    out: dict[str, list[Path]] = {}
    for d in sorted((root / "search").glob("*-seed*")):
        if d.is_dir() and (d / "genotype.json").is_file():
            out.setdefault(d.name.split("-seed")[0], []).append(d)
    return out


def search_seconds_of(folder: Path) -> float:
    return sum(json.loads(x).get("seconds") or 0 for x in (folder / "metrics.jsonl").read_text().splitlines()
               if x.strip())


def search_rows(root: Path) -> list[str]:
    lines = ["| search | seconds | normal cell | reduction cell | param-free (normal / reduce) | Pr(L<=Lbar) | nu | "
             "ln L genotype |", "|---|---|---|---|---|---|---|---|"]
    for d in sorted((root / "search").glob("*-seed*")):
        if not d.is_dir() or not (d / "genotype.json").is_file():
            continue
        metrics = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if x.strip()]
        g = Genotype.from_dict(json.loads((d / "genotype.json").read_text()))
        last = metrics[-1]
        pr = last.get("prob_within_bound")
        lines.append(f"| {d.name} ({len(metrics)} ep) | {sum(m.get('seconds') or 0 for m in metrics):.0f} | "
                     f"{short(g.normal)} | {short(g.reduce)} | {parameter_free(g.normal)} / {parameter_free(g.reduce)} | "
                     f"{'-' if pr is None else f'{pr:.3f}'} | {last.get('dual_nu') or 0:.3f} | "
                     f"{last.get('ln_l_genotype', float('nan')):.2f} |")
    return lines


def main(root: Path, protocol: str) -> None:
    runs_root = root / protocol
    reference = runs_of(runs_root / "compare-reference")
    searched = [r for c in sorted((runs_root / "compare-searched").glob("*")) for r in runs_of(c)]
    groups = by_label(reference)
    searched_groups = by_label(searched)
    flops = {}
    for label, runs in {**groups, **searched_groups}.items():
        flops[label] = mflops(runs[0]["cell"] / "train" / Path(runs[0]["checkpoint"]).name)

    overfit = [r for r in reference + searched if r["robust_accuracy"]["pgd20"] < 0.5 * r["clean_accuracy"]]
    if overfit:
        print("## Runs that look catastrophically overfit (PGD-20 below half the clean accuracy)\n")
        for r in overfit:
            print(f"- {r['label']} seed {r['seed']}: clean {100 * r['clean_accuracy']:.1f}%, "
                  f"PGD-20 {100 * r['robust_accuracy']['pgd20']:.1f}%, CW {100 * r['robust_accuracy']['cw']:.1f}%")
        print()
    merged = ablation(root, runs_root)
    ablation_groups = by_label(merged[1]) if merged else {}
    ablation_groups.pop("full-s0", None)  # the racl-seed0 runs, already among the searched cells
    print("## Power of the protocol (seed-to-seed)\n")
    print("Pooled over the reference architectures, and over every trained architecture (reference, searched "
          "cells, ablation cells).\n")
    print("| metric | pooled over | runs | pooled seed std (points) | architectures | MDD, 3 vs 3 seeds (points) |")
    print("|---|---|---|---|---|---|")
    scopes = {"reference": groups, "all trained": {**groups, **searched_groups, **ablation_groups}}
    for name, get in (("clean", lambda r: r["clean_accuracy"]), ("PGD-20", lambda r: r["robust_accuracy"]["pgd20"]),
                      ("CW", lambda r: r["robust_accuracy"]["cw"]),
                      ("AutoAttack (100 images)", lambda r: r["strong"]["robust_accuracy"]["autoattack"]
                       if r.get("strong") else None)):
        for scope, scope_groups in scopes.items():
            for which, keep in (("all", lambda r: True), ("without overfit runs", lambda r: r not in overfit)):
                if which != "all" and not overfit:
                    continue
                variances = []
                for runs in scope_groups.values():
                    vals = [v for v in (get(r) for r in runs if keep(r)) if v is not None]
                    if len(vals) >= 2:
                        variances.append(statistics.variance(vals))
                if variances:
                    sd = math.sqrt(statistics.mean(variances))
                    print(f"| {name} | {scope} | {which} | {100 * sd:.2f} | {len(variances)} | {100 * mdd(sd, 3):.1f} |")
                else:
                    print(f"| {name} | {scope} | {which} | - | 0 | - |")

    if {"WEAK", "DARTS_V2", "RACL"} <= groups.keys():
        print("\n## Control: the skip/pool-only cell against DARTS_V2 and the published RACL cell (PGD-20)\n")
        weak = [r["robust_accuracy"]["pgd20"] for r in groups["WEAK"]]
        for other in ("DARTS_V2", "RACL"):
            vals = [r["robust_accuracy"]["pgd20"] for r in groups[other]]
            d = 100 * (statistics.mean(vals) - statistics.mean(weak))
            print(f"- {other} - WEAK: {d:+.1f} points (n = {len(vals)} vs {len(weak)})")

    print("\n## Comparison (mean ± sample std over training seeds)\n")
    print("\\* PGD-100 and standard AutoAttack on a fixed subset of 100 test images (drawn with seed 0, the same for every run); (n) = training seeds evaluated so far. "
          "\\*\\* median epoch wall time x epochs, one thread, on the shared 2-core machine (indicative).\n")
    print(HEADER)
    for label, runs in groups.items():
        print(row(label, runs, flops))
    for label, runs in searched_groups.items():
        print(row(label, runs, flops))
    by_strategy: dict[str, list[dict]] = {}
    for r in searched:
        by_strategy.setdefault(r["label"].split("-seed")[0], []).append(r)
    if by_strategy:
        print("\n### Searched cells by strategy (all search seeds x training seeds)\n")
        print("| strategy | search seeds | runs | clean % | PGD-20 % | CW % | std of search-seed means (PGD-20) |")
        print("|---|---|---|---|---|---|---|")
        for strategy, runs in sorted(by_strategy.items()):
            means = [statistics.mean(r["robust_accuracy"]["pgd20"] for r in rs) for rs in by_label(runs).values()]
            spread = f"{100 * statistics.stdev(means):.1f}" if len(means) > 1 else "-"
            print(f"| {strategy} | {len(means)} | {len(runs)} | {pct([r['clean_accuracy'] for r in runs])} | "
                  f"{pct([r['robust_accuracy']['pgd20'] for r in runs])} | "
                  f"{pct([r['robust_accuracy']['cw'] for r in runs])} | {spread} |")

    metric = {"PGD-20": lambda r: r["robust_accuracy"]["pgd20"], "CW": lambda r: r["robust_accuracy"]["cw"],
              "clean": lambda r: r["clean_accuracy"]}
    if "DARTS_V2" in groups:
        print("\n## Differences against DARTS_V2 (points, 95% CI over training seeds; pooled-variance t)\n")
        diff_table("architecture", metric, [(label, runs, groups["DARTS_V2"]) for label, runs in
                                            {**groups, **searched_groups}.items() if label != "DARTS_V2"])
    published = [k for k in ("DARTS_V2", "PC_DARTS", "ADVRUSH") if k in groups]
    if "RACL" in groups and published:
        print("\n## The published RACL cell against the other published cells (points, 95% CI over training seeds)\n")
        diff_table("cells", metric, [(f"RACL - {other}", groups["RACL"], groups[other]) for other in published])
    if {"racl", "darts"} <= by_strategy.keys():
        print("\n## racl against the other strategies (points, 95% CI; the unit is the search: each search "
              "seed's mean over its training seeds)\n")
        print("| strategies | " + " | ".join(metric) + " |\n|---|" + "---|" * len(metric))
        seed_means = {k: {name: [statistics.mean(get(r) for r in rs) for rs in by_label(runs).values()]
                          for name, get in metric.items()} for k, runs in by_strategy.items()}
        for other in sorted(k for k in seed_means if k != "racl"):
            print(f"| racl - {other} | " + " | ".join(diff_ci(seed_means["racl"][m], seed_means[other][m])
                                                      for m in metric) + " |")

    sweeps = [(label, r) for label, runs in {**groups, **searched_groups}.items() for r in runs
              if r["seed"] == 0 and r["strong"] and r["strong"].get("eps_sweep")]
    if sweeps:
        eps_text = sweeps[0][1]["strong"]["eps_sweep"]["eps_text"]
        print("\n## Robust accuracy against eps (PGD-20, seed 0, 100 images)\n")
        print("| architecture | " + " | ".join(eps_text) + " |\n|---|" + "---|" * len(eps_text))
        for label, r in sweeps:
            curve = r["strong"]["eps_sweep"]["robust_accuracy"]["pgd20"]
            print(f"| {label} | " + " | ".join(f"{100 * v:.0f}" for v in curve) + " |")

    print("\n## Searches\n")
    print("\n".join(search_rows(root)))
    print("\n### Cost and parameter-free share by strategy (search seeds finished)\n")
    print("| strategy | searches | search minutes (mean, one thread) | parameter-free normal ops (mean of 8) |")
    print("|---|---|---|---|")
    for strategy, folders in strategy_searches(root).items():
        minutes = [search_seconds_of(d) / 60 for d in folders]
        free = [parameter_free(Genotype.from_dict(json.loads((d / "genotype.json").read_text())).normal) for d in folders]
        print(f"| {strategy} | {len(folders)} | {statistics.mean(minutes):.1f} | {statistics.mean(free):.1f} |")

    if merged:
        table, ablation_runs = merged
        print("\n## Ablation (racl ablate at this protocol, search seed 0)\n")
        others = [r["variant"] for r in table["rows"] if r["variant"] != "full"]
        print("full = the racl-seed0 search and its trainings above (the same settings); "
              + (f"{', '.join(others)} from `racl ablate` (ROOT/PROTOCOL/ablation)." if others else
                 "the other variants (point, no_gradnorm) have not run yet (claim.sh stage ablation).") + "\n")
        print(ablation_markdown(table))
        variant_runs = by_label(ablation_runs)
        if "full-s0" in variant_runs and len(variant_runs) > 1:
            print("Differences (points, 95% CI over training seeds; pooled-variance t):\n")
            diff_table("variants", metric, [(f"full - {label.removesuffix('-s0')}", variant_runs["full-s0"], runs)
                                            for label, runs in variant_runs.items() if label != "full-s0"])

    cpu = {"training": sum(r["train_seconds"] for r in reference + searched),
           "evaluation (PGD-20, CW)": sum(r["eval_seconds"] for r in reference + searched),
           "strong evaluation (PGD-100, AutoAttack; the eps sweep not counted)": sum(sum(r["strong"]["seconds"].values()) for r in reference + searched
                                    if r["strong"]),
           "search": search_seconds(root / "search"),
           "ablation searches (point, no_gradnorm)": search_seconds(runs_root / "ablation" / "search"),
           "ablation training + evaluation": sum(r["train_seconds"] + r["eval_seconds"]
                                                 for r in runs_of(runs_root / "ablation" / "train"))}
    print("\n## Wall time of the finished pieces (one thread each)\n")
    for k, v in cpu.items():
        print(f"- {k}: {v / 3600:.2f} h")
    print(f"- total: {sum(cpu.values()) / 3600:.2f} h")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/claim32"), sys.argv[2] if len(sys.argv) > 2 else "es")
