"""The whole pipeline on the embedded digits data: search -> adversarial training -> evaluation -> report.

Offline (scikit-learn ships the data) and sized for a 2-core CPU: a small supernet and network, a few
epochs. The numbers are real measurements of this small setting, not of the paper's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from racl.data import load_data
from racl.errors import RaclError
from racl.evaluation.run import evaluate_checkpoint
from racl.report import build_report
from racl.search.config import SearchConfig, config_from_dict as search_config_from_dict
from racl.search.loop import run_search
from racl.training.config import TrainConfig, config_from_dict
from racl.training.trainer import train


@dataclass(frozen=True)
class DemoConfig:
    image_size: int = 16
    seed: int = 0
    eps: float = 8 / 255
    search_epochs: int = 5
    search_warmup: int = 2
    search_channels: int = 8
    search_layers: int = 5
    train_epochs: int = 8
    train_channels: int = 16
    train_layers: int = 5
    batch_size: int = 64
    eval_images: int = 200
    # apgd-ce = AutoAttack's APGD-CE (pyautoattack, custom version, 100 iterations): APGD-T's 9 target
    # classes x 100 iterations alone took ~10 minutes here, and the standard suite adds FAB-T and Square
    attacks: tuple[str, ...] = ("fgsm", "pgd20", "apgd-ce")


def search_config(cfg: DemoConfig = DemoConfig()) -> SearchConfig:
    return search_config_from_dict({
        "strategy": "racl", "seed": cfg.seed, "epochs": cfg.search_epochs, "warmup_epochs": cfg.search_warmup,
        "batch_size": cfg.batch_size, "eval_images": 180, "crop_padding": 2,
        "supernet": {"channels": cfg.search_channels, "layers": cfg.search_layers},
        "bound": {"mc_samples": 64},
        # [design] the paper's arch_lr (6e-4) is for ~10k architecture steps; the demo has ~27
        "optim": {"arch_lr": 0.01},
    })


def _train_config(cfg: DemoConfig) -> TrainConfig:
    return config_from_dict({
        "epochs": cfg.train_epochs, "batch_size": cfg.batch_size, "seed": cfg.seed, "optim": {"lr": 0.05},
        "objective": {"adv": "pgd"}, "attack": {"eps": cfg.eps, "steps": 5},
        "network": {"channels": cfg.train_channels, "layers": cfg.train_layers, "drop_path": 0.0},
        "augmentation": {"crop_padding": 2}, "validation": {"val_images": 180, "val_steps": 10}})


def run_demo(out_dir: str | Path, *, overwrite: bool = False, device: str = "cpu",
             config: DemoConfig = DemoConfig(), log: Callable[[str], None] | None = None) -> Path:
    """Run every stage into OUT/{search,train,evaluate,report}; returns the report's path.
    `log`: where the stage lines and the stages' epoch lines go (None: nowhere; the CLI passes print)."""
    say = log or (lambda _m: None)
    out = Path(out_dir)
    if (out / "report" / "report.md").exists() and not overwrite:
        raise RaclError(f"{out} already holds a demo; pass --overwrite to run it again")
    data = load_data("digits", image_size=config.image_size, seed=config.seed)
    say(f"[1/4] RACL search on digits ({len(data.train)} train images, {config.image_size}x{config.image_size})")
    found = run_search(search_config(config), data, out / "search", overwrite=True, device=device, log=log)
    say(f"[2/4] PGD adversarial training of the found genotype ({config.train_epochs} epochs)")
    train(found.genotype, data, _train_config(config), out / "train", overwrite=True, device=device, log=log)
    say(f"[3/4] evaluation: clean, {', '.join(config.attacks)} at eps {config.eps:.4f}")
    evaluate_checkpoint(out / "train" / "best.safetensors", list(config.attacks), config.eps, out / "evaluate",
                        n_images=config.eval_images, sweep=(0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
                        sweep_attacks=("fgsm", "pgd20"), device=device)
    say("[4/4] report")
    return build_report([out / "search", out / "train", out / "evaluate"], out / "report",
                        title="racl demo: search, adversarial training and evaluation on digits")
