"""The rival searches: AdvRush's regulariser against a direct computation, the strategy's BN handling and
quirk options; GDAS's hard sample, its straight-through gradient, one op per edge, its temperature and
genotype rule; exact resume of both."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from racl.data import load_data
from racl.search import apply_overrides, get_preset, run_search
from racl.search.discretize import discretize
from racl.search.outputs import read_metrics
from racl.search.strategies import build_strategy
from racl.search.strategies.advrush import cure_direction, cure_step, curvature
from racl.search.strategies.gdas import gdas_cell, gdas_tau, gumbel_hard, one_hot_weights
from racl.search_space import CellWeights, Genotype
from racl.search_space.darts import DARTS
from racl.search_space.darts.ops import PRIMITIVES
from racl.search_space.darts.supernet import Supernet
from racl.state import load_state
from racl.supernet.batchnorm import bn_layers

TOPO = DARTS.topology()


def _cells(selection) -> tuple:
    """A selection of one cell type as DARTS (op, input) pairs."""
    return tuple((op, i) for _, i, op in selection)

SHAPE = (3, 8, 8)


def _config(**sets):
    return apply_overrides(get_preset("tiny"), [f"{k}={v}" for k, v in sets.items()])


def _supernet(ops: str = "fast", seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(num_classes=4, channels=4, layers=3, ops=ops)
    with torch.no_grad():  # running statistics that are not the initial ones
        for m in bn_layers(net):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_()
    return net.train()


def _batch(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g), torch.randint(0, 4, (n,), generator=g)


# ------------------------------------------------------------------ AdvRush: the regulariser
def test_cure_direction_has_norm_h_and_the_gradient_signs():
    g = torch.randn(3, 2, 4, 4)
    g[0, 0, 0, 0] = 0.0  # sign 0: the original's 1e-7 guard gives that entry h 1e-7 / (norm + 1e-7)
    z = cure_direction(g, 1.5)
    norms = z.flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.full((3,), 1.5), atol=1e-5)
    assert torch.equal(z.sign()[g != 0], g.sign()[g != 0])
    assert z[0, 0, 0, 0] == pytest.approx(1.5 * 1e-7 / ((31 ** 0.5) + 1e-7))
    assert torch.count_nonzero(cure_direction(g, 0.0)) == 0  # h = 0 (AdvRush's first epoch): no step


def test_cure_step_follows_the_schedule_then_its_last_value():
    schedule = (0.0, 0.3, 0.6, 0.9, 1.2, 1.5)
    assert [cure_step(schedule, e) for e in range(8)] == [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.5, 1.5]


MEAN = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.2, 0.25, 0.3], dtype=torch.float64).view(1, 3, 1, 1)


def _core(u: torch.Tensor, alpha: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """A tiny two-edge mixed-op network on normalised inputs u (B, 3, 4, 4) -> logits (B, 5); smooth ops."""
    w, h = alpha.softmax(-1), u
    for e in range(2):
        ops = (torch.tanh(torch.einsum("oc,bchw->bohw", params["a"][e], h)),
               torch.sigmoid(torch.einsum("oc,bchw->bohw", params["b"][e], h)), 0.5 * h * h)
        h = sum(w[e, k] * ops[k] for k in range(3))
    return h.flatten(1) @ params["c"]


def test_curvature_value_and_alpha_gradient_match_a_direct_computation():
    """R and dR/dalpha of `curvature` (pixel inputs, the normalisation's std as `scale`, gradients of the
    batch sum) against AdvRush's definition written out per example in the normalised space with
    torch.func, in float64."""
    g = torch.Generator().manual_seed(0)
    params = {"a": torch.randn(2, 3, 3, generator=g, dtype=torch.float64),
              "b": torch.randn(2, 3, 3, generator=g, dtype=torch.float64),
              "c": torch.randn(48, 5, generator=g, dtype=torch.float64) * 0.3}
    alpha = torch.randn(2, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.rand(4, 3, 4, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 4])
    h = 0.9

    def model_loss(inputs: torch.Tensor) -> torch.Tensor:  # the model normalises first, like racl's
        return F.cross_entropy(_core((inputs - MEAN) / STD, alpha, params), y, reduction="none")

    cur = curvature(model_loss, x, h, scale=STD)
    (got_grad,) = torch.autograd.grad(cur.value, alpha)

    # direct: l_i(u) for one example, its input gradient per example, z from it with alpha held fixed
    def ell(u: torch.Tensor, a: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_core(u[None], a, params), label[None])

    grad_u = vmap(grad(ell), in_dims=(0, None, 0))
    u = (x - MEAN) / STD
    with torch.no_grad():
        g0 = grad_u(u, alpha.detach(), y)
        signs = g0.sign()
        z = h * (signs + 1e-7) / (signs.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-7)

    def reg(a: torch.Tensor) -> torch.Tensor:
        return (grad_u(u + z, a, y) - grad_u(u, a, y)).flatten(1).norm(dim=1).mean()

    assert cur.value.item() == pytest.approx(reg(alpha.detach()).item(), rel=1e-9)
    assert torch.allclose(got_grad, grad(reg)(alpha.detach()), rtol=1e-8, atol=1e-12)
    assert got_grad.abs().min() > 0  # R depends on every architecture weight here
    assert torch.allclose(cur.losses, model_loss(x))


def test_the_originals_grad_outputs_sum_to_each_examples_gradient():
    """The premise of reproducing `grad_outputs=ones(B)` on a mean loss as per-example gradients: the
    autograd engine (which AdvRush's torch 1.2 reached without today's Python-side shape check) sums a
    gradient to the output's shape, so the result is B times the mean's gradient."""
    engine = getattr(torch.autograd.Variable, "_execution_engine", None)
    if engine is None or not hasattr(engine, "run_backward"):
        pytest.skip("this torch has no engine entry point to call directly")
    x = torch.randn(5, 3, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1, 0])
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        torch.autograd.grad(F.cross_entropy(x, y), x, grad_outputs=torch.ones(5))
    (old,) = engine.run_backward((F.cross_entropy(x, y),), (torch.ones(5),), False, False, (x,), False)
    (per_example,) = torch.autograd.grad(F.cross_entropy(x, y, reduction="sum"), x)
    assert torch.allclose(old, per_example)


def test_curvature_on_the_fast_supernet_equals_the_reference_formulation():
    """R and its alpha gradient go through double backprop of the supernet; the fast path (channels-last,
    folded BN scales, in-place sums, rewritten depthwise convs) must give the reference's, in float64."""
    nets = {}
    for ops in ("fast", "reference"):
        nets[ops] = _supernet(ops).double().eval()
    nets["reference"].load_state_dict(nets["fast"].state_dict())
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, *SHAPE, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    alphas = [0.1 * torch.randn(14, len(PRIMITIVES), generator=g, dtype=torch.float64) for _ in range(2)]
    results = {}
    for ops, net in nets.items():
        a = [t.clone().requires_grad_(True) for t in alphas]
        ones = torch.ones(14, dtype=torch.float64)
        w = {"normal": CellWeights(a[0].softmax(-1), ones), "reduce": CellWeights(a[1].softmax(-1), ones)}
        cur = curvature(lambda inp: F.cross_entropy(net(inp, w), y, reduction="none"), x, 0.9, net.normalize.std)
        results[ops] = (cur.value, *torch.autograd.grad(cur.value, a))
    for fast, ref in zip(results["fast"], results["reference"]):
        assert torch.allclose(fast, ref, rtol=1e-9, atol=1e-15)
    assert results["fast"][0] > 0


def test_rival_config_sections():
    c = _config(strategy="gdas", **{"gdas.tau_max": 5, "advrush.a_gamma": 0.1, "advrush.h_schedule": "[1.5]"})
    assert (c.gdas.tau_max, c.gdas.tau_min, c.advrush.a_gamma, c.advrush.h_schedule) == (5.0, 0.1, 0.1, (1.5,))
    from racl.errors import RaclError
    from racl.search import config_from_dict, config_to_dict

    assert config_from_dict(config_to_dict(c)) == c
    for bad in ({"gdas": {"cell_rule": "nope"}}, {"gdas": {"tau_min": 20}}, {"advrush": {"h_schedule": []}},
                {"advrush": {"a_warmup_epochs": -1}}):
        with pytest.raises(RaclError):
            config_from_dict(bad)


# ------------------------------------------------------------------ AdvRush: the strategy
def _advrush(**sets):
    strategy = build_strategy(_config(strategy="advrush", **sets), DARTS, _supernet(), SHAPE)
    strategy.epoch.fill_(3)  # past a_warmup_epochs (default 0), h = 0.9
    return strategy


def test_advrush_regulariser_runs_in_eval_mode_and_restores_the_mode():
    x, y = _batch()
    strategy = _advrush()
    reference = copy.deepcopy(strategy.supernet)
    reference(x, strategy._weights())  # what the CE's train-mode pass alone does to the BN statistics
    loss, logged = strategy.arch_loss(x, y)
    assert logged["penalty"] > 0
    assert loss.item() == pytest.approx(float(logged["arch_loss"] + logged["penalty"]), rel=1e-6)
    for a, b in zip(bn_layers(strategy.supernet), bn_layers(reference)):
        assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
    assert strategy.supernet.training  # fixed: the weight steps keep batch statistics
    quirky = _advrush(**{"advrush.quirk_eval_after_reg": "true"})
    quirky.arch_loss(x, y)
    assert not quirky.supernet.training  # the original's state after loss_cure


def test_advrush_warmup_and_the_find_z_quirk():
    x, y = _batch()
    strategy = _advrush(**{"advrush.a_warmup_epochs": 4})
    loss, logged = strategy.arch_loss(x, y)
    assert logged["penalty"] == 0.0 and loss.item() == logged["arch_loss"]  # DARTS's loss before R starts
    plain, quirky = _advrush(), _advrush(**{"advrush.quirk_find_z_grad": "true"})
    extra = quirky.arch_loss(x, y)[0] - plain.arch_loss(x, y)[0]
    net = copy.deepcopy(plain.supernet).eval()  # the eval-mode per-example losses _find_z differentiates
    eval_losses = F.cross_entropy(net(x, plain._weights()), y, reduction="sum")
    assert extra.item() == pytest.approx(eval_losses.item(), rel=1e-5)


def test_advrush_regulariser_reaches_both_cells_alphas():
    x, y = _batch()
    on, off = _advrush(), _advrush(**{"advrush.a_warmup_epochs": 4})
    off.load_state_dict(on.state_dict())
    (loss_on, _), (loss_off, _) = on.arch_loss(x, y), off.arch_loss(x, y)
    grads_on = torch.autograd.grad(loss_on, on.arch_parameters())
    grads_off = torch.autograd.grad(loss_off, off.arch_parameters())
    for a, b in zip(grads_on, grads_off):  # normal and reduction alphas
        assert not torch.allclose(a, b)


# ------------------------------------------------------------------ GDAS
def test_gumbel_hard_is_one_hot_with_the_straight_through_gradient():
    alpha = torch.randn(14, len(PRIMITIVES), requires_grad=True)
    c = torch.randn(14, len(PRIMITIVES))
    w = gumbel_hard(alpha, 0.7, torch.Generator().manual_seed(5))
    assert torch.equal(w.detach().sum(-1), torch.ones(14)) and set(w.detach().unique().tolist()) == {0.0, 1.0}
    (got,) = torch.autograd.grad((c * w).sum(), alpha)
    # the same draw: p = softmax((log_softmax(alpha) + G) / tau) and its plain gradient
    gumbels = -torch.empty_like(alpha).exponential_(generator=torch.Generator().manual_seed(5)).log()
    p = ((alpha.log_softmax(-1) + gumbels) / 0.7).softmax(-1)
    assert torch.equal(w.detach().argmax(-1), p.argmax(-1))
    (expected,) = torch.autograd.grad((c * p).sum(), alpha)
    assert torch.allclose(got, expected)


def test_gdas_tau_is_linear_from_tau_max_to_tau_min():
    taus = [gdas_tau(e, 2, 7, 10.0, 0.1) for e in range(9)]
    assert taus[:3] == [10.0, 10.0, 10.0] and taus[7:] == [0.1, 0.1]
    assert all(a - b == pytest.approx(9.9 / 5) for a, b in zip(taus[2:7], taus[3:8]))
    total = 250  # GDAS.py: tau_max - (tau_max - tau_min) * epoch / (total_epoch - 1)
    assert all(gdas_tau(e, 0, total - 1, 10, 0.1) == pytest.approx(10 - 9.9 * e / (total - 1)) for e in range(total))
    assert gdas_tau(3, 3, 3, 10.0, 0.1) == 10.0


def _gdas(ops: str = "fast", **sets):
    return build_strategy(_config(strategy="gdas", **sets), DARTS, _supernet(ops), SHAPE)


def test_gdas_computes_one_op_per_edge():
    strategy = _gdas("reference")
    calls: list[tuple[int, int, int]] = []
    for c, cell in enumerate(strategy.supernet.cells):
        for e, mixed in enumerate(cell.ops):
            for o, op in enumerate(mixed.ops):
                op.register_forward_hook(lambda m, i, out, key=(c, e, o): calls.append(key))
    gen = torch.Generator().manual_seed(3)
    w = strategy._sample(torch.Generator().manual_seed(3))  # the draw arch_step makes from this state
    strategy.arch_step(*_batch(), gen, 0)
    for c, cell in enumerate(strategy.supernet.cells):
        hard = w[cell.cell_type].alpha
        expected = [(c, e, int(k)) for e, k in enumerate(hard.argmax(-1).tolist()) if k != 0]  # `none`: nothing
        assert sorted(k for k in calls if k[0] == c) == expected


def test_gdas_gradient_reaches_every_alpha_as_gdas_arranges_it():
    """Only the chosen op's weight enters the forward (GDAS's MixedOp.forward_gdas), so dL/dw is zero off
    the draw; alpha's gradient is that of p_k, hence non-zero on every entry of every edge whose draw is
    not `none` (zero on those whose draw is), and equal to the chain rule through p computed apart."""
    strategy = _gdas()
    x, y = _batch()
    net, tau = strategy.supernet, strategy.tau()
    hard_n = gumbel_hard(strategy.normal_alpha, tau, torch.Generator().manual_seed(4))
    hard_r = gumbel_hard(strategy.reduce_alpha, tau, torch.Generator().manual_seed(4 + 1000))
    net_state = copy.deepcopy(net.state_dict())
    loss = F.cross_entropy(net(x, {"normal": one_hot_weights(hard_n), "reduce": one_hot_weights(hard_r)}), y)
    got = torch.autograd.grad(loss, [strategy.normal_alpha, strategy.reduce_alpha], retain_graph=True)
    net.load_state_dict(net_state)  # the same BN statistics for the second pass
    leaf = [hard_n.detach().clone().requires_grad_(True), hard_r.detach().clone().requires_grad_(True)]
    loss2 = F.cross_entropy(net(x, {"normal": one_hot_weights(leaf[0]), "reduce": one_hot_weights(leaf[1])}), y)
    dw = torch.autograd.grad(loss2, leaf, allow_unused=True)
    for hard, g_w, g_alpha in zip((hard_n, hard_r), dw, got):
        chosen = hard.detach().bool()
        assert torch.count_nonzero(g_w[~chosen]) == 0  # ops off the draw are not computed
        not_none = ~chosen[:, 0]
        assert (g_alpha[not_none] != 0).all() and torch.count_nonzero(g_alpha[~not_none]) == 0
        (through_p,) = torch.autograd.grad(hard, [strategy.normal_alpha if hard is hard_n else strategy.reduce_alpha],
                                           grad_outputs=g_w, retain_graph=True)
        assert torch.allclose(g_alpha, through_p, rtol=1e-4, atol=1e-7)


def test_gdas_cell_rule_takes_the_top_two_pairs_per_node():
    probs = torch.full((14, len(PRIMITIVES)), 0.01)
    probs[0, PRIMITIVES.index("sep_conv_3x3")] = 0.9  # node 2: both best pairs on edge 0 (input 0)
    probs[0, PRIMITIVES.index("dil_conv_5x5")] = 0.8
    probs[1, 0] = 0.99  # `none` never counts
    cell = _cells(gdas_cell(probs, TOPO))
    assert cell[:2] == (("sep_conv_3x3", 0), ("dil_conv_5x5", 0))
    g = torch.Generator().manual_seed(0)
    for _ in range(5):  # against a brute-force ranking of every (input, op) pair per node
        probs = torch.rand(14, len(PRIMITIVES), generator=g).softmax(-1)
        cell, start = _cells(gdas_cell(probs, TOPO)), 0
        for j in range(4):
            block = probs[start:start + j + 2, 1:]
            top = block.flatten().topk(2).indices.tolist()
            assert list(cell[2 * j:2 * j + 2]) == [(PRIMITIVES[1 + t % 7], t // 7) for t in top]
            start += j + 2


def test_gdas_genotype_rules():
    strategy = _gdas()
    with torch.no_grad():
        strategy.normal_alpha.normal_(generator=torch.Generator().manual_seed(2))
    w = strategy._weights()
    assert strategy.genotype().normal == _cells(gdas_cell(w["normal"].alpha, TOPO))
    edges = _gdas(**{"gdas.cell_rule": "edges"})
    edges.load_state_dict(strategy.state_dict())
    assert edges.genotype() == DARTS.genotype(discretize({t: c.alpha for t, c in w.items()}, None, TOPO))
    point = strategy.eval_weights()["normal"].alpha
    assert torch.equal(point.argmax(-1), w["normal"].alpha.argmax(-1)) and torch.equal(point.sum(-1), torch.ones(14))


# ------------------------------------------------------------------ both: exact resume
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["advrush", "gdas"])
def test_resume_is_exact(strategy, tmp_path):
    """Killed after epoch 1 and resumed: the same metrics and checkpoint as an uninterrupted run. The
    resumed epoch needs the strategy's epoch (AdvRush's h, GDAS's tau) from its state_dict."""
    data = load_data("synthetic", image_size=16, count=40, channels=3)
    cfg = _config(strategy=strategy, warmup_epochs=0, epochs=3, augment="true")
    full = run_search(cfg, data, tmp_path / "full", draw=False, log=None)
    run_search(cfg, data, tmp_path / "part", stop_after=1, log=None)
    resumed = run_search(cfg, data, tmp_path / "part", resume=True, draw=False, log=None)
    assert resumed.genotype == full.genotype

    def strip(ms):
        return [{k: v for k, v in m.items() if k != "seconds"} for m in ms]

    assert strip(read_metrics(tmp_path / "part")) == strip(full.metrics)
    key = "cure_h" if strategy == "advrush" else "tau"
    assert len({m[key] for m in full.metrics}) == 3  # a schedule that changes every epoch
    a, b = (load_state(tmp_path / d / "checkpoint.safetensors") for d in ("full", "part"))
    _same(a["strategy"], b["strategy"], "strategy")  # supernet, alphas, the epoch buffer, bound buffers
    _same(a["arch_opt"], b["arch_opt"], "arch_opt")  # Adam's state
    assert int(b["strategy"]["epoch"]) == 3


def _same(x, y, where: str) -> None:
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _same(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for k, (u, v) in enumerate(zip(x, y, strict=True)):
            _same(u, v, f"{where}[{k}]")
    else:
        assert x == y, where


# ------------------------------------------------------------------ PC-DARTS
def test_partial_mixed_op_is_pc_darts_formula():
    """1/k of the channels through the ops, the rest bypassing (max-pooled at stride 2), then the
    channel shuffle: written out here with explicit channel indices."""
    from racl.search_space.darts.ops import make_search_op
    from racl.supernet.mixed_op import PartialMixedOp

    torch.manual_seed(0)
    for stride in (1, 2):
        ops = [make_search_op(p, 2, stride) for p in PRIMITIVES]
        mixed = PartialMixedOp(ops, PRIMITIVES, k=4, stride=stride).eval()
        x = torch.randn(3, 8, 6, 6)
        alpha = torch.rand(len(PRIMITIVES))
        with torch.no_grad():
            out = mixed(x, alpha, [p != "none" for p in PRIMITIVES])
            through = sum(a * op(x[:, :2]) for a, op, p in zip(alpha, ops, PRIMITIVES, strict=True) if p != "none")
            rest = x[:, 2:] if stride == 1 else F.max_pool2d(x[:, 2:], 2, 2)
            joined = torch.cat([through, rest], 1)  # channels 0-1 mixed, 2-7 bypassed
        # shuffle with 4 groups of 2: new channel 2 * i + g is old channel 2 * g + i
        order = [2 * g + i for i in range(2) for g in range(4)]
        torch.testing.assert_close(out, joined[:, order])


def test_pcdarts_edge_normalisation_and_genotype_rule():
    net = Supernet(num_classes=4, channels=8, layers=3, partial_channels=4)
    strategy = build_strategy(_config(strategy="pcdarts"), DARTS, net, SHAPE)
    assert strategy.bound is None and len(strategy.arch_parameters()) == 4
    with torch.no_grad():
        for p in strategy.arch_parameters():
            p.normal_(generator=torch.Generator().manual_seed(p.numel()))
    w = strategy.eval_weights()
    for c in w.values():  # softmax over each node's incoming edges
        for j in range(4):
            r = TOPO.edges_into(j)
            assert float(c.beta[r.start:r.stop].sum()) == pytest.approx(1.0)
    # PC-DARTS's _parse: per node the 2 edges of largest non-none product, each with its best op
    expected = []
    for j in range(4):
        r = TOPO.edges_into(j)
        prod = w["normal"].beta[r.start:r.stop, None] * w["normal"].alpha[r.start:r.stop]
        best = sorted(range(len(r)), key=lambda i: -float(prod[i, 1:].max()))[:2]
        expected += [(PRIMITIVES[1 + int(prod[i, 1:].argmax())], i) for i in best]
    assert strategy.genotype().normal == tuple(expected)
    x, y = _batch()
    before = [p.detach().clone() for p in strategy.arch_parameters()]
    strategy.arch_step(x, y, torch.Generator().manual_seed(0), 0)
    assert all(not torch.equal(a, b) for a, b in zip(before, strategy.arch_parameters(), strict=True))
    record = strategy.epoch_end(0, True, torch.Generator())
    assert record["mu_F"] is None  # no bound for partial channels


def test_pcdarts_search_runs_end_to_end(tmp_path):
    data = load_data("synthetic", image_size=8, count=48, channels=3, num_classes=3)
    config = _config(strategy="pcdarts", **{"supernet.channels": 8, "warmup_epochs": 0})
    result = run_search(config, data, tmp_path, log=None)
    assert isinstance(result.genotype, Genotype)
    assert result.metrics[-1]["genotype_val_acc"] is not None
