"""`Genotype`: JSON round trips and one clear RaclError per kind of bad input."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from racl.errors import RaclError
from racl.search_space import ZOO, Genotype


@pytest.fixture
def good() -> dict[str, Any]:
    return ZOO["RACL"].to_dict()


def _with(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out[key] = value
    return out


@pytest.mark.parametrize("name", list(ZOO))
def test_dict_round_trip(name: str) -> None:
    g = ZOO[name]
    d = g.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON types only
    assert Genotype.from_dict(d) == g


@pytest.mark.parametrize("name", list(ZOO))
def test_json_round_trip(name: str) -> None:
    g = ZOO[name]
    assert Genotype.from_json(g.to_json()) == g


def test_save_load_round_trip(tmp_path: Path) -> None:
    g = ZOO["PDARTS"]
    path = g.save(tmp_path / "sub" / "genotype.json")
    assert path.is_file()
    assert Genotype.load(path) == g
    assert Genotype.load(str(path)) == g


def test_concat_defaults_to_all_intermediate_nodes(good: dict[str, Any]) -> None:
    del good["normal_concat"], good["reduce_concat"]
    g = Genotype.from_dict(good)
    assert g.normal_concat == (2, 3, 4, 5) and g.reduce_concat == (2, 3, 4, 5)
    assert g.steps == 4


def test_other_cell_sizes(good: dict[str, Any]) -> None:
    small = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0],
                                                                            ["avg_pool_3x3", 1]]}
    g = Genotype.from_dict(small)
    assert g.steps == 1 and g.normal_concat == (2,)


def test_wrapped_file_loads(tmp_path: Path, good: dict[str, Any]) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"genotype": good}))  # the wrapper carries no other keys' checks
    assert Genotype.load(path) == ZOO["RACL"]
    path.write_text(json.dumps({"genotype": good, "search": {"epochs": 50}}))
    assert Genotype.load(path) == ZOO["RACL"]


def _edit_edge(data: dict[str, Any], k: int, edge: Any, cell: str = "normal") -> dict[str, Any]:
    out = copy.deepcopy(data)
    out[cell][k] = edge
    return out


BAD_CASES = {
    "unknown op": (lambda d: _edit_edge(d, 0, ["conv_7x7", 0]), r"unknown op 'conv_7x7'"),
    "none op": (lambda d: _edit_edge(d, 3, ["none", 1], "reduce"), r"'none' is not allowed"),
    "negative index": (lambda d: _edit_edge(d, 0, ["sep_conv_3x3", -1]), r"input node -1 is invalid"),
    "index too large": (lambda d: _edit_edge(d, 2, ["sep_conv_3x3", 3]), r"input node 3 is invalid for node 3"),
    "index is own node": (lambda d: _edit_edge(d, 7, ["sep_conv_3x3", 5]), r"input node 5 is invalid for node 5"),
    "odd edges": (lambda d: _with(d, "normal", d["normal"][:7]), r"even, non-zero number.*got 7"),
    "zero edges": (lambda d: _with(d, "reduce", []), r"reduce cell needs two edges.*got 0"),
    "concat out of range": (lambda d: _with(d, "normal_concat", [2, 3, 4, 6]), r"normal_concat \[2, 3, 4, 6\]"),
    "concat negative": (lambda d: _with(d, "reduce_concat", [-1, 2]), r"reduce_concat"),
    "concat duplicate": (lambda d: _with(d, "normal_concat", [2, 2, 3]), r"distinct"),
    "concat empty": (lambda d: _with(d, "normal_concat", []), r"normal_concat \[\]"),
    "concat not a list": (lambda d: _with(d, "normal_concat", "2345"), r"normal_concat must be a list"),
    "concat of strings": (lambda d: _with(d, "normal_concat", ["2"]), r"normal_concat must be a list"),
    "missing normal": (lambda d: {k: v for k, v in d.items() if k != "normal"}, r"missing key\(s\): normal"),
    "missing both": (lambda d: {"normal_concat": [2]}, r"missing key\(s\): normal, reduce"),
    "unknown key": (lambda d: _with(d, "normall", []), r"unknown key\(s\): normall"),
    "edges not a list": (lambda d: _with(d, "normal", "sep_conv_3x3 0"), r"normal cell must be a list"),
    "edges a dict": (lambda d: _with(d, "reduce", {"a": 1}), r"reduce cell must be a list"),
    "edge not a pair": (lambda d: _edit_edge(d, 1, ["sep_conv_3x3", 0, 1]), r"edge 1 must be an \[op, input\] pair"),
    "edge a string": (lambda d: _edit_edge(d, 1, "sep_conv_3x3"), r"edge 1 must be an \[op, input\] pair"),
    "float index": (lambda d: _edit_edge(d, 0, ["sep_conv_3x3", 1.0]), r"integer input"),
    "string index": (lambda d: _edit_edge(d, 0, ["sep_conv_3x3", "1"]), r"integer input"),
    "bool index": (lambda d: _edit_edge(d, 0, ["sep_conv_3x3", True]), r"integer input"),
    "op not a string": (lambda d: _edit_edge(d, 0, [3, 0]), r"\[op name, integer input\]"),
    "bool in concat": (lambda d: _with(d, "normal_concat", [True, 2]), r"normal_concat must be a list"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_validation_errors(case: str, good: dict[str, Any]) -> None:
    make, pattern = BAD_CASES[case]
    with pytest.raises(RaclError, match=pattern) as info:
        Genotype.from_dict(make(good))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data", [[], "RACL", 3, None])
def test_not_an_object(data: Any) -> None:
    with pytest.raises(RaclError, match="must be a JSON object"):
        Genotype.from_dict(data)


@pytest.mark.parametrize("text", ["{", "", "normal: []", "{'normal': []}"])
def test_malformed_json_text(text: str) -> None:
    with pytest.raises(RaclError, match="not valid JSON"):
        Genotype.from_json(text)


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RaclError, match="not valid JSON"):
        Genotype.load(bad)
    with pytest.raises(RaclError, match="not found"):
        Genotype.load(tmp_path / "missing.json")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(RaclError, match="unknown op"):
        Genotype((("conv", 0), ("sep_conv_3x3", 1)), (2,), (("max_pool_3x3", 0), ("max_pool_3x3", 1)), (2,))


def test_genotype_is_a_hashable_value() -> None:
    g = Genotype.from_dict(ZOO["DARTS_V2"].to_dict())
    assert g == ZOO["DARTS_V2"] and hash(g) == hash(ZOO["DARTS_V2"])
    assert g != ZOO["DARTS_V1"]
