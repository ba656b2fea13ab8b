"""Attacks: budgets, [0, 1] range, model state restored, no weight gradients, agreement with torchattacks."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from racl.attacks import (CW, FGSM, MIFGSM, PGD, AutoAttack, build_attack, format_eps, margin_loss,
                          parse_attack_list, parse_eps, parse_eps_list, transfer_attack)
from racl.errors import RaclError

from _tiny import make_data, tiny_cnn

EPS = 4 / 255  # on the task below: clean ~89%, PGD-20 ~57% (non-trivial, so comparisons mean something)


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 4) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(epochs):
        perm = torch.randperm(images.shape[0])
        for i in range(0, images.shape[0], 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained once on 2000 synthetic images; 500 held-out test images."""
    images, labels = make_data(2500)
    model = train(tiny_cnn(), images[:2000], labels[:2000])
    return model, images[2000:], labels[2000:]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


ATTACKS = {
    "fgsm": lambda m: FGSM(m, EPS),
    "fgsm_rs": lambda m: FGSM(m, EPS, random_start=True),
    "pgd10": lambda m: PGD(m, EPS, alpha=1 / 255, steps=10),
    "pgd_restarts_margin": lambda m: PGD(m, EPS, alpha=1 / 255, steps=5, restarts=3, loss="margin"),
    "mifgsm": lambda m: MIFGSM(m, EPS),
    "cw": lambda m: CW(m, EPS, alpha=1 / 255, steps=10),
    "cw_kappa": lambda m: CW(m, EPS, alpha=1 / 255, steps=10, kappa=0.0),
    "apgd": lambda m: AutoAttack(m, EPS, version="custom", attacks_to_run=("apgd-ce",), n_iter=10, n_restarts=1),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_invariants(setup, name):
    model, images, labels = setup
    x, y = images[:32], labels[:32]
    adv = ATTACKS[name](model)(x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert (adv - x).abs().max().item() <= EPS + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    clean_correct = model(x).argmax(1) == y
    adv_correct = model(adv).argmax(1) == y
    assert adv_correct.sum() <= clean_correct.sum()  # no attack makes the model more accurate (can fail)
    if name not in ("fgsm_rs",):  # every other attack must hurt this non-robust model
        assert adv_correct.float().mean() < clean_correct.float().mean()


def test_l2_pgd_stays_in_ball(setup):
    model, images, labels = setup
    x, y = images[:32], labels[:32]
    for attack in (PGD(model, 0.3, steps=5, norm="l2"), build_attack("pgdl2_5", model, 0.3, restarts=2)):
        adv = attack(x, y)
        assert (adv - x).flatten(1).norm(dim=1).max().item() <= 0.3 + 1e-5
        assert adv.min() >= 0 and adv.max() <= 1
        assert accuracy(model, adv, y) < accuracy(model, x, y)


class Probe(nn.Module):
    """Records the module's training flag at every forward; optionally raises."""

    def __init__(self, raise_after: int | None = None):
        super().__init__()
        self.seen: list[bool] = []
        self.raise_after = raise_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        if self.raise_after is not None and len(self.seen) > self.raise_after:
            raise RuntimeError("boom")
        return x


@pytest.mark.parametrize("model_mode,start_training", [("eval", True), ("eval", False), ("train", False),
                                                       ("keep", True)])
def test_mode_and_requires_grad_restored(setup, model_mode, start_training):
    trained, images, labels = setup
    probe = Probe()
    model = nn.Sequential(probe, *copy.deepcopy(list(trained.children())))
    model.train(start_training)
    model[1].mean.requires_grad_(False)  # buffer, not a parameter: untouched
    model[2].bias.requires_grad_(False)  # one frozen parameter: must stay frozen
    flags = [p.requires_grad for p in model.parameters()]
    for cls in (FGSM, PGD, MIFGSM, CW):
        cls(model, EPS, model_mode=model_mode)(images[:8], labels[:8])
    expected = {"eval": False, "train": True, "keep": start_training}[model_mode]
    assert set(probe.seen) == {expected}
    assert all(m.training == start_training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_state_restored_on_exception(setup):
    trained, images, labels = setup
    model = nn.Sequential(Probe(raise_after=2), *copy.deepcopy(list(trained.children()))).train()
    with pytest.raises(RuntimeError, match="boom"):
        PGD(model, EPS, steps=5)(images[:4], labels[:4])
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_pgd_matches_torchattacks(setup):
    """Same eps/alpha/steps/random start, different seeds: robust accuracy within 1.5 points on 500 images."""
    import torchattacks  # a pinned test dependency (make install): missing = a broken install, a failure
    model, images, labels = setup
    clean = accuracy(model, images, labels)
    torch.manual_seed(1)
    ours = accuracy(model, PGD(model, EPS, alpha=1 / 255, steps=20, random_start=True)(images, labels), labels)
    torch.manual_seed(2)
    theirs_attack = torchattacks.PGD(model, eps=EPS, alpha=1 / 255, steps=20, random_start=True)
    theirs = accuracy(model, theirs_attack(images, labels), labels)
    assert clean > 0.6 and 0.05 * clean < ours < 0.95 * clean, (clean, ours)
    assert abs(ours - theirs) <= 0.015, (ours, theirs)


def test_restarts_never_help_the_model(setup):
    model, images, labels = setup
    x, y = images[:200], labels[:200]
    torch.manual_seed(3)
    one = accuracy(model, PGD(model, EPS, alpha=1 / 255, steps=5)(x, y), y)
    torch.manual_seed(3)
    three = accuracy(model, PGD(model, EPS, alpha=1 / 255, steps=5, restarts=3)(x, y), y)
    assert three <= one


@pytest.mark.slow
def test_autoattack_not_weaker_than_pgd(setup):
    model, images, labels = setup
    x, y = images[:100], labels[:100]
    torch.manual_seed(0)
    pgd = accuracy(model, build_attack("pgd20", model, EPS, alpha=1 / 255)(x, y), y)
    aa = AutoAttack(model, EPS, version="custom", attacks_to_run=("apgd-ce", "apgd-t"), seed=0,
                    n_restarts=1)
    assert accuracy(model, aa(x, y), y) <= pgd + 0.01


def test_margin_loss():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    labels = torch.tensor([0, 2])
    assert torch.allclose(margin_loss(logits, labels), torch.tensor([-1.0, 4.0]))
    assert torch.allclose(margin_loss(logits, labels, kappa=0.0), torch.tensor([-1.0, 0.0]))


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.031", 0.031), (" 16 / 255 ", 16 / 255),
                                        ("0", 0.0), ("1", 1.0), (0.5, 0.5), (0, 0.0), ("1e-2", 0.01)])
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "-1", "2", "1/0", "nan", "inf", "", "8/255/2", "300/255", True, -0.1])
def test_parse_eps_rejects(text):
    with pytest.raises(RaclError):
        parse_eps(text)


def test_eps_lists_and_format():
    assert parse_eps_list("0,2/255,8/255") == pytest.approx([0, 2 / 255, 8 / 255])
    with pytest.raises(RaclError):
        parse_eps_list("0,,8/255")
    assert [format_eps(e) for e in (0.0, 8 / 255, 0.031)] == ["0", "8/255", "0.031"]


def test_build_attack_names():
    model = tiny_cnn()
    assert isinstance(build_attack("fgsm", model, EPS), FGSM)
    assert build_attack("pgd7", model, EPS).steps == 7
    assert build_attack("PGD-100", model, EPS).steps == 100
    assert build_attack("pgd20", model, EPS).alpha == pytest.approx(EPS / 4)  # the one default rule: eps / 4
    assert build_attack("pgd20", model, 8 / 255).alpha == pytest.approx(2 / 255)  # method.md's 2/255 at 8/255
    assert build_attack("pgdl2_5", model, 0.5).alpha == pytest.approx(0.5 / 4) and CW(model, EPS).alpha == EPS / 4
    assert build_attack("pgdl2_5", model, 0.5).norm == "l2"
    assert build_attack("cw", model, EPS).steps == 30 and build_attack("cwinf50", model, EPS).steps == 50
    assert build_attack("mifgsm", model, EPS, steps=4).alpha == pytest.approx(EPS / 4)
    assert isinstance(build_attack("autoattack", model, EPS), AutoAttack)
    with pytest.raises(RaclError, match="known: .*pgd<N>"):
        build_attack("deepfool", model, EPS)
    with pytest.raises(RaclError):
        build_attack("pgd0", model, EPS)
    assert parse_attack_list("fgsm, pgd20,cw") == ["fgsm", "pgd20", "cw"]
    with pytest.raises(RaclError):
        parse_attack_list("fgsm,bogus")


@pytest.mark.parametrize("name, norm, steps", [("fgsm", "L-inf", 1), ("pgd", "L-inf", 10), ("PGD-20", "L-inf", 20),
                                               ("pgdl2_20", "L2", 20), ("pgd_l2_7", "L2", 7), ("mifgsm", "L-inf", 10),
                                               ("cw", "L-inf", 30), ("cwinf5", "L-inf", 5), ("apgd-ce", "L-inf", 100)])
def test_each_name_parses_to_one_attack_that_says_what_it_runs(name, norm, steps):
    from racl.attacks.registry import GRAMMAR, _key, describe

    model = tiny_cnn()
    assert sum(bool(f.match(_key(name))) for f in GRAMMAR) == 1  # closed: exactly one form
    d = describe(build_attack(name, model, 0.25))
    assert (d["norm"], d["steps"], d["eps"]) == (norm, steps, 0.25)
    if d["attack"] != "AutoAttack":
        assert d["step_size"] == pytest.approx(0.25 if name == "fgsm" else 0.025 if name == "mifgsm" else 0.25 / 4)


@pytest.mark.parametrize("name, suggestion", [("cw2", "cwinf2"), ("pgdx", "pgd"), ("pgd-l2", "pgdl2_2"),
                                              ("autoatack", "autoattack"), ("cwl2", "cw")])
def test_names_outside_the_grammar_are_refused_with_the_closest(name, suggestion):
    with pytest.raises(RaclError, match=rf"unknown attack .*did you mean [^)]*\b{suggestion}\b.*known: fgsm, pgd, "):
        parse_attack_list(name)


def test_the_grammar_is_what_help_lists():
    from racl.attacks.registry import GRAMMAR, grammar_help
    from racl.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    text = " ".join(sub.choices["evaluate"].format_help().split())
    assert all(f"{f.form}: {f.meaning}" in text for f in GRAMMAR) and grammar_help() in text


def test_bad_inputs_are_errors():
    model = tiny_cnn()
    x, y = make_data(4)
    with pytest.raises(RaclError, match="float"):
        FGSM(model, EPS)((x * 255).to(torch.uint8), y)
    with pytest.raises(RaclError, match=r"\[0, 1\]"):
        FGSM(model, EPS)(x * 2 - 0.5, y)
    with pytest.raises(RaclError, match="labels"):
        FGSM(model, EPS)(x, y[:2])
    for bad in (lambda: PGD(model, 2.0), lambda: PGD(model, EPS, norm="l1"), lambda: PGD(model, EPS, loss="x"),
                lambda: FGSM(model, EPS, model_mode="test"), lambda: AutoAttack(model, EPS, version="custom")):
        with pytest.raises(RaclError):
            bad()


def test_transfer_attack(setup):
    model, images, labels = setup
    x, y = images[:64], labels[:64]
    other = tiny_cnn().eval()  # untrained: ~10% clean accuracy
    other.train()
    accs = transfer_attack(model, [model, other], "pgd10", x, y, EPS, batch_size=32, alpha=1 / 255)
    assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
    assert accs[0] < accuracy(model, x, y)  # white-box on the source itself
    assert accs[1] <= accuracy(other.eval(), x, y)
    named = transfer_attack(model, {"a": model, "b": other.train()}, "fgsm", x, y, EPS)
    assert set(named) == {"a", "b"} and other.training  # target's mode restored


def test_apgd_names_build_the_custom_autoattack() -> None:
    from racl.attacks.registry import build_attack

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    assert build_attack("apgd-ce", model, 8 / 255).attacks_to_run == ("apgd-ce",)
    assert build_attack("apgd", model, 8 / 255).attacks_to_run == ("apgd-ce", "apgd-t")
    # the standard version's settings: 1 restart (pyautoattack's custom version would run 5)
    built = build_attack("apgd-ce", model, 8 / 255)._build(torch.rand(2, 3, 4, 4))
    assert (built.apgd.n_restarts, built.apgd.n_iter, built.apgd_targeted.n_restarts) == (1, 100, 1)
    assert build_attack("apgd-ce", model, 8 / 255, n_restarts=5).n_restarts == 5


def test_autoattack_checks_the_model_on_its_first_batch_only() -> None:
    """pyautoattack's model checks (7 forwards per call) run once per AutoAttack object; their warning
    is kept, the package's checks module is left as it was, and the attack itself is unchanged."""
    import importlib

    from racl.attacks.autoattack import MODEL_CHECKS, _import_autoattack

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3), nn.Softmax(dim=1))  # softmax: warned of
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    x, y = torch.rand(6, 3, 4, 4), torch.zeros(6, dtype=torch.long)
    y = model(x).argmax(1)
    checks = importlib.import_module(_import_autoattack().__module__).checks
    before = {name: getattr(checks, name) for name in MODEL_CHECKS}
    attack = AutoAttack(model, 8 / 255, version="custom", attacks_to_run=("apgd-ce",), n_iter=3)
    counts, advs = [], []
    for _ in range(2):
        calls.clear()
        advs.append(attack(x, y))
        counts.append(len(calls))
    assert counts[0] - counts[1] == 7, counts
    assert any("probability" in w for w in attack.warnings)
    assert {name: getattr(checks, name) for name in MODEL_CHECKS} == before
    fresh = AutoAttack(model, 8 / 255, version="custom", attacks_to_run=("apgd-ce",), n_iter=3)(x, y)
    assert torch.equal(advs[1], fresh) and torch.equal(advs[0], fresh)
