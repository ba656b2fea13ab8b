"""Attacks by name, timm-style: `build_attack("pgd20", model, eps)`, `list_attacks()`.

Names: fgsm, pgd (10 steps) and pgd<N> (pgd7, pgd20, pgd100), pgdl2_<N> (L2 PGD), mifgsm, cw and
cw<N> (CW-inf, 30 steps by default), autoattack (standard version), apgd (AutoAttack's APGD-CE +
APGD-T, a cheaper custom version) and apgd-ce (its first attack alone), both with the standard
version's settings (100 iterations, 1 restart; pyautoattack's custom version would otherwise run APGD-CE
with 5). Extra keyword arguments go to the attack's constructor (n_iter, n_restarts, ...).
"""
from __future__ import annotations

import re
from typing import Any, Callable

from torch import nn

from racl.attacks.autoattack import AutoAttack
from racl.attacks.base import Attack
from racl.attacks.cw import CW
from racl.attacks.fgsm import FGSM
from racl.attacks.mifgsm import MIFGSM
from racl.attacks.pgd import PGD
from racl.errors import RaclError

Factory = Callable[..., Attack]
_FIXED: dict[str, Factory] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "mifgsm": MIFGSM,
    "cw": CW,
    "autoattack": AutoAttack,
    "apgd": lambda model, eps, **kw: AutoAttack(model, eps, version="custom",
                                                attacks_to_run=kw.pop("attacks_to_run", ("apgd-ce", "apgd-t")),
                                                **{"n_restarts": 1, **kw}),
    "apgdce": lambda model, eps, **kw: AutoAttack(model, eps, version="custom", attacks_to_run=("apgd-ce",),
                                                  **{"n_restarts": 1, **kw}),
}
_PATTERNS: list[tuple[re.Pattern, Factory]] = [
    (re.compile(r"^pgd([0-9]{1,7})$"), lambda model, eps, n, **kw: PGD(model, eps, steps=n, **kw)),
    (re.compile(r"^pgdl2_?([0-9]{1,7})$"), lambda model, eps, n, **kw: PGD(model, eps, steps=n, norm="l2", **kw)),
    (re.compile(r"^cw([0-9]{1,7})$"), lambda model, eps, n, **kw: CW(model, eps, steps=n, **kw)),
]


def list_attacks() -> list[str]:
    return list(_FIXED) + ["pgd<N>", "pgdl2_<N>", "cw<N>"]


def build_attack(name: str, model: nn.Module, eps: float, **kw: Any) -> Attack:
    """An attack by name; unknown names raise RaclError listing the known ones."""
    key = name.strip().lower().replace("-", "")
    if key in _FIXED:
        return _FIXED[key](model, eps, **kw)
    for pattern, factory in _PATTERNS:
        match = pattern.match(key)
        if match and int(match.group(1)) >= 1:
            return factory(model, eps, int(match.group(1)), **kw)
    raise RaclError(f"unknown attack {name!r}; known: {', '.join(list_attacks())} (e.g. pgd20, pgd100)")


def parse_attack_list(text: str) -> list[str]:
    """'fgsm,pgd20, cw' -> ['fgsm', 'pgd20', 'cw'], each name checked (without building anything)."""
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    if not names:
        raise RaclError(f"no attacks in {text!r}; e.g. --attacks fgsm,pgd20,autoattack")
    for name in names:
        key = name.replace("-", "")
        if key not in _FIXED and not any(p.match(key) for p, _ in _PATTERNS):
            raise RaclError(f"unknown attack {name!r}; known: {', '.join(list_attacks())}")
    return names
