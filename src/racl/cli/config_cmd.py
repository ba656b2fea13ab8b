"""`racl config show search|train [--preset P]`: every setting of a command, with its default and meaning.

The output is YAML nested by section with one comment line per key (racl.config_doc); save it, edit
it, and pass it back with `--config FILE.yaml`.
"""
from __future__ import annotations

import argparse

from racl.config_doc import key_comments, show
from racl.lifecycle import flatten
from racl.search.config import SCHEMA as SEARCH
from racl.training.config import SCHEMA as TRAIN

COMMANDS = {"search": SEARCH, "train": TRAIN}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print a command's settings: defaults or a preset, one comment per key")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    show_p = csub.add_parser("show", help="print the full config of racl search or racl train as YAML")
    show_p.add_argument("which", choices=tuple(COMMANDS), help="whose config: search or train")
    show_p.add_argument("--preset", choices=("tiny", "quick", "paper"), default="paper",
                        help="starting config to show (default: paper = the defaults)")
    show_p.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    schema = COMMANDS[args.which]
    header = [f"racl {args.which} config, preset {args.preset}"
              + (" (= the defaults)" if args.preset == "paper" else ": the defaults with "
                 + ", ".join(f"{k}={v}" for k, v in flatten(schema.presets[args.preset]).items())),
              f"use it as racl {args.which} --config FILE.yaml, or change one key with --set KEY=VALUE "
              "(section.KEY, or a top-level KEY)",
              "[paper]: the paper's setting, [DARTS]: DARTS's, [design]: ours (docs/method.md)"]
    fallback = {flag.key: flag.help for flag in schema.flags.values()}
    print(show(schema.preset(args.preset), key_comments(schema.cls, fallback), header), end="")
    return 0
