"""BatchNorm statistics that belong to the architecture being evaluated or measured.

The supernet's BN layers (affine-free) keep running statistics of the *mixture* that the weight
steps train; a sub-architecture (a genotype as 0/1 weights, a random candidate, DARTS's softmax
point) sees other activations, and early in a search the running statistics still hold much of their
initial value. Two remedies, both leaving the training untouched:
- `batch_statistics(model)`: inside, every BN normalises with the statistics of the batch it sees
  (train mode), the rest of the model is in eval mode, and all BN buffers are restored on exit, so
  evaluating an architecture changes nothing (used for val_acc, genotype_val_acc and the random
  strategy's candidate scores);
- `recalibrate(model, weights, batches)`: reset the running statistics and recompute them as the
  cumulative average over the given batches (torch.optim.swa_utils.update_bn), for measurements that
  read eval-mode BN factors (the Lipschitz bound with `bound.bn = eval`);
- `untracked(model)`: inside, train-mode BN layers normalise with batch statistics and leave their
  running statistics alone (the weight step's second pass for robust.gradnorm_subset < 1).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn

from racl.models.layers import attribute_set
from racl.search_space.base import ArchWeights
from racl.search_space.depthwise import twice
from racl.supernet.fixed import FixedArch


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """BN layers use batch statistics inside the block; modes and every BN buffer restored after."""
    was_training = model.training
    layers = bn_layers(model)
    saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in layers]
    model.eval()
    for m in layers:
        m.train()
    try:
        yield model
    finally:
        with torch.no_grad():
            for m, buffers in zip(layers, saved):
                for k, b in m.named_buffers(recurse=False):
                    b.copy_(buffers[k])
        model.train(was_training)


@torch.no_grad()
def recalibrate(supernet: nn.Module, weights: ArchWeights, batches: Iterable[torch.Tensor]) -> None:
    """Running statistics = cumulative averages over `batches` of the supernet at `weights`."""
    update_bn(batches, FixedArch(supernet, weights))


@contextmanager
def untracked(model: nn.Module) -> Iterator[nn.Module]:
    """Inside, every BN layer has track_running_stats off (train mode: batch statistics, running
    statistics and num_batches_tracked untouched); restored on exit."""
    with attribute_set(bn_layers(model), "track_running_stats", False):
        yield model


# ------------------------------------------------------------------ train-mode BN with a lean double backward
def batch_norm_train(x: torch.Tensor, weight: torch.Tensor | None, running_mean: torch.Tensor | None,
                     running_var: torch.Tensor | None, momentum: float, eps: float) -> torch.Tensor:
    """F.batch_norm(x, running_mean, running_var, weight, None, training=True, momentum, eps) for a
    bias-free BN (the supernet's: affine-free, or weighted by the op's architecture weight), with the
    same forward and first backward (one native kernel each) and a second derivative of about twenty
    whole-tensor operations, where torch 2.14.1's batchnorm_double_backward issues about eighty.

    Second derivative (per channel; <.> the mean over the N = B H W positions, r = 1 / sqrt(var + eps),
    xhat = (x - mean) r, P(a) = a - <a> - xhat <a xhat> the projection the BN backward applies, so that
    dx = w r P(g), dw = N <g xhat>): for upstream gradients hx (of dx) and hw (of dw),
        d/dg = w r P(hx) + hw xhat,      d/dw = r sum(hx P(g)),
        d/dx = hw r P(g) - w r^2 (<hx P(g)> xhat + P(<g xhat> hx + <hx xhat> g)),
    each r P(.) one native_batch_norm_backward call. Tested by gradcheck and gradgradcheck in float64
    against F.batch_norm (tests/test_gradnorm_cost.py); third derivatives are not supported.
    The Function is used inside `differentiable_twice()` (racl.search_space.depthwise), torch's own
    batch_norm elsewhere (to first order the same kernels, without two Python Functions per call)."""
    if not twice():
        return F.batch_norm(x, running_mean, running_var, weight, None, True, momentum, eps)
    return _BatchNorm.apply(x, weight, running_mean, running_var, momentum, eps)


def _projected(a: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, eps: float,
               with_weight_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(r P(a), sum(a xhat) per channel): native_batch_norm_backward of `a` without a weight (`a` in x's
    dtype: under bf16 autocast the per-channel sums are float32 and would promote it)."""
    out = torch.ops.aten.native_batch_norm_backward(a.to(x.dtype), x, None, None, None, mean, invstd, True, eps,
                                                    [True, with_weight_grad, False])
    return out[0], out[1] if with_weight_grad else None


class _BatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, running_mean, running_var, momentum, eps):
        out, mean, invstd = torch.ops.aten.native_batch_norm(x, weight, None, running_mean, running_var, True,
                                                             momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph: the backward is differentiated in turn
            dx, dw = _BatchNormBackward.apply(g, x, weight, mean, invstd, ctx.eps, want_x, want_w)
        else:
            dx, dw = _bn_backward(g, x, weight, mean, invstd, ctx.eps, want_x, want_w)
        return dx, dw, None, None, None, None


def _bn_backward(g, x, weight, mean, invstd, eps, want_x, want_w):
    """(dx if want_x, dw if want_w) of the train-mode BN: one native kernel."""
    dx, dw, _ = torch.ops.aten.native_batch_norm_backward(g, x, weight, None, None, mean, invstd, True, eps,
                                                         [want_x, want_w, False])
    return (dx if want_x else None), (dw if want_w else None)


class _BatchNormBackward(torch.autograd.Function):
    """(dx, dw) of the train-mode BN; backward: the closed form in batch_norm_train's docstring."""

    @staticmethod
    def forward(ctx, g, x, weight, mean, invstd, eps, want_x, want_w):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(g, x, weight, mean, invstd)
        ctx.eps = eps
        return _bn_backward(g, x, weight, mean, invstd, eps, want_x, want_w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, hx, hw):
        g, x, weight, mean, invstd = ctx.saved_tensors
        eps, shape = ctx.eps, (1, -1, 1, 1)
        r = invstd.view(shape)
        w = weight.view(shape) if weight is not None else None
        xhat = (x - mean.view(shape)) * r
        rpg, sum_g_xhat = _projected(g, x, mean, invstd, eps)  # r P(g), N <g xhat>
        dg = dx = dw = None
        if hx is not None:
            rph, sum_h_xhat = _projected(hx, x, mean, invstd, eps)  # r P(hx), N <hx xhat>
            n = x.numel() // x.shape[1]
            sum_h_rpg = (hx * rpg).sum((0, 2, 3))  # r sum(hx P(g)) = d/dw
            dw = sum_h_rpg if weight is not None else None
            dg = rph if w is None else rph * w
            v = hx * (sum_g_xhat / n).view(shape) + g * (sum_h_xhat / n).view(shape)
            rpv, _ = _projected(v, x, mean, invstd, eps, with_weight_grad=False)
            dx = (xhat * (sum_h_rpg / n).view(shape) + rpv) * (-r if w is None else -r * w)
        if hw is not None:
            hw = hw.view(shape)
            dg = hw * xhat if dg is None else dg + hw * xhat
            dx = hw * rpg if dx is None else dx + hw * rpg
        need_g, need_x, need_w = ctx.needs_input_grad[:3]
        return (dg if need_g else None), (dx if need_x else None), (dw if need_w else None), \
            None, None, None, None, None
