"""Random search with weight sharing (Li & Talwalkar, 2019) in the same framework.

Weight steps train the supernet on uniformly sampled single-path architectures: per node as many
distinct random incoming edges as the space keeps (all where it keeps all), on each one random op it
allows, given to the supernet as 0/1 weights. There are no architecture steps. At each epoch's end a fixed pool of
`random.candidates` random genotypes (drawn once from the seed) is scored with the shared weights on
`random.candidate_images` images of the distribution half; the best one is the result.
"""
from __future__ import annotations

from typing import Any

import torch

from torch import nn

from racl.search.config import SearchConfig
from racl.search.strategies.base import Evaluator, SearchStrategy
from racl.search_space.base import ArchWeights, CellTopology, SearchSpace, Selection

POOL_SEED_OFFSET = 7919  # the candidate pool's generator is seeded with seed + this


def random_selection(topo: CellTopology, generator: torch.Generator) -> dict[str, Selection]:
    """Per cell type and node: `keep_edges` distinct inputs uniformly (all without an edge choice),
    each with a uniform op among those a discrete edge may keep."""
    dev, allowed = generator.device, topo.choosable_ops
    out = {}
    for t in topo.cell_types:
        edges = []
        for j in range(topo.steps):
            n_in = topo.num_inputs + j
            keep = topo.keep_edges if topo.has_beta else n_in
            inputs = torch.randperm(n_in, generator=generator, device=dev)[:keep].tolist()
            if not topo.has_beta:
                inputs = sorted(inputs)
            ops = torch.randint(0, len(allowed), (keep,), generator=generator, device=dev).tolist()
            edges += [(j, i, topo.primitives[allowed[o]]) for o, i in zip(ops, inputs)]
        out[t] = tuple(edges)
    return out


class RandomStrategy(SearchStrategy):
    name = "random"
    has_arch_step = False
    samples_on_host = True  # the path is host data (which ops to compute): drawn with a CPU generator

    def __init__(self, space: SearchSpace, supernet: nn.Module, config: SearchConfig,
                 input_shape: tuple[int, int, int], evaluator: Evaluator | None = None):
        super().__init__(space, supernet, config, input_shape, evaluator)
        pool = torch.Generator().manual_seed(config.seed + POOL_SEED_OFFSET)
        self.candidates = [space.genotype(random_selection(self.topology, pool))
                           for _ in range(config.random.candidates)]
        self.register_buffer("candidate_acc", torch.full((len(self.candidates),), float("nan")))
        self.register_buffer("best_index", torch.tensor(0))
        self.with_bound()

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        return self.genotype_weights(self.space.genotype(random_selection(self.topology, generator)))

    def eval_weights(self) -> ArchWeights:
        return self.genotype_weights(self.genotype())

    @torch.no_grad()
    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """Score the candidate pool with the shared weights; keep the best (first on ties)."""
        if self.evaluator is None:
            raise RuntimeError("RandomStrategy needs an evaluator (give one to its constructor)")
        accs = [self.evaluator(self.genotype_weights(g)) for g in self.candidates]
        self.candidate_acc.copy_(torch.tensor(accs))
        self.best_index.fill_(int(torch.tensor(accs).argmax()))
        return {**self.point_bound_metrics(), "candidate_acc": float(max(accs))}

    def genotype(self):
        return self.candidates[int(self.best_index)]
