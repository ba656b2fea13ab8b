"""Standard CIFAR augmentation as batched tensor ops (airbench style: no per-image Python loop).

Random crop with `crop_padding` pixels of padding, horizontal flip with probability 1/2, optional
cutout (DeVries & Taylor 2017: a size x size square, centre uniform over the image, clipped at the
border, set to 0). Padding is zeros by default, as torchvision's `RandomCrop(32, padding=4)` used
by DARTS and adversarial training (Madry et al., TRADES); `pad_mode="reflect"` is airbench's choice.
All randomness comes from an explicit torch.Generator, drawn in a fixed order (crop, flip, cutout),
so a seeded generator gives the same batch on any device, and `draw_params` can replay the draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

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
    """Draw one batch's random parameters (the only place the generator is used)."""
    dev = generator.device
    p = cfg.crop_padding
    shifts = torch.randint(0, 2 * p + 1, (batch, 2), generator=generator, device=dev) if p else torch.zeros(batch, 2, dtype=torch.int64)
    flips = torch.rand(batch, generator=generator, device=dev) < 0.5 if cfg.flip else torch.zeros(batch, dtype=torch.bool)
    if cfg.cutout:
        centres = torch.stack(
            [torch.randint(0, n, (batch,), generator=generator, device=dev) for n in (height, width)], dim=1
        )
    else:
        centres = torch.zeros(batch, 2, dtype=torch.int64)
    return AugmentParams(shifts.cpu(), flips.cpu(), centres.cpu())


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Map indices in [-(n-1), 2n-2] to [0, n) by mirror reflection without repeating the edge."""
    i = i.abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def crop_shift(x: torch.Tensor, shifts: torch.Tensor, pad: int, mode: str = "zeros") -> torch.Tensor:
    """out[b, :, i, j] = padded(x)[b, :, i + dy_b, j + dx_b]; a gather, so any dtype and device work."""
    b, _, h, w = x.shape  # (B, C, H, W)
    if mode == "reflect" and pad >= min(h, w):
        raise RaclError(f"reflect padding {pad} needs images larger than {pad} pixels, got {h}x{w}")
    shifts = shifts.to(x.device)
    rows = shifts[:, :1] - pad + torch.arange(h, device=x.device)  # (B, H) source rows
    cols = shifts[:, 1:] - pad + torch.arange(w, device=x.device)  # (B, W) source cols
    if mode == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = x[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (B, H, W, C)
    out = out.permute(0, 3, 1, 2).contiguous()
    if mode == "zeros":
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (B, H, W)
        out = out.masked_fill(~inside[:, None], 0)
    return out


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
        x = torch.where(params.flips.to(x.device)[:, None, None, None], x.flip(-1), x)
    if cfg.cutout:
        mask = cutout_mask(params.centres.to(x.device), cfg.cutout, x.shape[-2], x.shape[-1])
        x = x.masked_fill(mask, 0)
    return x


def augment_batch(x: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Randomly crop, flip and cut out a batch (B, C, H, W); same shape, dtype and value range."""
    params = draw_params(x.shape[0], x.shape[-2], x.shape[-1], generator, cfg)
    return apply_params(x, params, cfg)
