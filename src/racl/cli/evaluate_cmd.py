"""`racl evaluate --checkpoint FILE --attacks fgsm,pgd20,... --eps 8/255 --out DIR` and
`racl evaluate --transfer A B C --attacks pgd20 --out DIR` (source x target matrix)."""
from __future__ import annotations

import argparse

import torch

from racl.attacks import parse_attack_list, parse_eps, parse_eps_list
from racl.data import add_data_arguments, data_from_args
from racl.distributed import add_distributed_argument, session
from racl.errors import RaclError
from racl.evaluation.report import console_table, transfer_console
from racl.evaluation.run import evaluate_checkpoint, evaluate_transfer

DEFAULT_ATTACKS = "fgsm,pgd20,pgd100,mifgsm,cw,autoattack"
DEFAULT_TRANSFER_ATTACKS = "pgd20"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", conflict_handler="resolve",
                       help="clean and robust accuracy of a checkpoint under attacks; transfer matrices")
    add_checkpoint_data_arguments(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="model checkpoint (X.safetensors with its X.json sidecar)")
    which.add_argument("--transfer", nargs="+", metavar="CKPT",
                       help="two or more checkpoints: robust accuracy of each target on examples crafted on "
                            "each source")
    p.add_argument("--attacks", default=None,
                   help=f"comma-separated attacks (default {DEFAULT_ATTACKS}; "
                        f"with --transfer {DEFAULT_TRANSFER_ATTACKS})")
    p.add_argument("--eps", default="8/255", help="L-inf budget in [0, 1], e.g. 8/255 or 0.031 (default 8/255)")
    p.add_argument("--eps-sweep", default=None, help="also sweep eps, e.g. 0,2/255,4/255,8/255,16/255")
    p.add_argument("--sweep-attacks", default=None,
                   help="attacks for the eps sweep (default: --attacks); e.g. fgsm,pgd20 to skip costly ones")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n-images", type=int, default=None, help="evaluate a seeded random subset of N images")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted evaluation in --out: its finished attack batches are kept "
                        "(same checkpoint, images and settings)")
    add_distributed_argument(p)
    p.set_defaults(func=run)


def add_checkpoint_data_arguments(p: argparse.ArgumentParser) -> None:
    """--dataset etc. from the data module (override the sidecar's data)."""
    add_data_arguments(p, default_dataset=None)  # None: use the checkpoint sidecar's data
    p.set_defaults(dataset=None)


def checkpoint_device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def data_override(args: argparse.Namespace):
    if args.dataset is None:
        return None
    return lambda meta: data_from_args(args)


def _check_sizes(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or (args.n_images is not None and args.n_images < 1):
        raise RaclError("--batch-size and --n-images must be positive integers")


def run(args: argparse.Namespace) -> int:
    _check_sizes(args)
    eps = parse_eps(args.eps)
    sweep = parse_eps_list(args.eps_sweep) if args.eps_sweep else []

    with session(args.distributed, checkpoint_device(args.device)) as device:  # torchrun: test set sharded over processes
        return _evaluate(args, eps, sweep, device)


def _evaluate(args: argparse.Namespace, eps: float, sweep: list, device: str) -> int:
    common = dict(n_images=args.n_images, batch_size=args.batch_size, split=args.split, seed=args.seed,
                  device=device, load=data_override(args), progress=lambda line: print(line, flush=True))
    if args.transfer:
        attacks = parse_attack_list(args.attacks or DEFAULT_TRANSFER_ATTACKS)
        result = evaluate_transfer(args.transfer, attacks, eps, args.out, **common)
        print("\n\n".join(transfer_console(m) for m in result["matrices"].values()))
        written = ["transfer.json", "transfer.md"]
    else:
        attacks = parse_attack_list(args.attacks or DEFAULT_ATTACKS)
        sweep_attacks = parse_attack_list(args.sweep_attacks) if args.sweep_attacks else attacks
        result = evaluate_checkpoint(args.checkpoint, attacks, eps, args.out, sweep=sweep,
                                     sweep_attacks=sweep_attacks, resume=args.resume, **common)
        print(console_table(result))
        if args.resume:
            print(f"resumed: {result['batches_reused']} attacked batch(es) reused from the interrupted run")
        written = ["results.json", "results.md"] + (["eps_sweep.png"] if sweep else [])
    for warning in result["warnings"]:
        print(f"WARNING: {warning}")
    print(f"wrote {', '.join(f'{args.out}/{w}' for w in written)}")
    return 0
