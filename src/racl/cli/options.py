"""Options that several subcommands share, defined once so that a flag means one thing everywhere.

    add_device_argument / resolve_device   --device auto|cpu|cuda|cuda:N (auto: cuda when visible)
    add_run_arguments                      --out DIR, --resume, --overwrite (racl.lifecycle's rule)
    deprecated                             an old flag spelling kept as a hidden alias with a one-line note

The grammar itself (one name per setting) is written down in README's "Command line" section and
checked by tests/test_cli_grammar.py, which walks every subcommand's parser.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Sequence

import torch

from racl.errors import RaclError

DEVICE_HELP = "torch device: auto (cuda when torch sees a GPU, else cpu; the default), cpu, cuda, cuda:1, ..."


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def resolve_device(name: str) -> str:
    """The device `--device NAME` asks for, checked before anything is loaded or written.

    auto -> cuda when `torch.cuda.is_available()`, else cpu. An unavailable device is a RaclError
    (one line, exit 2, no output folder); the CPU chosen while a GPU is visible gets a one-line warning."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise RaclError(f"--device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RaclError(f"--device {name}: torch {torch.__version__} sees no CUDA GPU here; "
                            "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RaclError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "cpu":
        if torch.cuda.is_available():
            warnings.warn("running on the CPU although torch sees a CUDA GPU; drop --device cpu "
                          "(the default, auto, uses the GPU)", stacklevel=2)
    elif device.type != "mps" or not torch.backends.mps.is_available():
        raise RaclError(f"--device {name}: not available here; use auto, cpu or cuda")
    return str(device)


def add_run_arguments(parser: argparse.ArgumentParser, what: str, resume_help: str | None = None) -> None:
    """--out DIR (required), --resume and --overwrite, meaning the same in every command."""
    parser.add_argument("--out", required=True, metavar="DIR", help=f"{what} folder")
    parser.add_argument("--resume", action="store_true",
                        help=resume_help or "continue the run in --out with its own saved settings (data flags "
                                            "are needed only to change them, and a change is refused)")
    parser.add_argument("--overwrite", action="store_true", help=f"replace a {what} already in --out")


class _Deprecated(argparse.Action):
    """Stores into the new option's dest and prints `racl: warning: --old is now --new`."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"racl: warning: {option_string} is now {self.new}; the old spelling will go", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, dest: str,
               **kw: Any) -> None:
    """Accept `old` as a hidden alias of the option `new` (same dest), with a one-line note when used."""
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kw)



def add_amp_argument(parser: argparse.ArgumentParser) -> None:
    """--amp none|bf16 (checked by racl.amp.check_amp, which explains why fp16 is refused)."""
    from racl.amp import AMP_HELP

    parser.add_argument("--amp", default=None, metavar="none|bf16", help=AMP_HELP)
