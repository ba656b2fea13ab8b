"""Small layers shared by the networks: input normalisation and drop-path; the fast-path switch and the
layout a device gets (`place`)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std per channel: the model's first layer, so attacks work in [0, 1] pixel space."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        self.channels_last = channels_last  # fast path: hand the network NHWC activations

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        out = (x - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a branch with probability drop_prob, scaling the rest (DARTS)."""
    if not training or drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


OPS_MODES = ("fast", "reference")


def use_fast_path(model: nn.Module, ops: str) -> nn.Module:
    """`fast`: channels-last weights and activations (1.8x on CPU for the supernet, measured; `place`
    decides per device), the
    rewritten dilated depthwise convolutions (racl.search_space.depthwise), a space's fast formulation
    (racl.search_space.darts.fast: every module whose class has a `fast` flag) and eval-mode attacks on
    a copy with BN folded into the convs (racl.attacks.base; model.ops says which); `reference`: the
    plain NCHW formulation of the published code. Same parameters and function either way."""
    if ops not in OPS_MODES:
        raise ValueError(f"ops must be one of {', '.join(OPS_MODES)}, got {ops!r}")
    model.ops = ops
    for m in model.modules():
        if hasattr(type(m), "fast"):  # modules with a fast formulation (DepthwiseConv2d, DARTS cells)
            m.fast = ops == "fast"
    if ops == "fast":
        set_memory_format(model, True)
    return model


def crashes_channels_last(m: nn.Module) -> bool:
    """torch 2.14.1 on CPU corrupts memory (double free, abort) in the backward of narrow networks in
    channels-last: a 1x1 stride-2 convolution with 2-7 input channels crashes alone (8 and 12 do not),
    and ResNet-18 at width 4 or 6 crashes even with those convolutions kept NCHW (width 8 and more: no
    crash in 30 steps). Models with a strided convolution of fewer than 8 input channels therefore stay
    NCHW (the reference layout, same maths); DARTS networks with C >= 4 have none."""
    return isinstance(m, nn.Conv2d) and m.stride != (1, 1) and m.groups == 1 and m.in_channels < 8


def set_memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    """Channels-last (True) or NCHW (False) weights and activations; the same function either way.

    Channels-last stays NCHW on the CPU for the narrow strided convolutions torch 2.14.1 crashes on
    (crashes_channels_last)."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if channels_last and on_cpu and any(crashes_channels_last(m) for m in model.modules()):
        channels_last = False
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for m in model.modules():
        if isinstance(m, Normalize):
            m.channels_last = channels_last
    return model


def channels_last_pays(device: torch.device | str, bf16: bool = False) -> bool:
    """Where the fast path's channels-last layout was measured to pay: on the CPU (1.8x for the
    supernet on the development machine) and on CUDA only under bf16 autocast (cuDNN's NHWC kernels
    are its tensor-core kernels; in float32 its grouped and depthwise NHWC shapes are slow, so
    float32 CUDA runs keep NCHW until `make gpu-check`'s layout variants say otherwise)."""
    kind = torch.device(device).type
    return kind == "cpu" or (kind == "cuda" and bf16)


def place(model: nn.Module, device: torch.device | str, bf16: bool = False) -> nn.Module:
    """`model` on `device` in the layout that pays there (channels_last_pays; fast path only, the
    reference stays NCHW). On CUDA also `torch.backends.cudnn.benchmark = True`: the runs' shapes
    are fixed (drop_last batches), so cuDNN times its algorithms once per shape and keeps the
    fastest. `bf16`: the run autocasts to bfloat16."""
    device = torch.device(device)
    model.to(device)
    if getattr(model, "ops", None) == "fast":
        set_memory_format(model, channels_last_pays(device, bf16))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model


@contextmanager
def reference_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Inside, every module runs its reference formulation (the fast flags off; every op called as a
    module, so hooks see each one); the flags are restored on exit."""
    with attribute_set([m for m in model.modules() if hasattr(type(m), "fast")], "fast", False):
        yield model


@contextmanager
def attribute_set(modules: Sequence[object], name: str, value: object) -> Iterator[None]:
    """Inside, `module.<name> = value` for each module (or class); each one's own value restored on exit."""
    saved = [getattr(m, name) for m in modules]
    for m in modules:
        setattr(m, name, value)
    try:
        yield
    finally:
        for m, old in zip(modules, saved, strict=True):
            setattr(m, name, old)
