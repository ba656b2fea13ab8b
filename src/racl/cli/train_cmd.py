"""`racl train --genotype NAME|FILE|resnet18|wrn34_10 --dataset D --out DIR [options]`.

Config precedence: --preset (default: paper = the defaults) < `--config FILE.yaml` < flags < `--set
key=value`. `--out DIR --resume` continues the run in DIR with its saved config, model and data;
settings and data flags given again must agree (except --epochs: racl.lifecycle's resume rule).
"""
from __future__ import annotations

import argparse

from racl.cli.options import add_device_argument, add_run_arguments, resolve_device
from racl.data import add_data_arguments, data_for
from racl.distributed import add_distributed_argument, session
from racl.models import resolve_model
from racl.training import run_inputs, train
from racl.training.config import SCHEMA, add_config_arguments
from racl.training.modelspec import make_model_spec
from racl.training.summary import start_lines
from racl.training.trainer import run_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="adversarially train a network (PGD, TRADES, fast FGSM or clean)",
                       description="Adversarial training from scratch; writes best/last checkpoints, "
                                   "metrics.jsonl and config.yaml to --out. Every setting: racl config show train.")
    p.add_argument("--genotype", metavar="NAME_OR_FILE",
                   help="zoo name (racl zoo list), genotype JSON file or search run folder, NB201 architecture "
                        "string, or a hand-designed network (resnet18, wrn34_10, mobilenet_v2)")
    add_data_arguments(p, default_dataset="digits")
    add_run_arguments(p, "training run")
    add_config_arguments(p)
    add_device_argument(p)
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files next to metrics.jsonl (pip install 'racl[tensorboard]')")
    add_distributed_argument(p)
    p.add_argument("--sync-bn", action="store_true",
                   help="with torchrun on CUDA: SyncBatchNorm (batch statistics over all processes)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    run_folder(args.out).check(resume=args.resume, overwrite=args.overwrite)
    if args.genotype is not None:
        resolve_model(args.genotype)  # a wrong name or genotype file is an error before any data loads
    print(f"racl train on {device}", flush=True)
    model, data, config = run_inputs(args.out, model=args.genotype, load_data=lambda recorded: data_for(args, recorded),
                                     resume=args.resume, config=SCHEMA.arguments(args))
    with session(args.distributed, device) as device:  # torchrun: one process per device
        for line in start_lines(make_model_spec(model, config, data), config, data):
            print(line)
        summary = train(model, data, config, args.out, resume=args.resume, overwrite=args.overwrite,
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
