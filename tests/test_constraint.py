"""ConfidenceConstraint: g, penalty, dual update and Pr(L_F <= L_bar) against hand-computed numbers."""
import math

import pytest
import torch

from racl.errors import RaclError
from racl.search.constraint import ConfidenceConstraint

Z90 = 1.2815515655446004  # Phi^-1(0.9)


def t(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def val(x: torch.Tensor) -> float:
    return float(x.detach())


def make(nu: float = 0.3, rho: float = 2.0, log_lbar: float = 2.5, **kw) -> ConfidenceConstraint:
    c = ConfidenceConstraint(eta=0.9, rho=rho, nu0=nu, **kw)
    c.set_log_lbar(log_lbar)
    return c


def test_g_and_penalty_when_violated():
    c = make()
    mu, sigma = t(2.0), t(0.5)
    g = c.g(mu, sigma)
    assert c.z == pytest.approx(Z90, abs=1e-12)
    assert float(g.detach()) == pytest.approx(2.0 + Z90 * 0.5 - 2.5, abs=1e-12)  # 0.1407758
    p = c.penalty(mu, sigma)
    assert float(p.detach()) == pytest.approx(0.3 * 0.1407757827723002 + 0.5 * 2.0 * 0.1407757827723002 ** 2, abs=1e-12)
    p.backward()
    # d/d mu = nu + rho * max(0, g); d/d sigma = z * (the same)
    assert float(mu.grad) == pytest.approx(0.3 + 2.0 * 0.1407757827723002, abs=1e-12)
    assert float(sigma.grad) == pytest.approx(Z90 * (0.3 + 2.0 * 0.1407757827723002), abs=1e-12)


def test_penalty_when_satisfied_is_linear_only():
    c = make()
    g = 1.0 + Z90 * 0.5 - 2.5  # -0.859224
    assert float(c.penalty(t(1.0), t(0.5)).detach()) == pytest.approx(0.3 * g, abs=1e-12)


def test_dual_update_ascends_and_clips_at_zero():
    c = make()
    c.dual_update(0.1407757827723002)
    assert float(c.nu) == pytest.approx(0.3 + 2.0 * 0.1407757827723002, abs=1e-12)
    assert float(c.rho) == pytest.approx(2.0)  # fixed
    c.dual_update(-10.0)
    assert float(c.nu) == 0.0
    with pytest.raises(RaclError):
        c.dual_update(float("nan"))


def test_prob_within_bound():
    c = make()
    assert val(c.prob_within_bound(t(2.0), t(0.5))) == pytest.approx(0.8413447460685429, abs=1e-12)  # Phi(1)
    # on the boundary g = 0 the probability is exactly eta
    mu = 2.5 - Z90 * 0.7
    assert val(c.g(t(mu), t(0.7))) == pytest.approx(0.0, abs=1e-12)
    assert val(c.prob_within_bound(t(mu), t(0.7))) == pytest.approx(0.9, abs=1e-12)
    assert val(c.prob_within_bound(t(2.0), t(0.0))) == 1.0
    assert val(c.prob_within_bound(t(3.0), t(0.0))) == 0.0


def test_relative_lbar_is_k_times_tighter_than_the_start():
    c = ConfidenceConstraint(eta=0.9)
    assert not c.is_set
    with pytest.raises(RaclError):
        c.g(t(1.0), t(1.0))
    log_lbar = c.set_relative(3.0, 0.2, factor=2.0)
    assert log_lbar == pytest.approx(3.0 + Z90 * 0.2 - math.log(2.0), abs=1e-12)
    assert val(c.g(t(3.0), t(0.2))) == pytest.approx(math.log(2.0), abs=1e-12)


def test_state_dict_round_trip():
    c = make()
    c.dual_update(1.0)
    d = ConfidenceConstraint(eta=0.9)
    d.load_state_dict(c.state_dict())
    assert d.is_set and float(d.nu) == float(c.nu) and float(d.log_lbar) == 2.5 and float(d.rho) == 2.0
    assert set(c.state_dict()) == {"nu", "rho", "log_lbar", "lbar_set"}
