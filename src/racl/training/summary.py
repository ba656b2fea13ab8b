"""What a training run says about itself: the start-of-run lines and the labels of its accuracies.

`start_lines` (printed by `racl train` before the first epoch): the model and its parameter count,
the training objective and its attack, and the data sizes. `bn_modes` says in which BatchNorm mode
each training accuracy is measured (losses.py): for pgd and fgsm_rs the clean accuracy comes from an
eval-mode forward (running statistics) and the adversarial one from the training forward (batch
statistics), so early in a run they are not comparable; the epoch line labels them when they differ.
"""
from __future__ import annotations

from racl.attacks.eps import format_eps
from racl.checkpoint import build_from_spec
from racl.data import DataSplits
from racl.models import count_parameters
from racl.training.config import TrainConfig

OBJECTIVES = {"pgd": "PGD adversarial training (Madry et al.)", "trades": "TRADES (Zhang et al.)",
              "fgsm_rs": "fast FGSM from a random start (Wong et al.)", "none": "standard (clean) training"}


def bn_modes(config: TrainConfig) -> tuple[str, str | None]:
    """(BN mode of the clean training accuracy, of the adversarial one or None)."""
    adv = config.objective.adv
    if adv == "none":
        return "train", None
    return ("train", "train") if adv == "trades" else ("eval", "train")


def accuracy_labels(config: TrainConfig) -> tuple[str, str]:
    """('train', 'adv'), or ('train clean (eval BN)', 'adv (train BN)') when the two modes differ."""
    clean, adv = bn_modes(config)
    if adv is None or clean == adv:
        return "train", "adv"
    return f"train clean ({clean} BN)", f"adv ({adv} BN)"


def _model_name(spec: dict) -> str:
    model = spec["model"]
    return model if isinstance(model, str) else "genotype"


def start_lines(spec: dict, config: TrainConfig, data: DataSplits) -> list[str]:
    """Model + parameters, objective + attack, data sizes: what the run is, before it runs."""
    cfg = config.resolved()
    args = spec.get("model_args", {})
    size = f" (C = {args['channels']}, {args['layers']} cells)" if "channels" in args else ""
    params = count_parameters(build_from_spec(spec))
    lines = [f"model: {_model_name(spec)}{size}, {params:,} parameters"]
    objective = OBJECTIVES[cfg.objective.adv]
    if cfg.objective.adv != "none":
        a = cfg.attack
        steps = 1 if cfg.objective.adv == "fgsm_rs" else a.steps
        objective += (f", attack {a.norm} eps {format_eps(a.eps)}, {steps} step(s) of {format_eps(a.alpha)}, "
                      f"crafted in {cfg.objective.attack_mode} mode")
    lines.append(f"training: {objective}; {cfg.epochs} epochs, batch {cfg.batch_size}, SGD lr {cfg.optim.lr:g} "
                 f"({cfg.optim.schedule})")
    lines.append(f"data: {data.describe()}")
    clean, adv = bn_modes(cfg)
    if adv is not None and clean != adv:
        lines.append(f"note: the training accuracies are measured as the objective computes them: clean with "
                     f"{clean}-mode BN (running statistics), adversarial with {adv}-mode BN (batch statistics); "
                     "they are not comparable early in a run; val clean/robust are both eval mode")
    return lines

