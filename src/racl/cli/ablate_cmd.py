"""`racl ablate --variants full point no_gradnorm ... --search-seeds 0 1 --seeds 0 --epochs N --out DIR`.

The paper's ablation: every search variant (racl.ablate.VARIANTS, each a list of --set overrides on
the base search config) x search seed is searched, each found cell is trained and attacked under one
budget (the `racl train` flags, as in `racl compare`), and OUT/ablation.md holds the table. Run the
same command again to continue: finished searches and training runs are kept.
"""
from __future__ import annotations

import argparse

from racl.ablate import DEFAULT_VARIANTS, VARIANTS, run_ablation
from racl.attacks import parse_attack_list, parse_eps
from racl.cli.compare_cmd import add_evaluation_arguments, budget_config
from racl.cli.options import add_device_argument, resolve_device
from racl.data import add_data_arguments, data_from_args
from racl.search.config import PRESETS, SCHEMA as SEARCH
from racl.training.config import add_config_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="the paper's ablation: search variants x seeds, each cell trained and attacked",
                       description="Search every variant x search seed with the racl strategy, train and attack "
                                   "each found cell under one budget, and write OUT/ablation.md and .json. "
                                   "Variants: " + "; ".join(f"{k}: {' '.join(v) or 'the defaults'}"
                                                            for k, v in VARIANTS.items()))
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=tuple(VARIANTS), metavar="V",
                   help=f"search variants (default: {' '.join(DEFAULT_VARIANTS)})")
    p.add_argument("--search-preset", choices=tuple(PRESETS), default="quick", help="base search config")
    p.add_argument("--search-config", default=None, metavar="FILE", help="YAML search settings on the preset")
    p.add_argument("--search-epochs", type=int, default=None, help="search epochs (default: the preset's)")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a search setting for every variant, e.g. --search-set constraint.rho=2 "
                        "(section.key or a top-level key; repeatable)")
    p.add_argument("--search-seeds", nargs="+", type=int, default=[0], help="search seeds (default: 0)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds per cell (default: 0)")
    add_evaluation_arguments(p, "pgd20")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="ablation folder (run the same command again to continue: finished work is kept)")
    add_device_argument(p)
    add_config_arguments(p, exclude=("seed",))  # the training budget: --preset, --config, train flags, --set
    add_data_arguments(p, default_dataset="digits")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    print(f"racl ablate on {device}", flush=True)
    epochs = {} if args.search_epochs is None else {"epochs": args.search_epochs}
    base = SEARCH.build(preset=args.search_preset, file=args.search_config, flags=epochs, sets=args.search_set)
    budget = budget_config(args)
    attacks = parse_attack_list(args.attacks)
    data = data_from_args(args)
    print(data.describe())
    table = run_ablation(base, budget, data, args.out, variants=args.variants, search_seeds=args.search_seeds,
                         train_seeds=args.seeds, attacks=attacks,
                         eps=parse_eps(args.eval_eps) if args.eval_eps is not None else None,
                         eval_limit=args.n_images or None, device=device, log=print)
    print(f"table: {args.out}/ablation.md")
    return 1 if table["failures"] else 0
