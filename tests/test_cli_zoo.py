"""`racl zoo list | show | draw` through `racl.cli.main`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from racl.cli import main
from racl.search_space import ZOO

NAMES = ["DARTS_V1", "DARTS_V2", "PC_DARTS", "PDARTS", "ADVRUSH", "RACL", "NASNET", "AMOEBANET"]


def test_zoo_list(capsys: pytest.CaptureFixture[str]) -> None:
    from racl.search_space.nb201 import NB201

    assert main(["zoo", "list"]) == 0
    assert capsys.readouterr().out.split() == [*NAMES, *NB201.zoo, "resnet18", "wrn34_10", "mobilenet_v2"]
    assert main(["zoo", "list", "--space", "darts"]) == 0
    assert capsys.readouterr().out.split() == NAMES


def test_zoo_show_hand_designed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "mobilenet-v2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "mobilenet_v2" and info["genotype"] is None and info["params"] == 2_236_682
    assert main(["zoo", "show", "resnet18"]) == 0
    assert "11.17M parameters (hand-designed" in capsys.readouterr().out


def test_zoo_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "RACL", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "RACL"
    assert info["genotype"] == ZOO["RACL"].to_dict()
    assert isinstance(info["params"], int) and 3.4e6 < info["params"] < 3.8e6
    assert info["network"]["channels"] == 36 and info["network"]["layers"] == 20


def test_zoo_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "darts-v2"]) == 0
    out = capsys.readouterr().out
    assert "3.35M parameters" in out
    assert "normal" in out and "reduce" in out and "dil_conv_3x3(2)" in out


def test_zoo_show_genotype_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ZOO["PDARTS"].save(tmp_path / "genotype.json")
    assert main(["zoo", "show", str(tmp_path), "--json"]) == 0  # a run directory holding genotype.json
    assert json.loads(capsys.readouterr().out)["genotype"] == ZOO["PDARTS"].to_dict()
    assert main(["zoo", "show", str(path), "--json"]) == 0


def _png_ok(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_zoo_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pics"
    assert main(["zoo", "draw", "DARTS_V2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    expected = {"normal.dot", "normal.png", "reduction.dot", "reduction.png"}
    assert {p.name for p in out.iterdir()} == expected
    assert {Path(p).name for p in printed} == expected
    for name in ("normal.dot", "reduction.dot"):
        text = (out / name).read_text()
        assert text.startswith("digraph") and "DARTS_V2" in text and text.count(" -> ") == 12
    for name in ("normal.png", "reduction.png"):
        assert (out / name).stat().st_size > 10_000
        w, h = _png_ok(out / name)
        assert w > 800 and h > 300


@pytest.mark.parametrize("argv", [["zoo", "show", "NOPE"], ["zoo", "draw", "NOPE", "--out", "x"],
                                  ["zoo", "show", "missing.json"]])
def test_unknown_name_is_a_one_line_error(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("racl: error:")
    assert "Traceback" not in captured.err
    assert not (tmp_path / "x").exists()


def test_debug_shows_the_traceback() -> None:
    from racl.errors import RaclError

    with pytest.raises(RaclError):
        main(["--debug", "zoo", "show", "NOPE"])


def test_missing_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["zoo"])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_module_entry_point_exits_two() -> None:
    proc = subprocess.run([sys.executable, "-m", "racl", "zoo", "show", "NOPE"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("racl: error:") and "Traceback" not in proc.stderr
