"""The DARTS primitives: shapes, gradients, affine=False, odd sizes, unknown names."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from racl.search_space import OPS, PARAMETER_FREE, PRIMITIVES, make_op
from racl.search_space.darts.ops import EVAL_ONLY, FactorizedReduce, Identity, Zero

ALL_OPS = (*PRIMITIVES, *EVAL_ONLY)  # the search primitives and the zoo's evaluation-only ops
C, H = 4, 8


def _input(h: int = H, w: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, C, h, w or h, generator=g)


def _weighted_loss(out: torch.Tensor) -> torch.Tensor:
    # a random weighting: a plain sum would give zero gradients through BatchNorm's normalisation
    g = torch.Generator().manual_seed(1)
    return (out * torch.randn(out.shape, generator=g)).sum()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", ALL_OPS)
def test_output_shape(name: str, stride: int) -> None:
    out = make_op(name, C, stride)(_input())
    assert out.shape == (2, C, H // stride, H // stride)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", ALL_OPS)
def test_every_parameter_gets_a_gradient(name: str, stride: int) -> None:
    op = make_op(name, C, stride)
    x = _input().requires_grad_(True)
    out = op(x)
    params = list(op.named_parameters())
    if name == "none":
        assert not params and torch.count_nonzero(out.detach()) == 0
        return
    _weighted_loss(out).backward()
    for pname, p in params:
        assert p.grad is not None, f"{name} stride {stride}: {pname} has no gradient"
        assert p.grad.abs().sum() > 0, f"{name} stride {stride}: {pname} has a zero gradient"
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ALL_OPS)
def test_parameter_free_set_matches_the_ops(name: str) -> None:
    has_params = any(True for _ in make_op(name, C, 1).parameters())
    assert has_params == (name not in PARAMETER_FREE)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", ALL_OPS)
def test_affine_false(name: str, stride: int) -> None:
    op = make_op(name, C, stride, affine=False)
    bns = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.weight is None and m.bias is None for m in bns)
    out = op(_input())
    assert out.shape == (2, C, H // stride, H // stride)
    if name not in PARAMETER_FREE or (name == "skip_connect" and stride == 2):
        assert bns, f"{name} should end with a BatchNorm"
        _weighted_loss(out).backward()
        assert all(p.grad is not None for p in op.parameters())


@pytest.mark.parametrize("size", [(7, 7), (9, 9), (8, 7), (5, 8), (1, 1)])
def test_factorized_reduce_odd_sizes(size: tuple[int, int]) -> None:
    h, w = size
    fr = FactorizedReduce(C, 2 * C)
    out = fr(_input(h, w))
    assert out.shape == (2, 2 * C, (h + 1) // 2, (w + 1) // 2)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_all_stride_two_ops_agree_on_odd_sizes(name: str) -> None:
    # a reduction node sums two ops' outputs, so every op must give ceil(H / 2)
    out = make_op(name, C, 2)(_input(7))
    assert out.shape == (2, C, 4, 4)


def test_factorized_reduce_matches_strided_convs_on_even_sizes() -> None:
    fr = FactorizedReduce(C, C).eval()
    x = _input()
    r = torch.relu(x)
    expected = torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1)
    assert torch.allclose(fr(x), fr.bn(expected))


def test_factorized_reduce_needs_even_channels() -> None:
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(C, 5)


def test_zero_and_identity() -> None:
    x = _input()
    assert isinstance(make_op("skip_connect", C, 1), Identity)
    assert make_op("skip_connect", C, 1)(x) is x
    assert isinstance(make_op("none", C, 2), Zero)
    assert torch.count_nonzero(make_op("none", C, 2)(x)) == 0


def test_unknown_op_name() -> None:
    with pytest.raises(KeyError, match="unknown op 'conv_7x7'"):
        make_op("conv_7x7", C, 1)


def test_ops_table_covers_primitives() -> None:
    """The search primitives plus the evaluation-only ops of the zoo's NASNet and AmoebaNet cells."""
    from racl.search_space.darts.ops import ALL_OPS

    assert set(OPS) == set(PRIMITIVES) and set(ALL_OPS) == set(PRIMITIVES) | set(EVAL_ONLY)
    assert not set(PRIMITIVES) & set(EVAL_ONLY)
    assert PRIMITIVES[0] == "none"
