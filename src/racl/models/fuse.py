"""Eval-mode BN folding: a copy of a network with every BN that directly follows a conv folded into it.

In eval mode BN is the affine map y = gamma (x - mu) / sqrt(var + eps) + beta per channel, so
conv -> BN is one conv with weight W gamma / sqrt(var + eps) and a bias (torch's fuse_conv_bn_eval).
Attacks on an eval-mode model (evaluation PGD, AutoAttack, ...) run on such a copy: the same function
up to float rounding, without the BN kernels in each of their forward/backward passes. The pairs:
  - inside an nn.Sequential, a Conv2d immediately followed by a BatchNorm2d (ReLUConvBN, DilConv,
    the DARTS stem, ResNet shortcuts);
  - FactorizedReduce: each half of its BN into the conv that produces that half of the channels;
  - ResNet-18's (conv1, bn1) and its blocks' (conv1, bn1), (conv2, bn2) (BN applied to the conv's output).
WideResNet's BNs come before their convs (pre-activation) and stay as they are.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


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


def _fold_sequential(seq: nn.Sequential) -> int:
    names = list(seq._modules)
    count = 0
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
            seq._modules[a], seq._modules[b] = _fuse(conv, bn), nn.Identity()
            count += 1
    return count


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


def _attribute_pairs() -> dict[type, tuple[tuple[str, str], ...]]:
    from racl.models.resnet import BasicBlock, ResNet18

    return {ResNet18: (("conv1", "bn1"),), BasicBlock: (("conv1", "bn1"), ("conv2", "bn2"))}


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """(eval-mode copy of `model` with the BNs folded, number of BNs folded); `model` is not changed.

    A supernet is returned as it is, with 0: its fast path reads the BN modules of its ops itself; so is
    a model that cannot be deep-copied (e.g. one holding non-leaf tensors)."""
    from racl.search_space.ops import FactorizedReduce
    from racl.supernet import Supernet

    if any(isinstance(m, Supernet) for m in model.modules()):
        return model, 0
    try:
        folded = copy.deepcopy(model).eval()
    except RuntimeError:  # "Only Tensors created explicitly by the user support the deepcopy protocol"
        return model, 0
    pairs = _attribute_pairs()
    count = 0
    with torch.no_grad():
        for module in list(folded.modules()):
            if isinstance(module, nn.Sequential):
                count += _fold_sequential(module)
            elif isinstance(module, FactorizedReduce) and isinstance(module.bn, nn.BatchNorm2d):
                count += _fold_factorized_reduce(module)
            elif type(module) in pairs:
                count += _fold_pairs(module, pairs[type(module)])
    if _is_channels_last(model):
        folded.to(memory_format=torch.channels_last)
    return folded, count


def _is_channels_last(model: nn.Module) -> bool:
    from racl.models.layers import Normalize

    return any(isinstance(m, Normalize) and m.channels_last for m in model.modules())
