"""NB201 genotypes: architecture strings and JSON, the benchmark index and the isomorphism classes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from racl.errors import RaclError
from racl.search_space import ZOO as DARTS_ZOO
from racl.search_space import Genotype as DartsGenotype
from racl.search_space.nb201 import (
    EDGES, NUM_CELLS, NUM_UNIQUE, Nb201Genotype, benchmark_index, from_index, representative, representative_index,
)
from racl.search_space.nb201.index import all_cells, isomorphism_key, unique_indices
from racl.search_space.nb201.zoo import ZOO, get_cell, resolve_cell

README_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_string_round_trip_and_edge_order() -> None:
    g = Nb201Genotype.from_string(README_ARCH)
    assert g.to_string() == README_ARCH == str(g)
    assert g.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert [(s, d) for s, d, _ in g.edges()] == list(EDGES)


def test_inputs_in_any_order_are_the_same_cell() -> None:
    shuffled = "|nor_conv_3x3~0|+|avg_pool_3x3~1|nor_conv_3x3~0|+|skip_connect~2|nor_conv_3x3~1|skip_connect~0|"
    assert Nb201Genotype.from_string(shuffled) == Nb201Genotype.from_string(README_ARCH)


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 '+'-separated node groups"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op conv;"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 cannot take input from node 1"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "names the edge 0->2 twice"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has no op from node(s) 1"),
    ("|none~0|+|none~0|none~1|+|none~0|none~2|", "node 3 has no op from node(s) 1"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form op~k"),
    ("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form op~k"),
])
def test_bad_strings_give_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(RaclError, match="NB201") as e:
        Nb201Genotype.from_string(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(RaclError, match="6 edges, got 5"):
        Nb201Genotype(("none",) * 5)
    with pytest.raises(RaclError, match="must be a tuple of 6 op names, got list"):
        Nb201Genotype(["none"] * 6)  # type: ignore[arg-type]
    with pytest.raises(RaclError, match="edge 0->1: unknown op sep_conv_3x3;"):
        Nb201Genotype(("sep_conv_3x3",) + ("none",) * 5)


@pytest.mark.parametrize("name", list(ZOO))
def test_json_round_trips(name: str, tmp_path: Path) -> None:
    g = ZOO[name]
    assert json.loads(g.to_json()) == {"space": "nb201", "arch": g.to_string()}
    assert Nb201Genotype.from_json(g.to_json()) == g
    assert Nb201Genotype.load(g.save(tmp_path / "g.json")) == g
    assert Nb201Genotype.from_dict({"genotype": g.to_dict(), "note": "wrapped"}) == g


@pytest.mark.parametrize("data, message", [
    ([1, 2], "must be a JSON object"),
    ({"arch": README_ARCH}, "must say \"space\": \"nb201\""),
    ({"space": "darts", "arch": README_ARCH}, "must say \"space\": \"nb201\", got darts"),
    ({"space": "nb201"}, "missing key: arch"),
    ({"space": "nb201", "arch": README_ARCH, "extra": 1}, "unknown key(s): extra"),
    ({"space": "nb201", "arch": 7}, "must be text"),
])
def test_bad_json_gives_one_line_errors(data: object, message: str) -> None:
    with pytest.raises(RaclError) as e:
        Nb201Genotype.from_dict(data)
    assert message in str(e.value)


def test_files_of_the_two_spaces_cannot_be_confused(tmp_path: Path) -> None:
    darts = DARTS_ZOO["RACL"].save(tmp_path / "darts.json")
    with pytest.raises(RaclError, match="DARTS-space genotype"):
        Nb201Genotype.load(darts)
    with pytest.raises(RaclError, match="not valid JSON"):
        Nb201Genotype.from_json("{")
    nb201 = ZOO["resnet"].save(tmp_path / "nb201.json")
    with pytest.raises(RaclError, match="genotype of the nb201 space, not a DARTS genotype"):
        DartsGenotype.load(nb201)


def test_benchmark_order_matches_autodl_checks() -> None:
    """AutoDL-Projects exps/NAS-Bench-201/main.py `generate_meta_info` asserts these three cells after its
    seeded shuffle; a different enumeration or shuffle would move them."""
    assert str(from_index(0)) == ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|"
                                  "skip_connect~1|skip_connect~2|")
    assert str(from_index(9)) == "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert str(from_index(123)) == ("|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|"
                                    "nor_conv_3x3~2|")


def test_index_is_a_bijection() -> None:
    cells = all_cells()
    assert len(cells) == NUM_CELLS == len(set(cells))
    for i in (0, 1, 777, 6111, NUM_CELLS - 1):
        assert benchmark_index(from_index(i)) == i
    for bad in (-1, NUM_CELLS, 1.5, True, "3"):
        with pytest.raises(RaclError, match="0..15624"):
            from_index(bad)  # type: ignore[arg-type]


def test_isomorphism_classes_match_the_published_unique_architectures() -> None:
    """TT2408/nasrobbench201 NasBenchID_6466_idx.txt lists the 6,466 evaluated architectures (the class
    representatives); its start and end are transcribed here: every index below 143 except these 17, and
    the indices from 15,400 on."""
    reps = unique_indices()
    assert len(reps) == NUM_UNIQUE
    not_reps = {25, 29, 30, 69, 70, 72, 78, 79, 97, 104, 105, 108, 119, 120, 125, 132, 142}
    assert [i for i in reps if i < 143] == [i for i in range(143) if i not in not_reps]
    assert [i for i in reps if i >= 15400] == [
        15400, 15404, 15407, 15408, 15415, 15418, 15422, 15423, 15424, 15425, 15426, 15428, 15429, 15430, 15439,
        15442, 15444, 15445, 15446, 15452, 15453, 15456, 15462, 15463, 15467, 15469, 15470, 15471, 15477, 15480,
        15485, 15494, 15501, 15505, 15508, 15510, 15512, 15513, 15514, 15515, 15517, 15522, 15524, 15527, 15529,
        15531, 15537, 15542, 15543, 15548, 15549, 15550, 15552, 15553, 15559, 15561, 15566, 15570, 15571, 15572,
        15573, 15574, 15575, 15585, 15586, 15590, 15597, 15598, 15601, 15603, 15607, 15611, 15613, 15617, 15619,
        15624]


def test_representatives_are_isomorphic_and_lowest() -> None:
    resnet = get_cell("resnet")
    rep = representative(resnet)
    assert isomorphism_key(rep) == isomorphism_key(resnet)
    assert representative_index(resnet) == benchmark_index(rep) <= benchmark_index(resnet)
    # node 1 = skip(node 0) holds the same expression as node 0, so a 3x3 conv into node 2 from either is alike
    a = Nb201Genotype.from_string("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")
    b = Nb201Genotype.from_string("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|")
    assert isomorphism_key(a) == isomorphism_key(b) and representative(a) == representative(b)
    c = Nb201Genotype.from_string("|skip_connect~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|skip_connect~2|")
    assert isomorphism_key(a) != isomorphism_key(c)


@pytest.mark.parametrize("text, expected", [
    ("resnet", "resnet"), ("ALL-SKIP", "all_skip"), (README_ARCH, None), ("1462", "all_conv3x3"),
])
def test_resolve_cell(text: str, expected: str | None) -> None:
    cell = resolve_cell(text)
    assert cell == (ZOO[expected] if expected else Nb201Genotype.from_string(README_ARCH))


def test_resolve_cell_errors(tmp_path: Path) -> None:
    with pytest.raises(RaclError, match="neither an NB201 zoo cell"):
        resolve_cell("resnet18")
    with pytest.raises(RaclError, match="not found"):
        resolve_cell(str(tmp_path / "missing.json"))
    with pytest.raises(RaclError, match="unknown NB201 zoo cell"):
        get_cell("nope")
