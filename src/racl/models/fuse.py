"""Eval-mode BN folding: a copy of a network with every BN that directly follows a conv folded into it.

In eval mode BN is the affine map y = gamma (x - mu) / sqrt(var + eps) + beta per channel, so
conv -> BN is one conv with weight W gamma / sqrt(var + eps) and a bias (torch's fuse_conv_bn_eval).
Attacks on an eval-mode model (evaluation PGD, AutoAttack, ...) run on such a copy: the same function
up to float rounding, without the BN kernels in each of their forward/backward passes. The pairs:
  - inside an nn.Sequential, a Conv2d immediately followed by a BatchNorm2d (ReLUConvBN, DilConv,
    the DARTS stem, ResNet shortcuts);
  - FactorizedReduce: each half of its BN into the conv that produces that half of the channels;
  - a module's own (conv attribute, BN attribute) pairs, named by its class's `BN_FOLD_PAIRS` (ResNet-18
    and its blocks: the BN applied to the conv's output).
WideResNet's BNs come before their convs (pre-activation) and stay as they are. A module whose class
sets `KEEPS_BATCHNORM = True` (the search supernet: its cells read their ops' BN modules) is never
folded: a model that holds one is returned as it is. This module knows no network type but the
search space's FactorizedReduce.
"""
from __future__ import annotations

import copy
from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from racl.models.layers import Normalize
from racl.search_space.darts.ops import FactorizedReduce


def _bn_slice(bn: nn.BatchNorm2d, start: int, stop: int) -> nn.BatchNorm2d:
    """The BN of channels start..stop-1 (eval-mode statistics and affine parameters)."""
    part = nn.BatchNorm2d(stop - start, eps=bn.eps, affine=bn.affine).to(bn.running_mean).eval()
    part.running_mean.copy_(bn.running_mean[start:stop])
    part.running_var.copy_(bn.running_var[start:stop])
    if bn.affine:
        part.weight.data.copy_(bn.weight.detach()[start:stop])
        part.bias.data.copy_(bn.bias.detach()[start:stop])
    return part


def _fuse(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = fuse_conv_bn_eval(conv, bn)
    fused.weight.requires_grad_(conv.weight.requires_grad)
    fused.bias.requires_grad_(conv.weight.requires_grad)
    return fused


def _sequential_pairs(seq: nn.Sequential) -> list[tuple[str, str]]:
    """Names of (Conv2d, BatchNorm2d with running statistics) neighbours in an nn.Sequential."""
    names = list(seq._modules)
    return [(a, b) for a, b in zip(names, names[1:])
            if isinstance(seq._modules[a], nn.Conv2d) and isinstance(seq._modules[b], nn.BatchNorm2d)
            and seq._modules[b].track_running_stats]


def _fold_sequential(seq: nn.Sequential) -> int:
    pairs = _sequential_pairs(seq)
    for a, b in pairs:
        seq._modules[a], seq._modules[b] = _fuse(seq._modules[a], seq._modules[b]), nn.Identity()
    return len(pairs)


def _fold_pairs(module: nn.Module, pairs: tuple[tuple[str, str], ...]) -> int:
    for conv, bn in pairs:
        setattr(module, conv, _fuse(getattr(module, conv), getattr(module, bn)))
        setattr(module, bn, nn.Identity())
    return len(pairs)


def _fold_factorized_reduce(module: nn.Module) -> int:
    half = module.conv_1.out_channels
    bn = module.bn
    module.conv_1 = _fuse(module.conv_1, _bn_slice(bn, 0, half))
    module.conv_2 = _fuse(module.conv_2, _bn_slice(bn, half, 2 * half))
    module.bn = nn.Identity()
    return 1


def _fold_sites(model: nn.Module) -> list[Callable[[], int]]:
    """One in-place folding per place of `model` that holds a foldable conv -> BN pair."""
    sites = []
    for module in model.modules():
        if isinstance(module, nn.Sequential) and _sequential_pairs(module):
            sites.append(partial(_fold_sequential, module))
        elif isinstance(module, FactorizedReduce) and isinstance(module.bn, nn.BatchNorm2d):
            sites.append(partial(_fold_factorized_reduce, module))
        elif getattr(module, "BN_FOLD_PAIRS", ()) and isinstance(getattr(module, module.BN_FOLD_PAIRS[0][1]),
                                                                   nn.BatchNorm2d):
            sites.append(partial(_fold_pairs, module, module.BN_FOLD_PAIRS))
    return sites


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """(eval-mode copy of `model` with the BNs folded, number of BNs folded); `model` is not changed.

    Returned as it is, with 0 (no copy made): a model with nothing to fold (e.g. WideResNet), a
    model holding a KEEPS_BATCHNORM module (the supernet), and a model that cannot be deep-copied
    (e.g. one holding non-leaf tensors)."""
    if not _fold_sites(model) or any(getattr(m, "KEEPS_BATCHNORM", False) for m in model.modules()):
        return model, 0
    try:
        folded = copy.deepcopy(model).eval()
    except RuntimeError:  # "Only Tensors created explicitly by the user support the deepcopy protocol"
        return model, 0
    with torch.no_grad():
        count = sum(fold() for fold in _fold_sites(folded))
    if _is_channels_last(model):
        folded.to(memory_format=torch.channels_last)
    return folded, count


def _is_channels_last(model: nn.Module) -> bool:
    return any(isinstance(m, Normalize) and m.channels_last for m in model.modules())
