"""Honesty checks: signs that a robustness number may be unreliable (after AutoAttack's checks.py).

Each check returns a record {"passed": bool, "value": ..., "message": str}; `run_model_checks` and
`run_result_checks` collect them, and `warnings_from` turns the failed ones into printable lines.
Thresholds are heuristics, stated in each message, not proofs: a passed check does not certify a
model, a failed one says "look closer" (Athalye et al., 2018; Croce & Hein, 2020).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from racl.attacks.base import attack_context

Check = dict[str, Any]


def _check(passed: bool, value: Any, message: str) -> Check:
    return {"passed": bool(passed), "value": value, "message": "" if passed else message}


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def check_randomized(model: nn.Module, images: torch.Tensor, tol: float = 1e-4) -> Check:
    """Two identical eval-mode calls must agree; a randomised model needs EOT attacks instead."""
    with attack_context(model, "eval"):
        a, b = _logits(model, images), _logits(model, images)
    diff = (a - b).abs().max().item()
    return _check(diff <= tol * max(a.abs().max().item(), 1.0), diff,
                  f"model outputs change between identical calls in eval mode (max |diff| {diff:.3g}): "
                  "a randomised defence; use EOT attacks (AutoAttack version='rand')")


@torch.no_grad()
def check_logits(model: nn.Module, images: torch.Tensor, tol: float = 1e-4) -> Check:
    """Outputs that are non-negative and sum to 1 per row are probabilities, not logits."""
    out = _logits(model, images)
    sums = out.sum(dim=1)
    probs = bool((out >= -tol).all() and (sums - 1).abs().max() <= tol)
    return _check(not probs, round(sums.mean().item(), 6),
                  "model outputs rows that sum to 1 (probabilities, not logits): cross-entropy attacks "
                  "on softmax outputs saturate; return logits")


def check_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, tiny: float = 1e-10,
                    max_zero_fraction: float = 0.01) -> Check:
    """Mean |d CE / d x| per example; many zero (or a vanishing mean) gradients = gradient masking."""
    x = images.detach().clone().requires_grad_(True)
    with attack_context(model, "eval"), torch.enable_grad():
        loss = F.cross_entropy(_logits(model, x), labels, reduction="sum")
        grad = torch.autograd.grad(loss, x, allow_unused=True)[0] if loss.requires_grad else None
    per_example = torch.zeros(images.shape[0]) if grad is None else grad.abs().flatten(1).mean(1).cpu()
    zero_fraction = (per_example <= tiny).float().mean().item()
    mean = per_example.mean().item()
    passed = zero_fraction <= max_zero_fraction and mean > tiny
    return _check(passed, {"mean_abs_grad": mean, "zero_fraction": zero_fraction},
                  f"input gradients vanish (mean |grad| {mean:.3g}, {zero_fraction:.0%} of images with zero "
                  "gradient): gradient masking likely; gradient attacks are not reliable here, try "
                  "black-box (square) or BPDA")


def run_model_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Check]:
    """The checks that look at the model itself on one batch (images float in [0, 1])."""
    return {"randomized": check_randomized(model, images),
            "logits": check_logits(model, images),
            "gradients": check_gradients(model, images, labels)}


def check_autoattack_vs_pgd(robust: dict[str, float], threshold: float = 0.05) -> Check | None:
    """AutoAttack far below PGD means PGD was fooled by the model (a masking sign); None if n/a."""
    aa = robust.get("autoattack", robust.get("apgd"))
    pgd = robust.get("pgd20", min((v for k, v in robust.items() if k.startswith("pgd")), default=None))
    if aa is None or pgd is None:
        return None
    gap = pgd - aa
    return _check(gap <= threshold, round(gap, 6),
                  f"AutoAttack accuracy is {gap:.1%} below PGD (more than {threshold:.0%}): PGD is being "
                  "fooled, a gradient-masking sign; trust the AutoAttack number")


def check_transfer_vs_whitebox(matrix: list[list[float]], names: list[str], tol: float = 0.005) -> Check:
    """A black-box (off-diagonal) attack must not beat the white-box one (the diagonal) on a target."""
    bad = [f"{names[s]} -> {names[t]}: {matrix[s][t]:.1%} < white-box {matrix[t][t]:.1%}"
           for s in range(len(names)) for t in range(len(names))
           if s != t and matrix[s][t] < matrix[t][t] - tol]
    return _check(not bad, bad, "transfer attack beats the white-box attack ("
                  + "; ".join(bad) + "): the white-box attack is not working, a gradient-masking sign")


def check_eps_monotone(sweep: dict[str, Any], tol: float = 0.02) -> Check:
    """Robust accuracy should not rise with eps (beyond noise); if it does, the attack is failing."""
    bad = [name for name, accs in sweep["robust_accuracy"].items()
           if any(b > a + tol for a, b in zip(accs, accs[1:]))]
    return _check(not bad, bad, f"robust accuracy rises with eps for {', '.join(bad)}: the attack does not "
                  "converge or gradients are masked")


def check_above_chance(clean: float, n: int, num_classes: int, z: float = 3.0) -> Check:
    """Clean accuracy within z binomial standard errors of 1/K (chance) says the model has learnt
    nothing: its robust accuracies (also near 1/K) measure no robustness at all."""
    p = 1.0 / num_classes
    band = z * math.sqrt(p * (1 - p) / max(n, 1))
    return _check(abs(clean - p) > band, round(clean, 6),
                  f"clean accuracy {clean:.1%} is within noise of chance ({p:.1%} for {num_classes} classes, "
                  f"+/- {band:.1%} on {n} images): the model has not learnt the task, so its robust accuracy "
                  "means nothing; check the checkpoint and the data")


def check_attacks_bite(result: dict[str, Any]) -> Check | None:
    """Some attack at some eps > 0 must flip some correctly classified image; if none does (robust =
    clean everywhere), the attacks are not working on this model. None when there is nothing to flip."""
    runs = [(result["eps"], result["robust_accuracy"])] if "eps" in result else []
    sweep = result.get("eps_sweep")
    if sweep:
        runs += [(e, {k: v[i] for k, v in sweep["robust_accuracy"].items()}) for i, e in enumerate(sweep["eps"])]
    accs = [a for eps, robust in runs if eps > 0 for a in robust.values()]
    if not accs or not result.get("clean_accuracy"):
        return None
    untouched = all(a >= result["clean_accuracy"] for a in accs)
    return _check(not untouched, untouched,
                  "no attack changed the prediction of any correctly classified image at any eps > 0 (robust "
                  "accuracy = clean accuracy everywhere): the attacks do not work on this model (constant "
                  "outputs, masked gradients or a tiny eps); do not report these numbers as robustness")


def run_result_checks(result: dict[str, Any]) -> dict[str, Check]:
    """Checks on finished numbers: a model at chance, attacks that change nothing, AutoAttack vs PGD,
    eps sweep monotone."""
    checks: dict[str, Check] = {}
    if result.get("num_classes"):
        checks["above_chance"] = check_above_chance(result["clean_accuracy"], result["n_images"],
                                                    result["num_classes"])
    bite = check_attacks_bite(result)
    if bite is not None:
        checks["attacks_bite"] = bite
    aa = check_autoattack_vs_pgd(result.get("robust_accuracy", {}))
    if aa is not None:
        checks["autoattack_vs_pgd"] = aa
    if "eps_sweep" in result:
        checks["eps_monotone"] = check_eps_monotone(result["eps_sweep"])
    for name, messages in result.get("attack_warnings", {}).items():
        checks[f"{name}_internal"] = _check(False, messages, f"{name} warned: " + " | ".join(messages))
    return checks


def warnings_from(checks: dict[str, Check]) -> list[str]:
    return [c["message"] for c in checks.values() if not c["passed"]]
