"""`racl ablate --variants full point no_gradnorm ... --search-seeds 0 1 --seeds 0 --epochs N --out DIR`.

The paper's ablation: every search variant (racl.ablate.VARIANTS, each a list of --set overrides on
the base search config) x search seed is searched, each found cell is trained and attacked under one
budget (the `racl train` flags, as in `racl compare`), and OUT/ablation.md holds the table. Run the
same command again to continue: finished searches and training runs are kept.
"""
from __future__ import annotations

import argparse

from racl.ablate import DEFAULT_VARIANTS, VARIANTS, run_ablation
from racl.attacks import parse_eps
from racl.cli.compare_cmd import budget_config
from racl.data import add_data_arguments, data_from_args
from racl.search.config import PRESETS, apply_overrides, get_preset, load_search_config, override_top
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
    p.add_argument("--search-epochs", type=int, default=None, help="search epochs")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a search setting for every variant (repeatable)")
    p.add_argument("--search-seeds", nargs="+", type=int, default=[0], help="search seeds (default: 0)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds per cell (default: 0)")
    p.add_argument("--attacks", default="pgd20", help="comma-separated (default: %(default)s)")
    p.add_argument("--eval-eps", default=None, help="attack budget (default: the training --eps)")
    p.add_argument("--eval-limit", type=int, default=500, help="test images attacked; 0 = all (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="ablation folder")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_config_arguments(p)  # the training budget: --preset, --config, the racl train flags, --set
    add_data_arguments(p, default_dataset="digits")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    base = get_preset(args.search_preset)
    if args.search_config is not None:
        base = load_search_config(args.search_config, base)
    base = apply_overrides(override_top(base, epochs=args.search_epochs), args.search_set)
    args.resume = False  # the budget helper's --resume check does not apply: ablate always continues
    budget = budget_config(args)
    data = data_from_args(args)
    print(data.describe())
    table = run_ablation(base, budget, data, args.out, variants=args.variants, search_seeds=args.search_seeds,
                         train_seeds=args.seeds, attacks=args.attacks.split(","),
                         eps=parse_eps(args.eval_eps) if args.eval_eps is not None else None,
                         eval_limit=args.eval_limit or None, device=args.device, log=print)
    print(f"table: {args.out}/ablation.md")
    return 1 if table["failures"] else 0
