"""`Nb201Genotype`: an NAS-Bench-201 cell as a plain, validated value, read and written as the standard
architecture string and as JSON.

The cell has 4 nodes; node 0 is the cell input, node 3 its output, and every pair i < j is joined by one
edge carrying one op (`none` included: NB201 allows it). The architecture string follows AutoDL-Projects
`xautodl/models/cell_searchs/genotypes.py` (`Structure.str2structure` / `tostr`): one `|`-delimited group
per node 1..3 joined by `+`, each piece `op~k` applying op to node k, e.g.
`|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from racl.errors import RaclError, shown
from racl.io import read_json, write_json
from racl.search_space.nb201.ops import PRIMITIVES

SPACE = "nb201"
NODES = 4
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target), AutoDL's edge order "j<-i"


@dataclass(frozen=True)
class Nb201Genotype:
    """The op of each of the 6 edges, in the order of `EDGES` (the order of the architecture string)."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            raise RaclError(f"NB201 genotype ops must be a tuple of {len(EDGES)} op names, "
                            f"got {type(self.ops).__name__}")
        if len(self.ops) != len(EDGES):
            raise RaclError(f"an NB201 cell has {len(EDGES)} edges, got {len(self.ops)} op(s)")
        for (src, dst), op in zip(EDGES, self.ops):
            if op not in PRIMITIVES:
                raise RaclError(f"NB201 edge {src}->{dst}: unknown op {shown(op)}; known: {', '.join(PRIMITIVES)}")

    def edges(self) -> list[tuple[int, int, str]]:
        """(source, target, op) of every edge."""
        return [(src, dst, op) for (src, dst), op in zip(EDGES, self.ops)]

    def to_string(self) -> str:
        """The standard architecture string (inputs of each node in ascending order)."""
        groups = [[f"{op}~{src}" for src, dst, op in self.edges() if dst == node] for node in range(1, NODES)]
        return "+".join("|" + "|".join(group) + "|" for group in groups)

    __str__ = to_string

    @classmethod
    def from_string(cls, text: str) -> "Nb201Genotype":
        """Parse an architecture string; every node must name each earlier node exactly once."""
        if not isinstance(text, str):
            raise RaclError(f"an NB201 architecture string must be text, got {type(text).__name__}")
        groups = text.strip().split("+")
        if len(groups) != NODES - 1:
            raise RaclError(f"NB201 architecture string needs {NODES - 1} '+'-separated node groups, "
                            f"got {len(groups)}: {shown(text)}")
        ops: dict[tuple[int, int], str] = {}
        for node, group in enumerate(groups, start=1):
            for piece in filter(None, group.split("|")):
                op, src = _parse_piece(piece, node)
                if (src, node) in ops:
                    raise RaclError(f"NB201 architecture string names the edge {src}->{node} twice: {shown(text)}")
                ops[(src, node)] = op
            missing = [src for src in range(node) if (src, node) not in ops]
            if missing:
                raise RaclError(f"NB201 node {node} has no op from node(s) {', '.join(map(str, missing))} "
                                f"(write none~k for a missing edge): {shown(text)}")
        return cls(tuple(ops[edge] for edge in EDGES))

    def to_dict(self) -> dict[str, Any]:
        return {"space": SPACE, "arch": self.to_string()}

    @classmethod
    def from_dict(cls, data: Any) -> "Nb201Genotype":
        if not isinstance(data, dict):
            raise RaclError(f"NB201 genotype must be a JSON object, got {type(data).__name__}")
        if "genotype" in data and isinstance(data["genotype"], dict):
            data = data["genotype"]  # accept files that wrap the genotype with metadata
        if "space" not in data and {"normal", "reduce"} & set(data):
            raise RaclError("this is a DARTS-space genotype (normal/reduce cells), not an NB201 one")
        if data.get("space") != SPACE:
            raise RaclError(f"NB201 genotype must say \"space\": \"{SPACE}\", got {shown(data.get('space'))}")
        unknown = sorted(shown(k) for k in set(data) - {"space", "arch"})
        if unknown:
            raise RaclError(f"NB201 genotype has unknown key(s): {', '.join(unknown)}")
        if "arch" not in data:
            raise RaclError("NB201 genotype is missing key: arch (the architecture string)")
        return cls.from_string(data["arch"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Nb201Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RaclError(f"NB201 genotype is not valid JSON: {e}") from e
        except RecursionError as e:
            raise RaclError("NB201 genotype JSON is nested too deeply") from e
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Nb201Genotype":
        return cls.from_dict(read_json(path, "NB201 genotype file"))


def _parse_piece(piece: str, node: int) -> tuple[str, int]:
    """`op~k` of node `node` -> (op, k), checked."""
    parts = piece.split("~")
    if len(parts) != 2 or not parts[1].isdigit():
        raise RaclError(f"NB201 architecture string: {shown(piece)} is not of the form op~k (k an input node)")
    op, src = parts[0], int(parts[1])
    if op not in PRIMITIVES:
        raise RaclError(f"NB201 architecture string: unknown op {shown(op)}; known: {', '.join(PRIMITIVES)}")
    if not src < node:
        raise RaclError(f"NB201 architecture string: node {node} cannot take input from node {src} "
                        f"(must be 0..{node - 1})")
    return op, src
