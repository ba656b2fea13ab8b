"""Figures of robustness results (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from racl.io import write_bytes


def plot_eps_sweep(sweep: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Robust accuracy (%) vs eps (in /255 units), one line per attack, clean accuracy dashed; the
    legend sits outside the axes so that it covers no point (eps = 0 included)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [e * 255 for e in sweep["eps"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    markers = "osD^vP*X"
    for i, (name, accs) in enumerate(sweep["robust_accuracy"].items()):
        ax.plot(xs, [100 * a for a in accs], marker=markers[i % len(markers)], linewidth=1.8, label=name)
    if sweep.get("clean_accuracy") is not None:
        ax.axhline(100 * sweep["clean_accuracy"], color="grey", linestyle="--", linewidth=1, label="clean")
    norms = sorted(set((sweep.get("norms") or {}).values())) or ["L-inf"]
    ax.set_xlabel(f"perturbation budget eps ({' / '.join(norms)}, pixel scale [0, 1])")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_xticks(xs)
    ax.set_xticklabels(sweep.get("eps_text") or [f"{x:g}" for x in xs], rotation=30)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, borderaxespad=0)
    n = sweep.get("n_images")
    ax.set_title(title or f"Robust accuracy vs eps{f' ({n} images)' if n else ''}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
