"""`racl evaluate --checkpoint FILE --attacks fgsm,pgd20,... --eps 8/255 --out DIR` and
`racl evaluate --transfer A B C --attacks pgd20 --out DIR` (source x target matrix)."""
from __future__ import annotations

import argparse
from pathlib import Path

from racl.attacks import parse_attack_list, parse_eps, parse_eps_list
from racl.attacks.registry import grammar_help
from racl.checkpoint import checkpoint_path
from racl.amp import check_amp
from racl.cli.options import add_amp_argument, add_device_argument, add_run_arguments, resolve_device
from racl.data import add_data_arguments, data_for, given_data_flags
from racl.distributed import add_distributed_argument, session
from racl.errors import RaclError
from racl.evaluation.report import console_table, transfer_console
from racl.evaluation.run import evaluate_checkpoint, evaluate_transfer
from racl.lifecycle import RunFolder

DEFAULT_ATTACKS = "fgsm,pgd20,pgd100,mifgsm,cw,autoattack"
DEFAULT_TRANSFER_ATTACKS = "pgd20"
RESULTS = ("results.json", "results.md", "eps_sweep.png", "transfer.json", "transfer.md")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="clean and robust accuracy of a checkpoint under attacks; transfer matrices",
                       description="Attack a checkpoint on the test split of the data it was trained on (its "
                                   "sidecar's data spec; data flags given without --dataset replace that "
                                   "spec's settings, --dataset gives other data) and write DIR/results.json "
                                   "and results.md. Attack names: " + grammar_help() + ".")
    add_checkpoint_data_arguments(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="model checkpoint (X.safetensors with its X.json sidecar)")
    which.add_argument("--transfer", nargs="+", metavar="CKPT",
                       help="two or more checkpoints: robust accuracy of each target on examples crafted on "
                            "each source")
    p.add_argument("--attacks", default=None,
                   help=f"comma-separated attack names (default {DEFAULT_ATTACKS}; with --transfer "
                        f"{DEFAULT_TRANSFER_ATTACKS}); the names are listed above")
    p.add_argument("--eps", default="8/255",
                   help="attack budget in [0, 1], e.g. 8/255 or 0.031: the L-inf radius (the L2 radius for "
                        "pgdl2_<N>); default 8/255")
    p.add_argument("--eps-sweep", default=None, help="also sweep eps, e.g. 0,2/255,4/255,8/255,16/255")
    p.add_argument("--sweep-attacks", default=None,
                   help="attacks for the eps sweep (default: --attacks); e.g. fgsm,pgd20 to skip costly ones")
    add_run_arguments(p, "results", resume_help="continue an interrupted evaluation in --out: its finished attack "
                                                "batches are kept (same checkpoint, images and settings)")
    p.add_argument("--n-images", type=int, default=None,
                   help="evaluate a seeded random subset of N images; 0 = the whole split (the default)")
    p.add_argument("--batch-size", type=int, default=128, help="images per attacked batch (default 128)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="split to attack (default test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image subset and the attacks (default 0)")
    add_device_argument(p)
    add_amp_argument(p)
    add_distributed_argument(p)
    p.set_defaults(func=run)


def add_checkpoint_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data flags, for a command that reads a checkpoint: by default its sidecar's data."""
    add_data_arguments(p, default_dataset=None)


def data_override(args: argparse.Namespace):
    """None (the sidecar's data) when no data flag is given, else meta -> the data the flags name
    (the sidecar's spec with the given flags replacing its settings, or --dataset's new data)."""
    if not given_data_flags(args):
        return None
    return lambda meta: data_for(args, meta.get("data") if isinstance(meta.get("data"), dict) else None)


def _check_sizes(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise RaclError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.n_images is not None and args.n_images < 0:
        raise RaclError(f"--n-images must be >= 0 (0 = the whole split), got {args.n_images}")
    args.n_images = args.n_images or None  # 0 = all, as in racl compare and racl ablate


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    _check_sizes(args)
    eps = parse_eps(args.eps)
    args.amp = check_amp(args.amp or "none")
    sweep = parse_eps_list(args.eps_sweep) if args.eps_sweep else []
    for name in (args.attacks, args.sweep_attacks):
        if name:
            parse_attack_list(name)
    for path in [args.checkpoint] if args.checkpoint else args.transfer:
        checkpoint_path(path)  # a run folder or a search checkpoint is refused before anything loads
    RunFolder(args.out, "evaluation", RESULTS).check(resume=args.resume, overwrite=args.overwrite)
    print(f"racl evaluate on {device}: {args.checkpoint or ', '.join(args.transfer)}", flush=True)
    with session(args.distributed, device) as device:  # torchrun: test set sharded over processes
        return _evaluate(args, eps, sweep, device)


def _evaluate(args: argparse.Namespace, eps: float, sweep: list, device: str) -> int:
    common = dict(n_images=args.n_images, batch_size=args.batch_size, split=args.split, seed=args.seed,
                  device=device, load=data_override(args), progress=lambda line: print(line, flush=True),
                  amp=args.amp)
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
    for stale in set(RESULTS) - set(written):  # --overwrite: no file of the replaced evaluation stays
        (Path(args.out) / stale).unlink(missing_ok=True)
    for warning in result["warnings"]:
        print(f"WARNING: {warning}")
    print(f"wrote {', '.join(f'{args.out}/{w}' for w in written)}")
    return 0
