"""NB201 ops, cell and evaluation network, with parameter and FLOP counts checked against NAS-Bench-201's."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from racl.models.layers import Normalize
from racl.search_space.nb201 import FINAL_BN, PRIMITIVES, SEARCH_BN, Nb201Cell, Nb201Genotype, Nb201Network, make_op
from racl.search_space.nb201.cost import count_flops, count_params
from racl.search_space.nb201.draw import cell_to_dot, draw_cell
from racl.search_space.nb201.index import from_index
from racl.search_space.nb201.ops import ResidualBlock
from racl.search_space.nb201.zoo import SOURCES, ZOO

# NAS-Bench-201 v1.1's `params` (millions) and `flop` (MFLOPs) fields for C = 16, N = 5 (the API's
# get_cost_info): the minimum over all 15,625 cells (any parameter-free cell, e.g. all_skip) and the maximum
# (all_conv3x3), per data set, as extracted from NAS-Bench-201-v1_1-096897 by third-party code found with the
# code search (the "Get Bounds for Nasbench benchmarks" notes of an HPOBench experiment-utils README, and an
# EvoXBench-based NB201 problem's `min_max_values`); and one cell's cost_info printed in pprp/PicoNAS
# piconas/evaluator/nb201_evaluator_bak.py ({'flops': 78.56193, 'params': 0.559386}), which is the cost of
# every cell with two 3x3 convolutions and no 1x1 (0.559386 - 0.073306 = 2 x 0.243040), e.g. resnet.
PUBLISHED = [  # (cell, data set, classes, input side, params in M, MFLOPs)
    ("all_skip", "cifar10", 10, 32, 0.073306, 7.78305),
    ("all_skip", "cifar100", 100, 32, 0.079156, 7.78890),
    ("all_skip", "ImageNet16-120", 120, 16, 0.080456, 1.95340),
    ("all_conv3x3", "cifar10", 10, 32, 1.531546, 220.11969),
    ("all_conv3x3", "cifar100", 100, 32, 1.537396, 220.12554),
    ("all_conv3x3", "ImageNet16-120", 120, 16, 1.538696, 55.03756),
    ("resnet", "cifar10", 10, 32, 0.559386, 78.56193),
]


@pytest.mark.parametrize("name, dataset, classes, side, params, mflops", PUBLISHED)
def test_params_and_flops_match_nb201(name: str, dataset: str, classes: int, side: int, params: float,
                                      mflops: float) -> None:
    model = Nb201Network(ZOO[name], num_classes=classes)  # C = 16, N = 5 by default
    assert count_params(model) == round(params * 1e6)
    assert round(count_flops(model, (1, 3, side, side)) / 1e6, 5) == pytest.approx(mflops, abs=1e-9)


@pytest.mark.parametrize("index", [0, 9, 123, 6111, 15624])
def test_cost_is_additive_over_ops(index: int) -> None:
    """From the published extremes: each 3x3 conv edge adds (1.531546 - 0.073306) / 6 M parameters and
    (220.11969 - 7.78305) / 6 MFLOPs on CIFAR-10; a 1x1 conv edge adds C^2 + 2C per cell (28,000 in all) and
    a ninth of a 3x3's multiply-adds; parameter-free edges add nothing."""
    cell = from_index(index)
    n3, n1 = cell.ops.count("nor_conv_3x3"), cell.ops.count("nor_conv_1x1")
    model = Nb201Network(cell)
    assert count_params(model) == 73306 + n3 * 243040 + n1 * 28000
    assert count_flops(model) / 1e6 == pytest.approx(7.78305 + n3 * 35.38944 + n1 * 35.38944 / 9, abs=1e-6)


def test_every_zoo_cell_has_a_source() -> None:
    assert set(SOURCES) == set(ZOO) and all(SOURCES.values())


def test_ops_as_nb201_builds_them() -> None:
    assert PRIMITIVES == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    final, search = make_op("nor_conv_3x3", 8, FINAL_BN), make_op("nor_conv_3x3", 8, SEARCH_BN)
    for op in (final, search):
        assert [type(m) for m in op] == [nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
        assert op[1].kernel_size == (3, 3) and op[1].padding == (1, 1) and op[1].stride == (1, 1)
    assert final[1].bias is None and final[2].affine and final[2].track_running_stats
    assert search[1].bias is not None and not search[2].affine and not search[2].track_running_stats
    assert make_op("nor_conv_1x1", 8)[1].padding == (0, 0)
    with pytest.raises(ValueError, match="unknown NB201 op"):
        make_op("sep_conv_3x3", 8)


def test_search_bn_uses_batch_statistics_in_eval_mode() -> None:
    op = make_op("nor_conv_1x1", 4, SEARCH_BN).eval()
    out = op(torch.randn(8, 4, 5, 5) + 3.0)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-5  # normalised by the batch, no running estimate


def test_avg_pool_excludes_padding() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = make_op("avg_pool_3x3", 1)(x)
    assert out[0, 0, 0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)  # corner: 4 real neighbours, not 9
    assert make_op("none", 1)(x).abs().sum() == 0 and torch.equal(make_op("skip_connect", 1)(x), x)


def test_cell_nodes_sum_their_inputs() -> None:
    x = torch.randn(2, 4, 6, 6)
    all_skip = Nb201Cell(ZOO["all_skip"], 4)
    assert torch.allclose(all_skip(x), 4 * x)  # n1 = x, n2 = x + n1, n3 = x + n1 + n2
    resnet = Nb201Cell(ZOO["resnet"], 4).eval()
    conv_a, conv_b = resnet.ops[0], resnet.ops[2]  # edges 0->1 and 1->2
    assert torch.allclose(resnet(x), x + conv_b(conv_a(x)), atol=1e-6)


def test_a_cell_whose_output_gets_only_none_outputs_zeros_with_gradients() -> None:
    cell = Nb201Genotype.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|none~2|")
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    out = Nb201Cell(cell, 4)(x)
    assert out.abs().sum() == 0
    (grad,) = torch.autograd.grad(out.sum(), x)  # zero, but defined (attacks need it)
    assert grad.abs().sum() == 0


def test_residual_block() -> None:
    block = ResidualBlock(4, 8)
    x = torch.randn(2, 4, 8, 8)
    assert block(x).shape == (2, 8, 4, 4)
    assert [type(m) for m in block.shortcut] == [nn.AvgPool2d, nn.Conv2d] and block.shortcut[1].bias is None
    nn.init.zeros_(block.conv_b[2].weight)  # the conv branch contributes nothing: only the shortcut is left
    assert torch.allclose(block(x), block.shortcut(x))


def test_network_shapes_and_layout() -> None:
    model = Nb201Network(ZOO["best_cifar10"], num_classes=7, channels=8, cells_per_stage=2, in_channels=1,
                         mean=(0.5,), std=(0.2,))
    assert isinstance(next(model.children()), Normalize)
    kinds = [type(m).__name__ for m in model.cells]
    assert kinds == ["Nb201Cell"] * 2 + ["ResidualBlock"] + ["Nb201Cell"] * 2 + ["ResidualBlock"] + ["Nb201Cell"] * 2
    assert model.classifier.in_features == 32
    x = torch.rand(3, 1, 16, 16)
    assert model(x).shape == (3, 7)
    model.eval()
    features = model.cells(model.stem(model.normalize(x)))
    assert features.shape == (3, 32, 4, 4)


def test_draw_cell(tmp_path: Path) -> None:
    dot = cell_to_dot(ZOO["resnet"], "resnet")
    assert dot.count("->") == 6 and dot.count("style=dashed") == 2  # its two none edges
    paths = draw_cell(ZOO["resnet"], tmp_path, "resnet", label="resnet", engine="matplotlib")
    assert [p.name for p in paths] == ["resnet.dot", "resnet.png"]
    assert paths[1].read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["best_cifar10", "gdas_cifar10"])
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = Nb201Network(ZOO[name], channels=4, cells_per_stage=1)
    loss = nn.functional.cross_entropy(model(torch.rand(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_avg_pool_is_slightly_more_than_1_lipschitz() -> None:
    """count_include_pad=False averages fewer inputs at the border, so border inputs weigh more: the l2
    operator norm on 8 x 8 maps (NB201's last stage on CIFAR) is 1.0145 (docs/nb201.md), not 1."""
    pool = make_op("avg_pool_3x3", 1)
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(300):  # power iteration on A^T A
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(pool(x), x, pool(x))
        x = (g / g.norm()).detach()
    assert 1.014 < float(pool(x).norm()) < 1.015
