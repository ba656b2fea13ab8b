"""`racl lipschitz --checkpoint FILE [--out DIR]`: global Lipschitz bound and local estimate per part."""
from __future__ import annotations

import argparse

from racl.checkpoint import checkpoint_path
from racl.cli.evaluate_cmd import add_checkpoint_data_arguments, data_override
from racl.cli.options import add_device_argument, resolve_device
from racl.errors import RaclError
from racl.io import write_json, write_text
from racl.lipschitz.report import lipschitz_checkpoint, lipschitz_markdown, lipschitz_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lipschitz", help="global Lipschitz upper bound and empirical local estimate of a trained model")
    add_checkpoint_data_arguments(p)
    p.add_argument("--checkpoint", required=True, help="model checkpoint (X.safetensors with its X.json sidecar)")
    p.add_argument("--n-images", type=int, default=64, help="images for the local estimate (default %(default)s)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="split of the images (default test)")
    p.add_argument("--iters", type=int, default=100, help="power iterations per linear piece (default %(default)s)")
    p.add_argument("--local-iters", type=int, default=10,
                   help="power iterations per image for the Jacobian norm (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch of the local estimate (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image subset and power iterations (default 0)")
    add_device_argument(p)
    p.add_argument("--out", default=None, help="also write DIR/lipschitz.json and DIR/lipschitz.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    for name in ("n_images", "iters", "local_iters", "batch_size"):
        if getattr(args, name) < 1:
            raise RaclError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    checkpoint_path(args.checkpoint)  # a run folder or a search checkpoint is refused before anything loads
    print(f"racl lipschitz on {device}: {args.checkpoint}", flush=True)
    result = lipschitz_checkpoint(args.checkpoint, n_images=args.n_images, split=args.split, seed=args.seed,
                                  device=device, load=data_override(args), n_iter=args.iters,
                                  local_iters=args.local_iters, batch_size=args.batch_size)
    print(lipschitz_table(result))
    print(f"global bound ln L = {result['log_global_bound']:.2f}; local estimate (max over "
          f"{result['n_images']} images) ln L = {result['log_local_estimate']:.2f}")
    if args.out:
        write_json(f"{args.out}/lipschitz.json", result)
        write_text(f"{args.out}/lipschitz.md", lipschitz_markdown(result))
        print(f"wrote {args.out}/lipschitz.json, {args.out}/lipschitz.md")
    return 0
