"""Fuzzing the parsers of user input (issue 6, item 5): any input gives a value or a RaclError.

Genotype dicts and JSON text, training and search configs (dicts, YAML text, `--set key=value`),
eps strings and numbers, attack names. Any exception other than RaclError is a bug in racl.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racl.attacks import parse_attack_list, parse_eps, parse_eps_list
from racl.attacks.registry import build_attack
from racl.errors import RaclError
from racl.search.config import apply_overrides, config_from_dict as search_config_from_dict, get_preset
from racl.search_space import PRIMITIVES, Genotype
from racl.training import config_from_dict as train_config_from_dict

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON-like values, with the odd ones YAML and Python callers can produce (inf, nan, huge ints, bools)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["8/255", "1/0", "0.5", "1e400", "-3", "nan", "inf", "", "pgd", "full"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4), max_leaves=12)


def accepts(parse, *args):
    """Call parse; RaclError is a fine answer, anything else fails the test."""
    try:
        return parse(*args)
    except RaclError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


# ---------------------------------------------------------------- genotypes
ops = st.one_of(st.sampled_from(PRIMITIVES), st.text(max_size=6), st.integers(), st.none())
indices = st.one_of(st.integers(-3, 8), st.integers(), st.booleans(), st.floats(), st.text(max_size=2))
edges = st.lists(st.one_of(st.tuples(ops, indices).map(list), values), max_size=10)
concats = st.one_of(st.none(), st.lists(indices, max_size=6), values)
genotype_dicts = st.fixed_dictionaries({"normal": edges, "reduce": edges},
                                       optional={"normal_concat": concats, "reduce_concat": concats,
                                                 "extra": values})


@FUZZ
@given(st.one_of(genotype_dicts, values))
def test_genotype_from_dict(data):
    g = accepts(Genotype.from_dict, data)
    if g is not None:
        assert Genotype.from_dict(g.to_dict()) == g


@FUZZ
@given(st.one_of(st.text(max_size=200), genotype_dicts.map(json.dumps)))
def test_genotype_from_json_text(text):
    g = accepts(Genotype.from_json, text)
    if g is not None:
        assert Genotype.from_json(g.to_json()) == g


@pytest.mark.parametrize("text", ["[" * 100_000, '{"normal": ' * 50_000])
def test_genotype_deeply_nested_json(text):
    with pytest.raises(RaclError, match="genotype"):
        Genotype.from_json(text)


# ---------------------------------------------------------------- configs
def nested(top: list, sections: list, section_keys: list):
    """Config-like dicts: top-level keys and sections (mappings of their keys, or any value)."""
    section = st.one_of(st.dictionaries(st.sampled_from(section_keys), values, max_size=3), values)
    return st.tuples(st.dictionaries(st.sampled_from(top), values, max_size=3),
                     st.dictionaries(st.sampled_from(sections), section, max_size=3)).map(lambda t: {**t[0], **t[1]})


train_dicts = nested(["epochs", "batch_size", "seed", "eps", "bogus", 3],
                     ["objective", "attack", "optim", "network", "augmentation", "validation"],
                     ["lr", "eps", "alpha", "steps", "adv", "schedule", "step_milestones", "momentum", "augment",
                      "attack_mode", "channels", "drop_path", "bogus"])
search_dicts = nested(["epochs", "batch_size", "strategy", "space", "warmup_epochs", "eta", "bogus", 3],
                      ["supernet", "constraint", "optim", "robust", "distribution", "bound", "attack", "gdas"],
                      ["channels", "keep_none", "eta", "lbar_mode", "w_lr", "arch_betas", "gamma", "adv", "cov",
                       "bn", "eps", "tau_min", "bogus"])


@FUZZ
@given(st.one_of(train_dicts, values))
def test_train_config_from_dict(data):
    cfg = accepts(train_config_from_dict, data)
    if cfg is not None:
        assert train_config_from_dict(cfg.to_dict()) == cfg


@FUZZ
@given(st.one_of(search_dicts, values))
def test_search_config_from_dict(data):
    cfg = accepts(search_config_from_dict, data)
    if cfg is not None:
        assert search_config_from_dict(cfg.to_dict()) == cfg


set_keys = st.sampled_from(["constraint.eta", "optim.w_lr", "epochs", "batch_size", "supernet.channels",
                            "distribution.cov", "attack.eps", "eta", "a.b.c", "bogus", "", "robust", "supernet"])


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=20), st.tuples(set_keys, st.text(max_size=12)).map("=".join)),
                max_size=3))
def test_search_set_overrides(items):
    accepts(apply_overrides, get_preset("tiny"), items)


@pytest.mark.parametrize("item", ["constraint.eta=" + "[" * 1000 + "]" * 1000, "attack.eps=1/0",
                                  "epochs=.inf", "optim.w_lr=" + "9" * 400, "epochs=1e999",
                                  "constraint.eta=.nan"])
def test_search_set_odd_values(item):
    with pytest.raises(RaclError):
        apply_overrides(get_preset("tiny"), [item])


@pytest.mark.parametrize("data", [{"epochs": math.inf}, {"epochs": math.nan}, {"optim": {"momentum": 10**400}},
                                  {"optim": {"lr": 10**400}}, {1: 2, "a": 3},
                                  {"optim": {"step_milestones": [10**400]}}])
def test_train_config_odd_values(data):
    with pytest.raises(RaclError):
        train_config_from_dict(data)


# ---------------------------------------------------------------- eps and attack names
@FUZZ
@given(st.one_of(st.text(max_size=30), st.floats(), st.integers(), st.integers(min_value=10**300),
                 st.from_regex(r"\s*[0-9.e+-]{0,12}\s*(/\s*[0-9.]{0,8})?\s*", fullmatch=True)))
def test_parse_eps(text):
    eps = accepts(parse_eps, text)
    if eps is not None:
        assert 0.0 <= eps <= 1.0 and math.isfinite(eps)


@FUZZ
@given(st.text(max_size=40))
def test_parse_eps_list(text):
    out = accepts(parse_eps_list, text)
    if out is not None:
        assert all(0.0 <= e <= 1.0 for e in out)


attack_names = st.one_of(st.text(max_size=12), st.sampled_from(["pgd", "pgd0", "PGD-20", "cw", "apgd-ce", "pgdl2_3"]),
                         st.from_regex(r"(pgd|cw|pgdl2_)[0-9\u0660-\u0669]{0,6}", fullmatch=True),
                         st.just("pgd" + "9" * 5000))


@FUZZ
@given(st.lists(attack_names, max_size=4).map(",".join))
def test_parse_attack_list(text):
    names = accepts(parse_attack_list, text)
    if names is not None:
        assert names and all(n == n.strip().lower() for n in names)


@FUZZ
@given(attack_names)
def test_build_attack_names(name):
    from torch import nn

    attack = accepts(build_attack, name, nn.Flatten(), 0.03)
    if attack is not None:
        assert callable(attack)
