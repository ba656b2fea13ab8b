"""Torch operations issued by one search weight step: what a GPU launches (roughly one kernel each).

Counts are deterministic, so unlike timings they can be measured on a loaded machine. The step is
routed as on CUDA (`racl.search_space.depthwise.routed_as_on_cuda`: the CPU-only rewrites off).
`benchmarks/gradnorm_cost.py` prints them; tests/test_gradnorm_cost.py bounds them.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from racl.search.config import SEARCH_ATTACK, RobustConfig
from racl.search.weight_step import weight_step
from racl.search_space.base import map_weights
from racl.search_space.darts.supernet import Supernet
from racl.search_space.depthwise import routed_as_on_cuda
from racl.distributions import ArchDistribution

_CONVS = (torch.ops.aten.convolution, torch.ops.aten.convolution_backward)


class OpCounter(TorchDispatchMode):
    """Counts every aten operation run inside it (below autograd), convolutions (forward and backward
    calls), among them single-channel ones (what a per-group loop issues), and the convolutions' GFLOP
    (each gradient of a convolution costs its forward: 2 x output elements x weight elements per output
    channel, as racl.bench.cases.flop_counter, which autograd.grad w.r.t. an input defeats)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.single_channel = 0
        self.conv_flop = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        self.ops[str(packet)] += 1
        out = func(*args, **(kwargs or {}))
        if packet is torch.ops.aten.convolution:
            self.single_channel += int(args[1].shape[0] == 1)
            self.conv_flop += 2 * out.numel() * args[1][0].numel()
        elif packet is torch.ops.aten.convolution_backward:
            self.single_channel += int(args[2].shape[0] == 1)
            self.conv_flop += 2 * args[0].numel() * args[2][0].numel() * sum(map(bool, args[-1][:2]))
        return out

    def summary(self) -> dict:
        return {"total": sum(self.ops.values()), "convolutions": sum(self.ops[str(p)] for p in _CONVS),
                "single_channel_convolutions": self.single_channel, "conv_gflop": round(self.conv_flop / 1e9, 3),
                "top": dict(self.ops.most_common(8))}


def weight_step_ops(gamma: float, channels: int = 16, layers: int = 8, batch: int = 32, image_size: int = 32,
                    gradnorm_subset: float = 1.0) -> dict:
    """OpCounter.summary() of one weight step (after an uncounted one) of the supernet on the CPU, routed
    as on CUDA, with the given input-gradient-norm weight."""
    torch.manual_seed(0)
    net = Supernet(num_classes=10, channels=channels, layers=layers)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    weights = ArchDistribution(net.topology, normalize=True).sample(torch.Generator().manual_seed(0))
    weights = map_weights(torch.Tensor.detach, weights)
    x, y = torch.rand(batch, 3, image_size, image_size), torch.randint(0, 10, (batch,))
    robust = RobustConfig(gradnorm_subset=gradnorm_subset)
    with routed_as_on_cuda():
        weight_step(net, opt, weights, x, y, robust, SEARCH_ATTACK, 5.0, gamma)
        with OpCounter() as counter:
            weight_step(net, opt, weights, x, y, robust, SEARCH_ATTACK, 5.0, gamma)
    return counter.summary()
