"""`racl train --genotype NAME|FILE|resnet18|wrn34_10 --dataset D --out DIR [options]`.

Config precedence: --preset (default: paper = the defaults) < `--config FILE.yaml` < flags < `--set
key=value`. `--resume [DIR]` continues the run in DIR (or --out) with its saved config, model and data;
settings given again must agree (except --epochs: racl.lifecycle's resume rule).
"""
from __future__ import annotations

import argparse

from racl.data import add_data_arguments, data_from_args
from racl.distributed import add_distributed_argument, session
from racl.errors import RaclError
from racl.training import run_inputs, train
from racl.training.config import add_config_arguments, config_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="adversarially train a network (PGD, TRADES, fast FGSM or clean)",
                       description="Adversarial training from scratch; writes best/last checkpoints, "
                                   "metrics.jsonl and config.yaml to --out.")
    p.add_argument("--genotype", metavar="NAME_OR_FILE",
                   help="zoo name or hand-designed network (racl zoo list), or a genotype JSON file")
    add_data_arguments(p, default_dataset="digits")
    p.add_argument("--out", metavar="DIR", help="output directory")
    add_config_arguments(p)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                   help="continue the run in DIR (default: --out) exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files next to metrics.jsonl (pip install 'racl[tensorboard]')")
    add_distributed_argument(p)
    p.add_argument("--sync-bn", action="store_true",
                   help="with torchrun on CUDA: SyncBatchNorm (batch statistics over all processes)")
    p.set_defaults(func=run)


def _out_dir(args: argparse.Namespace) -> str:
    resume_dir = args.resume if isinstance(args.resume, str) else None
    if resume_dir and args.out and resume_dir != args.out:
        raise RaclError(f"--resume {resume_dir} and --out {args.out} name different directories; give one")
    out = resume_dir or args.out
    if not out:
        raise RaclError("racl train needs --out DIR (or --resume DIR)")
    return out


def run(args: argparse.Namespace) -> int:
    out = _out_dir(args)
    if args.resume and args.overwrite:
        raise RaclError("choose either --resume (continue the run) or --overwrite (start again), not both")
    model, data, config = run_inputs(out, model=args.genotype, load_data=lambda: data_from_args(args),
                                     resume=bool(args.resume), config=config_arguments(args))
    with session(args.distributed, args.device) as device:  # torchrun: one process per device
        print(data.describe())
        summary = train(model, data, config, out, resume=bool(args.resume), overwrite=args.overwrite,
                        device=device, sync_bn=args.sync_bn, tensorboard=args.tensorboard, log=print)
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    best, last = summary["best"], summary["last"]
    if best["metrics"] and best["metrics"].get("val_robust_acc") is not None:
        m = best["metrics"]
        print(f"best (epoch {best['epoch']}): val clean {100 * m['val_clean_acc']:.1f}%, "
              f"robust {100 * m['val_robust_acc']:.1f}% -> {best['path']}")
    print(f"last (epoch {summary['epochs']}): {last['path']}")
    print(f"metrics: {summary['metrics_path']}")
