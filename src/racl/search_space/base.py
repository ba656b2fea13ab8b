"""What the method needs to know of a cell search space: its topology and a few factories.

A search space is a plugin (NASLib's split of space and strategy): one subpackage under
racl/search_space/ with an object implementing `SearchSpace`, and one line in
racl/search_space/registry.py. The log-normal distributions, the confidence constraint, the
strategies, the discretisation rule, training, evaluation and the command line reach a space only
through this interface:

  topology(steps)           where the architecture weights sit: cell types, edges, primitives
  supernet(...)             the weight-sharing network, `forward(x, weights)` (node formula inside)
  bound(supernet, ...)      the Lipschitz bound's pieces and their propagation through the network
  genotype(selection)       a discrete cell from the chosen (node, input, op) triples, and back
  network(genotype, ...)    the evaluation network of a genotype, and its bound (`racl lipschitz`)
  genotype_from_dict, zoo   genotypes as JSON values, published cells by name
  draw(genotype, out_dir)   cell pictures

Node formula (method spec, section 1), the same in every space: node j of a cell is
    x_j = sum_{i -> j} beta_ij * sum_o alpha_o^(ij) * o(x_i),
summed over the edges entering j. Spaces differ in how many inputs a cell has, which of its nodes
form its output, how many incoming edges a discrete node keeps (DARTS: 2, chosen by beta;
NAS-Bench-201: all, so beta = 1) and whether an edge may keep `none`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn


class CellWeights(NamedTuple):
    """Architecture weights of one cell type: alpha (..., E, O) per edge and op, beta (..., E) per edge.

    `mask` (E x O bools, on the host) marks the only terms that can be non-zero when the caller knows
    it without looking at the tensors (a genotype's 0/1 weights, a hard sample): the supernet then
    computes just those ops. None: every op but `none` is computed (no host-device sync either way)."""

    alpha: torch.Tensor
    beta: torch.Tensor
    mask: tuple[tuple[bool, ...], ...] | None = None


ArchWeights = dict[str, CellWeights]  # by cell type; one set shared by all cells of a type

# A discrete choice of one cell type: (node j, input i, op name) for every kept edge, node by node.
Selection = tuple[tuple[int, int, str], ...]


def map_weights(fn: Callable[[torch.Tensor], torch.Tensor], weights: ArchWeights) -> ArchWeights:
    """`fn` applied to every tensor of `weights` (e.g. exp, log, detach, .to(device))."""
    return {t: CellWeights(fn(w.alpha), fn(w.beta), w.mask) for t, w in weights.items()}


def weight_tensors(weights: ArchWeights) -> list[torch.Tensor]:
    """Every tensor of `weights`: alpha, beta of each cell type in order."""
    return [t for w in weights.values() for t in (w.alpha, w.beta)]


@dataclass(frozen=True)
class CellTopology:
    """Where the architecture weights of a space sit.

    States of a cell: its `num_inputs` inputs, then `steps` intermediate nodes. Every earlier state
    feeds every node: edge e = (node j, input i) for i < num_inputs + j, nodes in order (DARTS: 2
    inputs, 4 nodes, 14 edges; NAS-Bench-201: 1 input, 3 nodes, 6 edges). `keep_edges`: incoming
    edges a discrete node keeps, chosen by beta (None: every edge stays and beta is fixed to 1).
    `none_choosable`: whether a discrete edge may keep the `none` op.
    """

    cell_types: tuple[str, ...]
    primitives: tuple[str, ...]
    num_inputs: int
    steps: int
    keep_edges: int | None
    none_choosable: bool = False

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        return tuple((j, i) for j in range(self.steps) for i in range(self.num_inputs + j))

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @property
    def num_ops(self) -> int:
        return len(self.primitives)

    @property
    def has_beta(self) -> bool:
        """Whether the space chooses edges (a learned beta); otherwise beta = 1 on every edge."""
        return self.keep_edges is not None

    @cached_property
    def node_of_edge(self) -> tuple[int, ...]:
        return tuple(j for j, _ in self.edges)

    def edges_into(self, node: int) -> range:
        """Edge indices entering intermediate node `node` (0-based), in input order."""
        start = sum(self.num_inputs + k for k in range(node))
        return range(start, start + self.num_inputs + node)

    def edge_index(self, node: int, inp: int) -> int:
        if not 0 <= inp < self.num_inputs + node:
            raise ValueError(f"node {node} has inputs 0..{self.num_inputs + node - 1}, got {inp}")
        return self.edges_into(node)[inp]

    @cached_property
    def choosable_ops(self) -> tuple[int, ...]:
        """Indices of the ops a discrete edge may keep (all but `none`, unless none_choosable)."""
        return tuple(o for o, p in enumerate(self.primitives) if p != "none" or self.none_choosable)

    @property
    def none_index(self) -> int | None:
        return self.primitives.index("none") if "none" in self.primitives else None

    def edge_mass(self, node: int) -> float:
        """Sum of a node's normalised beta: the edges it keeps (all of them without an edge choice)."""
        return float(self.keep_edges if self.has_beta else self.num_inputs + node)


class SearchSpace:
    """The interface of a search-space plugin (see the module docstring). Subclasses set the
    attributes and implement the methods; everything else in racl uses only these."""

    name: str = ""
    description: str = ""
    genotype_type: type = object
    supernet_defaults: dict[str, int] = {}  # channels, layers, steps of the search network
    network_defaults: dict[str, Any] = {}   # the evaluation network's size (e.g. channels, layers)
    zoo: dict[str, Any] = {}                # published cells by name

    def topology(self, steps: int | None = None) -> CellTopology:
        raise NotImplementedError

    def supernet(self, *, num_classes: int, in_channels: int, mean: Sequence[float], std: Sequence[float],
                 channels: int, layers: int, steps: int, ops: str = "fast", partial_channels: int = 1,
                 keep_none: bool | None = None) -> nn.Module:
        """The search network: `forward(x, weights: ArchWeights) -> logits`, attributes `topology`,
        `cells` (each with `cell_type`), `ops` ("fast" | "reference"). `partial_channels` k > 1: PC-DARTS's
        partial channel connections (racl.supernet.mixed_op.PartialMixedOp), where the space has them.
        `keep_none`: whether a discrete edge may keep `none` (None: the space's rule; NB201 allows it)."""
        raise NotImplementedError

    def bound(self, supernet: nn.Module, input_shape: Sequence[int], *, n_iter: int = 1, seed: int = 0,
              count_bn: bool = True) -> nn.Module:
        """A racl.lipschitz.LipschitzBound of the supernet, built from the space's pieces and propagation."""
        raise NotImplementedError

    def genotype(self, selection: dict[str, Selection]) -> Any:
        """The genotype of a discrete choice per cell type (racl.search.discretize)."""
        raise NotImplementedError

    def selection(self, genotype: Any) -> dict[str, Selection]:
        """The (node, input, op) triples of a genotype per cell type (the inverse of `genotype`)."""
        raise NotImplementedError

    def genotype_from_dict(self, data: Any) -> Any:
        raise NotImplementedError

    def network(self, genotype: Any, *, num_classes: int, in_channels: int, mean: Sequence[float],
                std: Sequence[float], **size: Any) -> nn.Module:
        """The evaluation network of a genotype (sizes: network_defaults' keys; a size the space does not
        support, e.g. an auxiliary head, is refused with a RaclError). Like every racl network its
        `forward(x, with_aux=False)` takes x in [0, 1] (normalisation inside) and returns logits, or
        (logits, auxiliary logits or None) with `with_aux`."""
        raise NotImplementedError

    @property
    def network_type(self) -> type:
        """The class of `network(...)`'s result (how a trained model is matched to its space)."""
        raise NotImplementedError

    def network_bound(self, net: nn.Module, pieces: Any) -> list:
        """Per-part global bounds of a trained network (racl.lipschitz.network.Part list); optional."""
        raise NotImplementedError(f"no Lipschitz bound for the {self.name} space's networks")

    def draw(self, genotype: Any, out_dir: str | Path, label: str = "") -> list[Path]:
        return []

    def parameter_free(self, genotype: Any) -> tuple[int, int]:
        """(parameter-free ops, all ops) of the genotype's first cell type: a collapse diagnostic."""
        raise NotImplementedError

    def parse_text(self, text: str) -> Any | None:
        """A genotype from a textual form the space defines (e.g. NB201's architecture strings), or None."""
        return None

    def describe(self, genotype: Any) -> str:
        """One line naming the genotype (e.g. NB201's architecture string)."""
        return str(genotype)
