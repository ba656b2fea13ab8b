"""Attack names, timm-style: `build_attack("pgd20", model, eps)`, `list_attacks()`: a closed grammar.

`GRAMMAR` is the one list of names: parsing (`parse_attack_list`, `build_attack`) and `racl evaluate
--help` (`grammar_help`) both read it. A name is matched after lower-casing and dropping '-' and '_'
(`PGD-20` = `pgd20`, `apgd_ce` = `apgd-ce`) and matches at most one form; anything else is refused
with the closest valid names. `describe(attack)` gives what a built attack runs (norm, eps, steps,
step size, loss, random start), which every evaluation result records next to its numbers.

The CW of the robust-NAS papers is CW-inf (PGD on the margin loss, L-inf): `cw` and `cwinf<N>`.
The original L2 attack of Carlini & Wagner is not provided, so `cw2` (which reads as "C&W-L2") is
refused rather than run as a 2-step CW-inf.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from racl.attacks.autoattack import AutoAttack
from racl.attacks.base import Attack
from racl.attacks.cw import CW
from racl.attacks.fgsm import FGSM
from racl.attacks.mifgsm import MIFGSM
from racl.attacks.pgd import PGD
from racl.errors import RaclError

Factory = Callable[..., Attack]  # (model, eps, [steps], **kw) -> Attack


def _apgd(model: nn.Module, eps: float, **kw: Any) -> Attack:
    return AutoAttack(model, eps, version="custom", attacks_to_run=kw.pop("attacks_to_run", ("apgd-ce", "apgd-t")),
                      **{"n_restarts": 1, **kw})


def _apgd_ce(model: nn.Module, eps: float, **kw: Any) -> Attack:
    return AutoAttack(model, eps, version="custom", attacks_to_run=("apgd-ce",), **{"n_restarts": 1, **kw})


@dataclass(frozen=True)
class AttackForm:
    """One form of the grammar: as written in help (`pgd<N>`), its pattern on the normalised name
    (group 1: the step count N), what it runs, and its factory."""

    form: str
    pattern: str
    meaning: str
    build: Factory
    examples: tuple[str, ...] = ()

    def match(self, key: str) -> re.Match | None:
        return re.fullmatch(self.pattern, key)


GRAMMAR: tuple[AttackForm, ...] = (
    AttackForm("fgsm", "fgsm", "FGSM, one L-inf step of eps", FGSM),
    AttackForm("pgd", "pgd", "PGD-10, L-inf, cross-entropy, step eps/4, random start", PGD),
    AttackForm("pgd<N>", "pgd([0-9]{1,7})", "PGD with N steps (pgd20, pgd100), otherwise as pgd",
               lambda model, eps, n, **kw: PGD(model, eps, steps=n, **kw), ("pgd20", "pgd100")),
    AttackForm("pgdl2_<N>", "pgdl2([0-9]{1,7})", "PGD with N steps in the L2 ball of radius eps, step eps/4",
               lambda model, eps, n, **kw: PGD(model, eps, steps=n, norm="l2", **kw), ("pgdl2_20",)),
    AttackForm("mifgsm", "mifgsm", "MI-FGSM, 10 L-inf steps of eps/10, momentum 1", MIFGSM),
    AttackForm("cw", "cw", "CW-inf: PGD-30 on the margin loss, L-inf, step eps/4 (not the L2 C&W)", CW),
    AttackForm("cwinf<N>", "cwinf([0-9]{1,7})", "CW-inf with N steps",
               lambda model, eps, n, **kw: CW(model, eps, steps=n, **kw), ("cwinf30",)),
    AttackForm("autoattack", "autoattack", "AutoAttack, standard version, L-inf", AutoAttack),
    AttackForm("apgd", "apgd", "APGD-CE + APGD-T (AutoAttack's), L-inf, 100 iterations, 1 restart", _apgd),
    AttackForm("apgd-ce", "apgdce", "APGD-CE alone, L-inf, 100 iterations, 1 restart", _apgd_ce),
)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def _parse(name: str) -> tuple[AttackForm, int | None]:
    """The one form `name` matches and its step count; RaclError with the closest names otherwise."""
    key = _key(name)
    for form in GRAMMAR:
        m = form.match(key)
        if m and (not m.groups() or int(m.group(1)) >= 1):
            return form, int(m.group(1)) if m.groups() else None
    raise RaclError(_unknown(name, key))


def _unknown(name: str, key: str) -> str:
    digits = re.findall(r"[0-9]+", key)[:1]
    candidates = [f.form for f in GRAMMAR if "<N>" not in f.form]
    for f in GRAMMAR:
        if "<N>" in f.form:
            candidates += [f.form.replace("<N>", d) for d in digits] or list(f.examples)
    valid = [c for c in candidates if any(f.match(_key(c)) for f in GRAMMAR) and not re.search(r"(?<![0-9])0+$", c)]
    close = difflib.get_close_matches(name.strip().lower(), valid, n=3, cutoff=0.5)
    note = ("; racl's CW is CW-inf (cw, cwinf<N>), the L2 attack of Carlini & Wagner is not provided"
            if key.startswith("cw") else "")
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    shown = name if len(name) <= 40 else name[:40] + "..."
    return f"unknown attack {shown!r}{hint}{note}; known: {', '.join(list_attacks())} (see racl evaluate --help)"


def list_attacks() -> list[str]:
    return [f.form for f in GRAMMAR]


def grammar_help() -> str:
    """The grammar as help text: each form and what it runs."""
    return "; ".join(f"{f.form}: {f.meaning}" for f in GRAMMAR)


def build_attack(name: str, model: nn.Module, eps: float, **kw: Any) -> Attack:
    """An attack by name; unknown names raise RaclError with the closest known ones.
    Extra keyword arguments go to the attack's constructor (alpha, n_iter, n_restarts, ...)."""
    form, steps = _parse(name)
    return form.build(model, eps, **kw) if steps is None else form.build(model, eps, steps, **kw)


def parse_attack_list(text: str) -> list[str]:
    """'fgsm,pgd20, cw' -> ['fgsm', 'pgd20', 'cw'], each name checked (without building anything)."""
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    if not names:
        raise RaclError(f"no attacks in {text!r}; e.g. --attacks fgsm,pgd20,autoattack")
    for name in names:
        _parse(name)
    return names


NORM_NAMES = {"linf": "L-inf", "l2": "L2", "l1": "L1"}


def describe(attack: Attack) -> dict[str, Any]:
    """What `attack` runs: class, norm, eps, steps, step size, loss, random start (and restarts or
    AutoAttack's version and attacks). Written into every evaluation result beside its numbers."""
    norm = str(getattr(attack, "norm", "linf")).lower()
    out: dict[str, Any] = {"attack": type(attack).__name__, "norm": NORM_NAMES.get(norm, norm),
                           "eps": float(attack.eps)}
    if isinstance(attack, AutoAttack):
        n_iter = attack.n_iter if attack.version == "custom" and attack.n_iter is not None else 100
        standard = ["apgd-ce", "apgd-t", "fab-t", "square"]  # the standard version's attacks (Croce & Hein)
        out.update(version=attack.version, attacks=list(attack.attacks_to_run) or standard, steps=n_iter,
                   step_size=None,
                   loss="ce+dlr", random_start=True, restarts=attack.n_restarts if attack.version == "custom" else 1)
        return out
    loss = getattr(attack, "loss", "ce")
    out.update(steps=int(getattr(attack, "steps", 1)), step_size=float(attack.alpha),
               loss=loss if isinstance(loss, str) else "ce", random_start=bool(getattr(attack, "random_start", False)))
    if getattr(attack, "restarts", 1) != 1:
        out["restarts"] = attack.restarts
    return out
