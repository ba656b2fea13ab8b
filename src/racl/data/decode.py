"""Decode image bytes to uint8 tensors and bring a list of them to one mode and size.

Small loads decode with PIL (importing torchvision alone costs ~2.5 s of CPU); large ones with
torchvision's batched `decode_jpeg`, ~3x faster per 32x32 JPEG than PIL. Both use libjpeg-turbo and
gave identical pixels on 1,000 CIFAR JPEGs. PIL also reads what torchvision does not (BMP, PPM, TIFF).
"""
from __future__ import annotations

import functools
import io
import warnings
from types import ModuleType

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from racl.data.arrays import resize_images
from racl.errors import RaclError

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_JPEG_MAGIC = b"\xff\xd8\xff"
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # ITU-R 601, as PIL's convert("L")


@functools.cache
def _tvio() -> ModuleType:
    """torchvision.io, imported on first use: importing torchvision costs as much as torch itself."""
    import torchvision.io

    return torchvision.io


def decode_image_bytes(data: bytes, name: str) -> torch.Tensor:
    """(C, H, W) uint8 with C = 1 (gray) or 3 (RGB) via torchvision (PIL as fallback); alpha dropped."""
    tv = _tvio()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = tv.decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=tv.ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError):
        x = _decode_pil(data, name)
    if x.dim() == 4:  # animated GIF: first frame
        x = x[0]
    if x.dtype != torch.uint8:  # 16-bit PNG
        x = (x.to(torch.int32) >> 8).to(torch.uint8)
    if x.shape[0] == 4 and data[:3] == _JPEG_MAGIC:  # CMYK JPEG: let the decoder convert
        x = tv.decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=tv.ImageReadMode.RGB)
    return x[:1] if x.shape[0] in (1, 2) else x[:3]


def decode_many(datas: list[bytes], names: list[str], batched: bool = True) -> list[torch.Tensor]:
    """Decode a chunk of files. `batched`: JPEGs go through one torchvision `decode_jpeg` call (a
    failing batch is redone file by file to name the culprit); otherwise PIL, one file at a time."""
    if not batched:
        return [_decode_pil(d, n) for d, n in zip(datas, names)]
    out: list[torch.Tensor | None] = [None] * len(datas)
    jpeg = [i for i, d in enumerate(datas) if d[:3] == _JPEG_MAGIC]
    if jpeg:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tv = _tvio()
                tensors = [torch.frombuffer(bytearray(datas[i]), dtype=torch.uint8) for i in jpeg]
                decoded = tv.decode_jpeg(tensors, mode=tv.ImageReadMode.UNCHANGED)
            for i, x in zip(jpeg, decoded):
                out[i] = x if x.shape[0] in (1, 3) else None  # CMYK etc.: decoded singly below
        except (RuntimeError, ValueError):
            pass
    return [x if x is not None else decode_image_bytes(d, n) for x, d, n in zip(out, datas, names)]


def _decode_pil(data: bytes, name: str) -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode.startswith("I;16"):  # 16-bit gray: keep the high byte, as the torchvision path
                im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8), "L")
            im = im.convert("L" if im.mode in _GRAY_MODES else "RGB")
            x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
            return x.view(im.height, im.width, -1).permute(2, 0, 1).contiguous()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise RaclError(f"cannot decode image {name} ({e}); the file is damaged or not an image") from e


def _to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[0] == channels:
        return x
    if channels == 3:
        return x.expand(3, -1, -1)
    return (x.float() * _LUMA).sum(0, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


def harmonise(images: list[torch.Tensor], names: list[str], image_size: int | None) -> torch.Tensor:
    """Stack (C, H, W) images into (N, C, S, S): the majority mode (ties: RGB) and one square size.

    Without `image_size` every image must have the first image's size, and it must be square.
    """
    if not images:
        raise RaclError("no images to load")
    rgb = sum(x.shape[0] == 3 for x in images)
    channels = 3 if 2 * rgb >= len(images) else 1
    size = image_size or _common_size(images, names)
    if all(x.shape == (channels, size, size) for x in images):  # the usual case: one stack, no loop
        return torch.stack(images)
    out = torch.empty(len(images), channels, size, size, dtype=torch.uint8)
    for i, x in enumerate(images):
        x = _to_channels(x, channels)
        out[i] = x if x.shape[-2:] == (size, size) else resize_images(x[None], size)[0]
    return out


def _common_size(images: list[torch.Tensor], names: list[str]) -> int:
    h, w = images[0].shape[-2:]
    if h != w:
        raise RaclError(f"image {names[0]} is {w}x{h}, not square; pass --image-size N to resize all images")
    for x, name in zip(images, names):
        if x.shape[-2:] != (h, w):
            raise RaclError(
                f"image {name} is {x.shape[-1]}x{x.shape[-2]} but {names[0]} is {w}x{h}; "
                "pass --image-size N to resize all images"
            )
    return int(h)
