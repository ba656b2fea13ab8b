"""`Genotype`: a discrete DARTS cell pair as a plain, validated value with JSON read/write (files may
name their space, `"space": "darts"`; files without it are DARTS genotypes)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from racl.errors import RaclError, shown
from racl.io import read_json, write_json
from racl.search_space.darts.ops import ALL_OPS

Edge = tuple[str, int]  # (op name, input node index: 0, 1 = cell inputs, 2.. = intermediate nodes)


@dataclass(frozen=True)
class Genotype:
    """Two edges per intermediate node, nodes 2..steps+1 in order; concat lists the output nodes."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for cell in ("normal", "reduce"):
            _validate_cell(cell, getattr(self, cell), getattr(self, f"{cell}_concat"))

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [[op, i] for op, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, i] for op, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Genotype":
        if not isinstance(data, dict):
            raise RaclError(f"genotype must be a JSON object, got {type(data).__name__}")
        if "genotype" in data and isinstance(data["genotype"], dict):
            data = data["genotype"]  # accept files that wrap the genotype with metadata
        if data.get("space", "darts") != "darts":
            raise RaclError(f"this is a genotype of the {shown(data['space'])} space, not a DARTS genotype")
        missing = [k for k in ("normal", "reduce") if k not in data]
        if missing:
            raise RaclError(f"genotype is missing key(s): {', '.join(missing)}")
        unknown = sorted(shown(k) for k in set(data) - {"space", "normal", "normal_concat", "reduce", "reduce_concat"})
        if unknown:
            raise RaclError(f"genotype has unknown key(s): {', '.join(unknown)}")
        cells = {c: _parse_edges(c, data[c]) for c in ("normal", "reduce")}
        concats = {c: _parse_concat(c, data.get(f"{c}_concat"), len(cells[c]) // 2)
                   for c in ("normal", "reduce")}
        return cls(cells["normal"], concats["normal"], cells["reduce"], concats["reduce"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RaclError(f"genotype is not valid JSON: {e}") from e
        except RecursionError as e:
            raise RaclError("genotype JSON is nested too deeply; expected {\"normal\": [[op, input], ...], ...}") from e
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Genotype":
        return cls.from_dict(read_json(path, "genotype file"))


def _parse_edges(cell: str, edges: Any) -> tuple[Edge, ...]:
    if not isinstance(edges, (list, tuple)):
        raise RaclError(f"genotype {cell} cell must be a list of [op, input] pairs")
    out = []
    for k, edge in enumerate(edges):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2):
            raise RaclError(f"genotype {cell} edge {k} must be an [op, input] pair, got {edge!r}")
        op, idx = edge
        if not isinstance(op, str) or isinstance(idx, bool) or not isinstance(idx, int):
            raise RaclError(f"genotype {cell} edge {k} must be [op name, integer input], got {edge!r}")
        out.append((op, idx))
    return tuple(out)


def _parse_concat(cell: str, concat: Any, steps: int) -> tuple[int, ...]:
    if concat is None:
        return tuple(range(2, 2 + steps))
    if not isinstance(concat, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in concat
    ):
        raise RaclError(f"genotype {cell}_concat must be a list of node indices, got {concat!r}")
    return tuple(concat)


def _validate_cell(cell: str, edges: tuple[Edge, ...], concat: tuple[int, ...]) -> None:
    if len(edges) == 0 or len(edges) % 2:
        raise RaclError(
            f"genotype {cell} cell needs two edges per intermediate node (an even, non-zero number), "
            f"got {len(edges)}"
        )
    for k, (op, idx) in enumerate(edges):
        node = 2 + k // 2
        known = ", ".join(p for p in ALL_OPS if p != "none")
        if op == "none":
            raise RaclError(
                f"genotype {cell} edge {k}: op 'none' is not allowed in a discrete cell; use one of: {known}"
            )
        if op not in ALL_OPS:
            raise RaclError(f"genotype {cell} edge {k}: unknown op {op!r}; known: {known}")
        if not 0 <= idx < node:
            raise RaclError(
                f"genotype {cell} edge {k}: input node {idx} is invalid for node {node} (must be 0..{node - 1})"
            )
    steps = len(edges) // 2
    beyond = [i for i in concat if i >= 2 + steps]
    if beyond:  # the concat list is usually right and the cell short of edges: say both
        raise RaclError(f"genotype {cell} cell has {len(edges)} edges ({steps} intermediate nodes) but {cell}_concat "
                        f"{list(concat)} names node {beyond[0]}; give two edges for each node up to {max(concat)} "
                        f"({2 * (max(concat) - 1)} edges), or drop the extra nodes from {cell}_concat")
    if not concat or any(not 0 <= i < 2 + steps for i in concat) or len(set(concat)) != len(concat):
        raise RaclError(
            f"genotype {cell}_concat {list(concat)} must list distinct node indices in 0..{steps + 1}"
        )
