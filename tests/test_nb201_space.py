"""NAS-Bench-201 as a search space: the search network, the bound through it (>= measured ratios on
sampled networks; analytic vs Monte-Carlo moments), discretisation with `none`, the method end to end."""
from __future__ import annotations

import pytest
import torch

from racl.data import load_data
from racl.distributions import ArchDistribution
from racl.errors import RaclError
from racl.lipschitz.network import network_bound
from racl.models import build_model, count_parameters
from racl.search import apply_overrides, get_preset, run_search
from racl.search.discretize import discretize, selection_weights
from racl.search_space import CellWeights, get_space, map_weights, resolve_genotype
from racl.search_space.nb201 import NB201, Nb201Genotype

SHAPE = (3, 8, 8)


def _supernet(layers: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    return NB201.supernet(num_classes=4, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, channels=4,
                          layers=layers, steps=3)


def _perturbed(normalize: bool, sigma: float = 0.3, seed: int = 0) -> ArchDistribution:
    dist = ArchDistribution(NB201.topology(), init_sigma=sigma, normalize=normalize)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dist.named_parameters():
            p.add_((0.5 if name.endswith("mu") else 0.2 if name.endswith("log_sigma") else 0.1)
                   * torch.randn(p.shape, generator=g))
    return dist


def test_topology_and_search_network_follow_nb201():
    topo = NB201.topology()
    assert topo.edges == ((0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)) and topo.num_ops == 5
    assert not topo.has_beta and topo.none_choosable and topo.choosable_ops == (0, 1, 2, 3, 4)
    net = _supernet(layers=2)
    assert len(net.cells) == 6 and sum(not hasattr(m, "cell_type") for m in net.layers) == 2
    w = {"cell": CellWeights(torch.rand(6, 5) + 0.1, torch.ones(6))}
    out = net(torch.rand(2, *SHAPE), w)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    with pytest.raises(RaclError, match="3 nodes"):
        NB201.topology(4)


def test_one_hot_weights_are_the_discrete_cell():
    # the supernet with a genotype's 0/1 weights computes exactly the evaluation network's cell
    net = _supernet().eval()
    genotype = NB201.zoo["NB201_RESNET"]
    w = selection_weights(NB201.selection(genotype), NB201.topology())
    assert sum(map(sum, w["cell"].mask)) == 6  # every edge keeps one op (`none` ones are not computed)
    cell = net.cells[0]
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        got = cell(x, w["cell"])
        conv3 = lambda e, h: cell.ops[e].ops[3](h)  # noqa: E731 - nor_conv_3x3 (op 3) on edge e
        n1 = conv3(0, x)              # |nor_conv_3x3~0|
        n2 = conv3(2, n1)             # |none~0|nor_conv_3x3~1|
        expected = x + n2             # |skip_connect~0|none~1|skip_connect~2|
    torch.testing.assert_close(got, expected)


def _identity_bns(net: torch.nn.Module) -> None:
    """Every BN an exact identity in eval mode (running mean 0, variance 1 - eps, unit scale): the
    search cells' batch-statistics BNs get fixed statistics too, so a per-sample Lipschitz ratio exists,
    and the bound without BN factors (count_bn=False, the search's default) is a true upper bound."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            if m.running_var is None:
                m.register_buffer("running_mean", torch.zeros(m.num_features))
                m.register_buffer("running_var", torch.ones(m.num_features))
                m.track_running_stats = True
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
            if m.weight is not None:
                with torch.no_grad():
                    m.weight.fill_(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_bound_of_sampled_networks_is_above_the_measured_ratio(seed):
    net = _supernet(seed=seed)
    _identity_bns(net)
    net.eval()
    bound = NB201.bound(net, SHAPE, n_iter=200, count_bn=False)
    g = torch.Generator().manual_seed(seed)
    for s in range(3):
        w = map_weights(torch.Tensor.detach, _perturbed(True, seed=s).sample(torch.Generator().manual_seed(s)))
        x = torch.rand(16, *SHAPE, generator=g)
        y = x + 1e-2 * torch.randn(x.shape, generator=g)
        with torch.no_grad():
            ratio = ((net(x, w) - net(y, w)).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)).max()
        assert float(ratio.log()) <= float(bound.log_bound(w))


def test_bound_with_bn_counted_holds_exactly_on_the_evaluation_network():
    # the evaluation network keeps running statistics everywhere: its bound counts BN and holds
    genotype = NB201.zoo["NB201_BEST_CIFAR10"]
    torch.manual_seed(0)
    net = build_model(genotype, num_classes=4, channels=4, layers=1)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(8, *SHAPE))
    net.eval()
    parts = network_bound(net, SHAPE, n_iter=200)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(16, *SHAPE, generator=g)
    y = x + 1e-2 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        ratio = ((net(x) - net(y)).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)).max()
    assert float(ratio.log()) <= parts[-1].log_cumulative
    assert [p.name for p in parts][:2] == ["stem", "cell0"] and any(p.name.startswith("block") for p in parts)


@pytest.mark.parametrize("normalize", [False, True])
def test_analytic_moments_match_monte_carlo(normalize):
    # tolerance as for the DARTS space (tests/test_lipschitz.py): |mu_a - mu_mc| < 0.06, sigma within 15%
    net = _supernet(layers=2).eval()
    bound = NB201.bound(net, SHAPE, n_iter=30, count_bn=False)
    dist = _perturbed(normalize, seed=4)
    with torch.no_grad():
        mu_mc, s_mc = bound.lognormal(dist, "mc", samples=4096, generator=torch.Generator().manual_seed(5))
        for method in ("analytic", "delta"):
            mu, s = bound.lognormal(dist, method)
            assert abs(float(mu - mu_mc)) < 0.06, (method, float(mu), float(mu_mc))
            assert abs(float(s / s_mc) - 1) < 0.15, (method, float(s), float(s_mc))


def test_lowest_bound_is_minus_infinity_when_none_may_win():
    bound = NB201.bound(_supernet(), SHAPE, count_bn=False)
    assert bound.lowest_log_bound() == float("-inf")  # all-`none` cells: only the residual blocks remain


def test_bn_eval_bound_is_refused_for_the_search_network():
    with pytest.raises(RaclError, match="batch statistics"):
        NB201.bound(_supernet(), SHAPE, count_bn=True)


def test_discretisation_keeps_every_edge_and_may_keep_none():
    topo = NB201.topology()
    alpha = torch.rand(6, 5)
    alpha[:, 0] = 5.0  # `none` wins on every edge
    genotype = NB201.genotype(discretize({"cell": alpha}, None, topo))
    assert genotype == Nb201Genotype(("none",) * 6)
    alpha[:, 0] = 0.0
    genotype = NB201.genotype(discretize({"cell": alpha}, None, topo))
    assert genotype.ops == tuple(topo.primitives[int(k)] for k in alpha.argmax(1))


def test_zoo_names_and_architecture_strings_resolve_everywhere():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert resolve_genotype(arch) == Nb201Genotype.from_string(arch)
    assert resolve_genotype("nb201-resnet") == NB201.zoo["NB201_RESNET"]
    model = build_model("NB201_ALL_CONV3X3", num_classes=10, channels=16, layers=5)
    assert count_parameters(model) == 1_531_546  # NB201's largest network (docs/nb201.md)
    with pytest.raises(RaclError, match="auxiliary"):
        build_model("NB201_RESNET", auxiliary=True)
    assert get_space("nb201") is NB201


@pytest.mark.parametrize("strategy", ["racl", "darts", "random"])
def test_every_generic_strategy_searches_nb201(strategy, tmp_path):
    data = load_data("synthetic", image_size=8, count=48, channels=3, num_classes=3)
    config = apply_overrides(get_preset("tiny"), [f"strategy={strategy}", "space=nb201", "supernet.layers=1"])
    result = run_search(config, data, tmp_path, log=None)
    assert isinstance(result.genotype, Nb201Genotype)
    assert Nb201Genotype.load(tmp_path / "genotype.json") == result.genotype
    assert (tmp_path / "cell.png").is_file() and result.metrics[-1]["mu_F"] is not None


def test_keep_none_false_excludes_none_from_the_distribution_and_the_genotype(tmp_path):
    data = load_data("synthetic", image_size=8, count=48, channels=3, num_classes=3)
    config = apply_overrides(get_preset("tiny"), ["space=nb201", "supernet.layers=1", "supernet.keep_none=false"])
    result = run_search(config, data, tmp_path, log=None)
    assert "none" not in result.genotype.ops
    with pytest.raises(RaclError, match="never keeps"):  # refused by the config, before any folder is made
        apply_overrides(get_preset("tiny"), ["supernet.keep_none=true"])
