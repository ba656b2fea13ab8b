"""`racl` command line: one module per subcommand, each with `add_parser(subparsers)` and `run(args)`.

Errors caused by input (RaclError) print one line and exit 2; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import NoReturn, Sequence

from racl import threads
from racl.errors import RaclError

# subcommand -> module under racl.cli; modules that do not exist yet are skipped.
SUBCOMMANDS = ("zoo", "config", "search", "train", "evaluate", "lipschitz", "report", "compare", "ablate", "bench",
               "demo", "nb201")


class _Parser(argparse.ArgumentParser):
    """argparse with racl's one-line errors (`racl: error: ...`, exit 2); subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        where = "" if self.prog == "racl" else f"{self.prog}: "  # never "racl: error: racl: ..."
        self.exit(2, f"racl: error: {where}{_one_line(message)}; see '{self.prog} --help' for usage\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="racl", description="Adversarially robust neural architecture search.")
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


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    """Library warnings (warnings.warn) as one line on the command line: `racl: warning: ...`."""
    return f"racl: warning: {_one_line(message)}\n"


def entry() -> int:
    """The `racl` command (and `python -m racl`): torch's threads set to the cores free at start-up
    (racl.threads; RACL_THREADS or OMP_NUM_THREADS override it), then `main`."""
    threads.configure()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = _warning_line
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named with the subcommand whose help lists what it takes
        command = " ".join(str(getattr(args, k)) for k in ("command", "zoo_command", "config_command")
                           if getattr(args, k, None))
        parser.exit(2, f"racl: error: racl {command}: unrecognized arguments: {_one_line(' '.join(extra))}; "
                       f"see 'racl {command} --help' for usage\n")
    try:
        result = args.func(args)
    except RaclError as e:
        if args.debug:
            raise
        print(f"racl: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`racl zoo list | head -1`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that the interpreter's final flush is quiet
        return 0
    except OSError as e:  # disk full, permissions, ...: the environment, not a bug; one line too
        if args.debug:
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"racl: error: {_one_line(e.strerror or e)}{where}; check the path, its permissions and free space",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("racl: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
