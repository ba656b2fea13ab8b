"""Networks: every zoo cell builds and trains at a tiny size; parameter counts; hand-designed baselines."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from racl.cli import main
from racl.errors import RaclError
from racl.models import build_model, count_parameters, list_models
from racl.models.fuse import fold_batchnorm
from racl.models.layers import Normalize, drop_path
from racl.search_space import ZOO, Genotype

NAMES = list(ZOO)

# Published CIFAR-10 sizes (C = 36, 20 cells, no auxiliary head), millions; see references / the papers.
# AmoebaNet-A (N = 6, F = 36): 3.2M (Real et al., AAAI 2019; DARTS's Table 1); NASNet: see below.
PUBLISHED_M = {"DARTS_V1": 3.3, "DARTS_V2": 3.3, "PC_DARTS": 3.6, "PDARTS": 3.4, "ADVRUSH": 4.2, "RACL": 3.6,
               "AMOEBANET": 3.2}
TINY = dict(num_classes=10, channels=4, layers=5)


def _images(size: int = 16, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _check_all_grads(model: nn.Module, skip_prefix: str | None = None) -> None:
    for name, p in model.named_parameters():
        if skip_prefix and name.startswith(skip_prefix):
            assert p.grad is None, f"{name} should get no gradient"
            continue
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_tiny_network_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **TINY).train()
    logits = model(_images(16))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    _check_all_grads(model)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_network_with_auxiliary_head(name: str) -> None:
    torch.manual_seed(0)
    # no drop-path here: with a batch of 2 it can drop a branch for both samples (zero gradients)
    model = build_model(name, auxiliary=True, drop_path_prob=0.0, **TINY).train()
    assert model.auxiliary_head is not None
    logits, aux = model(_images(32), with_aux=True)  # the aux head expects 8 x 8 maps, i.e. 32 x 32 inputs
    assert logits.shape == aux.shape == (2, 10)
    y = torch.tensor([1, 7])
    (nn.functional.cross_entropy(logits, y) + 0.4 * nn.functional.cross_entropy(aux, y)).backward()
    _check_all_grads(model)


def test_auxiliary_head_only_in_training_and_when_asked() -> None:
    model = build_model("RACL", auxiliary=True, **TINY)
    x = _images(32)
    model.train()
    assert torch.is_tensor(model(x))  # plain call: logits only
    logits, aux = model(x, with_aux=False), None
    assert torch.is_tensor(logits)
    model.eval()
    logits, aux = model(x, with_aux=True)
    assert aux is None and logits.shape == (2, 10)
    model.train()
    model.zero_grad()
    model(x).sum().backward()
    aux_with_grads = [n for n, p in model.named_parameters()
                      if n.startswith("auxiliary_head.") and p.grad is not None]
    assert not aux_with_grads
    no_aux = build_model("RACL", auxiliary=False, **TINY)
    assert no_aux.auxiliary_head is None and no_aux(x, with_aux=True)[1] is None


def _independent_count(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("auxiliary_head."))


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_standard_network_parameter_count(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model(name, num_classes=10, channels=36, layers=20, auxiliary=True)
    n = _independent_count(model)
    assert count_parameters(model) == n
    assert count_parameters(model, include_auxiliary=True) > n
    assert main(["zoo", "show", name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == n
    assert abs(n / 1e6 - PUBLISHED_M[name]) <= 0.15, f"{name}: {n / 1e6:.3f}M vs published {PUBLISHED_M[name]}M"


def test_nasnet_at_the_published_size() -> None:
    """NASNet-A (6 @ 768) has 3.3M parameters (Zoph et al., CVPR 2018, Table 1; DARTS's Table 1): N = 6
    cells per stage (the DARTS network's 20 cells), F = 32, and 768 = 6 x 4F channels before the
    classifier, i.e. the normal cell concatenates its input h_{i-1} (node 1) besides the five nodes that
    DARTS's transcription lists. So built, the zoo's cells give the published size; the zoo's own entry
    (concat 2..6, C = 36) has no published count: `racl zoo show NASNET` says 3.83M."""
    g = ZOO["NASNET"]
    own = Genotype(g.normal, (1, *g.normal_concat), g.reduce, g.reduce_concat)
    n = count_parameters(build_model(own, num_classes=10, channels=32, layers=20))
    assert abs(n / 1e6 - 3.3) <= 0.15, n
    assert 3.7e6 < count_parameters(build_model("NASNET", channels=36, layers=20)) < 4.0e6


def test_mobilenet_v2_at_cifar_size() -> None:
    """torchvision's MobileNetV2 has 3,504,872 parameters (its model card); the CIFAR version has the
    same layers (strides aside) with a 10-class classifier: 3,504,872 - 1281 * 1000 + 1281 * 10."""
    import torchvision

    assert sum(p.numel() for p in torchvision.models.mobilenet_v2().parameters()) == 3_504_872
    torch.manual_seed(0)
    model = build_model("MobileNet-V2")
    assert count_parameters(model) == 3_504_872 - 1281 * 990 == 2_236_682
    shapes = {}
    model.features[-1].register_forward_hook(lambda m, i, o: shapes.update(out=o.shape))  # returns None
    model.train()
    logits = model(_images(32))
    assert shapes["out"][-2:] == (4, 4)  # stride-1 stem and second stage: 32 / 8 (ImageNet's: 32 / 32 = 1)
    nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    _check_all_grads(model)
    model.eval()
    with torch.no_grad():
        logits, aux = model(_images(32), with_aux=True)
        folded, count = fold_batchnorm(model)
        assert count > 50 and torch.allclose(folded(_images(32)), logits, atol=1e-4)
    assert aux is None and logits.shape == (2, 10)
    gray = build_model("mobilenet_v2", num_classes=3, in_channels=1, mean=(0.5,), std=(0.25,))
    assert gray(torch.rand(2, 1, 16, 16)).shape == (2, 3)


def test_drop_path_function() -> None:
    x = torch.ones(1000, 2, 3, 3)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    torch.manual_seed(0)
    y = drop_path(x, 0.25, training=True)
    per_sample = y.flatten(1)
    kept = per_sample[per_sample != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))  # survivors scaled by 1 / keep
    assert (per_sample == per_sample[:, :1]).all()  # whole samples dropped, not single pixels
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.05


def test_drop_path_active_only_in_training() -> None:
    torch.manual_seed(0)
    model = build_model("DARTS_V2", drop_path_prob=0.5, **TINY)
    x = _images(16)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)  # different drop masks
    model.eval()
    with torch.no_grad():
        on = model(x)
        model.drop_path_prob = 0.0
        off = model(x)
    assert torch.equal(on, off)
    model.train()
    assert torch.equal(model(x), model(x))  # training without drop-path is deterministic


@pytest.mark.parametrize("name", ["RACL", "DARTS_V1", "resnet18"])
def test_eval_outputs_are_deterministic(name: str) -> None:
    model = build_model(name, drop_path_prob=0.3, **TINY) if name in ZOO else build_model(name)
    model.eval()
    x = _images(16)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_normalize_layer_is_applied() -> None:
    torch.manual_seed(0)
    model = build_model("PDARTS", **TINY).eval()
    x = _images(16)
    with torch.no_grad():
        before = model(x)
        model.normalize.mean.fill_(0.0)
        after = model(x)
    assert not torch.allclose(before, after)
    other = build_model("PDARTS", mean=(0.1, 0.2, 0.3), std=(0.2, 0.2, 0.2), **TINY)
    assert torch.allclose(other.normalize.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(norm(torch.full((1, 3, 2, 2), 0.75)), torch.ones(1, 3, 2, 2))
    assert "normalize.mean" in model.state_dict()


def test_resnet18() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18")
    assert abs(count_parameters(model) - 11.17e6) < 0.01e6
    model.eval()
    with torch.no_grad():
        logits, aux = model(_images(32), with_aux=True)
    assert logits.shape == (2, 10) and aux is None


def test_wrn34_10() -> None:
    torch.manual_seed(0)
    model = build_model("WRN34-10")  # the alias spelling goes through the same factory
    assert abs(count_parameters(model) - 46.16e6) < 0.01e6
    model.eval()
    with torch.no_grad():
        logits, aux = model(_images(32), with_aux=True)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all() and aux is None


def test_build_model_errors() -> None:
    with pytest.raises(RaclError, match="NOPE"):
        build_model("NOPE")
    with pytest.raises(RaclError, match="cannot build a model"):
        build_model(42)  # type: ignore[arg-type]


def test_build_model_from_genotype_and_path(tmp_path) -> None:
    path = ZOO["ADVRUSH"].save(tmp_path / "g.json")
    a, b = build_model(ZOO["ADVRUSH"], **TINY), build_model(str(path), **TINY)
    assert count_parameters(a) == count_parameters(b)
    from racl.search_space.nb201 import NB201

    assert set(list_models()) == set(NAMES) | set(NB201.zoo) | {"resnet18", "wrn34_10", "mobilenet_v2"}


def test_in_channels_and_classes() -> None:
    model = build_model("DARTS_V1", num_classes=3, in_channels=1, mean=(0.5,), std=(0.25,), **{
        k: v for k, v in TINY.items() if k != "num_classes"})
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 3)
