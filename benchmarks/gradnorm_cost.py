"""Cost of the input-gradient-norm term (robust.gamma > 0: double backprop) in the search's weight step.

    .venv/bin/python benchmarks/gradnorm_cost.py [--size quick|default] [--rounds 4] [--subset F] [--ops-only]

First the torch operations of one weight step at gamma = 0 and 0.1, routed as on CUDA (racl.bench.opcount:
deterministic, fine on a loaded machine); then (unless --ops-only) the weight step's time with gamma = 0
and 0.1 alternating in one process (after one untimed step each), every timing printed, then the median
ratio. Same supernet, sample and batch for both. --subset: robust.gradnorm_subset for the gamma = 0.1 step.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from racl.bench.cases import SUPERNET_SIZES
from racl.bench.opcount import weight_step_ops
from racl.distributions import ArchDistribution
from racl.search.config import SEARCH_ATTACK, RobustConfig
from racl.search.weight_step import weight_step
from racl.search_space.base import map_weights
from racl.search_space.darts.supernet import Supernet


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", choices=tuple(SUPERNET_SIZES), default="quick")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--subset", type=float, default=1.0)
    p.add_argument("--ops-only", action="store_true", help="count operations only (no timing)")
    args = p.parse_args()
    size = SUPERNET_SIZES[args.size]
    for gamma in (0.0, 0.1):
        counts = weight_step_ops(gamma, batch=args.batch, gradnorm_subset=args.subset if gamma else 1.0, **size)
        print(f"operations, gamma {gamma} ({args.size} supernet, batch {args.batch}, routed as on CUDA): "
              f"{json.dumps(counts)}", flush=True)
    if args.ops_only:
        return
    torch.manual_seed(0)
    net = Supernet(num_classes=10, **size)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    w = map_weights(torch.Tensor.detach,
                    ArchDistribution(net.topology, normalize=True).sample(torch.Generator().manual_seed(0)))
    x, y = torch.rand(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    robust = RobustConfig(gradnorm_subset=args.subset)
    times: dict[float, list[float]] = {0.0: [], 0.1: []}
    for gamma in times:
        weight_step(net, opt, w, x, y, robust, SEARCH_ATTACK, 5.0, gamma)  # untimed warm-up
    for r in range(args.rounds):
        for gamma in (times if r % 2 == 0 else reversed(list(times))):
            start = time.perf_counter()
            weight_step(net, opt, w, x, y, robust, SEARCH_ATTACK, 5.0, gamma)
            times[gamma].append(time.perf_counter() - start)
            print(f"round {r} gamma {gamma}: {times[gamma][-1]:.2f} s", flush=True)
    ratio = statistics.median(times[0.1]) / statistics.median(times[0.0])
    print(f"median weight step: gamma 0 {statistics.median(times[0.0]):.2f} s, gamma 0.1 "
          f"{statistics.median(times[0.1]):.2f} s, ratio {ratio:.2f}x ({args.size} supernet, batch {args.batch}, "
          f"subset {args.subset}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
