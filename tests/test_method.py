"""RACL as a method: the reference threshold, BN handling, the lowest reachable bound, the constraint's
regime, the tie-break, decision margins, sub-architecture evaluation with the architecture's own BN
statistics, recalibration, and the gradient-norm default. Invariants, not golden numbers."""
from __future__ import annotations

import json
import math
import tempfile
from collections import Counter

import pytest
import torch

from racl.data import load_data
from racl.distributions import ArchDistribution
from racl.cli import main
from racl.data import iterate_batches
from racl.distributions.arch import edge_products
from racl.search import apply_overrides, get_preset, run_search
from racl.search.config import STRATEGIES
from racl.search.discretize import choose, decision_margins, discretize, selection_weights
from racl.search.loop import accuracy, warnings_for
from racl.search.outputs import read_metrics
from racl.search.strategies import REGISTRY, SearchStrategy, build_strategy, strategy_class
from racl.search.strategies.random import random_selection
from racl.search_space import CellTopology, Genotype
from racl.search_space.darts import DARTS
from racl.search_space.darts.lipschitz import supernet_bound
from racl.search_space.darts.ops import PRIMITIVES
from racl.search_space.darts.supernet import Supernet
from racl.state import load_state, save_state
from racl.supernet.batchnorm import batch_statistics, bn_layers, recalibrate

TOPO = DARTS.topology()

SHAPE = (3, 8, 8)


def _supernet(seed: int = 0, **options) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(num_classes=4, channels=8 if options else 4, layers=3, ops="reference", **options)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial running statistics, different per layer
        for m in bn_layers(net):
            m.running_var.copy_(0.2 + torch.rand(m.running_var.shape, generator=g))
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
    return net.eval()


def _config(**sets):
    return apply_overrides(get_preset("tiny"), [f"{k}={v}" for k, v in sets.items()])


def _build(config, net, evaluator=None):
    return build_strategy(config, DARTS, net, SHAPE, evaluator)


def _g(strategy) -> float:
    strategy.bound.refresh(n_iter=50)
    strategy.bound_refreshed()
    mu, sigma = strategy.lognormal(strategy._fixed_generator())
    return float(strategy.constraint.g(mu.detach().double(), sigma.detach().double()))


# ------------------------------------------------------------------ reference threshold
@pytest.mark.parametrize("bn", ["eval", "none"])
def test_reference_g_is_invariant_to_rescaling_the_input_bn_statistics(bn):
    # every path from input to output runs through the stem, one preprocessing per cell and the head,
    # so rescaling those BN statistics shifts mu_F and ln L_ref by the same amount: g must not move
    net = _supernet()
    strategy = _build(_config(**{"bound.bn": bn}), net)
    strategy.start_arch_phase()
    with torch.no_grad():
        strategy.dist.normal_alpha_mu.add_(0.3 * torch.randn(strategy.dist.normal_alpha_mu.shape))
    before = _g(strategy)
    lbar_before = float(strategy.constraint.log_lbar)
    with torch.no_grad():
        net.stem[1].running_var.mul_(9.0)
    after = _g(strategy)
    assert after == pytest.approx(before, abs=1e-4)
    moved = float(strategy.constraint.log_lbar) - lbar_before
    assert moved == pytest.approx(-math.log(3.0) if bn == "eval" else 0.0, abs=5e-3)  # BN eps


def test_reference_g_without_bn_ignores_all_bn_statistics():
    net = _supernet()
    strategy = _build(_config(**{"bound.bn": "none"}), net)
    strategy.start_arch_phase()
    before = _g(strategy)
    with torch.no_grad():
        for m in bn_layers(net):
            m.running_var.mul_(torch.rand(m.running_var.shape) * 10)
    assert _g(strategy) == pytest.approx(before, abs=1e-3)  # only power iteration moves on


def test_reference_g_starts_at_ln_k_plus_the_spread():
    strategy = _build(_config(**{"constraint.lbar": 2.0}), _supernet())
    strategy.start_arch_phase()
    mu, sigma = strategy.lognormal(strategy._fixed_generator())
    # at the start the distribution's mean is the reference: g = ln k + z sigma (+ the mean/median gap)
    assert _g(strategy) == pytest.approx(math.log(2.0) + strategy.constraint.z * float(sigma.detach()), abs=0.05)


def test_initial_mode_fixes_the_threshold_once():
    net = _supernet()
    strategy = _build(_config(**{"constraint.lbar_mode": "initial"}), net)
    strategy.start_arch_phase()
    fixed = float(strategy.constraint.log_lbar)
    with torch.no_grad():
        net.stem[1].running_var.mul_(9.0)
    strategy.refresh_bound(measure=False)
    strategy.start_arch_phase()
    assert float(strategy.constraint.log_lbar) == fixed


# ------------------------------------------------------------------ lowest bound, regime
def test_lowest_bound_lies_below_every_genotype_and_sample():
    net = _supernet()
    bound = supernet_bound(net, SHAPE, n_iter=30, count_bn=False)
    lowest = float(bound.lowest_log_bound())
    dist = ArchDistribution(TOPO, normalize=True, init_sigma=1.0)
    per_sample = bound.sample_log_bounds(dist.sample_log(200, torch.Generator().manual_seed(0)))
    assert lowest <= float(per_sample.min().detach()) + 1e-5
    pool = torch.Generator().manual_seed(1)
    for _ in range(20):
        w = selection_weights(random_selection(TOPO, pool), TOPO)
        assert lowest <= float(bound.log_bound(w)) + 1e-5


def test_lowest_bound_without_edge_choice_is_each_edge_at_its_smallest_op():
    # a space that keeps every edge (beta = 1) and may choose `none`: the lowest bound puts every
    # edge on `none` (-inf); without `none` every edge sits on its smallest op, summed over the edges
    from racl.lipschitz.propagation import LowestAlgebra, cell_nodes

    lam = torch.log(torch.tensor([[0.0, 2.0, 3.0], [0.0, 5.0, 1.0], [0.0, 4.0, 4.0]]))  # 3 edges; op 0 = none
    for choosable, expected in ((True, float("-inf")), (False, math.log(1.0 + 4.0 * 2.0))):
        topo = CellTopology(("cell",), ("none", "a", "b"), 1, 2, None, none_choosable=choosable)
        nodes = cell_nodes(LowestAlgebra(topo), [torch.tensor(0.0)], None, lam, topo)
        # node 0 = edge 0 (min 2); node 1 = edge 1 from the input (min 1) + edge 2 from node 0 (4 * 2)
        assert float(nodes[-1]) == pytest.approx(expected)


def test_an_unreachable_threshold_is_reported_and_warned(tmp_path):
    data = load_data("synthetic", image_size=8, count=40, channels=3)
    result = run_search(_config(warmup_epochs=0, **{"constraint.lbar": 1e6}), data, tmp_path / "r", log=None, draw=False)
    last = result.metrics[-1]
    assert last["constraint_regime"] == "unreachable" and last["ln_l_min"] > last["ln_lbar"]
    assert any("unreachable" in w for w in warnings_for(last, last=True))
    ok = run_search(_config(warmup_epochs=0, **{"constraint.lbar": 1.0}), data, tmp_path / "ok", log=None, draw=False)
    assert ok.metrics[-1]["constraint_regime"] in ("active", "inactive")
    assert not any("unreachable" in w for w in warnings_for(ok.metrics[-1], last=True))


# ------------------------------------------------------------------ discretisation
def test_tie_break_favours_no_op_and_no_input():
    E, O = 14, len(PRIMITIVES)
    counts, inputs = Counter(), Counter()
    for seed in range(300):
        cell = choose(torch.ones(E, O), None, TOPO, seed=seed)
        counts.update(op for _, _, op in cell)
        inputs.update(i for j, i, _ in cell if j == 3)  # node 3: inputs 0..4
    assert set(counts) == set(PRIMITIVES[1:])
    expected = 300 * 8 / 7
    assert all(abs(c - expected) < 0.25 * expected for c in counts.values()), counts
    assert all(abs(inputs[i] - 120) < 40 for i in range(5)), inputs
    # order-free: permuting the primitives permutes nothing in the distribution of the choices
    perm = CellTopology(TOPO.cell_types, (PRIMITIVES[0],) + tuple(reversed(PRIMITIVES[1:])), 2, 4, 2)
    counts_perm = Counter(op for s in range(300) for _, _, op in choose(torch.ones(E, O), None, perm, seed=s))
    assert all(abs(counts_perm[p] - expected) < 0.25 * expected for p in PRIMITIVES[1:]), counts_perm
    # a clear winner is never overridden by the tie-break
    alpha = torch.ones(E, O)
    alpha[:, 5] = 1.001
    assert all(op == PRIMITIVES[5] for s in range(20) for _, _, op in choose(alpha, None, TOPO, seed=s))


def test_decision_margins_grow_with_the_evidence():
    dist = ArchDistribution(TOPO, normalize=True, init_sigma=0.1)

    def margins():
        g = dist.log_gaussians()["normal"]
        alpha = {t: w.alpha for t, w in dist.scores().items()}
        selection = discretize(alpha, dist.edge_scores(), TOPO)["normal"]
        return selection, decision_margins(g.alpha, edge_products(g.alpha, g.beta), selection, TOPO)

    _, flat = margins()
    assert all(abs(m) < 1e-6 for m in flat["op"])  # undecided at the uniform start
    with torch.no_grad():
        dist.normal_alpha_mu[:, PRIMITIVES.index("sep_conv_3x3")] += 1.0
    selection, sharp = margins()
    assert all(op == "sep_conv_3x3" for _, _, op in selection)
    assert min(sharp["op"]) > 3.0  # 1 nat apart with log-stds 0.1: ~7 std of the difference
    assert sharp["edge"][0] is None and len(sharp["edge"]) == 4


# ------------------------------------------------------------------ BN statistics of the architecture
def test_recalibration_equals_a_full_data_pass():
    net = _supernet()
    weights = ArchDistribution(TOPO, normalize=True).reference_weights()
    x = torch.rand(24, *SHAPE, generator=torch.Generator().manual_seed(0))
    recalibrate(net, weights, [x])
    conv = net.stem[0](net.normalize(x))  # the stem's BN input
    torch.testing.assert_close(net.stem[1].running_mean, conv.mean((0, 2, 3)))
    torch.testing.assert_close(net.stem[1].running_var, conv.var((0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    # several equal batches: the means are the full-data means (cumulative average)
    recalibrate(net, weights, list(x.split(8)))
    torch.testing.assert_close(net.stem[1].running_mean, conv.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)


def test_architecture_accuracy_uses_its_own_bn_statistics():
    # a supernet trained briefly on learnable data; then its running statistics are corrupted so that
    # eval-mode BN gives chance accuracy: the search's accuracy must not be affected, nor change buffers
    torch.manual_seed(0)
    data = load_data("synthetic", image_size=8, count=200, channels=3, num_classes=4)
    net = Supernet(num_classes=4, channels=4, layers=3)
    w = ArchDistribution(TOPO, normalize=True).reference_weights()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()
    for _ in range(4):
        for x, y in iterate_batches(data.train, 32, shuffle=True, generator=torch.Generator().manual_seed(0)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x, w), y).backward()
            opt.step()
    good = accuracy(net, w, data.train, 200, 64, torch.device("cpu"))
    with torch.no_grad():
        for m in bn_layers(net):
            m.running_var.fill_(1e4)
            m.running_mean.fill_(50.0)
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad():
        x, y = next(iterate_batches(data.train, 200, shuffle=False, generator=None))
        eval_mode = float((net(x, w).argmax(1) == y).float().mean())
    assert eval_mode < 0.4 < good  # 4 classes: eval mode at chance, the architecture's own statistics not
    assert accuracy(net, w, data.train, 200, 64, torch.device("cpu")) == good
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    with batch_statistics(net):
        assert all(m.training for m in bn_layers(net))
    assert not net.training


# ------------------------------------------------------------------ objective defaults
def test_gradient_norm_term_is_on_for_racl_by_default():
    assert get_preset("paper").gamma > 0 and get_preset("quick").gamma > 0
    assert apply_overrides(get_preset("paper"), ["strategy=darts"]).gamma == 0
    assert apply_overrides(get_preset("paper"), ["robust.gamma=0"]).gamma == 0
    assert apply_overrides(get_preset("paper"), ["strategy=darts", "robust.gamma=0.3"]).gamma == 0.3


# ------------------------------------------------------------------ the ablation command
def test_ablate_runs_resumes_and_tabulates(tmp_path, capsys):
    out = tmp_path / "abl"
    cli = ["ablate", "--variants", "full", "point", "--search-preset", "tiny", "--search-seeds", "0",
           "--seeds", "0", "--dataset", "synthetic", "--limit", "8", "--image-size", "16", "--val-fraction", "0.2",
           "--test-fraction", "0.2", "--epochs", "1", "--channels", "4", "--layers", "3", "--batch-size", "8",
           "--steps", "2", "--val-images", "8", "--drop-path", "0", "--attacks", "pgd2", "--n-images", "8",
           "--out", str(out)]
    assert main(cli) == 0
    table = (out / "ablation.md").read_text()
    assert "| full (defaults)" in table and "| point (distribution.init_sigma=0.0001, distribution.learn_sigma=false)" in table
    rows = {r["variant"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    assert rows["full"]["runs"] == 1 and rows["point"]["pgd2"]["n"] == 1
    # point weights: the log-stds never move from their tiny start, so sigma_F stays ~0
    assert read_metrics(out / "search" / "point-s0")[-1]["sigma_F"] < 1e-2
    assert read_metrics(out / "search" / "full-s0")[-1]["sigma_F"] > 1e-2
    mtime = (out / "search" / "full-s0" / "genotype.json").stat().st_mtime
    assert main(cli) == 0  # everything finished: nothing is searched or trained again
    assert (out / "search" / "full-s0" / "genotype.json").stat().st_mtime == mtime
    assert "[search" not in capsys.readouterr().out.split("table:")[-1]
    with pytest.raises(SystemExit) as bad:  # argparse: one line, exit 2
        main(cli[:2] + ["nope"] + cli[3:])
    assert bad.value.code == 2


# ------------------------------------------------------------------ strategies as plugins
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_strategy_samples_steps_discretises_and_round_trips(name):
    assert issubclass(strategy_class(name), SearchStrategy)
    assert name in STRATEGIES  # the config accepts every registered name
    config = _config(strategy=name)
    options = strategy_class(name).supernet_options(config)  # e.g. PC-DARTS's partial channels
    net = _supernet(**options).train()
    evaluator = lambda w: float(w["normal"].alpha.sum())  # noqa: E731 - any weights -> number
    strategy = _build(config, net, evaluator)
    gen = torch.Generator().manual_seed(0)
    w = strategy.sample_weights(gen)
    assert all(w[t].alpha.shape == (14, len(PRIMITIVES)) for t in ("normal", "reduce"))
    strategy.start_arch_phase()
    x = torch.rand(4, *SHAPE, generator=gen)
    y = torch.randint(0, 4, (4,), generator=gen)
    if strategy.has_arch_step:
        strategy.arch_step(x, y, gen, 0)
    record = strategy.epoch_end(0, True, gen)
    assert set(record) >= {"mu_F", "sigma_F", "ln_l_genotype"}
    assert isinstance(strategy.genotype(), Genotype)
    # the state_dict is complete (supernet, architecture parameters, bound buffers); with the
    # optimiser's own state_dict it restores the strategy on a freshly built supernet
    opt = None if strategy.optimizer is None else strategy.optimizer.state_dict()
    assert any(k.startswith("supernet.") for k in strategy.state_dict())
    assert strategy.bound is None or any(k.startswith("bound.powers.") for k in strategy.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        save_state(f"{tmp}/s.safetensors", {"s": strategy.state_dict(), "opt": opt})
        saved = load_state(f"{tmp}/s.safetensors")
    fresh = _build(config, _supernet(seed=1, **options).train(), evaluator)
    assert not all(torch.equal(a, b) for a, b in zip(strategy.synced_tensors(), fresh.synced_tensors(), strict=True))
    fresh.load_state_dict(saved["s"])
    if fresh.optimizer is not None:
        fresh.optimizer.load_state_dict(saved["opt"])
    for a, b in zip(strategy.synced_tensors(), fresh.synced_tensors(), strict=True):
        assert torch.equal(a, b)
    if strategy.optimizer is not None:
        assert str(fresh.optimizer.state_dict()) == str(strategy.optimizer.state_dict())
        assert fresh.optimizer.state_dict()["state"], "the optimiser has state after one step"
    assert fresh.genotype() == strategy.genotype()
