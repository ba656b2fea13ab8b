"""The paper's ablation as one resumable experiment: search variants x search seeds, each found cell
trained and attacked under one budget (racl.compare), one table.

    OUT/search/<variant>-s<seed>/   one `racl search` run folder per variant and search seed
    OUT/train/                      the `racl compare` of every found cell (plan.json, results.*)
    OUT/ablation.json, ablation.md  the table: per variant the cells' parameter-free ops, the bound of
                                    the found genotype's own network, Pr(L_F <= L_bar) and the
                                    constraint's regime at the end of the search, clean and robust
                                    accuracy (mean and std over search seeds x training seeds)

A variant is a list of `--set` overrides applied to the base search config (the racl strategy).
Finished searches and finished training runs are kept: run the same command again to continue.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from racl.compare import make_plan, run_comparison
from racl.compare.table import mean_std
from racl.data import DataSplits
from racl.errors import RaclError
from racl.io import write_json, write_text
from racl.search import run_search
from racl.search.config import SCHEMA, SearchConfig
from racl.search_space.darts.ops import count_parameter_free as parameter_free
from racl.search.outputs import read_metrics
from racl.search_space import Genotype
from racl.training import TrainConfig

VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),                                                   # RACL as configured (the defaults)
    # no confidence learning: point weights
    "point": ("distribution.init_sigma=0.0001", "distribution.learn_sigma=false"),
    "no_gradnorm": ("robust.gamma=0",),                           # no input-gradient-norm term
    "eta0.5": ("constraint.eta=0.5",),
    "eta0.99": ("constraint.eta=0.99",),
    "bn_eval": ("bound.bn=eval",),                                # BN's eval-mode factors in the bound
    "threshold_initial": ("constraint.lbar_mode=initial",),       # threshold fixed once at the start
    "unconstrained": ("constraint.rho=0", "constraint.nu0=0"),    # distributions without the constraint
}
DEFAULT_VARIANTS = ("full", "point", "no_gradnorm", "eta0.5", "eta0.99")


def search_config(base: SearchConfig, variant: str, seed: int) -> SearchConfig:
    if variant not in VARIANTS:
        raise RaclError(f"unknown ablation variant {variant!r}; use any of {', '.join(VARIANTS)}")
    return SCHEMA.override(SCHEMA.set(base, {"strategy": "racl", "seed": seed}), VARIANTS[variant])


def _search_done(run_dir: Path, epochs: int) -> bool:
    return (run_dir / "genotype.json").is_file() and len(read_metrics(run_dir)) >= epochs


def search_row(run_dir: Path) -> dict[str, Any]:
    last = read_metrics(run_dir)[-1]
    genotype = Genotype.load(run_dir / "genotype.json")
    return {"parameter_free_normal": parameter_free(genotype.normal),
            "parameter_free_reduce": parameter_free(genotype.reduce),
            "ln_l_genotype": last.get("ln_l_genotype"), "prob_within_bound": last.get("prob_within_bound"),
            "constraint_regime": last.get("constraint_regime"), "decision_margin": last.get("decision_margin"),
            "search_seconds": sum(r.get("seconds", 0.0) for r in read_metrics(run_dir))}


def run_ablation(base: SearchConfig, budget: TrainConfig, data: DataSplits, out: str | Path, *,
                 variants: Sequence[str] = DEFAULT_VARIANTS, search_seeds: Sequence[int] = (0,),
                 train_seeds: Sequence[int] = (0,), attacks: Sequence[str] = ("pgd20",), eps: float | None = None,
                 eval_limit: int | None = 500, device: str = "cpu",
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Search every variant x seed (skipping finished searches), compare the cells, write the table."""
    say = log or (lambda _m: None)
    out = Path(out)
    if len(set(variants)) != len(variants) or not variants:
        raise RaclError(f"give distinct ablation variants, got {list(variants)}")
    configs = {(v, s): search_config(base, v, s) for v in variants for s in search_seeds}  # checks names
    archs, searches = [], {}
    for (variant, seed), cfg in configs.items():
        label, run_dir = f"{variant}-s{seed}", out / "search" / f"{variant}-s{seed}"
        if not _search_done(run_dir, cfg.epochs):
            say(f"[search {label}] {cfg.epochs} epochs")
            run_search(cfg, data, run_dir, resume=True, device=device,
                       log=lambda m, t=label: say(f"[search {t}] {m}"))
        searches[label] = search_row(run_dir)
        archs.append(f"{label}={run_dir}")
    plan = make_plan(archs, train_seeds, budget, data, attacks=attacks, eps=eps, eval_limit=eval_limit)
    compare = run_comparison(plan, data, out / "train", resume=True, device=device, log=say)
    table = ablation_table(variants, search_seeds, searches, compare)
    write_json(out / "ablation.json", table)
    write_text(out / "ablation.md", ablation_markdown(table))
    return table


def ablation_table(variants: Sequence[str], search_seeds: Sequence[int], searches: dict[str, dict],
                   compare: dict[str, Any]) -> dict[str, Any]:
    """One row per variant: search-side numbers over search seeds, accuracies over all their runs."""
    runs = compare["runs"]
    rows = []
    for variant in variants:
        labels = [f"{variant}-s{s}" for s in search_seeds]
        mine = [r for r in runs if r["label"] in labels]
        row: dict[str, Any] = {"variant": variant, "overrides": list(VARIANTS[variant]), "cells": labels,
                               "runs": len(mine)}
        for key in ("parameter_free_normal", "parameter_free_reduce", "ln_l_genotype", "prob_within_bound",
                    "decision_margin", "search_seconds"):
            row[key] = mean_std([searches[lab][key] for lab in labels if searches[lab][key] is not None])
        row["constraint_regime"] = [searches[lab]["constraint_regime"] for lab in labels]
        row["clean"] = mean_std([r["clean_accuracy"] for r in mine])
        for attack in compare["metrics"]:
            if attack not in ("clean", "worst_case"):
                row[attack] = mean_std([r["robust_accuracy"][attack] for r in mine])
        rows.append(row)
    return {"format": "racl-ablation-v1", "metrics": [m for m in compare["metrics"] if m != "worst_case"],
            "rows": rows, "failures": compare["failures"]}


def _fmt(m: dict, scale: float = 1.0, digits: int = 1) -> str:
    if m["mean"] is None:
        return "-"
    text = f"{scale * m['mean']:.{digits}f}"
    return text + (f" ± {scale * m['std']:.{digits}f}" if m["std"] is not None else "")


def ablation_markdown(table: dict[str, Any]) -> str:
    metrics = table["metrics"]
    head = ["variant", "param-free ops (normal/reduce)", "ln L of the cell", "Pr(L<=Lbar) at end", "regime",
            *[f"{m} %" for m in metrics], "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        cells = [f"{r['variant']} ({', '.join(r['overrides']) or 'defaults'})",
                 f"{_fmt(r['parameter_free_normal'])} / {_fmt(r['parameter_free_reduce'])}",
                 _fmt(r["ln_l_genotype"], digits=2), _fmt(r["prob_within_bound"], digits=3),
                 ", ".join(str(x) for x in r["constraint_regime"]),
                 *[_fmt(r[m], 100.0) for m in metrics], str(r["runs"])]
        lines.append("| " + " | ".join(cells) + " |")
    if table["failures"]:
        lines += ["", f"{len(table['failures'])} training run(s) failed: see train/results.md"]
    return "\n".join(lines) + "\n"
