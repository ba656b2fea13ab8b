"""`racl bench supernet|attack|train [--json]`: fast vs reference (or racl vs torchattacks), side by side."""
from __future__ import annotations

import argparse
import json

from racl.bench import run
from racl.errors import RaclError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="performance benchmarks (run on a quiet machine)")
    p.add_argument("what", choices=("supernet", "attack", "train"))
    p.add_argument("--json", action="store_true", help="print the full JSON result")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions per process")
    p.add_argument("--rounds", type=int, default=2, help="alternating processes per variant")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.batch < 1 or args.rounds < 1:
        raise RaclError("--batch and --rounds must be >= 1")
    kw = {"device": args.device, "rounds": args.rounds, "batch": args.batch}
    if args.repeats:
        kw["repeats"] = args.repeats
    if args.what == "supernet":
        result = run.bench_supernet(bf16=args.bf16, **kw)
    elif args.what == "attack":
        result = run.bench_attack(**kw)
    else:
        result = run.bench_train(bf16=args.bf16, **kw)
    print(json.dumps(result, indent=2) if args.json else _line(result))
    return 0


def _line(r: dict) -> str:
    if r["benchmark"] == "attack":
        return (f"PGD-20: racl {r['racl_images_per_s']:.2f} img/s, torchattacks "
                f"{r['torchattacks_images_per_s']:.2f} img/s, ratio {r['ratio']:.2f}")
    rows = r["cases"].items() if "cases" in r else [("step", r)]
    return "\n".join(f"{r['benchmark']} {k}: fast {c['fast_s']:.3f} s, reference {c['reference_s']:.3f} s, "
                     f"speedup {c['speedup']:.2f}" for k, c in rows)
