"""Global Lipschitz bound of a trained evaluation network (a search space's cell network, ResNet-18,
WideResNet).

The same conventions as the supernet's bound (racl.lipschitz.linear, method spec section 3): l2 norms
with respect to the [0, 1] input, eval-mode BN as a diagonal scaling, ReLU 1, each linear piece between
two nonlinearities by power iteration, sums by the triangle inequality, concatenations by
root-sum-square, the head as global pooling (1/sqrt(HW)) then the classifier's exact spectral norm. A
cell network is the supernet with 0/1 weights, so its bound (the space's `network_bound`) is the one
the search constrains, evaluated on the trained network. With enough iterations (default 100) the
piece norms are exact to a few digits, and the product is an upper bound of the network's constant.

Per part (stem, cell or residual block, head) the report holds
  log_constant:   ln of the part's own bound (a DARTS cell: w.r.t. its two inputs jointly, the l2 norm
                  of (a, b) where ||d s_k|| <= a ||d s_{k-2}|| + b ||d s_{k-1}||);
  log_cumulative: ln of the bound of the map input -> the part's output (the last part: the logits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from racl.errors import RaclError
from racl.lipschitz.linear import Factor, batched_bn, batched_conv, bn_scale, chain, head_log_constant, out_shape
from racl.lipschitz.power_iteration import PowerIteration
from racl.models.layers import reference_mode
from racl.models.resnet import ResNet18
from racl.models.wide_resnet import WideResNet


@dataclass
class Part:
    name: str
    module: nn.Module | None          # whose output the local estimate differentiates (None: logits)
    log_constant: float
    log_cumulative: float
    detail: dict = field(default_factory=dict)


class Pieces:
    """Power iteration on one piece after another, at the input shapes of one forward pass."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int], n_iter: int, seed: int):
        self.n_iter = n_iter
        self.gen = torch.Generator().manual_seed(seed)
        self.like = next(model.parameters()).detach()
        self.shapes = _input_shapes(model, input_shape)

    def log_norm(self, factors: list[Factor] | None, in_shape: tuple[int, ...]) -> float:
        """Sum of the log-factors of one op (-inf for `none`)."""
        if factors is None:
            return -math.inf
        total, shape = 0.0, in_shape
        for kind, fn in factors:
            if kind == "power":
                power = PowerIteration(shape, 1, self.gen).to(self.like)
                total += power.step(fn, self.n_iter).item()
                shape = out_shape(fn, 1, shape, self.like)
            else:
                total += fn().reshape(-1)[0].item()
        return total

    def piece(self, fn, module: nn.Module) -> float:
        return self.log_norm([("power", fn)], self.shapes[module])


def _input_shapes(model: nn.Module, input_shape: Sequence[int]) -> dict[nn.Module, tuple[int, ...]]:
    """Input shape (without batch) of every submodule, from one eval-mode forward of a zero image."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            shapes.setdefault(module, tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), reference_mode(model):
            model(next(model.parameters()).new_zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return shapes


def lse(*logs: float) -> float:
    finite = [v for v in logs if v != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(sum(math.exp(v - top) for v in finite))


def rss(logs: Sequence[float]) -> float:
    """ln sqrt(sum exp(2 l)): a concatenation's bound from its parts'."""
    return 0.5 * lse(*(2 * v for v in logs))


def block_parts(name: str, blocks: Sequence[nn.Module], main, shortcut, start: float) -> tuple[list[Part], float]:
    """Residual blocks: own bound = main path + shortcut (triangle inequality), ReLU counts 1."""
    parts, total = [], start
    for i, block in enumerate(blocks):
        own = lse(main(block), shortcut(block))
        total += own
        parts.append(Part(f"{name}{i}", block, own, total))
    return parts, total


def _resnet_parts(net: nn.Module, pieces: Pieces) -> list[Part]:
    stem = pieces.piece(chain(lambda x: x / net.normalize.std, batched_conv([net.conv1]), batched_bn([net.bn1])),
                        net.conv1)

    def main(b):
        return (pieces.piece(chain(batched_conv([b.conv1]), batched_bn([b.bn1])), b.conv1)
                + pieces.piece(chain(batched_conv([b.conv2]), batched_bn([b.bn2])), b.conv2))

    def shortcut(b):
        if len(b.shortcut) == 0:
            return 0.0
        return pieces.piece(chain(batched_conv([b.shortcut[0]]), batched_bn([b.shortcut[1]])), b.shortcut)

    blocks, total = block_parts("block", list(net.layers), main, shortcut, stem)
    head_in = pieces.shapes[net.layers[-1]]
    head = head_log_constant(net.classifier, *_out_hw(net.layers[-1], head_in, pieces)).item()
    return [Part("stem", net.bn1, stem, stem), *blocks, Part("head", None, head, total + head)]


def _wrn_parts(net: nn.Module, pieces: Pieces) -> list[Part]:
    stem = pieces.piece(chain(lambda x: x / net.normalize.std, batched_conv([net.conv1])), net.conv1)

    def main(b):
        first = chain(batched_bn([b.bn1]), batched_conv([b.conv1]), batched_bn([b.bn2]))
        return pieces.piece(first, b.bn1) + pieces.piece(batched_conv([b.conv2]), b.conv2)

    def shortcut(b):
        if b.shortcut is None:
            return 0.0
        return pieces.piece(chain(batched_bn([b.bn1]), batched_conv([b.shortcut])), b.bn1)

    blocks, total = block_parts("block", list(net.blocks), main, shortcut, stem)
    bn = bn_scale(net.bn).max().log().item()  # diagonal, then ReLU
    head = bn + head_log_constant(net.classifier, *pieces.shapes[net.bn][1:]).item()
    return [Part("stem", net.conv1, stem, stem), *blocks, Part("head", None, head, total + head)]


def _out_hw(block: nn.Module, in_shape: tuple[int, ...], pieces: Pieces) -> tuple[int, int]:
    with torch.no_grad():
        was = block.training
        block.eval()
        shape = block(pieces.like.new_zeros(1, *in_shape)).shape[2:]
        block.train(was)
    return int(shape[0]), int(shape[1])


def _builder(model: nn.Module) -> Callable[[nn.Module, Pieces], list[Part]] | None:
    builders = {ResNet18: _resnet_parts, WideResNet: _wrn_parts}
    if type(model) in builders:
        return builders[type(model)]
    from racl.search_space.registry import get_space, list_spaces

    for name in list_spaces():
        space = get_space(name)
        if isinstance(model, space.network_type):
            return space.network_bound
    return None


def network_bound(model: nn.Module, input_shape: Sequence[int], n_iter: int = 100, seed: int = 0) -> list[Part]:
    """Per-part global bounds of an evaluation network (see the module docstring)."""
    builder = _builder(model)
    if builder is None:
        raise RaclError(f"no Lipschitz bound for {type(model).__name__}; supported: the search spaces' "
                        "cell networks, resnet18, wrn34_10")
    if n_iter < 1:
        raise RaclError(f"power iterations must be at least 1, got {n_iter}")
    pieces = Pieces(model, input_shape, n_iter, seed)
    with torch.no_grad():
        return builder(model, pieces)
