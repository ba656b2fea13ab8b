"""The one config loader (racl.config.Schema) of `racl search` and `racl train`: precedence preset < file
< flags < --set, `section.key` everywhere, bare keys and unknown sections refused with the full key
suggested, and the written config.yaml reading back to the same config."""
from __future__ import annotations

import argparse

import pytest

from racl.cli import main
from racl.config import Schema
from racl.errors import RaclError
from racl.search import config as search_config
from racl.search.config import SearchConfig
from racl.training import config as train_config
from racl.training.config import TrainConfig

SEARCH, TRAIN = search_config.SCHEMA, train_config.SCHEMA
# one key per layer, each later layer overriding the earlier ones: (schema, key, preset's, file's, flag, --set)
LAYERS = {"search": (SEARCH, "quick", "supernet.layers", 5, 6, None, 7),
          "train": (TRAIN, "quick", "network.layers", 8, 6, ("layers", "5"), 4)}


def parse(schema: Schema, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    schema.add_arguments(p, "flags", "--set KEY=VALUE")
    return p.parse_args(argv)


def test_search_and_train_go_through_the_same_loader():
    assert type(SEARCH) is type(TRAIN) is Schema
    assert (SEARCH.cls, TRAIN.cls) == (SearchConfig, TrainConfig)
    # the module-level API is the schema's own methods, not a second implementation
    assert search_config.apply_overrides == SEARCH.override and train_config.apply_overrides == TRAIN.override
    assert search_config.get_preset == SEARCH.preset and train_config.build_config == TRAIN.build


@pytest.mark.parametrize("which", ["search", "train"])
def test_precedence_preset_file_flags_set(tmp_path, which):
    schema, preset, key, in_preset, in_file, flag, in_set = LAYERS[which]
    section, _, name = key.partition(".")
    file = tmp_path / "c.yaml"
    file.write_text(f"{section}:\n  {name}: {in_file}\nepochs: 3\n")

    def value(argv: list[str]):
        config = schema.build(**schema.arguments(parse(schema, argv)))
        return getattr(getattr(config, section), name), config.epochs

    assert value([]) == (schema.preset("paper").__getattribute__(section).__getattribute__(name),
                         schema.preset("paper").epochs)
    assert value(["--preset", preset])[0] == in_preset
    assert value(["--preset", preset, "--config", str(file)]) == (in_file, 3)  # the file wins over the preset
    if flag is not None:  # a flag wins over the file
        assert value(["--preset", preset, "--config", str(file), f"--{flag[0]}", flag[1]])[0] == int(flag[1])
    both = ["--preset", preset, "--config", str(file), "--set", f"{key}={in_set}", "--set", "epochs=2"]
    if flag is not None:
        both += [f"--{flag[0]}", flag[1]]
    assert value(both) == (in_set, 2)  # --set wins over everything


def test_search_flags_are_keys():
    args = parse(SEARCH, ["--lr", "0.05", "--strategy", "darts", "--batch-size", "16", "--space", "nb201"])
    c = SEARCH.build(**SEARCH.arguments(args))
    assert (c.optim.w_lr, c.strategy, c.batch_size, c.space) == (0.05, "darts", 16, "nb201")
    args = parse(TRAIN, ["--eps", "4/255", "--lr", "0.05", "--no-augment"])
    t = TRAIN.build(**TRAIN.arguments(args))
    assert (t.attack.eps, t.optim.lr, t.augmentation.augment) == (pytest.approx(4 / 255), 0.05, False)


@pytest.mark.parametrize("schema, item, full", [
    (SEARCH, "eta=0.8", "constraint.eta"), (SEARCH, "etaa=0.8", "constraint.eta"),
    (SEARCH, "gamma=0", "robust.gamma"), (SEARCH, "w_lr=0.1", "optim.w_lr"),
    (TRAIN, "eps=8/255", "attack.eps"), (TRAIN, "lr=0.05", "optim.lr"), (TRAIN, "val_steps=3", "validation.val_steps"),
])
def test_bare_key_is_refused_with_the_full_key(schema, item, full):
    with pytest.raises(RaclError, match=rf"unknown \w+ config key '{item.partition('=')[0]}' "
                                        rf"\(did you mean {full}\?\); racl config show"):
        schema.override(schema.cls(), [item])
    with pytest.raises(RaclError, match=f"did you mean {full}"):  # in a file or dict too
        schema.from_dict({item.partition("=")[0]: 1})


def test_ambiguous_bare_key_names_every_full_key():
    with pytest.raises(RaclError, match=r"did you mean supernet\.steps or attack\.steps\?"):
        SEARCH.override(SearchConfig(), ["steps=3"])


@pytest.mark.parametrize("item", ["constrant.eta=0.8", "nosection.eta=1", "constraint.etaa=0.8"])
def test_unknown_section_or_section_key_is_refused(item):
    with pytest.raises(RaclError, match=rf"unknown search config key '{item.partition('=')[0]}' \(did you mean "
                                        r"constraint\.eta\?\)"):
        SEARCH.override(SearchConfig(), [item])
    with pytest.raises(RaclError, match="must be a mapping"):
        SEARCH.from_dict({"constraint": 0.8})


def test_removed_options_are_unknown():
    """Options removed as constants in practice (docs/method.md section 8) are errors, not ignored."""
    for item in ("bound.power_iters=2", "robust.attack_mode=eval", "constraint.rho_growth=2",
                 "constraint.dual_update=step", "weight_fraction=0.4", "train_limit=8", "darts.init_scale=0.1"):
        with pytest.raises(RaclError, match="unknown search config key"):
            SEARCH.override(SearchConfig(), [item])
    with pytest.raises(RaclError, match="unknown training config key"):
        TRAIN.override(TrainConfig(), ["optim.lr_min=0.01"])


def test_top_level_keys_stay_top_level():
    c = SEARCH.override(SearchConfig(), ["epochs=3", "space=nb201", "strategy=darts", "batch_size=16"])
    assert (c.epochs, c.space, c.strategy, c.batch_size) == (3, "nb201", "darts", 16)
    assert TRAIN.override(TrainConfig(), ["epochs=3", "seed=4"]).seed == 4


@pytest.mark.parametrize("which", ["search", "train"])
def test_written_config_reads_back(tmp_path, which):
    """config.yaml (what a run writes: nested by section) loads back to the same config, also through
    `--config` and from `racl config show`'s output."""
    schema = LAYERS[which][0]
    config = schema.override(schema.preset("tiny"), ["epochs=3"])
    path = schema.save(tmp_path / "config.yaml", config)
    text = path.read_text()
    assert all(f"\n{s}:\n" in text for s in schema.sections)  # nested by section
    assert schema.load(path) == config and schema.from_dict(schema.to_dict(config)) == config
    args = parse(schema, ["--config", str(path)])
    assert schema.build(**schema.arguments(args)) == config


@pytest.mark.parametrize("which", ["search", "train"])
def test_config_show_round_trips(tmp_path, capsys, which):
    schema = LAYERS[which][0]
    assert main(["config", "show", which, "--preset", "quick"]) == 0
    out = capsys.readouterr().out
    (tmp_path / "shown.yaml").write_text(out)
    assert schema.load(tmp_path / "shown.yaml") == schema.preset("quick")
    assert "--set KEY=VALUE (section.KEY, or a top-level KEY)" in out


def test_bad_value_names_the_full_key():
    with pytest.raises(RaclError, match="constraint.eta must be a number"):
        SEARCH.override(SearchConfig(), ["constraint.eta=high"])
    with pytest.raises(RaclError, match="attack.eps must be a number, got '8/0'"):
        TRAIN.from_dict({"attack": {"eps": "8/0"}})
