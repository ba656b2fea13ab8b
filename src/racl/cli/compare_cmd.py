"""`racl compare --genotypes A B ... --seeds 0 1 2 --epochs N [train flags] [data flags] --out DIR`.

Every architecture x seed is trained with the same TrainConfig (the budget: the `racl train` flags,
identical for all; only the seed changes) and attacked on the same test images. `--resume --out DIR`
alone continues a killed comparison from its plan.json. See docs/compare.md.
"""
from __future__ import annotations

import argparse

from racl.attacks import parse_attack_list, parse_eps
from racl.cli.options import add_device_argument, add_run_arguments, deprecated, resolve_device
from racl.compare import load_plan, make_plan, parse_arch, run_comparison
from racl.data import add_data_arguments, data_from_args, given_data_flags, load_data_from_spec
from racl.errors import RaclError
from racl.io import read_yaml
from racl.training.config import FLAGS, SCHEMA, add_config_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train and attack several architectures x seeds under one budget",
                       description="Fair comparison: identical code, data, seeds, training budget and attack "
                                   "evaluation for every architecture; writes DIR/results.json, results.md and "
                                   "comparison.png (mean and std over seeds).")
    p.add_argument("--genotypes", nargs="+", metavar="ARCH",
                   help="zoo names, genotype JSON files or search run folders, resnet18, wrn34_10, mobilenet_v2; "
                        "LABEL=ARCH names a row (default label: the name, or the file's folder name)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default: 0 1 2)")
    add_evaluation_arguments(p, "pgd20,autoattack")
    p.add_argument("--weights", choices=("best", "last"), default="best",
                   help="attack each run's best (robust validation accuracy) or last epoch's weights (default: best)")
    p.add_argument("--resnet-width", default="auto", metavar="auto|W",
                   help="resnet18 width: auto = parameter count closest to the mean of the DARTS-space "
                        "networks (default), or a number (64 = standard ResNet-18)")
    add_config_arguments(p, exclude=("seed",))  # the budget: --preset, --config FILE.yaml, train flags, --set
    add_data_arguments(p, default_dataset="digits")
    add_run_arguments(p, "comparison", resume_help="continue the comparison in --out, skipping finished runs "
                                                   "(--resume --out DIR alone reuses its plan.json and data)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files per run")
    add_device_argument(p)
    p.set_defaults(func=run)


def add_evaluation_arguments(p: argparse.ArgumentParser, attacks: str) -> None:
    """The evaluation of every run (compare, ablate): --attacks, --eval-eps, --n-images, --eval-seed.
    `--eval-` marks the settings that `--eps` / `--seeds` of the training budget would otherwise name."""
    e = p.add_argument_group("evaluation (identical for every run)")
    e.add_argument("--attacks", default=attacks, help="comma-separated attack names, as in racl evaluate "
                                                      "(default: %(default)s)")
    e.add_argument("--eval-eps", default=None, help="attack budget, e.g. 8/255 (default: the training --eps)")
    e.add_argument("--n-images", type=int, default=500,
                   help="test images attacked, a fixed seeded subset; 0 = all (default: %(default)s)")
    deprecated(e, "--eval-limit", "--n-images", "n_images", type=int)
    e.add_argument("--eval-seed", type=int, default=0, help="seed of the subset and the attacks (default: 0)")


def budget_config(args: argparse.Namespace):
    """The shared TrainConfig; the epochs must be given (no silent 100-epoch default)."""
    given = (args.epochs is not None or args.preset is not None
             or any(item.partition("=")[0].strip() == "epochs" for item in args.overrides)
             or (args.config is not None and "epochs" in (read_yaml(args.config, "training config") or {})))
    if not given:
        raise RaclError("racl compare needs the budget's --epochs N (and usually --channels C --layers L)")
    return SCHEMA.build(**SCHEMA.arguments(args))


def _width(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit():
        raise RaclError(f"--resnet-width must be auto or a positive integer, got {text!r}")
    return int(text)


def _plan_and_data(args: argparse.Namespace):
    """A new plan from the flags, or with `--resume` and no --genotypes the saved plan and its data."""
    if args.resume and not args.genotypes:
        given = [k for k in (*FLAGS, *given_data_flags(args)) if getattr(args, k, None) is not None]
        if given or args.seeds or args.config or args.overrides or args.preset:
            raise RaclError("with --resume and no --genotypes the saved plan is used; drop "
                            f"--{(given or ['seeds'])[0].replace('_', '-')} or repeat the whole command line")
        plan = load_plan(args.out)
        return plan, load_data_from_spec(plan.data)
    if not args.genotypes:
        raise RaclError("racl compare needs --genotypes (zoo names, genotype files, resnet18)")
    for arch in args.genotypes:  # names, files and the budget are checked before any data loads
        parse_arch(arch)
    attacks, budget = parse_attack_list(args.attacks), budget_config(args)
    eps = parse_eps(args.eval_eps) if args.eval_eps is not None else None
    data = data_from_args(args)
    plan = make_plan(args.genotypes, args.seeds if args.seeds is not None else (0, 1, 2), budget, data,
                     attacks=attacks, eps=eps, eval_limit=args.n_images, eval_seed=args.eval_seed,
                     checkpoint=args.weights, resnet_width=_width(args.resnet_width))
    return plan, data


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    print(f"racl compare on {device}", flush=True)
    plan, data = _plan_and_data(args)
    print(data.describe())
    for arch in plan.archs:
        print(f"  {arch.label}: {arch.params:,} params ({arch.source})")
    print(f"{len(plan.cells())} runs: {len(plan.archs)} architectures x seeds {list(plan.seeds)}, "
          f"{plan.config.epochs} epochs each")
    summary = run_comparison(plan, data, args.out, resume=args.resume, overwrite=args.overwrite,
                             device=device, tensorboard=args.tensorboard, log=print)
    print(f"results: {args.out}/results.md, {args.out}/results.json, {args.out}/comparison.png")
    if summary["failures"]:
        print(f"{len(summary['failures'])} run(s) failed; see results.md", flush=True)
        return 1
    return 0
