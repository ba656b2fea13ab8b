"""`racl search --preset P --strategy racl|darts|random --dataset D --out DIR [...]`.

Config precedence: preset (default `paper` = the defaults) < --config FILE < --strategy/--epochs/--seed
< --set key=value. With --resume and no --preset/--config, the run's own DIR/config.yaml is the base.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from racl.data import add_data_arguments, data_from_args
from racl.distributed import add_distributed_argument, session
from racl.search import run_search
from racl.search.config import PRESETS, STRATEGIES, apply_overrides, get_preset, load_search_config, override_top
from racl.search.outputs import CONFIG


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a cell architecture (racl, darts or random search)",
                       description="Architecture search on a DARTS supernet; writes DIR/genotype.json, "
                                   "cell pictures, config.yaml, metrics.jsonl and a resumable checkpoint.")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="starting config: tiny (tests), quick (CPU minutes), paper (default)")
    p.add_argument("--strategy", choices=STRATEGIES, default=None, help="search strategy (default: racl)")
    p.add_argument("--config", default=None, help="YAML file of search settings (see DIR/config.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="search epochs")
    p.add_argument("--seed", type=int, default=None, help="seed of everything random in the search")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set eta=0.8 --set optim.w_lr=0.05 (repeatable)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    p.add_argument("--no-draw", action="store_true", help="do not write the cell pictures")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files next to metrics.jsonl (pip install 'racl[tensorboard]')")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    add_distributed_argument(p)
    add_data_arguments(p, default_dataset="digits")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """The SearchConfig the flags ask for (see the module docstring for the precedence)."""
    saved = Path(args.out) / CONFIG
    if args.resume and args.preset is None and args.config is None and saved.exists():
        config = load_search_config(saved)
    else:
        config = get_preset(args.preset or "paper")
    if args.config is not None:
        config = load_search_config(args.config, config)
    config = override_top(config, strategy=args.strategy, epochs=args.epochs, seed=args.seed)
    return apply_overrides(config, args.overrides)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    data = data_from_args(args)
    with session(args.distributed, args.device) as device:  # torchrun: one process per device
        print(f"racl search: {config.strategy}, {config.epochs} epochs, {data.describe()}")
        result = run_search(config, data, args.out, resume=args.resume, overwrite=args.overwrite, device=device,
                            draw=not args.no_draw, tensorboard=args.tensorboard, log=print)
    print(f"genotype: {result.out_dir / 'genotype.json'}")
    print(result.genotype.to_json())
    return 0
