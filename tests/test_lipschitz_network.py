"""`racl lipschitz`: global bound of evaluation networks vs the local (Jacobian) estimate."""
import json
import math

import pytest
import torch

from racl.cli import main
from racl.errors import RaclError
from racl.lipschitz.local import jacobian_norms, local_estimates
from racl.lipschitz.network import network_bound
from racl.models import build_model

SHAPE = (3, 8, 8)


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Trained-like BN statistics, so that the BN factors are not all 1."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.25)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model.eval()


MODELS = [("RACL", dict(channels=4, layers=3)), ("DARTS_V2", dict(channels=4, layers=3)),
          ("ADVRUSH", dict(channels=4, layers=3)), ("resnet18", dict(channels=4)),
          ("AMOEBANET", dict(channels=4, layers=3)), ("NASNET", dict(channels=4, layers=3)),
          ("wrn34_10", dict(depth=10, widen=1))]


def _model(name: str, kwargs: dict) -> torch.nn.Module:
    if name == "wrn34_10":
        from racl.models.wide_resnet import WideResNet
        torch.manual_seed(0)
        return _randomise_bn(WideResNet(num_classes=4, **kwargs))
    torch.manual_seed(0)
    return _randomise_bn(build_model(name, num_classes=4, **kwargs))


@pytest.mark.parametrize("name,kwargs", MODELS, ids=[m[0] for m in MODELS])
def test_local_estimate_never_exceeds_global_bound(name, kwargs):
    model = _model(name, kwargs)
    parts = network_bound(model, SHAPE, n_iter=60)
    images = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(1))
    local = local_estimates(model, [p.module for p in parts], images, n_iter=15)
    assert parts[0].name == "stem" and parts[-1].name == "head"
    for part, est in zip(parts, local):
        assert math.isfinite(part.log_cumulative)
        assert math.log(est["max"]) <= part.log_cumulative + 1e-3, part.name
    # the stem is linear: its local Jacobian norm is its global norm
    assert math.log(local[0]["max"]) == pytest.approx(parts[0].log_cumulative, abs=2e-2)


def test_stem_power_iteration_matches_exact_spectral_norm():
    model = _model("RACL", dict(channels=4, layers=3))
    parts = network_bound(model, (3, 5, 5), n_iter=150)
    stem = lambda x: model.stem(model.normalize(x).sub(model.normalize(torch.zeros_like(x))))  # noqa: E731
    jac = torch.autograd.functional.jacobian(stem, torch.zeros(1, 3, 5, 5)).reshape(-1, 75)
    exact = torch.linalg.matrix_norm(jac.double(), ord=2).log().item()
    assert parts[0].log_constant == pytest.approx(exact, abs=1e-3)


def test_jacobian_norm_of_a_linear_map_is_its_spectral_norm():
    lin = torch.nn.Linear(12, 5, bias=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.rand(3, 3, 2, 2)
    norms = jacobian_norms(model, None, x, n_iter=100, generator=torch.Generator().manual_seed(0))
    exact = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
    assert torch.allclose(norms, exact.expand(3), rtol=1e-4)


def test_scaling_the_classifier_shifts_both_views_by_its_log():
    model = _model("RACL", dict(channels=4, layers=3))
    images = torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(2))
    before = network_bound(model, SHAPE, n_iter=40)
    local_before = local_estimates(model, [None], images, n_iter=30)[0]["max"]
    with torch.no_grad():
        model.classifier.weight.mul_(3.0)
    after = network_bound(model, SHAPE, n_iter=40)
    local_after = local_estimates(model, [None], images, n_iter=30)[0]["max"]
    assert after[-1].log_cumulative - before[-1].log_cumulative == pytest.approx(math.log(3.0), abs=1e-4)
    assert math.log(local_after / local_before) == pytest.approx(math.log(3.0), abs=1e-3)


def test_cell_constants_bound_the_cumulative_recursion():
    model = _model("DARTS_V2", dict(channels=4, layers=3))
    parts = network_bound(model, SHAPE, n_iter=40)
    cells = parts[1:-1]
    prev = [parts[0].log_cumulative, parts[0].log_cumulative]
    for cell in cells:
        a, b = cell.detail["log_from_prev_prev"], cell.detail["log_from_prev"]
        assert cell.log_cumulative <= math.log(math.exp(a + prev[0]) + math.exp(b + prev[1])) + 1e-9
        assert cell.log_constant == pytest.approx(0.5 * math.log(math.exp(2 * a) + math.exp(2 * b)))
        prev = [prev[1], cell.log_cumulative]


def test_unsupported_model_is_a_clear_error():
    with pytest.raises(RaclError, match="no Lipschitz bound"):
        network_bound(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), SHAPE)
    with pytest.raises(RaclError, match="no Lipschitz bound for MobileNetV2"):
        network_bound(build_model("mobilenet_v2", num_classes=4), SHAPE)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from racl.checkpoint import model_spec, save_model_checkpoint
    from racl.data import load_data

    data = load_data("synthetic", image_size=8, count=120, num_classes=4)
    kwargs = dict(num_classes=4, channels=4, layers=3, mean=data.mean, std=data.std)
    torch.manual_seed(0)
    model = _randomise_bn(build_model("RACL", **kwargs))
    path = tmp_path_factory.mktemp("ckpt") / "net.safetensors"
    save_model_checkpoint(path, model, model_spec("RACL", **kwargs), data=data.spec())
    return path


def test_cli_lipschitz(checkpoint, tmp_path, capsys):
    out = tmp_path / "lip"
    code = main(["lipschitz", "--checkpoint", str(checkpoint), "--n-images", "6", "--iters", "30",
                 "--local-iters", "5", "--out", str(out), "--device", "cpu"])
    assert code == 0
    res = json.loads((out / "lipschitz.json").read_text())
    assert [r["part"] for r in res["parts"]][0] == "stem" and len(res["parts"]) == 3 + 2
    assert res["n_images"] == 6 and res["log_local_estimate"] <= res["log_global_bound"]
    assert "| head |" in (out / "lipschitz.md").read_text()
    assert "global bound ln L" in capsys.readouterr().out


def test_cli_lipschitz_bad_iterations(checkpoint, tmp_path, capsys):
    code = main(["lipschitz", "--checkpoint", str(checkpoint), "--iters", "0", "--out", str(tmp_path / "x")])
    assert code == 2 and "--iters must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
