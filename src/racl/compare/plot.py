"""comparison.png: grouped bars of clean and robust accuracy per architecture, error bars = std over seeds."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from racl.io import write_bytes

_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n / 1e3:.1f}k"


def _bars(ax: Any, summary: dict[str, Any]) -> None:
    rows, names = summary["archs"], summary["metrics"]
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(rows))]
        means = [100 * (r["metrics"][name]["mean"] or 0.0) for r in rows]
        errs = [100 * (r["metrics"][name]["std"] or 0.0) for r in rows]
        ax.bar(xs, means, width * 0.95, yerr=errs, capsize=3, label=name.replace("_", " "),
               color=_COLOURS[j % len(_COLOURS)], error_kw={"linewidth": 1})
        for x, m, e, r in zip(xs, means, errs, rows):
            if r["metrics"][name]["mean"] is not None and len(rows) * len(names) <= 24:
                ax.text(x, m + e + 1, f"{m:.0f}", ha="center", va="bottom", fontsize=7)


def plot_comparison(summary: dict[str, Any], path: str | Path) -> Path:
    """Bars per architecture (clean, each attack, worst case), mean over seeds with ± std whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, plan = summary["archs"], summary["plan"]
    fig, ax = plt.subplots(figsize=(max(6.4, 1.0 + 1.3 * len(rows)), 4.8), dpi=120)
    _bars(ax, summary)
    labels = [f"{r['label']}\n{_params(r['params'])} params\nn = {r['metrics']['clean']['n']}" for r in rows]
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=8, rotation=0 if len(rows) <= 8 else 30)
    ax.set_ylabel("accuracy on the test subset (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(summary["metrics"]), loc="upper right", bbox_to_anchor=(1, 1.0))
    limit = plan["eval_limit"] or "all"
    ax.set_title(f"eps {255 * plan['eps']:.3g}/255, {limit} test images, {plan['budget']['epochs']} epoch(s); "
                 f"mean ± std over seeds {', '.join(map(str, plan['seeds']))}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
