"""Figures of a run's history: search curves (bound, constraint, accuracies) and training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from racl.io import write_bytes  # noqa: E402


def _series(records: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get(key) is not None:
            xs.append(r["epoch"])
            ys.append(float(r[key]))
    return xs, ys


def _save(fig: Any, path: str | Path, records: Sequence[dict] = ()) -> Path:
    import io

    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in records if r.get("epoch") is not None]
    for ax in fig.axes:  # epochs are whole numbers; half an epoch of margin (a one-epoch run too)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def plot_search_curves(records: Sequence[dict], path: str | Path, title: str = "search") -> Path:
    """2 x 2 panels: ln L_F with its sigma band and ln L_bar; Pr(L_F <= L_bar); dual nu and g; accuracies."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    xs, mu = _series(records, "mu_F")
    _, sigma = _series(records, "sigma_F")
    if mu:
        ax.plot(xs, mu, "o-", label="mu_F (mean of ln L_F)")
        if len(sigma) == len(mu):
            ax.fill_between(xs, [m - s for m, s in zip(mu, sigma)], [m + s for m, s in zip(mu, sigma)],
                            alpha=0.25, label="mu_F +/- sigma_F")
    lx, lbar = _series(records, "ln_lbar")
    if lbar:
        ax.plot(lx, lbar, "k--", marker="_", markersize=12, label="ln L_bar (threshold)")  # one epoch: a dash
    ax.set(xlabel="epoch", ylabel="ln Lipschitz bound", title="Lipschitz bound (log-normal)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    px, p = _series(records, "prob_within_bound")
    ax.plot(px, p, "o-", color="tab:green", label="Pr(L_F <= L_bar)")
    ax.set(xlabel="epoch", ylabel="probability", title="Probability within the bound", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    nx, nu = _series(records, "dual_nu")
    gx, g = _series(records, "constraint_g")
    ax.plot(nx, nu, "o-", color="tab:red", label="dual variable nu")
    ax.plot(gx, g, "s--", color="tab:purple", label="constraint g (<= 0 is met)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="epoch", ylabel="value", title="Augmented Lagrangian")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for key, label in (("train_acc", "train (weight half)"), ("val_acc", "validation")):
        x, y = _series(records, key)
        ax.plot(x, [100 * v for v in y], "o-", label=label)
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Supernet accuracy")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, records)


def plot_training_curves(records: Sequence[dict], path: str | Path, title: str = "training") -> Path:
    """Clean and robust accuracy per epoch (train batches and the fixed validation subset), and the lr."""
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    for key, label, style in (("train_acc", "train clean", "o--"), ("train_adv_acc", "train adversarial", "s--"),
                              ("val_clean_acc", "val clean", "o-"), ("val_robust_acc", "val robust (PGD)", "s-")):
        x, y = _series(records, key)
        if y:
            ax.plot(x, [100 * v for v in y], style, label=label)
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax.legend(fontsize=8)
    x, lr = _series(records, "lr")
    ax_lr.plot(x, lr, "o-", color="tab:grey")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, records)
