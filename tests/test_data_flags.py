"""Every data flag is honoured or refused (issue 24, item 1): given without --dataset, each flag replaces
its setting in the data spec recorded with a checkpoint (or a resumed run); with --dataset the flags
describe new data. One test per flag, then the real CLI on an image-folder checkpoint."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from racl.checkpoint import model_spec, save_model_checkpoint
from racl.cli import main
from racl.data import add_data_arguments, load_data
from racl.data.cli_args import DEFAULTS, data_for, spec_with_flags
from racl.errors import RaclError
from racl.models import build_model


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RACL_CACHE", str(tmp_path / "cache"))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_data_arguments(parser, default_dataset=None)
    return parser.parse_args(list(argv))


FOLDER_SPEC = {"format": "racl-data-v1", "name": "imagefolder", "data_dir": "/data/train", "image_size": None,
               "val_fraction": 0.1, "test_fraction": 0.1, "seed": 0, "limit": None, "options": {},
               "sizes": {"train": 8, "val": 1, "test": 1}}

# flag -> (value given, where it lands in the spec, the value there)
FLAGS = {
    "--data-dir": ("/other", ("data_dir",), "/other"),
    "--image-size": ("16", ("image_size",), 16),
    "--limit": ("3", ("limit",), 3),
    "--val-fraction": ("0.2", ("val_fraction",), 0.2),
    "--test-fraction": ("0.3", ("test_fraction",), 0.3),
    "--data-seed": ("7", ("seed",), 7),
    "--test-dir": ("/data/test", ("options", "test_dir"), "/data/test"),
    "--streaming": ("on", ("options", "streaming"), True),
    "--workers": ("2", ("options", "workers"), 2),
    "--no-data-cache": (None, ("options", "cache"), False),
}


def test_the_table_covers_every_data_flag():
    assert {f"--{k.replace('_', '-')}" for k in DEFAULTS} - {"--download"} == set(FLAGS)


@pytest.mark.parametrize("flag", FLAGS)
def test_each_flag_replaces_its_setting_of_the_recorded_spec(flag):
    given, path, expected = FLAGS[flag]
    spec = spec_with_flags(FOLDER_SPEC, parse(flag, *([given] if given else [])))
    value = spec
    for key in path:
        value = value[key]
    assert value == expected
    assert "sizes" not in spec  # other data: the recorded split sizes no longer apply
    untouched = {k: v for k, v in FOLDER_SPEC.items() if k not in (path[0], "sizes")}
    assert {k: spec[k] for k in untouched} == untouched  # everything else is the recorded data


def test_no_flag_keeps_the_recorded_spec_whole():
    assert spec_with_flags(FOLDER_SPEC, parse()) == FOLDER_SPEC


def test_download_is_passed_to_the_reload(monkeypatch):
    import racl.data.cli_args as cli_args

    seen = {}
    monkeypatch.setattr(cli_args, "load_data_from_spec", lambda spec, download: seen.update(download=download))
    data_for(parse("--download"), {"name": "cifar10"})
    assert seen == {"download": True}


def test_folder_only_flags_on_other_data_are_refused():
    with pytest.raises(RaclError, match="--test-dir applies to --dataset imagefolder only, and this data is digits"):
        spec_with_flags({"name": "digits"}, parse("--test-dir", "x"))


def test_dataset_starts_new_data_whatever_was_recorded():
    data = data_for(parse("--dataset", "synthetic", "--image-size", "8", "--limit", "5"), FOLDER_SPEC)
    assert data.name == "synthetic" and data.image_size == 8


# ---------------------------------------------------------------- the CLI on an image-folder checkpoint
def _png(colour: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (colour, 255 - colour, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _folder(root: Path, per_class: int) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"{i}.png").write_bytes(_png(17 * i + (100 if c == "b" else 0)))
    return root


@pytest.fixture()
def folder_checkpoint(tmp_path) -> Path:
    data = load_data("imagefolder", str(_folder(tmp_path / "train", 10)), cache=False)
    kwargs = dict(num_classes=2, channels=4, layers=3, mean=data.mean, std=data.std)
    torch.manual_seed(0)
    path = tmp_path / "ckpt" / "best.safetensors"
    save_model_checkpoint(path, build_model("RACL", **kwargs), model_spec("RACL", **kwargs), data=data.spec(),
                          data_info=data.info())
    return path


def test_test_dir_alone_replaces_only_the_test_split(folder_checkpoint, tmp_path):
    base = ["evaluate", "--checkpoint", str(folder_checkpoint), "--attacks", "fgsm", "--no-data-cache"]
    assert main([*base, "--out", str(tmp_path / "own")]) == 0
    own = json.loads((tmp_path / "own" / "results.json").read_text())
    test = _folder(tmp_path / "test", 3)
    assert main([*base, "--test-dir", str(test), "--out", str(tmp_path / "other")]) == 0
    other = json.loads((tmp_path / "other" / "results.json").read_text())
    assert own["n_images"] == 2 and other["n_images"] == 6  # the carve-out of 20 images, then test/'s 6
    assert other["data"]["options"]["test_dir"] == str(test)
    assert other["data"]["data_dir"] == own["data"]["data_dir"]  # the training data spec is kept


def test_lipschitz_honours_a_data_flag_given_alone(folder_checkpoint, tmp_path, capsys):
    # --image-size 16 replaces the recorded size (8): the data no longer matches the model, and says so
    assert main(["lipschitz", "--checkpoint", str(folder_checkpoint), "--image-size", "16", "--no-data-cache"]) == 2
    assert "image size 16 (data) vs 8 (the checkpoint)" in capsys.readouterr().err
    assert main(["lipschitz", "--checkpoint", str(folder_checkpoint), "--n-images", "2", "--iters", "2",
                 "--local-iters", "1", "--no-data-cache", "--out", str(tmp_path / "l")]) == 0
