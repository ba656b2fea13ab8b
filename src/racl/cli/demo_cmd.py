"""`racl demo --out DIR`: the whole pipeline offline on the embedded digits data (a few minutes on CPU)."""
from __future__ import annotations

import argparse
import time

from racl.cli.options import add_device_argument, resolve_device
from racl.demo import run_demo


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="search -> adversarial training -> evaluation -> report, offline on digits")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="demo folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    add_device_argument(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    print(f"racl demo on {device}", flush=True)
    t0 = time.perf_counter()
    report = run_demo(args.out, overwrite=args.overwrite, device=device, log=print)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {report}")
    return 0
