"""The input-gradient-norm term on the whole batch (the paper's) vs on a subset (robust.gradnorm_subset).

    .venv/bin/python benchmarks/gradnorm_variants.py [--subset 0.25] [--epochs 4] [--batch 32] [--out DIR]

Correctness figures, not timings (the op counts are in benchmarks/gradnorm_cost.py; timings come
from `racl bench search --gradnorm-subset F` on a quiet machine):
1. penalty gradients: on the same batch, the cosine between the supernet-weight gradient of the
   term computed on the whole batch and on the subset; for scale, the cosine between the whole-batch
   gradients of two different batches (the mini-batch noise the search lives with anyway), and the
   ratio of the norms. At the initial supernet and after the full-term search's weights.
2. a short search with each (same seed, data and config; the tiny preset's supernet on synthetic
   16x16 images): per epoch the mean gradient norm, the constraint g, Pr(L_F <= L_bar), and the found
   cells (how many of the kept (input, op) pairs agree).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from racl.data import load_data
from racl.search import config_from_dict, run_search
from racl.search import outputs
from racl.state import load_state
from racl.search.weight_step import weight_loss
from racl.search_space.base import map_weights
from racl.search_space.darts.supernet import Supernet
from racl.distributions import ArchDistribution


def _penalty_grad(net, weights, x, y, subset: float) -> torch.Tensor:
    _, _, _, norm = weight_loss(net, weights, x, y, 1.0, subset)
    grads = torch.autograd.grad(norm, [p for p in net.parameters()], allow_unused=True)
    return torch.cat([g.flatten() for g in grads if g is not None])


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def penalty_gradients(net, batches, subset: float, seed: int = 0) -> dict:
    """Mean (min) cosines over the batches; see the module docstring."""
    weights = map_weights(torch.Tensor.detach,
                          ArchDistribution(net.topology, normalize=True).sample(torch.Generator().manual_seed(seed)))
    full = [_penalty_grad(net, weights, x, y, 1.0) for x, y in batches]
    part = [_penalty_grad(net, weights, x, y, subset) for x, y in batches]
    same = [_cos(f, p) for f, p in zip(full, part)]
    other = [_cos(full[i], full[i + 1]) for i in range(len(full) - 1)]
    return {"cos_subset_vs_full_same_batch": statistics.mean(same), "min": min(same),
            "cos_full_vs_full_other_batch": statistics.mean(other),
            "norm_ratio_subset_over_full": statistics.mean(float(p.norm() / f.norm()) for f, p in zip(full, part))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--subset", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--images", type=int, default=640, help="synthetic images (train split ~80%%)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where the two searches go (default: a temporary folder)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    data = load_data("synthetic", image_size=16, limit=args.images, seed=args.seed)
    base = {"epochs": args.epochs, "warmup_epochs": 1, "batch_size": args.batch, "augment": False,
            "eval_images": 64, "seed": args.seed, "supernet": {"channels": 4, "layers": 3},
            "bound": {"mc_samples": 16, "lipschitz_refresh_every": 2, "measure_power_iters": 2},
            "optim": {"arch_lr": 0.01}}
    x_all, y_all = data.train.images[: 4 * args.batch].float() / 255, data.train.labels[: 4 * args.batch]
    batches = [(x_all[i: i + args.batch], y_all[i: i + args.batch]) for i in range(0, len(x_all), args.batch)]
    torch.manual_seed(args.seed)
    net = Supernet(num_classes=data.num_classes, channels=4, layers=3)
    print(f"penalty gradients, initial supernet, subset {args.subset}: {penalty_gradients(net, batches, args.subset)}")

    out = Path(args.out or tempfile.mkdtemp(prefix="gradnorm_variants_"))
    results = {}
    for subset in (1.0, args.subset):
        cfg = config_from_dict({**base, "robust": {"gradnorm_subset": subset}})
        results[subset] = run_search(cfg, data, out / f"subset{subset}", overwrite=True, draw=False)
        for m in results[subset].metrics:
            print(f"subset {subset} epoch {m['epoch']} {m['phase']}: grad_norm {m['grad_norm']:.4f} "
                  f"constraint_g {_fmt(m.get('constraint_g'))} prob_within_bound {_fmt(m.get('prob_within_bound'))} "
                  f"val_acc {_fmt(m.get('val_acc'))}")
        print(f"subset {subset} genotype: {results[subset].genotype}")
    agree = _agreement(results[1.0].genotype, results[args.subset].genotype)
    print(f"found cells: {agree[0]} of {agree[1]} kept (node, input, op) choices agree")
    state = load_state(out / "subset1.0" / outputs.CHECKPOINT)["strategy"]
    net.load_state_dict({k.removeprefix("supernet."): v for k, v in state.items() if k.startswith("supernet.")})
    print(f"penalty gradients, supernet after the full-term search: {penalty_gradients(net, batches, args.subset)}")


def _fmt(v) -> str:
    return "null" if v is None else f"{v:.4f}"


def _agreement(a, b) -> tuple[int, int]:
    """Kept (cell type, node, op, input) choices in both genotypes, of all kept in the first (a genotype
    lists its edges node by node, two per node)."""
    def choices(g):
        return {(t, i // 2, *c) for t in ("normal", "reduce") for i, c in enumerate(getattr(g, t))}
    ca, cb = choices(a), choices(b)
    return len(ca & cb), len(ca)


if __name__ == "__main__":
    main()
