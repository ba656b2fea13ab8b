"""Log-normal architecture distributions and the Fenton-Wilkinson algebra: seeded statistical checks."""
from __future__ import annotations

import math

import pytest
import torch

from racl.distributions import ArchDistribution, LogGaussian, delta_logsumexp, fw_logsumexp, log_normalize
from racl.errors import RaclError
from racl.search_space import CellTopology
from racl.search_space.darts import DARTS

N = 20_000  # samples for the statistical checks
TOPO = DARTS.topology()
SIZES = [2, 3, 4, 5]  # incoming edges of the DARTS nodes
NODE_OF_EDGE = torch.tensor([j for j, size in enumerate(SIZES) for _ in range(size)])


def _perturbed(cov: str = "full", normalize: bool = False, seed: int = 0, sigma: float = 0.3,
               topo: CellTopology = TOPO) -> ArchDistribution:
    """Random means, log-sigmas around ln(sigma) and random strictly-lower factors."""
    dist = ArchDistribution(topo, cov=cov, normalize=normalize, init_sigma=sigma)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dist.named_parameters():
            scale = 0.5 if name.endswith("mu") else 0.3 if name.endswith("log_sigma") else 0.15
            p.add_(scale * torch.randn(p.shape, generator=g))
    return dist


def _factor(log_sigma: torch.Tensor, offdiag: torch.Tensor | None) -> torch.Tensor:
    """L written out from the parameters as documented (distributions/arch.py), independently of the
    code: diagonal exp(log_sigma), strictly-lower entries in row-major order (row 1: (1,0); row 2:
    (2,0), (2,1); ...). The test parameters stay inside the clamping ranges."""
    n = log_sigma.shape[0]
    rows = [[0.0] * n for _ in range(n)]
    k = 0
    for r in range(n):
        rows[r][r] = math.exp(float(log_sigma[r]))
        for c in range(r):
            rows[r][c] = 0.0 if offdiag is None else float(offdiag[k])
            k += 1
    return torch.tensor(rows)


def _blocks(dist: ArchDistribution, t: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(means, covariances LL^T) per edge (alpha) and per node (beta), from the parameters."""
    mu_a, mu_b = getattr(dist, f"{t}_alpha_mu").detach(), getattr(dist, f"{t}_beta_mu").detach()
    ls_a, ls_b = getattr(dist, f"{t}_alpha_log_sigma").detach(), getattr(dist, f"{t}_beta_log_sigma").detach()
    off_a, off_b = getattr(dist, f"{t}_alpha_offdiag", None), getattr(dist, f"{t}_beta_offdiag", None)
    factors = [_factor(ls_a[e], None if off_a is None else off_a[e].detach()) for e in range(ls_a.shape[0])]
    start, ostart = 0, 0
    for n in SIZES:
        k = n * (n - 1) // 2
        factors.append(_factor(ls_b[start:start + n], None if off_b is None else off_b[ostart:ostart + k].detach()))
        start, ostart = start + n, ostart + k
    means = list(mu_a.unbind(0)) + list(mu_b.split(SIZES))
    return means, [f @ f.T for f in factors]


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_log_sample_moments_match_parameters(cov: str) -> None:
    # standard errors at N = 20k, sigma <= ~0.6: mean ~0.004, covariance entry ~0.003; tolerance 0.025
    # (>5 standard errors) still catches a wrong factor (e.g. L^T L instead of L L^T differs by > 0.05)
    dist = _perturbed(cov)
    logs = dist.sample_log(N, torch.Generator().manual_seed(1))
    with torch.no_grad():
        for t in ("normal", "reduce"):
            alpha, beta = logs[t].alpha, logs[t].beta
            samples = list(alpha.unbind(1)) + list(beta.split(SIZES, dim=1))
            for x, (mean, cov_true) in zip(samples, zip(*_blocks(dist, t), strict=True), strict=True):
                torch.testing.assert_close(x.mean(0), mean, atol=0.025, rtol=0)
                torch.testing.assert_close(torch.cov(x.T), cov_true, atol=0.025, rtol=0)
                if cov == "diag":
                    assert (cov_true - torch.diag(cov_true.diagonal())).abs().max() == 0
            # the code's own factors are the documented ones (the moments above could not tell if both were off)
            for ours, ref in zip(dist._blocks(t), _blocks(dist, t)[1], strict=True):
                torch.testing.assert_close(ours @ ours.T, ref)


def test_initial_means() -> None:
    # E[alpha] = 1/8, E[beta] = 1 at init; std of one weight ~ 0.1 * mean, so the mean of 20k samples
    # over 14 edges has relative standard error ~2e-4: tolerance 3e-3 relative
    dist = ArchDistribution(TOPO, init_sigma=0.1)
    logs = dist.sample_log(N, torch.Generator().manual_seed(2))
    with torch.no_grad():
        for key, x in [(f"{t}_{k}", getattr(w, k)) for t, w in logs.items() for k in ("alpha", "beta")]:
            target = 1 / 8 if key.endswith("alpha") else 1.0
            assert abs(x.exp().mean().item() / target - 1) < 3e-3, key
            assert abs(x.std(0).mean().item() - 0.1) < 3e-3, key


def test_gradients_reach_every_parameter() -> None:
    dist = _perturbed()
    w = dist.sample(torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    sum((x * torch.randn(x.shape, generator=g)).sum() for c in w.values() for x in (c.alpha, c.beta)).backward()
    for name, p in dist.named_parameters():
        assert p.grad is not None and (p.grad != 0).all(), name


def test_parameters_and_state_dict_round_trip() -> None:
    dist = _perturbed()
    names = {n for n, _ in dist.named_parameters()}
    for t in ("normal", "reduce"):
        for part in ("alpha", "beta"):
            assert {f"{t}_{part}_{s}" for s in ("mu", "log_sigma", "offdiag")} <= names
    assert names == set(dist.state_dict())
    assert {n for n, _ in ArchDistribution(TOPO, cov="diag").named_parameters()} == {n for n in names
                                                                                      if "offdiag" not in n}
    clone = ArchDistribution(TOPO)
    clone.load_state_dict(dist.state_dict())
    a = dist.sample(torch.Generator().manual_seed(5))
    b = clone.sample(torch.Generator().manual_seed(5))
    assert a.keys() == b.keys() == {"normal", "reduce"}
    for t in a:
        assert torch.equal(a[t].alpha, b[t].alpha) and torch.equal(a[t].beta, b[t].beta)
    c = dist.sample(torch.Generator().manual_seed(6))
    assert not torch.equal(a["normal"].alpha, c["normal"].alpha)  # a fresh sample each call


def test_normalize_gives_the_expected_cell() -> None:
    # alpha over the 7 real ops sums to 1 (`none` gets 0), beta over a node's edges sums to 2
    dist = _perturbed(normalize=True)
    w = dist.sample(torch.Generator().manual_seed(7))
    torch.testing.assert_close(w["normal"].alpha.sum(-1), torch.ones(14))
    assert torch.all(w["normal"].alpha[:, 0] == 0) and torch.all(w["reduce"].alpha[:, 1:] > 0)
    for j, size in enumerate(SIZES):
        torch.testing.assert_close(w["reduce"].beta[NODE_OF_EDGE == j].sum(), torch.tensor(2.0))
    ref = dist.reference_weights()
    torch.testing.assert_close(ref["normal"].alpha.sum(-1), torch.ones(14))
    for j, size in enumerate(SIZES):
        torch.testing.assert_close(ref["normal"].beta[NODE_OF_EDGE == j], torch.full((size,), 2 / size))


def test_a_space_without_edge_choice_has_no_beta() -> None:
    # NAS-Bench-201-like topology: 1 input, 3 nodes, every edge kept, `none` choosable: beta is fixed
    # at 1 (no parameters, no noise) and normalised alpha sums to 1 over all ops, `none` included
    topo = CellTopology(("cell",), ("none", "a", "b"), num_inputs=1, steps=3, keep_edges=None, none_choosable=True)
    dist = _perturbed(normalize=True, topo=topo)
    assert not any("beta" in n for n, _ in dist.named_parameters()) and dist.noise_dim == 6 * 3
    w = dist.sample(torch.Generator().manual_seed(9))["cell"]
    torch.testing.assert_close(w.alpha.sum(-1), torch.ones(6))
    assert torch.all(w.alpha[:, 0] > 0) and torch.equal(w.beta, torch.ones(6))
    g = dist.log_gaussians()["cell"].beta
    assert torch.equal(g.m, torch.zeros(6)) and g.var.abs().max() == 0


def test_decay_pulls_towards_the_initial_distribution() -> None:
    dist = _perturbed()
    for p in dist.parameters():
        p.grad = torch.zeros_like(p)
    dist.decay_gradients(0.5)
    for name, p in dist.named_parameters():
        start = ArchDistribution(TOPO, init_sigma=0.3).state_dict()[name]
        torch.testing.assert_close(p.grad, 0.5 * (p.detach() - start))
        assert p.grad.abs().sum() > 0


def test_scores() -> None:
    dist = _perturbed()
    q, mean, med = (dist.scores(k, 0.9) for k in ("quantile", "mean", "median"))
    mu, s = dist.normal_alpha_mu.detach(), dist.log_gaussians()["normal"].alpha.var.detach().sqrt()
    torch.testing.assert_close(med["normal"].alpha, mu.exp())
    torch.testing.assert_close(q["normal"].alpha, (mu - 1.2815516 * s).exp())
    torch.testing.assert_close(mean["normal"].alpha, (mu + s * s / 2).exp())
    assert set(q) == {"normal", "reduce"} and q["reduce"].beta.shape == (14,)
    # the edge score is the quantile of the product beta * alpha, not the product of the quantiles
    g = dist.log_gaussians()
    var = (g["normal"].alpha.b + g["normal"].beta.b.unsqueeze(1)).pow(2).sum(-1)
    edge = dist.edge_scores("quantile", 0.9)["normal"]
    torch.testing.assert_close(edge, (mu + dist.normal_beta_mu.detach().unsqueeze(1) - 1.2815516 * var.sqrt()).exp())
    assert not torch.allclose(edge, q["normal"].alpha * q["normal"].beta.unsqueeze(1))
    with pytest.raises(RaclError):
        dist.scores("mode")
    with pytest.raises(RaclError):
        dist.scores("quantile", eta=1.0)


def test_normalized_scores_match_monte_carlo() -> None:
    # delta method vs 20k samples of the normalised weights' logs; measured gaps (sigma ~0.3, random
    # factors): mean <= 0.012, std <= 7% relative; tolerance 0.03 absolute / 12% relative
    dist = _perturbed(normalize=True)
    logs = dist.sample_log(N, torch.Generator().manual_seed(8))
    with torch.no_grad():
        for key, g, x in [(k, getattr(w, k), getattr(logs[t], k)) for t, w in dist.log_gaussians().items()
                          for k in ("alpha", "beta")]:
            if key == "alpha":  # `none` is -inf in both
                assert torch.all(torch.isinf(g.m[:, 0])) and torch.all(torch.isinf(x[:, :, 0]))
                g, x = LogGaussian(g.m[:, 1:], g.b[:, 1:], g.r2[:, 1:]), x[:, :, 1:]
            torch.testing.assert_close(g.m, x.mean(0), atol=0.03, rtol=0)
            torch.testing.assert_close(g.var.sqrt(), x.std(0), atol=0, rtol=0.12)


def _random_gaussian(k: int, z: int, sigma: float, seed: int) -> LogGaussian:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(k, generator=g, dtype=torch.float64)
    b = sigma * torch.randn(k, z, generator=g, dtype=torch.float64) / math.sqrt(z)
    r2 = sigma ** 2 * torch.rand(k, generator=g, dtype=torch.float64)
    return LogGaussian(m, b, r2)


@pytest.mark.parametrize("sigma", [0.2, 0.6])
def test_fenton_wilkinson_matches_monte_carlo(sigma: float) -> None:
    # ln sum_k exp(X_k) for 10 correlated terms; FW matches E[S], E[S^2] exactly, the log-moments
    # only approximately: measured |dm| = 0.0002 / 0.008, |ds|/s = 1.2% / 10.4% at sigma 0.2 / 0.6;
    # tolerance 0.03 and 20%. The Stein loadings must equal the regression of ln S on z: measured
    # max gap 0.0006 / 0.012, tolerance 0.03.
    x = _random_gaussian(10, 6, sigma, seed=9)
    s = fw_logsumexp(x)
    g = torch.Generator().manual_seed(10)
    z = torch.randn(200_000, 6, generator=g, dtype=torch.float64)
    resid = torch.randn(200_000, 10, generator=g, dtype=torch.float64) * x.r2.sqrt()
    log_s = torch.logsumexp(x.m + z @ x.b.T + resid, -1)
    assert abs(s.m - log_s.mean()) < 0.03
    assert abs(s.var.sqrt() / log_s.std() - 1) < 0.2
    # exact first moment: E[S] of the matched log-normal equals the sum of the E[exp X_k]
    torch.testing.assert_close(s.m + s.var / 2, torch.logsumexp(x.m + x.var / 2, -1))
    slope = torch.linalg.lstsq(z, (log_s - log_s.mean()).unsqueeze(-1)).solution.squeeze(-1)
    torch.testing.assert_close(s.b, slope, atol=0.03, rtol=0)


def test_sum_approximations_are_exact_for_fully_correlated_terms() -> None:
    # X_k = m_k + b.z with one shared loading: S = exp(b.z) sum_k exp(m_k) is exactly log-normal,
    # so FW and the delta method must give m_S = logsumexp(m), b_S = b, r2_S = 0 (ignoring the
    # correlations would not)
    g = torch.Generator().manual_seed(13)
    m = torch.randn(6, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(3, generator=g, dtype=torch.float64)
    for lse in (fw_logsumexp, delta_logsumexp):
        s = lse(LogGaussian(m, b.expand(6, 3), torch.zeros(6, dtype=torch.float64)))
        torch.testing.assert_close(s.m, torch.logsumexp(m, 0))
        torch.testing.assert_close(s.b, b)
        assert s.r2.abs() < 1e-10


def test_fw_drops_minus_infinity_terms() -> None:
    x = _random_gaussian(4, 3, 0.3, seed=11)
    with_inf = LogGaussian(torch.cat([x.m, torch.tensor([-math.inf], dtype=torch.float64)]),
                           torch.cat([x.b, torch.ones(1, 3, dtype=torch.float64)]),
                           torch.cat([x.r2, torch.ones(1, dtype=torch.float64)]))
    for a, b in zip(fw_logsumexp(x), fw_logsumexp(with_inf), strict=True):
        torch.testing.assert_close(a, b)


def test_log_normalize_groups() -> None:
    x = _random_gaussian(5, 4, 0.3, seed=12)
    out = log_normalize(x, [range(0, 2), range(2, 5)])
    for r in (range(0, 2), range(2, 5)):
        part = log_normalize(LogGaussian(x.m[r.start:r.stop], x.b[r.start:r.stop], x.r2[r.start:r.stop]))
        torch.testing.assert_close(out.m[r.start:r.stop], part.m)
        torch.testing.assert_close(out.b[r.start:r.stop], part.b)


def test_bad_arguments() -> None:
    with pytest.raises(RaclError):
        ArchDistribution(TOPO, cov="lowrank")
    with pytest.raises(RaclError):
        ArchDistribution(TOPO, init_sigma=0.0)
