"""Where the supernet's Lipschitz bound comes from: per-piece log-constants at init vs in a search checkpoint.

Usage: .venv/bin/python benchmarks/bound_breakdown.py RUN_DIR [--iters 50]
Prints, for the freshly initialised supernet (same seed) and for the checkpoint in RUN_DIR, the mean
log-constant of the stem, the preprocessings, each op (normal and reduction cells), the head, the
mean log BN factor (ln of max_c |gamma_c| / sqrt(running_var_c + eps)) of the BNs inside each kind of piece,
and ln L_F at the strategy's point weights (racl: E[w]) -- what grew during weight training.
BN counts with its eval-mode factor here (bound.bn = eval), and BOTH networks get real statistics
first: `--recalibrate` batches of the weight half (default 20) through `racl.search.loop.recalibrate_bn`.
Without that the initial network's running variances are BN's placeholder 1 (and after a short warm-up
they still hold much of it), which once made it look as if training grew the bound from 11.4 to 49.2;
with real statistics the untrained network's bound is already about as large.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from racl.data import load_data_from_spec
from racl.lipschitz.op_constants import bn_scale
from racl.search.config import apply_overrides, config_from_dict
from racl.search.loop import build_run, recalibrate_bn, restore_run
from racl.search.outputs import CHECKPOINT
from racl.search.strategies.base import make_bound
from racl.state import load_state


def summary(run) -> dict[str, float]:
    bound = run.strategy.bound
    bound.refresh(n_iter=ARGS.iters)
    c = bound.constants()
    out = {"stem": c.stem.item(), "pre (mean)": c.pre.mean().item(), "head": c.head.item()}
    prims = run.supernet.cells[0].ops[0].primitives
    for kind, cells in (("normal", [k for k, cl in enumerate(run.supernet.cells) if not cl.reduction]),
                        ("reduce", [k for k, cl in enumerate(run.supernet.cells) if cl.reduction])):
        for o, name in enumerate(prims):
            if name != "none":
                out[f"{kind} {name}"] = c.ops[cells, :, o].mean().item()
    bns = [m for m in run.supernet.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    out["BN ln max scale (mean over BNs)"] = sum(bn_scale(b).max().log().item() for b in bns) / len(bns)
    out["BN ln running_var (mean)"] = torch.cat([b.running_var.log() for b in bns]).mean().item()
    out["ln L_F at the point weights"] = bound.log_bound(run.strategy.eval_weights()).item()
    return out


def main() -> None:
    state = load_state(Path(ARGS.run) / CHECKPOINT)
    config = config_from_dict(state["config"])
    data = load_data_from_spec(state["data_spec"])
    measured = apply_overrides(config, ["bound.bn=eval", f"bound.recalibrate_batches={ARGS.recalibrate}"])
    start = build_run(measured, data, Path(ARGS.run), torch.device("cpu"))
    recalibrate_bn(start)
    init = summary(start)
    run = build_run(config, data, Path(ARGS.run), torch.device("cpu"))
    restore_run(run, state)
    run = _build_like(run, measured)
    recalibrate_bn(run)
    trained = summary(run)
    print(f"{'piece':40s} {'init':>9s} {'epoch ' + str(run.epoch):>9s} {'change':>9s}")
    for key in init:
        a, b = init[key], trained[key]
        print(f"{key:40s} {a:9.3f} {b:9.3f} {b - a if math.isfinite(b - a) else float('nan'):9.3f}")


def _build_like(run, config):
    """The restored run with the measuring config (BN counted) and its bound rebuilt on the same weights."""
    run.config = config
    run.strategy.attach_bound(make_bound(run.supernet, run.strategy.input_shape, config))
    return run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--recalibrate", type=int, default=20, help="weight-half batches for the BN statistics")
    ARGS = parser.parse_args()
    main()
