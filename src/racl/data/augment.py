"""Standard CIFAR augmentation as batched tensor ops (airbench style: no per-image Python loop).

Random crop with `crop_padding` pixels of padding, horizontal flip with probability 1/2, optional
cutout (DeVries & Taylor 2017: a size x size square, centre uniform over the image, clipped at the
border, set to 0). Padding is zeros by default, as torchvision's `RandomCrop(32, padding=4)` used
by DARTS and adversarial training (Madry et al., TRADES); `pad_mode="reflect"` is airbench's choice.
All randomness comes from an explicit torch.Generator, drawn in a fixed order (crop, flip, cutout),
on the generator's device (the loops keep it on the data's device: no host-device copy per batch),
so a seeded generator gives the same batch again, and `draw_params` can replay the draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from racl.errors import RaclError

PAD_MODES = ("zeros", "reflect")


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 4  # pixels; 0 disables the random crop
    flip: bool = True
    cutout: int = 0  # square side in pixels; 0 disables cutout
    pad_mode: str = "zeros"  # "zeros" (torchvision RandomCrop) or "reflect" (airbench)

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.cutout < 0:
            raise RaclError(f"crop_padding and cutout must be >= 0, got {self.crop_padding}, {self.cutout}")
        if self.pad_mode not in PAD_MODES:
            raise RaclError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}")


@dataclass(frozen=True)
class AugmentParams:
    shifts: torch.Tensor  # (B, 2) int64 crop offsets (dy, dx) into the padded image, in [0, 2 * pad]
    flips: torch.Tensor  # (B,) bool
    centres: torch.Tensor  # (B, 2) int64 cutout centres (cy, cx)


def draw_params(batch: int, height: int, width: int, generator: torch.Generator, cfg: AugmentConfig) -> AugmentParams:
    """Draw one batch's random parameters (the only place augmentation uses the generator)."""
    dev = generator.device
    p = cfg.crop_padding
    shifts = torch.zeros(batch, 2, dtype=torch.int64, device=dev)
    if p:
        shifts = torch.randint(0, 2 * p + 1, (batch, 2), generator=generator, device=dev)
    flips = torch.zeros(batch, dtype=torch.bool, device=dev)
    if cfg.flip:
        flips = torch.rand(batch, generator=generator, device=dev) < 0.5
    if cfg.cutout:
        centres = torch.stack(
            [torch.randint(0, n, (batch,), generator=generator, device=dev) for n in (height, width)], dim=1
        )
    else:
        centres = torch.zeros(batch, 2, dtype=torch.int64, device=dev)
    return AugmentParams(shifts, flips, centres)  # on the generator's device; moved to the data's


def pad_images(x: torch.Tensor, pad: int, mode: str = "zeros") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad), zero or mirror padding (edge not repeated)."""
    if mode == "zeros":
        return F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    if pad >= min(h, w):
        raise RaclError(f"reflect padding {pad} needs images larger than {pad} pixels, got {h}x{w}")

    def mirror(n: int) -> torch.Tensor:  # source index of each padded position, e.g. -1 -> 1, n -> n - 2
        i = torch.arange(-pad, n + pad, device=x.device).abs()
        return torch.where(i >= n, 2 * (n - 1) - i, i)

    return x.index_select(2, mirror(h)).index_select(3, mirror(w))  # works for uint8, unlike F.pad reflect


def crop_shift(x: torch.Tensor, shifts: torch.Tensor, pad: int, mode: str = "zeros") -> torch.Tensor:
    """out[b, :, i, j] = padded(x)[b, :, i + dy_b, j + dx_b], for shifts (B, 2) = (dy, dx) in [0, 2 pad].

    All crops of the padded batch are a strided view (unfold), so one indexed copy picks each
    image's crop: ~5x faster on CPU than a per-pixel gather.
    """
    b, _, h, w = x.shape  # (B, C, H, W)
    windows = pad_images(x, pad, mode).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W) view
    shifts = shifts.to(x.device, non_blocking=True)
    return windows[torch.arange(b, device=x.device), :, shifts[:, 0], shifts[:, 1]]  # (B, C, H, W)


def cutout_mask(centres: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W) bool, True inside each image's size x size square."""
    lo = centres - size // 2  # (B, 2) top-left corners (may be negative)
    rows = torch.arange(height, device=centres.device)
    cols = torch.arange(width, device=centres.device)
    in_r = (rows >= lo[:, :1]) & (rows < lo[:, :1] + size)  # (B, H)
    in_c = (cols >= lo[:, 1:]) & (cols < lo[:, 1:] + size)  # (B, W)
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def apply_params(x: torch.Tensor, params: AugmentParams, cfg: AugmentConfig) -> torch.Tensor:
    """Apply drawn parameters to a batch (B, C, H, W) of any dtype; returns a new tensor."""
    if cfg.crop_padding:
        x = crop_shift(x, params.shifts, cfg.crop_padding, cfg.pad_mode)
    if cfg.flip:
        x = torch.where(params.flips.to(x.device, non_blocking=True)[:, None, None, None], x.flip(-1), x)
    if cfg.cutout:
        mask = cutout_mask(params.centres.to(x.device, non_blocking=True), cfg.cutout, x.shape[-2], x.shape[-1])
        x = x.masked_fill(mask, 0)
    return x


def augment_batch(x: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Randomly crop, flip and cut out a batch (B, C, H, W); same shape, dtype and value range."""
    params = draw_params(x.shape[0], x.shape[-2], x.shape[-1], generator, cfg)
    return apply_params(x, params, cfg)
