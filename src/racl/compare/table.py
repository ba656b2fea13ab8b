"""The comparison table: mean and standard deviation over seeds of every architecture's numbers.

Accuracies are fractions in results.json and percentages in results.md. `std` is the sample standard
deviation (n - 1 in the denominator) over the seeds that finished; it is null for a single seed.
Every per-run value is kept next to its mean, so the table can be recomputed from results.json.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from racl.compare.plan import ComparePlan
from racl.compare.plot import plot_comparison
from racl.io import write_json, write_text


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """{"mean", "std" (sample; None below 2 values), "n", "values"}; mean None when there are none."""
    vals = [float(v) for v in values]
    n = len(vals)
    mean = sum(vals) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n >= 2 else None
    return {"mean": mean, "std": std, "n": n, "values": vals}


def metric_names(plan: ComparePlan) -> list[str]:
    """Accuracy columns: clean, each attack, and the per-image worst case when there are several attacks."""
    return ["clean", *plan.attacks] + (["worst_case"] if len(plan.attacks) > 1 else [])


def _values(runs: list[dict], name: str) -> list[float]:
    if name == "clean":
        return [r["clean_accuracy"] for r in runs]
    if name == "worst_case":
        return [r["worst_case_accuracy"] for r in runs]
    return [r["robust_accuracy"][name] for r in runs]


def _row(plan: ComparePlan, arch: Any, results: list[dict], failures: list[dict]) -> dict[str, Any]:
    runs = sorted((r for r in results if r["label"] == arch.label), key=lambda r: r["seed"])
    metrics = {name: mean_std(_values(runs, name)) for name in metric_names(plan)}
    for key in ("params", "train_seconds", "eval_seconds"):
        metrics[key] = mean_std([r[key] for r in runs])
    warnings = sorted({w for r in runs for w in r.get("warnings", [])})
    return {"label": arch.label, "source": arch.source, "model_args": arch.model_args, "params": arch.params,
            "seeds_done": [r["seed"] for r in runs],
            "seeds_failed": [f["seed"] for f in failures if f["label"] == arch.label],
            "metrics": metrics, "warnings": warnings}


def aggregate(plan: ComparePlan, results: list[dict], failures: list[dict],
              pending: Sequence[dict] = ()) -> dict[str, Any]:
    """The whole comparison: plan, one row per architecture (plan order), every run and every failure;
    `pending`: runs another process was still running when this table was written."""
    return {"format": "racl-compare-results-v1", "plan": plan.to_dict(), "metrics": metric_names(plan),
            "archs": [_row(plan, a, results, failures) for a in plan.archs],
            "runs": sorted(results, key=lambda r: (r["label"], r["seed"])), "failures": failures,
            "pending": list(pending)}


def _pct(m: dict) -> str:
    if m["mean"] is None:
        return "-"
    return f"{100 * m['mean']:.2f}" + ("" if m["std"] is None else f" ± {100 * m['std']:.2f}")


def _num(m: dict, fmt: str) -> str:
    if m["mean"] is None:
        return "-"
    return format(m["mean"], fmt) + ("" if not m["std"] else f" ± {format(m['std'], fmt)}")


def _or_default(value: Any) -> Any:
    return "the space's default" if value is None else value


def _budget_lines(plan: dict) -> list[str]:
    b = plan["budget"]
    steps = f"{b['attack.steps']} steps, " if b["objective.adv"] in ("pgd", "trades") else ""
    lines = [f"- budget (identical for every run): {b['epochs']} epoch(s), adv {b['objective.adv']} ({steps}eps "
             f"{255 * b['attack.eps']:.3g}/255, step {255 * b['attack.alpha']:.3g}/255), batch {b['batch_size']}, "
             f"lr {b['optim.lr']} {b['optim.schedule']}, weight decay {b['optim.weight_decay']}, "
             f"augment {b['augmentation.augment']}, drop-path {_or_default(b['network.drop_path'])}; cell networks: "
             f"C = {_or_default(b['network.channels'])}, {_or_default(b['network.layers'])} cells, "
             f"auxiliary {b['network.auxiliary']}"]
    width = plan.get("resnet_width")
    if width:
        target = f", target {width['target_params']:,} params = mean of the DARTS-space networks" \
            if width.get("target_params") else ""
        lines.append(f"- resnet18 width {width['width']} ({width['mode']}{target})")
    return lines


def results_markdown(summary: dict[str, Any]) -> str:
    """results.md: settings, the mean ± std table, failures and evaluation warnings."""
    plan, names = summary["plan"], summary["metrics"]
    data = plan["data"]
    limit = plan["eval_limit"] or "all"
    sizes = data.get("sizes", {})
    lines = ["# Architecture comparison", "",
             f"- data: {data.get('name', '-')}, train {sizes.get('train', '-')} / val {sizes.get('val', '-')} / "
             f"test {sizes.get('test', '-')} images (data seed {data.get('seed', '-')})",
             *_budget_lines(plan),
             f"- evaluation: {plan['checkpoint']} checkpoint, eps {255 * plan['eps']:.3g}/255 (L-inf), {limit} test "
             f"images drawn with seed {plan['eval_seed']} (the same images for every run)",
             f"- seeds: {', '.join(map(str, plan['seeds']))}; entries are mean ± sample std over the seeds that "
             "finished (n); train s = summed epoch wall time incl. per-epoch validation", ""]
    header = ["architecture", "params", *[f"{n.replace('_', ' ')} %" for n in names], "train s", "n"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in summary["archs"]:
        m = row["metrics"]
        cells = [row["label"], f"{row['params']:,}", *[_pct(m[n]) for n in names], _num(m["train_seconds"], ".0f"),
                 str(m["clean"]["n"]) + (f" ({len(row['seeds_failed'])} failed)" if row["seeds_failed"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _problems(summary)
    return "\n".join(lines) + "\n"


def _problems(summary: dict[str, Any]) -> list[str]:
    lines = []
    if summary.get("pending"):
        lines += ["", "## Runs in progress in another process (not in the table yet)", ""]
        lines += [f"- {p['label']} seed {p['seed']}" for p in summary["pending"]]
    if summary["failures"]:
        lines += ["", "## Failed runs", ""] + [f"- {f['label']} seed {f['seed']}: {f['error']}"
                                               for f in summary["failures"]]
    warned = [r for r in summary["archs"] if r["warnings"]]
    if warned:
        lines += ["", "## Evaluation warnings (racl evaluate's honesty checks)", ""]
        lines += [f"- {r['label']}: {w}" for r in warned for w in r["warnings"]]
    return lines


def write_outputs(out: str | Path, summary: dict[str, Any]) -> None:
    """results.json, results.md and comparison.png in `out`."""
    out = Path(out)
    write_json(out / "results.json", summary)
    write_text(out / "results.md", results_markdown(summary))
    plot_comparison(summary, out / "comparison.png")
