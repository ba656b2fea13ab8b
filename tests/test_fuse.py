"""Eval-mode BN folding (racl.models.fuse) and the attacks that run on the folded copy."""
from pathlib import Path

import pytest
import torch
from torch import nn

import racl.models
from racl.attacks import PGD
from racl.models import build_model
from racl.models.fuse import fold_batchnorm
from racl.search.config import get_preset
from racl.search.strategies import build_strategy
from racl.search_space.darts import DARTS
from racl.search_space.darts.supernet import Supernet
from racl.supernet import FixedArch


def _trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.25)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


CASES = [("RACL", dict(channels=4, layers=3), "fast"), ("DARTS_V2", dict(channels=4, layers=3), "reference"),
         ("resnet18", dict(width=4), "fast")]


@pytest.mark.parametrize("name,kwargs,ops", CASES, ids=[c[0] for c in CASES])
def test_folded_copy_is_the_same_function(name, kwargs, ops):
    torch.manual_seed(0)
    model = _trained_like(build_model(name, num_classes=5, ops=ops, **kwargs))
    folded, count = fold_batchnorm(model)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert count == len(bns)  # every BN here follows a conv
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(3, 3, 8, 8, requires_grad=True)
    y = model(x)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    y2 = folded(x2)
    (gx2,) = torch.autograd.grad(y2.square().sum(), x2)
    assert torch.allclose(y, y2, rtol=1e-4, atol=1e-5)
    assert torch.allclose(gx, gx2, rtol=1e-3, atol=1e-6 * gx.abs().max().item())
    assert isinstance(bns[0], nn.BatchNorm2d) and model.training is False  # the original is untouched


def test_wide_resnet_preactivation_bns_are_left_alone():
    from racl.models.wide_resnet import WideResNet

    model = _trained_like(WideResNet(10, 1, num_classes=3))
    folded, count = fold_batchnorm(model)
    assert count == 0 and folded is model  # nothing to fold: no copy is made
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(model(x), folded(x))


def test_pgd_on_the_folded_copy_matches_pgd_on_the_model():
    torch.manual_seed(0)
    model = _trained_like(build_model("RACL", num_classes=4, channels=4, layers=3))
    x, y = torch.rand(16, 3, 8, 8), torch.randint(0, 4, (16,))
    attacks = [PGD(model, eps=8 / 255, steps=5), PGD(model, eps=8 / 255, steps=5)]
    attacks[1].fold_bn = False
    advs = []
    for attack in attacks:
        torch.manual_seed(1)
        advs.append(attack(x, y))
    # sign steps can flip only where a gradient component is ~0: nearly all pixels agree
    agree = (advs[0] - advs[1]).abs().lt(1e-6).float().mean().item()
    assert agree > 0.99
    assert all(p.requires_grad for p in model.parameters()) and not model.training


def test_a_supernet_is_attacked_as_it_is():
    """The supernet's cells read their ops' BN modules themselves: no folding there (attack_mode eval).
    It says so itself (KEEPS_BATCHNORM): racl.models never imports racl.supernet."""
    torch.manual_seed(0)
    net = Supernet(num_classes=4, channels=4, layers=3).eval()
    strategy = build_strategy(get_preset("tiny"), DARTS, net, (3, 8, 8))
    model = FixedArch(net, strategy.sample_weights(torch.Generator().manual_seed(0)))
    assert fold_batchnorm(model) == (model, 0)
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 4, (4,))
    adv = PGD(model, eps=8 / 255, steps=2)(x, y)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    models = Path(racl.models.__file__).parent
    assert not [f.name for f in models.glob("*.py")
                if "racl.supernet" in f.read_text() or "darts.supernet" in f.read_text()]


@pytest.mark.parametrize("name,kwargs", [("RACL", dict(channels=4, layers=3)), ("resnet18", dict(width=4))])
def test_training_attack_keeps_one_folded_copy(name, kwargs, monkeypatch):
    """Issue 28 point 6: over several training steps (weights and BN statistics changing) the training
    objective's eval-mode attack crafts exactly the examples a fresh fold (a deep copy per step, as
    before) gives, and deep-copies the network once, not once per step."""
    import copy

    import racl.models.fuse as fuse
    from _tiny import train_config
    from racl.training.losses import make_objective

    torch.manual_seed(0)
    model = build_model(name, num_classes=5, **kwargs)
    cfg = train_config(adv="pgd", steps=3, eps=8 / 255).resolved()
    objective = make_objective(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    copies = {"n": 0}
    real_deepcopy = copy.deepcopy

    def counted(obj, *args):
        copies["n"] += obj is model
        return real_deepcopy(obj, *args)

    monkeypatch.setattr(fuse.copy, "deepcopy", counted)
    x, y = torch.rand(6, 3, 8, 8), torch.randint(0, 5, (6,))
    attack = _attack_of(objective)
    model.train()
    for step in range(4):
        torch.manual_seed(step)
        adv_kept = attack(x, y)  # the objective's attack: its kept copy, refreshed
        torch.manual_seed(step)
        adv_fresh = cfg.attack.attack(model, "pgd", model_mode="eval")(x, y)  # a new attack: a new copy
        assert torch.equal(adv_kept, adv_fresh), f"step {step}"
        out = objective(x, y)  # a training step (its attack reuses the copy too)
        opt.zero_grad()
        out.loss.backward()
        opt.step()  # the weights and, in train mode, the BN statistics change
    assert copies["n"] == 1 + 4  # the objective's one copy, and one per fresh attack


def _attack_of(objective):
    """The attack a make_objective closure holds."""
    from racl.attacks.base import Attack

    found = [c.cell_contents for c in objective.__closure__ if isinstance(c.cell_contents, Attack)]
    assert len(found) == 1
    return found[0]
