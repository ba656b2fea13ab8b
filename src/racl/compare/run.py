"""Running a comparison: every (architecture, seed) cell is `train` then `evaluate_checkpoint`.

    DIR/plan.json                         the plan (architectures, seeds, budget, evaluation, data)
    DIR/runs/<label>/seed<k>/train/       a `racl train` run folder (resumable)
    DIR/runs/<label>/seed<k>/eval/        a `racl evaluate` folder (results.json, results.md)
    DIR/runs/<label>/seed<k>/result.json  the cell's numbers, written last: its presence means done
    DIR/results.json, results.md, comparison.png   the table over seeds (table.py, plot.py)

Resuming (racl.lifecycle's rule: the same plan except `epochs`) skips finished cells, continues an
interrupted training from its last epoch (or a finished one to a new `epochs`), and re-runs an
interrupted evaluation. A cell that fails with a RaclError (e.g. training diverged) is reported
as failed and the others go on.

Several processes may work on one comparison (`racl compare --resume --out DIR` started N times, e.g.
one per core): each cell is claimed (racl.lifecycle.claim) while it runs, a process skips the cells
another live process holds, and the one that finishes last writes the complete table (finished
cells are read back from their result.json).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import racl.training
from racl.compare.plan import Arch, ComparePlan, check_compatible
from racl.compare.table import aggregate, write_outputs
from racl.data import DataSplits
from racl.errors import RaclError
from racl.evaluation import evaluate_checkpoint
from racl.io import read_json, write_json
from racl.lifecycle import RunFolder, check_resumable, claim, jsonable, progress_bar
from racl.training.trainer import run_folder

Log = Callable[[str], None]
PLAN, RESULTS_JSON, RESULTS_MD, FIGURE = "plan.json", "results.json", "results.md", "comparison.png"


def cell_dir(out: str | Path, arch: Arch, seed: int) -> Path:
    return Path(out) / "runs" / arch.label / f"seed{seed}"


def load_plan(out: str | Path) -> ComparePlan:
    path = Path(out) / PLAN
    if not path.is_file():
        raise RaclError(f"nothing to resume in {out} (no {PLAN}); start a comparison without --resume")
    return ComparePlan.from_dict(read_json(path, "comparison plan"))


def comparison_folder(out: str | Path) -> RunFolder:
    """plan.json is the comparison's resumable state; runs/ its own folder (ours: plan.json says so)."""
    return RunFolder(out, "comparison", (PLAN, RESULTS_JSON, RESULTS_MD, FIGURE), folders=("runs",))


def prepare_out_dir(out: Path, plan: ComparePlan, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix comparisons: an existing one needs --resume (compatible plan) or --overwrite."""
    if comparison_folder(out).prepare(resume=resume, overwrite=overwrite):
        check_compatible(load_plan(out), plan)


def _cell_settings(plan: ComparePlan, arch: Arch, seed: int) -> dict:
    """What a cell's numbers depend on; a finished cell is reused only if these match."""
    return {"label": arch.label, "model": arch.model, "model_args": arch.model_args, "seed": seed,
            **plan.shared()}


def _train_seconds(records: list[dict]) -> float:
    """Sum of the epochs' wall times (training + per-epoch validation; resumes add up correctly)."""
    return round(sum(float(r.get("seconds") or 0.0) for r in records), 3)


def _train(plan: ComparePlan, arch: Arch, seed: int, data: DataSplits, path: Path, device: Any,
           tensorboard: bool, log: Log | None) -> dict:
    resume = run_folder(path).state.is_file()
    if resume and log is not None:
        log(f"resuming training in {path}")
    return racl.training.train(arch.train_spec(), data, plan.run_config(seed), path, resume=resume,
                               overwrite=not resume, device=device, log=log, tensorboard=tensorboard)


def run_cell(plan: ComparePlan, arch: Arch, seed: int, data: DataSplits, out: str | Path, *,
             device: Any = "cpu", tensorboard: bool = False, log: Log | None = None) -> dict:
    """Train and evaluate one (architecture, seed); return (and write) its result.json. A finished
    cell is reused; one finished with fewer (or more) `epochs` is continued to the plan's and re-evaluated."""
    base = cell_dir(out, arch, seed)
    settings = _cell_settings(plan, arch, seed)
    done = base / "result.json"
    if done.is_file():
        result = read_json(done, "comparison cell result")
        check_resumable(base, "settings", result.get("settings"), settings, may_change=("budget.epochs",))
        if jsonable(result.get("settings")) == jsonable(settings):
            return result
    summary = _train(plan, arch, seed, data, base / "train", device, tensorboard, log)
    checkpoint = Path(summary[plan.checkpoint]["path"])
    evaluation = evaluate_checkpoint(checkpoint, plan.attacks, plan.eps, base / "eval", n_images=plan.eval_limit,
                                     seed=plan.eval_seed, device=str(device), load=lambda _meta: data,
                                     progress=log, amp=plan.config.optim.amp)
    result = {
        "label": arch.label, "seed": seed, "params": arch.params, "checkpoint": str(checkpoint),
        "epochs": summary["epochs"], "best_epoch": summary["best"]["epoch"],
        "train_seconds": _train_seconds(run_folder(base / "train").read_metrics()),
        "clean_accuracy": evaluation["clean_accuracy"], "robust_accuracy": evaluation["robust_accuracy"],
        "worst_case_accuracy": evaluation["worst_case_accuracy"], "n_images": evaluation["n_images"],
        "eval_seconds": round(sum(evaluation["seconds"].values()), 3), "warnings": evaluation["warnings"],
        "settings": settings,
    }
    write_json(done, result)
    return result


def run_comparison(plan: ComparePlan, data: DataSplits, out: str | Path, *, resume: bool = False,
                   overwrite: bool = False, device: Any = "cpu", tensorboard: bool = False,
                   log: Log | None = None, progress: bool | None = None) -> dict:
    """Run every cell of the plan (skipping finished ones), then write results.json/.md and comparison.png."""
    out, say = Path(out), (log or (lambda _m: None))
    if jsonable(data.spec()) != jsonable(plan.data):
        raise RaclError("the data given differs from the plan's data; load it from the plan's data spec")
    prepare_out_dir(out, plan, resume=resume, overwrite=overwrite)
    write_json(out / PLAN, plan.to_dict())
    cells, results, failures, elsewhere = plan.cells(), [], [], []
    with progress_bar(len(cells), "compare", progress, unit="run") as bar:
        for i, (arch, seed) in enumerate(cells, start=1):
            tag = f"[{i}/{len(cells)} {arch.label} seed {seed}]"
            with claim(cell_dir(out, arch, seed)) as holder:
                if holder is not None:
                    elsewhere.append((arch, seed))
                    say(f"{tag} skipped: process {holder.get('pid')} on {holder.get('host')} is running it")
                else:
                    try:
                        results.append(run_cell(plan, arch, seed, data, out, device=device,
                                                tensorboard=tensorboard, log=lambda m, t=tag: say(f"{t} {m}")))
                        say(f"{tag} {_one_line(results[-1])}")
                    except RaclError as e:
                        failures.append({"label": arch.label, "seed": seed, "error": str(e)})
                        say(f"{tag} FAILED: {e}")
            bar.update(1)
    pending = []
    for arch, seed in elsewhere:  # finished by the other process meanwhile?
        result = _finished(plan, arch, seed, out)
        if result is None:
            pending.append({"label": arch.label, "seed": seed})
        else:
            results.append(result)
    summary = aggregate(plan, results, failures, pending)
    write_outputs(out, summary)
    return summary


def _finished(plan: ComparePlan, arch: Arch, seed: int, out: str | Path) -> dict | None:
    """The cell's result.json when it exists and was made under this plan's settings."""
    done = cell_dir(out, arch, seed) / "result.json"
    if not done.is_file():
        return None
    result = read_json(done, "comparison cell result")
    return result if jsonable(result.get("settings")) == jsonable(_cell_settings(plan, arch, seed)) else None


def _one_line(result: dict) -> str:
    robust = ", ".join(f"{k} {100 * v:.1f}%" for k, v in result["robust_accuracy"].items())
    return (f"clean {100 * result['clean_accuracy']:.1f}%, {robust} ({result['params']:,} params, "
            f"train {result['train_seconds']:.0f} s, eval {result['eval_seconds']:.0f} s)")
