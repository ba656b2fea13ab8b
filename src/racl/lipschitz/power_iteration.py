"""Spectral norm of a linear map by power iteration with a persistent vector (Miyato et al., 2018).

The map A is any function that is linear in its input (convolutions, BN scalings, average pools,
channel concatenations, composed into one piece between two nonlinearities). Its adjoint is never
written down: A^T w is the gradient of <A u, w> with respect to u (autograd), so every composition
of torch ops gets its exact transpose (conv2d -> conv_transpose2d, strides, padding, groups, ...).

One iteration: w = A u, g = A^T w = A^T A u, u <- g / ||g||, estimate sqrt(||g||) for unit u.
Since ||A^T A u|| <= ||A^T A|| = sigma_max^2, the estimate is a LOWER bound of the true norm, and it
increases towards sigma_max as u aligns with the top right-singular vector. The vector is a buffer, so
iterations accumulate over refreshes (one cheap iteration per refresh, as in spectral normalisation).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

LinearMap = Callable[[torch.Tensor], torch.Tensor]


class PowerIteration(nn.Module):
    """Persistent right-singular-vector estimates u (N, *in_shape) of N independent linear pieces.

    The map acts on a batch (N, *in_shape) and must be block-diagonal over the batch (piece n only
    sees input n), so N pieces of the same form run as one batched call; their norms come out per n.
    """

    def __init__(self, in_shape: Sequence[int], n: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        u = torch.randn(n, *in_shape, generator=generator)
        self.register_buffer("u", u / _norms(u))

    @torch.no_grad()
    def step(self, fn: LinearMap, n_iter: int = 1) -> torch.Tensor:
        """Run n_iter iterations on map `fn`; return ln of the N spectral-norm estimates. (N,)"""
        u = self.u
        for _ in range(max(1, n_iter)):
            g = adjoint_apply(fn, u)
            norm = _norms(g)
            dead = norm <= 0  # u in the null space: the map is 0 on it (keep u, report -inf)
            u = torch.where(dead, u, g / norm.clamp_min(1e-30))
            log_sigma = 0.5 * norm.flatten().log()
        self.u.copy_(u)
        return log_sigma


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample l2 norms, shaped to broadcast against x: (N, 1, ..., 1)."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def adjoint_apply(fn: LinearMap, u: torch.Tensor) -> torch.Tensor:
    """A^T A u for the linear map A = fn, by one forward and one backward pass."""
    with torch.enable_grad():
        x = u.detach().requires_grad_(True)
        w = fn(x)
        (g,) = torch.autograd.grad(w, x, grad_outputs=w.detach())
    return g.detach()


def spectral_norm(fn: LinearMap, in_shape: Sequence[int], n_iter: int = 100,
                  generator: torch.Generator | None = None) -> float:
    """A one-off power-iteration estimate of ||fn||_2 for one piece (a lower bound; exact in the limit)."""
    return PowerIteration(in_shape, 1, generator).step(fn, n_iter).exp().item()
