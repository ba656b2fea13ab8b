"""Cost of the input-gradient-norm term (robust.gamma > 0: double backprop) in the search's weight step.

    .venv/bin/python benchmarks/gradnorm_cost.py [--size quick|default] [--rounds 4]

One process; the weight step with gamma = 0 and gamma = 0.1 alternate (after one untimed step each),
every timing is printed, then the median ratio. Same supernet, sample and batch for both.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from racl.bench.cases import SUPERNET_SIZES
from racl.search.config import SEARCH_ATTACK, RobustConfig
from racl.search.weight_step import weight_step
from racl.supernet import Supernet
from racl.distributions import ArchDistribution
from racl.search_space.base import map_weights


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", choices=tuple(SUPERNET_SIZES), default="quick")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    torch.manual_seed(0)
    net = Supernet(num_classes=10, **SUPERNET_SIZES[args.size])
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    w = ArchDistribution(normalize=True).sample(torch.Generator().manual_seed(0))
    w = map_weights(torch.Tensor.detach, w)
    x, y = torch.rand(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    times: dict[float, list[float]] = {0.0: [], 0.1: []}
    for gamma in times:
        weight_step(net, opt, w, x, y, RobustConfig(), SEARCH_ATTACK, 5.0, gamma)  # untimed warm-up
    for r in range(args.rounds):
        for gamma in (times if r % 2 == 0 else reversed(list(times))):
            start = time.perf_counter()
            weight_step(net, opt, w, x, y, RobustConfig(), SEARCH_ATTACK, 5.0, gamma)
            times[gamma].append(time.perf_counter() - start)
            print(f"round {r} gamma {gamma}: {times[gamma][-1]:.2f} s", flush=True)
    ratio = statistics.median(times[0.1]) / statistics.median(times[0.0])
    print(f"median weight step: gamma 0 {statistics.median(times[0.0]):.2f} s, gamma 0.1 "
          f"{statistics.median(times[0.1]):.2f} s, ratio {ratio:.2f}x ({args.size} supernet, batch {args.batch}, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
