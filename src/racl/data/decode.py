"""Decode image bytes to uint8 tensors and stack them in one mode and size (`ImageStack`).

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


class ImageStack:
    """Decoded (C, H, W) images, added in chunks, as one (N, C, S, S) uint8 tensor: the majority mode
    (ties: RGB) and one square size. Without `image_size` every image must have the first image's size,
    and it must be square; with it, images of another size are resized.

    Images are written straight into one (N, 3, S, S) tensor as they arrive (no list of N tensors plus
    a stacked copy), gray ones expanded to RGB; if gray images are the majority, `result` converts the
    stack to luma (N, 1, S, S), which gives them back exactly (ITU-R 601 weights sum to 1)."""

    def __init__(self, n: int, image_size: int | None):
        self.n, self.size, self.filled, self.rgb = n, image_size, 0, 0
        self.fixed = image_size is None  # every image must then have the first one's (square) size
        self.out: torch.Tensor | None = None
        self.first: tuple[str, int, int] | None = None  # name, height, width of the first image

    def add(self, images: list[torch.Tensor], names: list[str]) -> None:
        for x, name in zip(images, names):
            h, w = (int(v) for v in x.shape[-2:])
            if self.out is None:
                if self.size is None and h != w:
                    raise RaclError(f"image {name} is {w}x{h}, not square; pass --image-size N to resize all images")
                self.first, self.size = (name, h, w), self.size or h
                self.out = torch.empty(self.n, 3, self.size, self.size, dtype=torch.uint8)
            elif self.fixed and (h, w) != self.first[1:]:
                first, fh, fw = self.first
                raise RaclError(f"image {name} is {w}x{h} but {first} is {fw}x{fh}; "
                                "pass --image-size N to resize all images")
            self.rgb += x.shape[0] == 3
            x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
            self.out[self.filled] = x if (h, w) == (self.size, self.size) else resize_images(x[None], self.size)[0]
            self.filled += 1

    def result(self) -> torch.Tensor:
        if self.out is None:
            raise RaclError("no images to load")
        if 2 * self.rgb >= self.n:
            return self.out
        luma = _LUMA[None]  # (1, 3, 1, 1)
        return torch.cat([(self.out[i : i + 1024].float() * luma).sum(1, keepdim=True).round_().clamp_(0, 255)
                          .to(torch.uint8) for i in range(0, self.n, 1024)])
