"""Depthwise convolutions of the DARTS ops: torch's F.conv2d vs racl's depthwise_conv2d, per gradient.

Times (median of 20, ms) the forward, forward + input gradient (frozen weight, as in attack steps),
and forward + both gradients of each depthwise
convolution shape in the default supernet (batch 32, channels-last), both ways.
Usage: .venv/bin/python benchmarks/depthwise.py
"""
import statistics
import time

import torch
from torch.nn import functional as F

from racl.search_space.depthwise import depthwise_conv2d

SHAPES = [  # (channels, size, kernel, stride, dilation): normal cells at 32, 16, 8; reductions
    (16, 32, 3, 1, 1), (16, 32, 5, 1, 1), (16, 32, 3, 1, 2), (16, 32, 5, 1, 2),
    (32, 16, 5, 1, 2), (64, 8, 5, 1, 2), (32, 32, 3, 2, 2), (32, 32, 5, 2, 2),
]


def _ms(fn, n: int = 20) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _grad_fns(conv, x, w):
    out = conv(x, w)
    g = torch.randn_like(out)
    forward = lambda: conv(x, w)  # noqa: E731
    frozen = w.detach()  # as in attack steps: no weight gradient wanted
    input_grad = lambda: torch.autograd.grad(conv(x, frozen), x, g)  # noqa: E731
    both = lambda: torch.autograd.grad(conv(x, w), (x, w), g)  # noqa: E731
    return forward, input_grad, both


def main() -> None:
    cl = torch.channels_last
    print(f"{'C':>3} {'HW':>3} {'k':>2} {'s':>2} {'d':>2} | torch: fwd, fwd+in, fwd+in+w (ms) | racl: same")
    for c, size, k, stride, dil in SHAPES:
        pad = dil * (k - 1) // 2
        x = torch.randn(32, c, size, size).contiguous(memory_format=cl).requires_grad_(True)
        w = torch.randn(c, 1, k, k).contiguous(memory_format=cl).requires_grad_(True)
        rows = []
        for conv in (lambda a, b: F.conv2d(a, b, None, stride, pad, dil, c),
                     lambda a, b: depthwise_conv2d(a, b, stride, pad, dil)):
            rows.append(" ".join(f"{_ms(f):6.2f}" for f in _grad_fns(conv, x, w)))
        print(f"{c:3d} {size:3d} {k:2d} {stride:2d} {dil:2d} | {rows[0]} | {rows[1]}")


if __name__ == "__main__":
    main()
