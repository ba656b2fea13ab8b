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

`FoldedCopy` keeps one folded copy per model and refreshes it in place (every folded conv's weight and
bias recomputed from the model's current conv and BN, every other tensor copied): what an attack in
eval mode during training uses, where the model changes after every step (no deep copy per step).
"""
from __future__ import annotations

import copy
from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

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


Fold = tuple[nn.Conv2d, nn.Conv2d, nn.BatchNorm2d, slice]  # (fused conv, conv, BN, the BN's channels used)


def _fuse(conv: nn.Conv2d, bn: nn.BatchNorm2d, folds: list[Fold], channels: slice = slice(None)) -> nn.Conv2d:
    part = bn if channels.start is None else _bn_slice(bn, channels.start, channels.stop)
    fused = fuse_conv_bn_eval(conv, part)
    fused.weight.requires_grad_(conv.weight.requires_grad)
    fused.bias.requires_grad_(conv.weight.requires_grad)
    folds.append((fused, conv, bn, channels))
    return fused


def _fused_weights(conv: nn.Conv2d, bn: nn.BatchNorm2d, c: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """fuse_conv_bn_eval's weight and bias for channels c of bn (the same arithmetic, so the same bits)."""
    affine = (None, None) if bn.weight is None else (bn.weight[c], bn.bias[c])
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean[c], bn.running_var[c], bn.eps, *affine)
    return w.detach(), b.detach()


def _sequential_pairs(seq: nn.Sequential) -> list[tuple[str, str]]:
    """Names of (Conv2d, BatchNorm2d with running statistics) neighbours in an nn.Sequential."""
    names = list(seq._modules)
    return [(a, b) for a, b in zip(names, names[1:])
            if isinstance(seq._modules[a], nn.Conv2d) and isinstance(seq._modules[b], nn.BatchNorm2d)
            and seq._modules[b].track_running_stats]


def _fold_sequential(seq: nn.Sequential, folds: list[Fold]) -> None:
    for a, b in _sequential_pairs(seq):
        seq._modules[a], seq._modules[b] = _fuse(seq._modules[a], seq._modules[b], folds), nn.Identity()


def _fold_pairs(module: nn.Module, pairs: tuple[tuple[str, str], ...], folds: list[Fold]) -> None:
    for conv, bn in pairs:
        setattr(module, conv, _fuse(getattr(module, conv), getattr(module, bn), folds))
        setattr(module, bn, nn.Identity())


def _fold_factorized_reduce(module: nn.Module, folds: list[Fold]) -> None:
    half = module.conv_1.out_channels
    bn = module.bn
    module.conv_1 = _fuse(module.conv_1, bn, folds, slice(0, half))
    module.conv_2 = _fuse(module.conv_2, bn, folds, slice(half, 2 * half))
    module.bn = nn.Identity()


def _fold_sites(model: nn.Module) -> list[Callable[[list[Fold]], None]]:
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
    folded = FoldedCopy(model)
    return folded.model(), folded.count


class FoldedCopy:
    """One folded copy of `model` (see fold_batchnorm), made at the first `model()` and refreshed in place
    at every later call: each fused conv's weight and bias recomputed from the model's conv and BN
    (fuse_conv_bn_weights, the arithmetic of the first fold: the same bits as a new copy), every other
    parameter and buffer copied. A new copy is made only when the model's tensors were replaced (e.g.
    moved to another device). Python attributes (e.g. drop_path_prob) are those of the first copy."""

    def __init__(self, model: nn.Module):
        self.source, self.count = model, 0
        self._copy: nn.Module | None = None
        self._key: tuple | None = None
        self._folds: list[Fold] = []
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (tensor of the copy, the model's)

    def model(self) -> nn.Module:
        """The folded copy with the model's current values (the model itself when nothing is folded)."""
        key = _signature(self.source)
        if key != self._key:
            self._build()
            self._key = key
        elif self._copy is not None:
            self._refresh()
        return self.source if self._copy is None else self._copy

    def _build(self) -> None:
        model = self.source
        self._copy, self.count, self._folds, self._pairs = None, 0, [], []
        if not _fold_sites(model) or any(getattr(m, "KEEPS_BATCHNORM", False) for m in model.modules()):
            return
        try:
            folded = copy.deepcopy(model).eval()
        except RuntimeError:  # "Only Tensors created explicitly by the user support the deepcopy protocol"
            return
        originals = dict(zip(folded.modules(), model.modules()))  # the copy's modules -> the model's
        folds: list[Fold] = []
        with torch.no_grad():
            for fold in _fold_sites(folded):
                fold(folds)
        if _is_channels_last(model):
            folded.to(memory_format=torch.channels_last)
        self._folds = [(fused, originals[conv], originals[bn], c) for fused, conv, bn, c in folds]
        fused = {id(t) for f, _, _, _ in folds for t in (f.weight, f.bias)}
        named = dict(_named_tensors(model))  # a tensor of the copy that is not a fused conv's has its name
        self._pairs = [(t, named[name]) for name, t in _named_tensors(folded) if id(t) not in fused]
        self._copy, self.count = folded, len({id(bn) for _, _, bn, _ in folds})

    @torch.no_grad()
    def _refresh(self) -> None:
        for fused, conv, bn, c in self._folds:
            w, b = _fused_weights(conv, bn, c)
            fused.weight.copy_(w)
            fused.bias.copy_(b)
        if self._pairs:
            torch._foreach_copy_([d for d, _ in self._pairs], [s for _, s in self._pairs])


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def _named_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(), *model.named_buffers()]


def _signature(model: nn.Module) -> tuple:
    """Which tensors the model holds and where their data lives (changes when they are replaced or moved)."""
    return tuple((id(t), t.data_ptr()) for t in _tensors(model))


def _is_channels_last(model: nn.Module) -> bool:
    return any(isinstance(m, Normalize) and m.channels_last for m in model.modules())
