"""Figures and the report (issue 24, item 7): nothing hidden or mislabelled, no half-made report folder."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from racl.errors import RaclError
from racl.evaluation.plots import plot_eps_sweep
from racl.report import build
from racl.report import curves

SEARCH_RECORD = {"epoch": 2, "mu_F": 2.0, "sigma_F": 0.1, "ln_lbar": 1.9, "prob_within_bound": 0.0,
                 "dual_nu": 0.5, "constraint_g": 0.3, "train_acc": 0.4, "val_acc": 0.3}


@pytest.fixture()
def kept_figures(monkeypatch):
    """Figures stay open after the plot functions return (plt.close is a no-op), newest last."""
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    yield lambda: plt.figure(plt.get_fignums()[-1])
    plt.close("all")


def test_eps_sweep_legend_covers_no_point(tmp_path, kept_figures):
    sweep = {"eps": [0, 2 / 255, 8 / 255], "eps_text": ["0", "2/255", "8/255"], "clean_accuracy": 0.1,
             "robust_accuracy": {"fgsm": [0.1, 0.05, 0.0], "pgd20": [0.1, 0.02, 0.0]}, "n_images": 100,
             "norms": {"fgsm": "L-inf", "pgd20": "L-inf"}}
    plot_eps_sweep(sweep, tmp_path / "eps_sweep.png")
    fig = kept_figures()
    fig.canvas.draw()
    ax = fig.axes[0]
    legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= box.x1  # beside the axes, so the eps = 0 points (low left) stay visible
    assert "L-inf" in ax.get_xlabel()


def test_one_epoch_search_panels(tmp_path, kept_figures):
    curves.plot_search_curves([SEARCH_RECORD], tmp_path / "s.png", title="search run runs/x")
    fig = kept_figures()
    ax = fig.axes[0]
    lbar = next(line for line in ax.get_lines() if line.get_label().startswith("ln L_bar"))
    assert lbar.get_marker() not in (None, "None", "")  # one point is still drawn
    for a in fig.axes:
        assert a.get_xlim() == (1.5, 2.5)  # whole epochs, not 1.9..2.1


def _eval_run(root: Path) -> Path:
    run = root / "eval"
    run.mkdir()
    (run / "results.json").write_text("{}")
    (run / "results.md").write_text("# Robustness evaluation\n\n| a |\n\n## Checks\n\n- all checks passed\n")
    return run


def test_report_headings_nest_and_titles_name_the_run(tmp_path, monkeypatch):
    titles = []
    monkeypatch.setattr(build, "plot_training_curves", lambda records, path, title: titles.append(title))
    train = tmp_path / "train"
    train.mkdir()
    (train / "last.safetensors").write_bytes(b"")
    (train / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_clean_acc": 0.5, "val_robust_acc": 0.2}) + "\n")
    md = build.build_report([train, _eval_run(tmp_path)], tmp_path / "report").read_text()
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert [h.split()[0] for h in headings] == ["#", "##", "##", "###", "####"], headings
    assert titles == [f"training run {train}"]  # not "training: train"


def test_missing_run_folder_leaves_no_report_folder(tmp_path):
    with pytest.raises(RaclError, match="run folder not found"):
        build.build_report([_eval_run(tmp_path), tmp_path / "nope"], tmp_path / "report")
    assert not (tmp_path / "report").exists()
