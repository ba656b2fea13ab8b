"""`racl bench supernet|attack|train|search [--json]`: fast vs reference (racl vs torchattacks; the racl
search step vs the first-order darts one), side by side."""
from __future__ import annotations

import argparse
import json

from racl.bench import run
from racl.cli.options import add_device_argument, deprecated, resolve_device
from racl.errors import RaclError
from racl.search.registry import REGISTRY


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="performance benchmarks (run on a quiet machine)")
    p.add_argument("what", choices=("supernet", "attack", "train", "search"),
                   help="what to time (search: one search step of racl (or --strategies) at its defaults vs one "
                        "first-order darts step)")
    p.add_argument("--json", action="store_true", help="print the full JSON result")
    add_device_argument(p)
    p.add_argument("--batch-size", type=int, default=32, help="images per timed call (default 32)")
    deprecated(p, "--batch", "--batch-size", "batch_size", type=int)
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions per process")
    p.add_argument("--rounds", type=int, default=2, help="alternating processes per variant")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="force channels-last (or, with --no-channels-last, NCHW) weights and activations on "
                        "both sides (default: the fast path is channels-last, the reference NCHW)")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the network on both sides (backend default: inductor)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls per process (default 1; 3 with --compile)")
    p.add_argument("--attack", choices=("pgd20", "apgd-ce"), default="pgd20",
                   help="attack: the attack timed against torchattacks (default pgd20)")
    p.add_argument("--attack-mode", choices=("eval", "train"), default=None,
                   help="train: BN mode of the 7 attack passes (default: the trainer's, eval)")
    p.add_argument("--size", choices=("default", "quick", "both", "tiny"), default=None,
                   help="supernet size: supernet default both, search default default; tiny (3 cells, C = 8): "
                        "plumbing checks only")
    p.add_argument("--gradnorm-subset", type=float, default=None, metavar="F",
                   help="search: racl's robust.gradnorm_subset (the input-gradient norm on this fraction of "
                        "the batch; default 1, the paper's term)")
    p.add_argument("--strategies", default="racl", metavar="LIST",
                   help="search: comma-separated strategies timed against darts (default racl; e.g. "
                        "racl,pcdarts,advrush,gdas)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.rounds < 1 or (args.repeats is not None and args.repeats < 1):
        raise RaclError("--batch-size, --rounds and --repeats must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        raise RaclError("--warmup must be >= 0")
    if args.size is not None and args.what not in ("supernet", "search"):
        raise RaclError(f"--size applies to bench supernet and bench search, not bench {args.what}")
    if args.size == "both" and args.what == "search":
        raise RaclError("bench search times one size: --size default, quick or tiny")
    if args.gradnorm_subset is not None and (args.what != "search" or not 0 < args.gradnorm_subset <= 1):
        raise RaclError("--gradnorm-subset applies to bench search and must be in (0, 1]")
    strategies = tuple(n.strip() for n in args.strategies.split(",") if n.strip())
    if args.what != "search" and args.strategies != "racl":
        raise RaclError(f"--strategies applies to bench search, not bench {args.what}")
    unknown = [n for n in strategies if n not in REGISTRY]
    if unknown or not strategies:
        raise RaclError(f"--strategies: unknown strategy {', '.join(unknown) or '(none given)'} "
                        f"(known: {', '.join(REGISTRY)})")
    device = resolve_device(args.device)
    kw = {"device": device, "rounds": args.rounds, "batch": args.batch_size, "bf16": args.bf16,
          "channels_last": args.channels_last, "compile": args.compile or False, "warmup": args.warmup}
    if args.repeats:
        kw["repeats"] = args.repeats
    if args.what == "supernet":
        sizes = ("default", "quick") if args.size in (None, "both") else (args.size,)
        result = run.bench_supernet(sizes=sizes, **kw)
    elif args.what == "search":
        result = run.bench_search(size=args.size or "default", gradnorm_subset=args.gradnorm_subset or 1.0,
                                  strategies=strategies, **kw)
    elif args.what == "attack":
        result = run.bench_attack(attack=args.attack, **kw)
    else:
        result = run.bench_train(attack_mode=args.attack_mode, **kw)
    print(json.dumps(result, indent=2) if args.json else _line(result))
    return 0


def _line(r: dict) -> str:
    if r["benchmark"] == "search":
        steps = r["steps"]
        runs = "\n".join(f"{name} runs: " + ", ".join(f"{t:.3f}" for t in step["times_s"]) + " s"
                         for name, step in steps.items())
        medians = ", ".join(f"{name} {step['median_s']:.3f} s (x{step['ratio']:.2f})" for name, step in steps.items())
        return (f"{runs}\nsearch step ({r['size']} supernet, batch {r['batch']}, racl gradnorm_subset "
                f"{r['gradnorm_subset']}), medians and ratio to darts: {medians}")
    if r["benchmark"] == "attack":
        return (f"{r['attack']}: racl {r['racl_images_per_s']:.2f} img/s, torchattacks "
                f"{r['torchattacks_images_per_s']:.2f} img/s, ratio {r['ratio']:.2f}")
    rows = r["cases"].items() if "cases" in r else [("step", r)]
    return "\n".join(f"{r['benchmark']} {k}: fast {c['fast_s']:.3f} s, reference {c['reference_s']:.3f} s, "
                     f"speedup {c['speedup']:.2f}" for k, c in rows)
