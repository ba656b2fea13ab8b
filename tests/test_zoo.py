"""The genotype zoo against the published table, `resolve_genotype`, and the cell pictures."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from racl.errors import RaclError
from racl.search_space import ZOO, Genotype, get_genotype, list_genotypes, resolve_genotype
from racl.search_space.darts.draw import draw_genotype, genotype_to_dot, op_family

SEARCHED = ["DARTS_V1", "DARTS_V2", "PC_DARTS", "PDARTS", "ADVRUSH", "RACL"]  # the references.md table
NAMES = [*SEARCHED, "NASNET", "AMOEBANET"]
REFERENCES = Path("/work/shared/docs/references.md")
# written out again here (not imported from zoo.py) so the test is an independent transcription check
OPS = {"sep3": "sep_conv_3x3", "sep5": "sep_conv_5x5", "dil3": "dil_conv_3x3", "dil5": "dil_conv_5x5",
       "max": "max_pool_3x3", "avg": "avg_pool_3x3", "skip": "skip_connect"}


def _published_table() -> dict[str, dict[str, list[list]]]:
    """name -> {"normal": [[op, i], ...], "reduce": [...]} from the markdown table in references.md."""
    if not REFERENCES.is_file():
        pytest.skip(f"{REFERENCES} not available")
    rows = {}
    for line in REFERENCES.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in SEARCHED:
            continue
        rows[cells[0]] = {cell: [[OPS[op], int(i)] for op, i in re.findall(r"([a-z]+\d?)\s+(\d+)", text)]
                          for cell, text in (("normal", cells[1]), ("reduce", cells[2]))}
    return rows


def test_zoo_has_the_eight_names() -> None:
    assert list_genotypes() == NAMES
    assert set(ZOO) == set(NAMES)


@pytest.mark.parametrize("name", SEARCHED)
def test_zoo_matches_references(name: str) -> None:
    table = _published_table()
    assert name in table, f"{name} missing from {REFERENCES}"
    published = table[name]
    assert len(published["normal"]) == 8 and len(published["reduce"]) == 8
    got = ZOO[name].to_dict()
    assert got["normal"] == published["normal"]
    assert got["reduce"] == published["reduce"]
    assert got["normal_concat"] == got["reduce_concat"] == [2, 3, 4, 5]


# quark0/darts cnn/genotypes.py, `NASNet` and `AmoebaNet`, in its own (op, input) notation
DARTS_CODE = {
    "NASNET": dict(
        normal=[("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
                ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
                ("sep_conv_3x3", 1), ("skip_connect", 1)],
        normal_concat=[2, 3, 4, 5, 6],
        reduce=[("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
                ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
                ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        reduce_concat=[4, 5, 6]),
    "AMOEBANET": dict(
        normal=[("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
                ("skip_connect", 0), ("avg_pool_3x3", 1)],
        normal_concat=[4, 5, 6],
        reduce=[("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
                ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        reduce_concat=[3, 4, 6]),
}


@pytest.mark.parametrize("name", sorted(DARTS_CODE))
def test_comparison_cells_match_darts_code(name: str) -> None:
    expected = {k: [list(e) for e in v] if k in ("normal", "reduce") else v for k, v in DARTS_CODE[name].items()}
    assert ZOO[name].to_dict() == expected
    assert ZOO[name].steps == 5
    assert get_genotype({"NASNET": "NASNet", "AMOEBANET": "AmoebaNet"}[name]) is ZOO[name]  # DARTS's spelling


def test_get_genotype_is_case_and_dash_insensitive() -> None:
    assert get_genotype("pc-darts") is ZOO["PC_DARTS"]
    assert get_genotype("racl") is ZOO["RACL"]
    with pytest.raises(RaclError, match="unknown genotype 'NOPE'"):
        get_genotype("NOPE")


def test_resolve_by_name() -> None:
    assert resolve_genotype("DARTS_V2") == ZOO["DARTS_V2"]
    assert resolve_genotype("darts-v2") == ZOO["DARTS_V2"]


def test_resolve_json_path(tmp_path: Path) -> None:
    path = ZOO["ADVRUSH"].save(tmp_path / "advrush.json")
    assert resolve_genotype(str(path)) == ZOO["ADVRUSH"]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"genotype": ZOO["PDARTS"].to_dict(), "epoch": 49}))
    assert resolve_genotype(str(wrapped)) == ZOO["PDARTS"]


def test_resolve_run_dir(tmp_path: Path) -> None:
    ZOO["RACL"].save(tmp_path / "run" / "genotype.json")
    assert resolve_genotype(str(tmp_path / "run")) == ZOO["RACL"]


@pytest.mark.parametrize("garbage", ["NOPE", "", "sep_conv_3x3", "missing.json", "no/such/dir"])
def test_resolve_garbage(garbage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RaclError):
        resolve_genotype(garbage)


def test_resolve_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(RaclError, match="no genotype.json"):
        resolve_genotype(str(tmp_path / "empty_run"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"normal": [["conv", 0]]}')
    with pytest.raises(RaclError):
        resolve_genotype(str(bad))


# ---------------------------------------------------------------- cell pictures
def test_op_family() -> None:
    assert {op: op_family(op) for op in OPS.values()} == {
        "sep_conv_3x3": "conv", "sep_conv_5x5": "conv", "dil_conv_3x3": "conv", "dil_conv_5x5": "conv",
        "max_pool_3x3": "pool", "avg_pool_3x3": "pool", "skip_connect": "skip"}


def test_dot_text_lists_every_edge() -> None:
    g = ZOO["DARTS_V2"]
    dot = genotype_to_dot(g.normal, g.normal_concat, 'DARTS_V2 "normal"')
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    assert "rankdir=LR" in dot and 'label="DARTS_V2 \\"normal\\""' in dot
    assert '"c_{k-2}" -> "0" [color="#1f5fa8", label="sep_conv_3x3"' in dot
    assert '"0" -> "3"' in dot and 'label="dil_conv_3x3"' in dot
    assert len(re.findall(r"-> \"c_\{k\}\"", dot)) == 4
    assert len(re.findall(r"label=\"[a-z_0-9]+\"", dot)) == 8


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


@pytest.mark.parametrize("name", ["DARTS_V2", "PC_DARTS"])
def test_draw_with_matplotlib(name: str, tmp_path: Path) -> None:
    paths = draw_genotype(ZOO[name], tmp_path, f"{name}_", label=name, engine="matplotlib")
    assert [p.name for p in paths] == [f"{name}_normal.dot", f"{name}_normal.png",
                                       f"{name}_reduction.dot", f"{name}_reduction.png"]
    for png in paths[1::2]:
        w, h = _png_size(png)
        assert w > 800 and h > 300
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries


def test_draw_unusual_cells(tmp_path: Path) -> None:
    small = Genotype((("skip_connect", 0), ("sep_conv_3x3", 1)), (0, 2),
                     (("max_pool_3x3", 0), ("avg_pool_3x3", 0)), (2,))
    big = Genotype.from_dict({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 3
                              + [["skip_connect", 4], ["dil_conv_5x5", 2]] * 2,
                              "reduce": [["max_pool_3x3", 1], ["skip_connect", 0]] * 5})
    for g in (small, big):
        for png in draw_genotype(g, tmp_path, engine="matplotlib")[1::2]:
            assert _png_size(png)[0] > 200


def _fake_dot(tmp_path: Path, body: str) -> None:
    exe = tmp_path / "bin" / "dot"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_draw_uses_graphviz_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    marker = tmp_path / "marker.png"
    Image.new("RGB", (7, 5), "white").save(marker)
    _fake_dot(tmp_path, f'cat > "{tmp_path}/stdin.dot"\ncat "{marker}"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    paths = draw_genotype(ZOO["RACL"], tmp_path / "out")
    assert _png_size(paths[1]) == (7, 5) and _png_size(paths[3]) == (7, 5)
    assert (tmp_path / "stdin.dot").read_text() == paths[2].read_text()  # the DOT text went to dot


@pytest.mark.parametrize("body", ["echo broken >&2\nexit 3\n", "echo not a png\n"])
def test_draw_falls_back_when_graphviz_fails(body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dot(tmp_path, body)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    with pytest.warns(UserWarning, match="graphviz dot failed"):
        paths = draw_genotype(ZOO["RACL"], tmp_path / "out", engine="graphviz")
    assert _png_size(paths[1])[0] > 800


def test_draw_times_out_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import racl.search_space.darts.draw as draw

    _fake_dot(tmp_path, "exec sleep 20\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(draw, "_DOT_TIMEOUT_S", 0.5)
    with pytest.warns(UserWarning, match="graphviz dot failed"):
        paths = draw_genotype(ZOO["DARTS_V1"], tmp_path / "out")
    assert _png_size(paths[3])[0] > 800


def test_draw_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.warns(UserWarning, match="not installed"):
        paths = draw_genotype(ZOO["PDARTS"], tmp_path / "out", engine="graphviz")
    assert _png_size(paths[1])[0] > 800


def test_draw_rejects_unknown_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine"):
        draw_genotype(ZOO["RACL"], tmp_path, engine="svg")
