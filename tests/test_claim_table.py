"""benchmarks/claim_table.py: the statistics of the claim experiment and its ablation merge."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("claim_table", ROOT / "benchmarks" / "claim_table.py")
claim_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(claim_table)

CELL = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["sep_conv_3x3", 1],
                   ["avg_pool_3x3", 0], ["dil_conv_3x3", 1], ["skip_connect", 2], ["sep_conv_5x5", 3]],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
                   ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["avg_pool_3x3", 1]],
        "reduce_concat": [2, 3, 4, 5]}


def test_diff_ci_is_the_pooled_two_sample_t_interval_in_points() -> None:
    # d = 10 points, pooled variance 0.01, half-width t_{0.975,4} * 100 * sqrt(0.01 * 2/3) = 22.67 points
    assert claim_table.diff_ci([0.1, 0.2, 0.3], [0.0, 0.1, 0.2]) == "+10.0 [-12.7, +32.7] (n = 3 vs 3)"
    assert claim_table.diff_ci([0.3], [0.1, 0.2]) == "+15.0 (n = 1 vs 2)"  # no interval from one value


def test_minimum_detectable_difference_uses_both_t_quantiles() -> None:
    # 3 vs 3 seeds (df 4): (2.776 + 0.941) * s * sqrt(2/3); s = 0.36 points gives 1.1 points
    assert claim_table.mdd(0.36, 3) == pytest.approx(3.717 * 0.36 * math.sqrt(2 / 3))
    assert round(claim_table.mdd(0.36, 3), 1) == 1.1
    assert claim_table.mdd(1.0, 5) < claim_table.mdd(1.0, 3)  # more seeds, smaller detectable difference


def _search(folder: Path, prob: float) -> None:
    folder.mkdir(parents=True)
    (folder / "genotype.json").write_text(json.dumps(CELL))
    rec = {"epoch": 4, "seconds": 60.0, "ln_l_genotype": 6.5, "prob_within_bound": prob,
           "constraint_regime": "active", "decision_margin": 0.1}
    (folder / "metrics.jsonl").write_text(json.dumps(rec) + "\n")


def _runs(label: str, pgd: list[float]) -> list[dict]:
    return [{"label": label, "seed": i, "clean_accuracy": 0.4, "robust_accuracy": {"pgd20": p, "cw": p - 0.03}}
            for i, p in enumerate(pgd)]


def _results(path: Path, runs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metrics": ["clean", "pgd20", "cw", "worst_case"], "runs": runs, "failures": []}))


def test_ablation_merges_full_from_the_searched_stage_and_skips_an_older_full_row(tmp_path: Path) -> None:
    root, runs_root = tmp_path, tmp_path / "pgd2"
    _search(root / "search" / "racl-seed0", prob=0.9)
    _results(runs_root / "compare-searched" / "racl-seed0" / "results.json", _runs("racl-seed0", [0.26, 0.27, 0.25]))
    for variant, prob in (("full", 0.5), ("point", 0.7)):
        _search(runs_root / "ablation" / "search" / f"{variant}-s0", prob=prob)
    # an older ablation that trained full itself: its full row and runs must not be counted again
    ablation_json = {"format": "racl-ablation-v1", "metrics": ["clean", "pgd20", "cw"],
                     "rows": [{"variant": "full", "cells": ["full-s0"]}, {"variant": "point", "cells": ["point-s0"]}]}
    (runs_root / "ablation" / "ablation.json").write_text(json.dumps(ablation_json))
    _results(runs_root / "ablation" / "train" / "results.json",
             _runs("full-s0", [0.1, 0.1]) + _runs("point-s0", [0.20, 0.22, 0.24]))
    table, runs = claim_table.ablation(root, runs_root)
    assert sorted({r["label"] for r in runs}) == ["full-s0", "point-s0"] and len(runs) == 6
    rows = {r["variant"]: r for r in table["rows"]}
    assert list(rows) == ["full", "point"]
    assert rows["full"]["runs"] == 3 and rows["full"]["pgd20"]["mean"] == pytest.approx(0.26)
    assert rows["full"]["prob_within_bound"]["mean"] == pytest.approx(0.9)  # the searched stage's search
    assert rows["point"]["runs"] == 3 and rows["point"]["pgd20"]["mean"] == pytest.approx(0.22)
    assert rows["point"]["parameter_free_normal"]["mean"] == 4  # skip, max, avg, skip in CELL's normal cell


def test_ablation_is_absent_until_something_has_run(tmp_path: Path) -> None:
    assert claim_table.ablation(tmp_path, tmp_path / "pgd2") is None
