"""`racl` command line: one module per subcommand, each with `add_parser(subparsers)` and `run(args)`.

Errors caused by input (RaclError) print one line and exit 2; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from racl.errors import RaclError

# subcommand -> module under racl.cli; modules that do not exist yet are skipped.
SUBCOMMANDS = ("zoo", "search", "train", "evaluate", "lipschitz", "report", "compare", "bench", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="racl", description="Adversarially robust neural architecture search.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"racl.cli.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name != f"racl.cli.{name}_cmd":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except RaclError as e:
        if args.debug:
            raise
        print(f"racl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("racl: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
