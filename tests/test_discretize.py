"""Discretisation: planted genotypes are recovered, the quantile rule prefers certain weights, no `none`."""
import math

import pytest
import torch

from racl.distributions import ArchDistribution
from racl.errors import RaclError
from racl.search.discretize import choose, discretize, selection_weights
from racl.search_space import PRIMITIVES, Genotype, get_genotype
from racl.search_space.darts import DARTS

TOPO = DARTS.topology()
E, O = 14, 8
NORMAL = (("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_5x5", 2), ("sep_conv_5x5", 0),
          ("max_pool_3x3", 3), ("avg_pool_3x3", 1), ("dil_conv_3x3", 4), ("sep_conv_3x3", 2))
REDUCE = (("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 2), ("dil_conv_3x3", 1),
          ("avg_pool_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2), ("max_pool_3x3", 4))
PLANTED = Genotype(NORMAL, (2, 3, 4, 5), REDUCE, (2, 3, 4, 5))


def edge(node: int, inp: int) -> int:
    return sum(k + 2 for k in range(node)) + inp


def per_node(cell):
    return [set(cell[2 * j:2 * j + 2]) for j in range(len(cell) // 2)]


def from_scores(dist: ArchDistribution, kind: str, eta: float = 0.9) -> Genotype:
    """The genotype the racl strategy reads off a distribution: op scores and product (edge) scores."""
    alpha = {t: w.alpha for t, w in dist.scores(kind, eta).items()}
    return DARTS.genotype(discretize(alpha, dist.edge_scores(kind, eta), TOPO))


def from_alpha_beta(alpha: dict, beta: dict) -> Genotype:
    """DARTS's rule with beta scores: edge score beta_e * alpha_eo."""
    edge = {t: beta[t].unsqueeze(-1) * alpha[t] for t in alpha}
    return DARTS.genotype(discretize(alpha, edge, TOPO))


@torch.no_grad()
def plant(dist: ArchDistribution, genotype: Genotype) -> None:
    """Small uncertain weights everywhere, a huge `none`, large certain weights on the planted path."""
    for cell in ("normal", "reduce"):
        mu, log_sigma = getattr(dist, f"{cell}_alpha_mu"), getattr(dist, f"{cell}_alpha_log_sigma")
        b_mu = getattr(dist, f"{cell}_beta_mu")
        mu.fill_(math.log(0.05))
        mu[:, 0] = math.log(50.0)  # `none` dominates everywhere: it must still never be chosen
        log_sigma.fill_(math.log(0.3))
        b_mu.fill_(math.log(0.1))
        for k, (op, i) in enumerate(getattr(genotype, cell)):
            e = edge(k // 2, i)
            mu[e, PRIMITIVES.index(op)] = math.log(2.0)
            log_sigma[e, PRIMITIVES.index(op)] = math.log(0.05)
            b_mu[e] = math.log(3.0 if k % 2 == 0 else 2.0)  # first listed edge of a node is the best


@pytest.mark.parametrize("cov", ["full", "diag"])
@pytest.mark.parametrize("kind", ["quantile", "mean", "median"])
def test_planted_genotype_is_recovered(cov, kind):
    dist = ArchDistribution(TOPO, cov=cov)
    plant(dist, PLANTED)
    assert from_scores(dist, kind) == PLANTED  # same edges, same order (best first)


def test_quantile_prefers_a_certain_weight_to_a_large_uncertain_one():
    dist = ArchDistribution(TOPO, cov="diag")
    plant(dist, PLANTED)
    e, certain, risky = edge(0, 1), PRIMITIVES.index("sep_conv_3x3"), PRIMITIVES.index("dil_conv_3x3")
    assert float(dist.normal_alpha_mu[e, certain].detach()) == pytest.approx(math.log(2.0))  # planted: 2.0, sigma 0.05
    with torch.no_grad():
        dist.normal_alpha_mu[e, risky], dist.normal_alpha_log_sigma[e, risky] = math.log(1.8), math.log(1.5)
    # risky: mean 1.8 exp(1.5^2 / 2) = 5.55 > 2.0;  10% quantile 1.8 exp(-1.28 * 1.5) = 0.26 < 2 exp(-1.28 * 0.05)
    assert from_scores(dist, "quantile").normal[0] == ("sep_conv_3x3", 1)
    assert from_scores(dist, "mean").normal[0] == ("dil_conv_3x3", 1)


@pytest.mark.parametrize("seed", range(5))
def test_never_none_even_when_none_wins(seed):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(E, O, generator=g)
    alpha[:, 0] = 10.0
    genotype = from_alpha_beta({"normal": alpha, "reduce": alpha.flip(0)},
                               {"normal": torch.rand(E, generator=g), "reduce": torch.rand(E, generator=g)})
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    for cell in (genotype.normal, genotype.reduce):
        for j in range(4):
            inputs = [i for _, i in cell[2 * j:2 * j + 2]]
            assert len(set(inputs)) == 2 and all(0 <= i < j + 2 for i in inputs)


def darts_parse(weights: torch.Tensor) -> list:
    """DARTS's own `_parse` (quark0/darts model_search.py), for comparison."""
    gene, start, n = [], 0, 2
    w = weights.tolist()
    for i in range(4):
        W = w[start:start + n]
        edges = sorted(range(i + 2), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != 0))[:2]
        for j in edges:
            k_best = max((k for k in range(len(W[j])) if k != 0), key=lambda k: W[j][k])
            gene.append((PRIMITIVES[k_best], j))
        start, n = start + n, n + 1
    return gene


@pytest.mark.parametrize("seed", range(3))
def test_beta_one_is_darts_rule(seed):
    alpha = torch.softmax(torch.randn(E, O, generator=torch.Generator().manual_seed(seed)), -1)
    assert [(op, i) for _, i, op in choose(alpha, None, TOPO)] == darts_parse(alpha)


@pytest.mark.parametrize("name", ["DARTS_V2", "PC_DARTS", "RACL"])
def test_genotype_weights_round_trip(name):
    genotype = get_genotype(name)
    w = selection_weights(DARTS.selection(genotype), TOPO)
    assert w["normal"].alpha.sum() == 8 and w["normal"].beta.sum() == 8
    assert sum(map(sum, w["normal"].mask)) == 8  # only the genotype's ops are computed
    back = from_alpha_beta({t: c.alpha for t, c in w.items()}, {t: c.beta for t, c in w.items()})
    for cell in ("normal", "reduce"):
        assert per_node(getattr(back, cell)) == per_node(getattr(genotype, cell))


def test_bad_scores_are_errors():
    with pytest.raises(RaclError):
        choose(torch.ones(3, O), None, TOPO)
    bad = torch.ones(E, O)
    bad[0, 1] = float("nan")
    with pytest.raises(RaclError):
        choose(bad, None, TOPO)
