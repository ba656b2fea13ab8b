"""Empirical local Lipschitz estimate: the largest Jacobian spectral norm found on data.

For a part with output z(x) (a cell, a block, or the logits), ||J_z(x)||_2 is the local l2 Lipschitz
constant at x, so max over data points is a LOWER bound of the network's (global) Lipschitz constant
and can be set against the global upper bound of network.py. It is found per image by power iteration
on J^T J, with both products by autograd (no Jacobian is formed):
  J^T v = grad(z, x, v)  (one backward),  J u = grad(J^T v, v, u)  (double backward: J^T v is linear in v).
Each iteration reports ||J u|| for a unit u, a lower bound of ||J||_2 that increases towards it.
The model is in eval mode, so images do not interact and a batch gives one estimate per image.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from racl.search_space.depthwise import differentiable_twice


class _Stop(Exception):
    def __init__(self, output: torch.Tensor):
        self.output = output


def part_output(model: nn.Module, module: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """The output of `module` (the logits for None) on input x, stopping the forward there."""
    if module is None:
        return model(x)

    def hook(m, args, output):
        raise _Stop(output)

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Stop as stop:
        return stop.output
    finally:
        handle.remove()
    raise RuntimeError("the part was not called in the forward pass")


def _unit(u: torch.Tensor) -> torch.Tensor:
    return u / u.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (u.dim() - 1)))


def jacobian_norms(model: nn.Module, module: nn.Module | None, x: torch.Tensor, n_iter: int = 10,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image estimate of ||d part(x) / dx||_2 (lower bounds, by power iteration). (B,)"""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), differentiable_twice():  # depthwise convs' second derivative cheap (speed only)
        z = part_output(model, module, x)
        v = torch.zeros_like(z, requires_grad=True)
        (jt_v,) = torch.autograd.grad(z, x, v, create_graph=True)
        u = _unit(torch.randn(x.shape, generator=generator).to(x))
        norms = x.new_zeros(x.shape[0])
        for _ in range(max(1, n_iter)):
            (j_u,) = torch.autograd.grad(jt_v, v, u, retain_graph=True)
            norms = j_u.flatten(1).norm(dim=1)
            (jt_j_u,) = torch.autograd.grad(z, x, j_u, retain_graph=True)
            u = _unit(jt_j_u.detach())
    return norms.detach()


def local_estimates(model: nn.Module, parts: Sequence[nn.Module | None], images: torch.Tensor,
                    batch_size: int = 32, n_iter: int = 10, seed: int = 0) -> list[dict]:
    """For each part: max, mean and arg-max image index of the Jacobian norm over `images` (N, C, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        per_part = [torch.cat([jacobian_norms(model, m, images[i:i + batch_size], n_iter, gen)
                               for i in range(0, images.shape[0], batch_size)]) for m in parts]
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    return [{"max": n.max().item(), "mean": n.mean().item(), "argmax": int(n.argmax())} for n in per_part]
