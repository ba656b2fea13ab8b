"""Search spaces are plugins: a toy space defined here (1 input, 2 nodes, 3 ops, each node keeping one
incoming edge), registered at run time, goes search -> genotype -> train -> evaluate through the
registry alone, touching no racl module; and the interface's contracts hold for every registered space."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import pytest
import torch
from torch import nn

from racl.data import load_data
from racl.errors import RaclError
from racl.evaluation.run import evaluate_checkpoint
from racl.io import read_json, write_json
from racl.lipschitz.bound import BoundLayout, Group, LipschitzBound, record_shapes
from racl.lipschitz.linear import batched_bn, batched_conv, chain, closed, head_log_constant, power
from racl.lipschitz.propagation import cell_nodes
from racl.models.layers import Normalize
from racl.search import apply_overrides, get_preset, run_search
from racl.search.strategies import REGISTRY
from racl.search_space import CellTopology, CellWeights, SearchSpace, get_space, list_spaces
from racl.search_space.registry import register_space, unregister_space
from racl.supernet import MixedOp, active_ops, node_states
from racl.training import train

from _tiny import train_config

PRIMS = ("none", "conv", "skip")


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int, affine: bool) -> nn.Module:
    if name == "conv":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, affine=affine))
    return nn.Identity() if name == "skip" else Zero()


def op_factors(name: str, ops: Sequence[nn.Module], count_bn: bool):
    if name == "conv":
        return [power(chain(batched_conv([o[1] for o in ops]), batched_bn([o[2] for o in ops], count_bn)))]
    return [] if name == "skip" else None


@dataclass(frozen=True)
class ToyGenotype:
    edges: tuple[tuple[str, int], ...]  # node j: (op, input)

    def to_dict(self) -> dict[str, Any]:
        return {"space": "toy", "edges": [list(e) for e in self.edges]}

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


class ToySupernet(nn.Module):
    def __init__(self, topo: CellTopology, num_classes: int, in_channels: int, mean, std, channels: int, layers: int):
        super().__init__()
        self.topology, self.ops = topo, "reference"
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels, affine=False))
        self.cells = nn.ModuleList()
        for _ in range(layers):
            cell = nn.Module()
            cell.cell_type = "cell"
            cell.ops = nn.ModuleList(MixedOp([make_op(p, channels, False) for p in PRIMS], PRIMS) for _ in topo.edges)
            self.cells.append(cell)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor, weights) -> torch.Tensor:
        s = self.stem(self.normalize(x))
        for cell in self.cells:
            w = weights["cell"]
            active = active_ops(PRIMS, self.topology.num_edges, w.mask)
            s = node_states([s], cell.ops, w, self.topology, active, lambda: torch.zeros_like(s))[-1]
        return self.classifier(self.pool(s).flatten(1))


def _propagate(consts, alg, weights, *, topo, layers):
    s = alg.const(consts["log_stem"])
    for k in range(layers):
        s = cell_nodes(alg, [s], weights.get("cell"), consts["log_ops"][k], topo)[-1]
    return alg.shift(s, consts["log_head"])


class ToyNetwork(nn.Module):
    def __init__(self, genotype: ToyGenotype, num_classes: int, in_channels: int, mean, std, channels: int,
                 layers: int):
        super().__init__()
        self.genotype = genotype
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.cells = nn.ModuleList(nn.ModuleList(make_op(op, channels, True) for op, _ in genotype.edges)
                                   for _ in range(layers))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        s = self.stem(self.normalize(x))
        for cell in self.cells:
            states = [s]
            for op, (_, i) in zip(cell, self.genotype.edges, strict=True):
                states.append(op(states[i]))
            s = states[-1]
        logits = self.classifier(s.mean((2, 3)))
        return (logits, None) if with_aux else logits


class ToySpace(SearchSpace):
    name = "toy"
    genotype_type = ToyGenotype
    network_type = ToyNetwork
    supernet_defaults = {"channels": 4, "layers": 2, "steps": 2}
    network_defaults = {"channels": 4, "layers": 2}
    zoo = {"TOY_SKIP": ToyGenotype((("skip", 0), ("skip", 1)))}

    def topology(self, steps=None) -> CellTopology:
        return CellTopology(("cell",), PRIMS, num_inputs=1, steps=2, keep_edges=1)

    def supernet(self, *, num_classes, in_channels, mean, std, channels, layers, steps, ops="fast"):
        return ToySupernet(self.topology(), num_classes, in_channels, mean, std, channels, layers)

    def bound(self, net, input_shape, *, n_iter=1, seed=0, count_bn=True):
        topo = net.topology
        ones = {"cell": CellWeights(torch.ones(topo.num_edges, topo.num_ops), torch.ones(topo.num_edges))}
        shapes = record_shapes(net, input_shape, lambda x: net(x, ones))
        groups = [Group("log_stem", (), [power(chain(lambda x: x / net.normalize.std, batched_conv([net.stem[0]]),
                                                     batched_bn([net.stem[1]], count_bn)))], 1, shapes[net.stem])]
        for k, cell in enumerate(net.cells):
            for e, mixed in enumerate(cell.ops):
                for o, name in enumerate(PRIMS):
                    groups.append(Group("log_ops", (k, [e], o), op_factors(name, [mixed.ops[o]], count_bn), 1,
                                        shapes[mixed]))
        hw = shapes[net.pool][1:]
        groups.append(Group("log_head", (), [closed(lambda: head_log_constant(net.classifier, *hw).reshape(1))], 1, ()))
        layout = BoundLayout(topo, tuple("cell" for _ in net.cells),
                             {"log_stem": (), "log_ops": (len(net.cells), topo.num_edges, topo.num_ops), "log_head": ()},
                             groups, partial(_propagate, topo=topo, layers=len(net.cells)), lambda: next(net.parameters()))
        return LipschitzBound(layout, next(net.parameters()), n_iter=n_iter, seed=seed)

    def genotype(self, selection):
        return ToyGenotype(tuple((op, i) for _, i, op in selection["cell"]))

    def selection(self, genotype):
        return {"cell": tuple((j, i, op) for j, (op, i) in enumerate(genotype.edges))}

    def genotype_from_dict(self, data):
        if not isinstance(data, dict) or data.get("space") != "toy":
            raise RaclError("not a toy genotype")
        return ToyGenotype(tuple((op, int(i)) for op, i in data["edges"]))

    def network(self, genotype, *, num_classes, in_channels, mean, std, channels=4, layers=2, auxiliary=False,
                drop_path_prob=0.0):
        if auxiliary or drop_path_prob:
            raise RaclError("toy networks have no auxiliary head and no drop-path")
        return ToyNetwork(genotype, num_classes, in_channels, mean, std, channels, layers)

    def parameter_free(self, genotype):
        return sum(op != "conv" for op, _ in genotype.edges), len(genotype.edges)


@pytest.fixture()
def toy():
    register_space("toy", ToySpace())
    yield get_space("toy")
    unregister_space("toy")


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_a_toy_space_runs_search_train_evaluate_through_the_registry(toy, strategy, tmp_path):
    from racl.search.registry import strategy_class
    if strategy_class(strategy).spaces is not None:  # a strategy for named spaces refuses the toy one
        with pytest.raises(RaclError, match="does not support the toy space"):
            apply_overrides(get_preset("tiny"), [f"strategy={strategy}", "space=toy"])
        return
    data = load_data("synthetic", image_size=8, count=48, channels=3, num_classes=3)
    config = apply_overrides(get_preset("tiny"), [f"strategy={strategy}", "space=toy", "warmup_epochs=0"])
    result = run_search(config, data, tmp_path / "search", log=None)
    genotype = result.genotype
    assert isinstance(genotype, ToyGenotype) and len(genotype.edges) == 2
    assert all(op in ("conv", "skip") and 0 <= i <= j for j, (op, i) in enumerate(genotype.edges))
    assert read_json(tmp_path / "search" / "genotype.json", "genotype")["space"] == "toy"
    record = result.metrics[-1]
    assert record["mu_F"] is not None and record["genotype_val_acc"] is not None
    summary = train(genotype, data, train_config(epochs=1, batch_size=8, adv="pgd", steps=1), tmp_path / "train",
                    log=None)
    assert summary is not None
    out = evaluate_checkpoint(tmp_path / "train" / "last.safetensors", ["fgsm"], 8 / 255, tmp_path / "eval")
    assert out["n_images"] > 0 and (tmp_path / "eval" / "results.json").is_file()
    sidecar = json.loads((tmp_path / "train" / "last.json").read_text())
    assert sidecar["model"]["space"] == "toy"


def test_the_toy_bound_holds_on_sampled_networks(toy):
    torch.manual_seed(0)
    net = toy.supernet(num_classes=3, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, channels=4, layers=2, steps=2)
    bound = toy.bound(net, (3, 8, 8), n_iter=100)
    w = {"cell": CellWeights(torch.rand(3, 3) + 0.1, torch.rand(3) + 0.1)}
    x = torch.rand(16, 3, 8, 8)
    y = x + 1e-2 * torch.randn(x.shape)
    net.eval()
    with torch.no_grad():
        ratio = ((net(x, w) - net(y, w)).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)).max()
    assert ratio.log() <= bound.log_bound(w)


def test_unknown_space_is_one_line_with_suggestions():
    with pytest.raises(RaclError, match="did you mean darts"):
        get_space("dart")
    with pytest.raises(RaclError, match="space"):
        apply_overrides(get_preset("tiny"), ["space=nope"])


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_round_trips_its_zoo_and_selections(name, tmp_path):
    space = get_space(name)
    topo = space.topology()
    for label, genotype in space.zoo.items():
        assert space.genotype_from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype, label
        selection = space.selection(genotype)
        searchable = all(j < topo.steps and op in topo.primitives for t in topo.cell_types for j, _, op in selection[t])
        if searchable:  # a cell of the search space (not NASNet's 5 nodes or 7x7 convs): the supernet can hold it
            assert space.genotype(selection) == genotype, label
            for t in topo.cell_types:
                assert all(topo.edge_index(j, i) >= 0 for j, i, _ in selection[t])
        else:
            assert label in ("NASNET", "AMOEBANET"), label  # the zoo's only evaluation-only cells
        genotype.save(tmp_path / f"{label}.json")
        from racl.search_space import resolve_genotype
        assert resolve_genotype(str(tmp_path / f"{label}.json")) == genotype
        assert resolve_genotype(label) == genotype
