"""`racl report RUN_DIR...`: one self-contained markdown file (with PNG figures beside it).

Each run folder is recognised by what it holds: a search (genotype.json + metrics.jsonl with the bound),
a training run (last.safetensors / metrics.jsonl with val_robust_acc), an evaluation (results.json).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

from racl.errors import RaclError
from racl.io import make_dir, write_text
from racl.report.curves import plot_search_curves, plot_training_curves


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise RaclError(f"{path} is not valid JSON lines: {e}") from e


def kind_of(run: Path) -> str:
    if (run / "results.json").is_file():
        return "evaluation"
    if (run / "last.safetensors").is_file() or (run / "state.safetensors").is_file():
        return "training"
    if (run / "genotype.json").is_file():
        return "search"
    raise RaclError(f"{run} holds no racl run (no genotype.json, last.safetensors or results.json)")


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.2f}"


def _search_section(run: Path, out: Path, tag: str) -> list[str]:
    records = _records(run)
    lines = [f"## Search: `{run}`", ""]
    for cell in ("normal", "reduction"):
        png = run / f"{cell}.png"
        if png.is_file():
            shutil.copyfile(png, out / f"{tag}_{cell}.png")
            lines += [f"![{cell} cell]({tag}_{cell}.png)", ""]
    if records:
        plot_search_curves(records, out / f"{tag}_search.png", title=f"search run {run}")
        lines += [f"![search curves]({tag}_search.png)", ""]
        last = records[-1]
        lines += ["| epoch | train acc | val acc | mu_F | sigma_F | Pr(L_F <= L_bar) | g | nu |",
                  "|---|---|---|---|---|---|---|---|",
                  "| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                      last.get("epoch"), _pct(last.get("train_acc")), _pct(last.get("val_acc")),
                      *(_num(last.get(k)) for k in ("mu_F", "sigma_F", "prob_within_bound",
                                                   "constraint_g", "dual_nu"))), ""]
    genotype = json.loads((run / "genotype.json").read_text(encoding="utf-8"))
    lines += ["Genotype:", "", "```json", json.dumps(genotype), "```", ""]
    return lines


def _num(x: Any) -> str:
    return "-" if x is None else f"{float(x):.4g}"


def _training_section(run: Path, out: Path, tag: str) -> list[str]:
    records = _records(run)
    lines = [f"## Training: `{run}`", ""]
    if records:
        plot_training_curves(records, out / f"{tag}_training.png", title=f"training run {run}")
        lines += [f"![training curves]({tag}_training.png)", ""]
        best = max(records, key=lambda r: r.get("val_robust_acc") or -1)
        lines += ["| checkpoint | epoch | val clean | val robust |", "|---|---|---|---|",
                  f"| best | {best['epoch']} | {_pct(best.get('val_clean_acc'))} | {_pct(best.get('val_robust_acc'))} |",
                  f"| last | {records[-1]['epoch']} | {_pct(records[-1].get('val_clean_acc'))} | "
                  f"{_pct(records[-1].get('val_robust_acc'))} |", ""]
    return lines


def _evaluation_section(run: Path, out: Path, tag: str) -> list[str]:
    lines = [f"## Evaluation: `{run}`", ""]
    md = run / "results.md"
    if md.is_file():  # its headings one level below this section's (# -> ###, ## -> ####)
        text = md.read_text(encoding="utf-8").strip()
        lines += [re.sub(r"^(#+) ", lambda m: "##" + m.group(1) + " ", text, flags=re.M), ""]
    if (run / "eps_sweep.png").is_file():
        shutil.copyfile(run / "eps_sweep.png", out / f"{tag}_eps_sweep.png")
        lines += [f"![robust accuracy against eps]({tag}_eps_sweep.png)", ""]
    return lines


SECTIONS = {"search": _search_section, "training": _training_section, "evaluation": _evaluation_section}


def build_report(runs: Sequence[str | Path], out_dir: str | Path, title: str = "racl report") -> Path:
    """Write OUT/report.md and its figures for the given run folders; returns the markdown path."""
    out = Path(out_dir)
    kinds = []
    for run in (Path(r) for r in runs):  # every folder is checked before anything is written
        if not run.is_dir():
            raise RaclError(f"run folder not found: {run}; pass search, training or evaluation run folders")
        kinds.append((run, kind_of(run)))
    make_dir(out)
    lines = [f"# {title}", ""]
    for i, (run, kind) in enumerate(kinds):
        lines += SECTIONS[kind](run, out, f"{i}_{kind}")
    return write_text(out / "report.md", "\n".join(lines) + "\n")
