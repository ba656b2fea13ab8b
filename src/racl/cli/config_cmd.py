"""`racl config show search|train [--preset P]`: every setting of a command, with its default and meaning.

The output is YAML with one comment line per key (racl.config_doc); save it, edit it, and pass it
back with `--config FILE.yaml`.
"""
from __future__ import annotations

import argparse

from racl.config_doc import key_comments, show
from racl.lifecycle import flatten
from racl.search import config as search_config
from racl.training import config as train_config

COMMANDS = {"search": (search_config.SearchConfig, search_config.PRESETS, search_config.get_preset, {}),
            "train": (train_config.TrainConfig, train_config.PRESETS, train_config.get_preset, train_config.FLAGS)}


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
    cls, presets, get_preset, fallback = COMMANDS[args.which]
    header = [f"racl {args.which} config, preset {args.preset}"
              + (" (= the defaults)" if args.preset == "paper" else ": the defaults with "
                 + ", ".join(f"{k}={v}" for k, v in flatten(presets[args.preset]).items())),
              f"use it as racl {args.which} --config FILE.yaml, or change one key with --set KEY=VALUE "
              "(section.KEY, or KEY alone where only one section has it)",
              "[paper]: the paper's setting, [DARTS]: DARTS's, [design]: ours (docs/method.md)"]
    print(show(get_preset(args.preset), key_comments(cls, fallback), header), end="")
    return 0
