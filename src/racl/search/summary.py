"""The one-line end-of-search summary: did the confidence constraint hold, and how large is the cell.

A search that ends with its constraint violated must say so (and what to change), not only a search
whose choices are undecided: `constraint_status` reads the last metrics record, `end_summary` adds
the genotype's parameter count in the network `racl train` builds by default.
"""
from __future__ import annotations

from typing import Any

from racl.models import build_model, count_parameters
from racl.search.config import SearchConfig
from racl.search_space.registry import space_of
from racl.training.config import NetworkConfig

QUICK_ARCH_LR = 0.01  # the quick preset's architecture learning rate (search.config.PRESETS)


def advice(config: SearchConfig) -> str:
    """What to change when the constraint is not met: a longer search or a larger architecture step."""
    lr = config.optim.arch_lr
    if lr < QUICK_ARCH_LR:
        return (f"search longer (--epochs) or raise the architecture learning rate (--set optim.arch_lr={QUICK_ARCH_LR:g}, "
                f"the quick preset's; the paper's {lr:g} is meant for ~10k architecture steps)")
    return f"search longer (--epochs) or raise the architecture learning rate above its {lr:g} (--set optim.arch_lr=...)"


def constraint_status(record: dict[str, Any], config: SearchConfig) -> str:
    """'met', 'violated by ...' or 'unreachable ...', with what to change when it is not met."""
    if config.strategy != "racl":
        return f"no Lipschitz constraint ({config.strategy} strategy)"
    eta, g, prob = config.constraint.eta, record.get("constraint_g"), record.get("prob_within_bound")
    if g is None or prob is None:
        return "the constraint was never measured (no architecture epoch: warmup_epochs >= epochs)"
    where = f"Pr(L_F <= L_bar) {prob:.3f} against eta {eta:g}"
    if record.get("constraint_regime") == "unreachable":
        return (f"constraint unreachable: {where}; even the lowest bound the cells can give (ln "
                f"{record['ln_l_min']:.2f}) exceeds ln L_bar {record['ln_lbar']:.2f}; raise constraint.lbar (k)")
    if g <= 0:
        return f"constraint met: {where}"
    return (f"constraint violated: {where} (the eta-quantile of ln L_F lies {g:.2f} above ln L_bar); {advice(config)}")


def network_size(genotype: Any) -> dict[str, Any]:
    """racl train's default network for the genotype's space (DARTS: C = 36, 20 cells; NB201: C = 16,
    5 cells per stage), no auxiliary head, no drop-path."""
    return {**NetworkConfig().size(space_of(genotype)), "auxiliary": False, "drop_path_prob": 0.0}


def genotype_parameters(genotype: Any, num_classes: int, in_channels: int) -> int:
    """Parameters of `genotype` in racl train's default network of its space."""
    model = build_model(genotype, num_classes=num_classes, in_channels=in_channels, **network_size(genotype))
    return count_parameters(model)


def end_summary(records: list[dict[str, Any]], config: SearchConfig, genotype: Any, num_classes: int,
                in_channels: int) -> str:
    """One line: the constraint at the end and the genotype's size."""
    n = network_size(genotype)
    params = genotype_parameters(genotype, num_classes, in_channels)
    status = constraint_status(records[-1], config) if records else "no epoch ran"
    cells = "cells per stage" if config.space == "nb201" else "cells"
    return (f"search summary: {status}; genotype: {params / 1e6:.2f}M parameters (racl train's default "
            f"network: C = {n['channels']}, {n['layers']} {cells}, {num_classes} classes)")

