"""`racl search --preset P --space darts|nb201 --strategy S --dataset D --out DIR [--benchmark PATH] [...]`.

Config precedence: preset (default `paper` = the defaults) < --config FILE < --space/--strategy/--epochs/
--seed/--batch-size/--lr < --set key=value. `--benchmark PATH` (NAS-Bench-201 only): the found cell's
published robustness from either NB201 robustness data set, printed and written to DIR/benchmark.json. With --resume, the run's own DIR/config.yaml and data are the base
(without --preset/--config; data flags given replace their settings, and a change is refused).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from racl.cli.options import add_device_argument, add_run_arguments, resolve_device
from racl.data import add_data_arguments, data_for
from racl.distributed import add_distributed_argument, session
from racl.search import run_search
from racl.search.config import SCHEMA
from racl.search.outputs import CHECKPOINT, CONFIG, search_folder
from racl.search.summary import end_summary
from racl.state import read_entry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a cell architecture (racl, or a rival search: darts, random, ...)",
                       description="Architecture search on a cell supernet (DARTS or NAS-Bench-201 space); writes "
                                   "DIR/genotype.json, "
                                   "cell pictures, config.yaml, metrics.jsonl and a resumable checkpoint. "
                                   "Every setting: racl config show search.")
    SCHEMA.add_arguments(p, "search (every setting: racl config show search)",
                         "--set constraint.eta=0.8 --set supernet.layers=5")
    p.add_argument("--benchmark", default=None, metavar="PATH",
                   help="NAS-Bench-201 only: a robustness data set (racl nb201 lookup --help) to look the found "
                        "cell up in; its accuracies and ranks go to DIR/benchmark.json")
    add_run_arguments(p, "search run")
    p.add_argument("--no-draw", action="store_true", help="do not write the cell pictures")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files next to metrics.jsonl (pip install 'racl[tensorboard]')")
    add_device_argument(p)
    add_distributed_argument(p)
    add_data_arguments(p, default_dataset="digits")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """The SearchConfig the flags ask for (see the module docstring for the precedence)."""
    saved = Path(args.out) / CONFIG
    resumed = args.resume and args.preset is None and args.config is None and saved.exists()
    return SCHEMA.build(**SCHEMA.arguments(args), base=SCHEMA.load(saved) if resumed else None)


def resolve_data(args: argparse.Namespace):
    """The command's data; with --resume, the data the run recorded (given data flags replace settings)."""
    checkpoint = Path(args.out) / CHECKPOINT
    recorded = read_entry(checkpoint, "data_spec") if args.resume and checkpoint.is_file() else None
    return data_for(args, recorded)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    search_folder(args.out).check(resume=args.resume, overwrite=args.overwrite)
    config = resolve_config(args)
    bench = open_benchmark(args.benchmark, config.space) if args.benchmark else None  # before any work
    print(f"racl search on {device}: {config.strategy} in the {config.space} space, {config.epochs} epochs",
          flush=True)
    data = resolve_data(args)
    with session(args.distributed, device) as device:  # torchrun: one process per device
        print(data.describe())
        result = run_search(config, data, args.out, resume=args.resume, overwrite=args.overwrite, device=device,
                            draw=not args.no_draw, tensorboard=args.tensorboard, log=print)
    print(f"genotype: {result.out_dir / 'genotype.json'}")
    print(result.genotype.to_json())
    print(end_summary(result.metrics, config, result.genotype, data.num_classes, data.channels))
    if bench is not None:
        report_benchmark(bench, result.genotype, Path(args.out))
    return 0


def open_benchmark(path: str, space: str):
    """The NAS-Bench-201 robustness data set at `path`, opened (and checked) before the search runs."""
    from racl.errors import RaclError
    from racl.search_space.nb201.benchmark import open_benchmark as open_nb201

    if space != "nb201":
        raise RaclError(f"--benchmark holds NAS-Bench-201 results; this search is in the {space} space "
                        "(add --space nb201)")
    return open_nb201(path)


def report_benchmark(bench, genotype, out: Path) -> None:
    """Look the found cell up (CIFAR-10), print its accuracies and ranks, write DIR/benchmark.json."""
    from racl.cli.nb201_cmd import metrics_table
    from racl.io import write_json

    record = bench.lookup(genotype, "cifar10")
    print(f"{bench.kind}, cifar10: {record['arch']} (index {record['index']}, evaluated as "
          f"{record['representative']})")
    print(metrics_table(record["metrics"]))
    print(f"wrote {write_json(out / 'benchmark.json', record)}")
