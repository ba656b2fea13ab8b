"""`racl train --genotype NAME|FILE|resnet18|wrn34_10 --dataset D --out DIR [options]`.

Config precedence: TrainConfig defaults < `--config FILE.yaml` < flags. `--resume [DIR]` continues
the run in DIR (or --out) with its saved config, model and data; flags given again must agree.
"""
from __future__ import annotations

import argparse
from typing import Any

# flag -> TrainConfig field, for the flags that map one to one
_FLAGS = ("epochs", "batch_size", "lr", "schedule", "adv", "eps", "alpha", "steps", "trades_beta", "channels",
          "layers", "auxiliary", "aux_weight", "drop_path", "grad_clip", "weight_decay", "momentum", "seed",
          "val_images", "val_steps", "augment", "cutout", "attack_mode")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from racl.data import add_data_arguments
    from racl.distributed import add_distributed_argument

    p = sub.add_parser("train", help="adversarially train a network (PGD, TRADES, fast FGSM or clean)",
                       description="Adversarial training from scratch; writes best/last checkpoints, "
                                   "metrics.jsonl and config.yaml to --out.")
    p.add_argument("--genotype", metavar="NAME_OR_FILE",
                   help="zoo name (racl zoo list), genotype JSON file, resnet18 or wrn34_10")
    add_data_arguments(p, default_dataset="digits")
    p.add_argument("--out", metavar="DIR", help="output directory")
    p.add_argument("--config", metavar="FILE.yaml", help="training config; flags override its values")
    _add_config_flags(p)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                   help="continue the run in DIR (default: --out) exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files next to metrics.jsonl (pip install 'racl[tensorboard]')")
    add_distributed_argument(p)
    p.add_argument("--sync-bn", action="store_true",
                   help="with torchrun on CUDA: SyncBatchNorm (batch statistics over all processes)")
    p.set_defaults(func=run)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """Training flags; all default to None so only the ones given override the config file."""
    g = p.add_argument_group("training (defaults: method.md section 6)")
    g.add_argument("--epochs", type=int, help="epochs (default 100)")
    g.add_argument("--batch-size", type=int, help="batch size (default 128)")
    g.add_argument("--lr", type=float, help="initial SGD learning rate (default 0.1)")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--weight-decay", type=float, help="weight decay (default 2e-4)")
    g.add_argument("--schedule", choices=("cosine", "step"), help="learning-rate schedule (default cosine)")
    g.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 5)")
    g.add_argument("--adv", choices=("pgd", "trades", "fgsm_rs", "none"), help="objective (default pgd)")
    g.add_argument("--eps", help="Linf budget, e.g. 8/255 (default)")
    g.add_argument("--alpha", help="attack step (default 2/255; fgsm_rs 1.25 eps)")
    g.add_argument("--steps", type=int, help="attack steps for pgd/trades (default 7)")
    g.add_argument("--trades-beta", type=float, help="TRADES beta (default 6)")
    g.add_argument("--attack-mode", choices=("train", "eval"),
                   help="model mode while crafting training attacks (default train; trades eval)")
    g.add_argument("--channels", type=int, help="initial channels C of a DARTS network (default 36)")
    g.add_argument("--layers", type=int, help="cells of a DARTS network (default 20)")
    g.add_argument("--auxiliary", action=argparse.BooleanOptionalAction, help="DARTS auxiliary head (default off)")
    g.add_argument("--aux-weight", type=float, help="auxiliary loss weight (default 0.4)")
    g.add_argument("--drop-path", type=float, help="final drop-path probability (default 0.2)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, help="random crop + flip (default on)")
    g.add_argument("--cutout", type=int, help="cutout square side in pixels, 0 = off (default 0)")
    g.add_argument("--seed", type=int, help="training seed: init, data order, attacks (default 0)")
    g.add_argument("--val-images", type=int, help="fixed validation subset size, 0 = none (default 500)")
    g.add_argument("--val-steps", type=int, help="PGD steps of the validation attack (default 10)")


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    from racl.attacks import parse_eps

    values = {k: getattr(args, k) for k in _FLAGS if getattr(args, k, None) is not None}
    for key in ("eps", "alpha"):
        if key in values:
            values[key] = parse_eps(values[key])
    return values


def build_config(args: argparse.Namespace, base: dict | None = None) -> Any:
    """base (a saved run's config) < --config FILE < flags."""
    from racl.io import read_yaml
    from racl.training import config_from_dict

    merged = dict(base or {})
    if args.config:
        loaded = read_yaml(args.config, "training config")
        config_from_dict(loaded)  # report the file's own errors (unknown keys, bad values) first
        merged.update(loaded or {})
    merged.update(_flag_values(args))
    return config_from_dict(merged)


def run(args: argparse.Namespace) -> int:
    from racl.errors import RaclError
    from racl.training import train

    out = _out_dir(args)
    if args.resume and args.overwrite:
        raise RaclError("choose either --resume (continue the run) or --overwrite (start again), not both")
    resume, overwrite = bool(args.resume), args.overwrite
    if resume and _nothing_saved(args, out):
        resume, overwrite = False, True  # killed before its first epoch ended: start it afresh
    if resume:
        model, data, config = _resume_inputs(args, out)
    else:
        if not args.genotype:
            raise RaclError("racl train needs --genotype (a zoo name, genotype file, resnet18 or wrn34_10)")
        from racl.data import data_from_args

        model, data, config = args.genotype, data_from_args(args), build_config(args)
        if args.resume:
            _check_saved_config(out, config)
    from racl.distributed import session

    with session(args.distributed, args.device) as device:  # torchrun: one process per device
        print(data.describe())
        summary = train(model, data, config, out, resume=resume, overwrite=overwrite, device=device,
                        sync_bn=args.sync_bn, tensorboard=args.tensorboard)
        _print_summary(summary)
    return 0


def _nothing_saved(args: argparse.Namespace, out: str) -> bool:
    """--resume on a run that never finished an epoch (no state file): True if the command names the
    model (then the run starts afresh, which is all resuming could do); an error if it does not."""
    from pathlib import Path

    from racl.errors import RaclError

    if (Path(out) / "state.safetensors").is_file():
        return False
    if not args.genotype:
        raise RaclError(f"nothing to resume in {out} (no state.safetensors: no epoch finished); run the original "
                        "command (with --genotype and the data flags) again with --resume or --overwrite")
    return True


def _check_saved_config(out: str, config: Any) -> None:
    """A run restarted by --resume must have the settings it was started with (config.yaml, if written)."""
    from pathlib import Path

    from racl.errors import RaclError
    from racl.io import read_yaml
    from racl.training.rundir import _differences, _jsonable

    saved = Path(out) / "config.yaml"
    if saved.is_file():
        old = read_yaml(saved, "training config")
        if _jsonable(old) != _jsonable(config.resolved().to_dict()):
            raise RaclError(f"cannot resume {out}: its config differs from the one given "
                            f"({_differences(old, config.resolved().to_dict())}); use --overwrite to start again")


def _out_dir(args: argparse.Namespace) -> str:
    from racl.errors import RaclError

    resume_dir = args.resume if isinstance(args.resume, str) else None
    if resume_dir and args.out and resume_dir != args.out:
        raise RaclError(f"--resume {resume_dir} and --out {args.out} name different directories; give one")
    out = resume_dir or args.out
    if not out:
        raise RaclError("racl train needs --out DIR (or --resume DIR)")
    return out


def _resume_inputs(args: argparse.Namespace, out: str) -> tuple[Any, Any, Any]:
    """The saved run's model, data and config (flags given again must agree; train() checks)."""
    from racl.data import load_data_from_spec
    from racl.training import load_run

    saved = load_run(out)
    model = args.genotype or saved["model_spec"]
    return model, load_data_from_spec(saved["data_spec"]), build_config(args, saved["config"])


def _print_summary(summary: dict) -> None:
    best, last = summary["best"], summary["last"]
    if best["metrics"] and best["metrics"].get("val_robust_acc") is not None:
        m = best["metrics"]
        print(f"best (epoch {best['epoch']}): val clean {100 * m['val_clean_acc']:.1f}%, "
              f"robust {100 * m['val_robust_acc']:.1f}% -> {best['path']}")
    print(f"last (epoch {summary['epochs']}): {last['path']}")
    print(f"metrics: {summary['metrics_path']}")
