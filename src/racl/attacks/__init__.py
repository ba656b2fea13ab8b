"""Adversarial attacks in pixel space ([0, 1]); one short file per attack, `forward` is all they override."""
from racl.attacks.autoattack import AutoAttack
from racl.attacks.base import Attack, attack_context, ce_loss, margin_loss
from racl.attacks.cw import CW
from racl.attacks.eps import default_step_size, format_eps, parse_eps, parse_eps_list
from racl.attacks.fgsm import FGSM
from racl.attacks.mifgsm import MIFGSM
from racl.attacks.pgd import PGD
from racl.attacks.registry import build_attack, list_attacks, parse_attack_list
from racl.attacks.spec import AttackSpec
from racl.attacks.transfer import transfer_attack

__all__ = ["Attack", "AttackSpec", "AutoAttack", "CW", "FGSM", "MIFGSM", "PGD", "attack_context", "build_attack",
           "ce_loss", "default_step_size", "format_eps", "list_attacks", "margin_loss", "parse_attack_list",
           "parse_eps", "parse_eps_list", "transfer_attack"]
