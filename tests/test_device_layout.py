"""The layout a device gets (racl.models.layers.place), cudnn.benchmark, in-memory training data on the
device. No GPU here: CUDA is faked where the code only reads the device's type."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from racl.models import build_model
from racl.models.layers import Normalize, channels_last_pays, place, set_memory_format


def _conv_weight(model: nn.Module) -> torch.Tensor:
    return next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)


def _is_channels_last(model: nn.Module) -> bool:
    w = _conv_weight(model)
    norm = next(m for m in model.modules() if isinstance(m, Normalize))
    assert norm.channels_last == (w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous())
    return norm.channels_last


@pytest.fixture
def fake_cuda(monkeypatch):
    """Module.to ignores device moves (the tensors stay on the CPU), so place(model, "cuda") runs here;
    cudnn.benchmark is restored afterwards."""
    real = nn.Module.to

    def to(self, *args, **kwargs):
        args = tuple(a for a in args if not isinstance(a, (torch.device, str)))
        kwargs.pop("device", None)
        return real(self, *args, **kwargs) if args or kwargs else self

    monkeypatch.setattr(nn.Module, "to", to)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def test_channels_last_only_where_it_pays():
    assert channels_last_pays("cpu") and channels_last_pays("cpu", bf16=True)
    assert not channels_last_pays("cuda") and not channels_last_pays(torch.device("cuda", 1))
    assert channels_last_pays("cuda:0", bf16=True)
    assert not channels_last_pays("mps")


def test_place_on_cpu_keeps_channels_last_and_leaves_cudnn_alone(fake_cuda):
    model = place(build_model("RACL", num_classes=10, channels=8, layers=3), "cpu")
    assert _is_channels_last(model) and torch.backends.cudnn.benchmark is False
    ref = place(build_model("RACL", num_classes=10, channels=8, layers=3, ops="reference"), "cpu")
    assert not _is_channels_last(ref)  # the reference formulation stays NCHW everywhere


def test_place_on_cuda_float32_is_nchw_bf16_channels_last_and_cudnn_benchmark(fake_cuda):
    model = build_model("RACL", num_classes=10, channels=8, layers=3)
    assert _is_channels_last(model)  # as built (for the CPU)
    x = torch.rand(2, 3, 16, 16)
    before = model.eval()(x)
    place(model, "cuda")
    assert not _is_channels_last(model) and torch.backends.cudnn.benchmark is True
    assert model.normalize(x).is_contiguous()
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)  # the same function
    place(model, torch.device("cuda", 0), bf16=True)
    assert _is_channels_last(model)
    ref = place(build_model("RACL", num_classes=10, channels=8, layers=3, ops="reference"), "cuda", bf16=True)
    assert not _is_channels_last(ref)


def test_set_memory_format_both_ways():
    model = build_model("RACL", num_classes=10, channels=8, layers=3, ops="reference")
    assert _is_channels_last(set_memory_format(model, True))
    assert not _is_channels_last(set_memory_format(model, False))
    narrow = build_model("RACL", num_classes=10, channels=4, layers=3, ops="reference")
    stride_narrow = any(isinstance(m, nn.Conv2d) and m.stride != (1, 1) and m.groups == 1 and m.in_channels < 8
                        for m in narrow.modules())
    if stride_narrow:  # torch 2.14.1 crashes on these in channels-last on the CPU: kept NCHW
        assert not _is_channels_last(set_memory_format(narrow, True))


def test_trainer_keeps_the_in_memory_train_split_on_the_run_device(tmp_path, monkeypatch):
    from racl.data import ArrayDataset, load_data
    from racl.distributed import Runtime
    from _tiny import train_config
    from racl.training import train

    data = load_data("synthetic", image_size=8, count=24, num_classes=4)
    moved, seen, real_to, real_batches = [], [], ArrayDataset.to, Runtime.batches

    def to(self, device):
        out = real_to(self, device)
        moved.append((len(self), str(device), out))
        return out

    def batches(self, ds, *a, **kw):
        seen.append(ds)
        return real_batches(self, ds, *a, **kw)

    monkeypatch.setattr(ArrayDataset, "to", to)
    monkeypatch.setattr(Runtime, "batches", batches)
    cfg = train_config(batch_size=8, epochs=1, channels=4, layers=3, steps=1, val_images=4, val_steps=1,
                       **{"validation.val_batch_size": 4})
    train("RACL", data, cfg, tmp_path / "run", device="cpu")
    train_copies = [out for n, device, out in moved if n == len(data.train) and device == "cpu"]
    assert train_copies and seen and all(ds is train_copies[-1] for ds in seen)  # batches come from the moved copy
    assert any(n == 4 for n, _, _ in moved)  # the validation subset too
