"""Random search with weight sharing (Li & Talwalkar, 2019) in the same framework.

Weight steps train the supernet on uniformly sampled single-path architectures: per node two
distinct random incoming edges, on each one random op other than `none`, given to the supernet as
0/1 weights. There are no architecture steps. At each epoch's end a fixed pool of
`random.candidates` random genotypes (drawn once from the seed) is scored with the shared weights on
`random.candidate_images` images of the distribution half; the best one is the result.
"""
from __future__ import annotations

from typing import Any

import torch

from racl.search.config import SearchConfig
from racl.search.discretize import genotype_to_weights
from racl.search.strategies.base import Evaluator, SearchStrategy, make_bound
from racl.search_space.genotype import Genotype
from racl.search_space.ops import PRIMITIVES
from racl.supernet import ArchWeights, Supernet

POOL_SEED_OFFSET = 7919  # the candidate pool's generator is seeded with seed + this


def random_genotype(steps: int, generator: torch.Generator) -> Genotype:
    """Per node: 2 distinct inputs uniformly, each with a uniform op from PRIMITIVES minus `none`."""
    dev = generator.device
    cells = []
    for _ in range(2):
        edges = []
        for j in range(steps):
            inputs = torch.randperm(j + 2, generator=generator, device=dev)[:2].tolist()
            ops = torch.randint(1, len(PRIMITIVES), (2,), generator=generator, device=dev).tolist()
            edges += [(PRIMITIVES[o], i) for o, i in zip(ops, inputs)]
        cells.append(tuple(edges))
    concat = tuple(range(2, 2 + steps))
    return Genotype(cells[0], concat, cells[1], concat)


class RandomStrategy(SearchStrategy):
    name = "random"
    has_arch_step = False

    def __init__(self, supernet: Supernet, config: SearchConfig, input_shape: tuple[int, int, int],
                 evaluator: Evaluator | None = None):
        super().__init__(supernet, config, input_shape, evaluator)
        pool = torch.Generator().manual_seed(config.seed + POOL_SEED_OFFSET)
        self.candidates = [random_genotype(supernet.steps, pool) for _ in range(config.random.candidates)]
        self.register_buffer("candidate_acc", torch.full((len(self.candidates),), float("nan")))
        self.register_buffer("best_index", torch.tensor(0))
        self.device = next(supernet.parameters()).device
        self.attach_bound(make_bound(supernet, input_shape, config))

    def _to_weights(self, genotype: Genotype) -> ArchWeights:
        w = genotype_to_weights(genotype, self.supernet.num_ops, self.device)
        return ArchWeights(w["normal_alpha"], w["normal_beta"], w["reduce_alpha"], w["reduce_beta"])

    def sample_weights(self, generator: torch.Generator) -> ArchWeights:
        return self._to_weights(random_genotype(self.supernet.steps, generator))

    def eval_weights(self) -> ArchWeights:
        return self._to_weights(self.genotype())

    @torch.no_grad()
    def epoch_end(self, epoch: int, arch_phase: bool, generator: torch.Generator) -> dict[str, Any]:
        """Score the candidate pool with the shared weights; keep the best (first on ties)."""
        if self.evaluator is None:
            raise RuntimeError("RandomStrategy needs an evaluator (give one to its constructor)")
        accs = [self.evaluator(self._to_weights(g)) for g in self.candidates]
        self.candidate_acc.copy_(torch.tensor(accs))
        self.best_index.fill_(int(torch.tensor(accs).argmax()))
        return {**self.point_bound_metrics(), "candidate_acc": float(max(accs))}

    def genotype(self) -> Genotype:
        return self.candidates[int(self.best_index)]
