"""One CLI grammar (issue 24, item 5): a flag name means one thing in every subcommand, every option
has help, the old spellings survive only as hidden aliases that say their new name, `--device auto`
is every command's default (issue 28, item 1) and the top-level error names the subcommand once."""
from __future__ import annotations

import argparse
import re

import pytest
import torch

from racl.cli import build_parser, main
from racl.cli.options import resolve_device
from racl.errors import RaclError

# spellings that name a setting another flag names: allowed only as hidden aliases
RETIRED = {"--batch": "--batch-size", "--eval-limit": "--n-images"}


def walk(parser: argparse.ArgumentParser, path: str = "racl"):
    """(subcommand path, parser) for the top-level parser and every (nested) subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


def meaning(action: argparse.Action) -> tuple:
    """What a flag does, as far as the parser knows: where it goes, what it reads, what it accepts."""
    return (action.dest, type(action).__name__, action.nargs, action.const, getattr(action.type, "__name__", None),
            frozenset(action.choices) if action.choices else None)


def options():
    for path, parser in walk(build_parser()):
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield path, action


def test_walk_sees_every_subcommand():
    paths = {path for path, _ in walk(build_parser())}
    assert {"racl search", "racl train", "racl evaluate", "racl lipschitz", "racl compare", "racl ablate",
            "racl bench", "racl demo", "racl report", "racl zoo show", "racl config show"} <= paths


def test_one_meaning_per_flag_name():
    seen: dict[str, tuple[str, tuple]] = {}
    clashes = []
    for path, action in options():
        for name in action.option_strings:
            first = seen.setdefault(name, (path, meaning(action)))
            if first[1] != meaning(action):
                clashes.append(f"{name}: {first[0]} {first[1]} vs {path} {meaning(action)}")
    assert not clashes, clashes


def test_the_checker_catches_a_clash():  # the walk above is not vacuous: a deliberate clash is seen
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["demo"].add_argument("--seed", nargs="+", type=int, help="a second meaning")
    meanings = {meaning(a) for _, p in walk(parser) for a in p._actions if "--seed" in a.option_strings}
    assert len(meanings) == 2


def test_every_option_has_help_and_retired_names_are_hidden_aliases():
    missing, visible = [], []
    for path, action in options():
        hidden = action.help == argparse.SUPPRESS
        if not hidden and not (action.help or "").strip():
            missing.append(f"{path} {action.option_strings}")
        if hidden and not all(name in RETIRED for name in action.option_strings):
            missing.append(f"{path} {action.option_strings} (hidden, not a retired spelling)")
        if not hidden and any(name in RETIRED for name in action.option_strings):
            visible.append(f"{path} {action.option_strings}")
    positionals = [f"{path} {a.dest}" for path, p in walk(build_parser()) for a in p._actions
                   if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert not missing and not visible and not positionals, (missing, visible, positionals)


def test_device_is_auto_everywhere():
    devices = [(path, a.default) for path, a in options() if "--device" in a.option_strings]
    assert len(devices) >= 8 and all(d == "auto" for _, d in devices), devices


def test_resume_is_a_flag_everywhere():
    kinds = {type(a).__name__ for _, a in options() if "--resume" in a.option_strings}
    assert kinds == {"_StoreTrueAction"}


def test_retired_spelling_still_works_and_says_its_new_name(tmp_path, capsys):
    parser = build_parser()
    args = parser.parse_args(["compare", "--genotypes", "RACL", "--out", str(tmp_path), "--eval-limit", "7"])
    assert args.n_images == 7
    assert "--eval-limit is now --n-images" in capsys.readouterr().err


def test_unknown_argument_names_the_subcommand_once(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--bogus-flag", "1", "--out", "x"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0
    assert err.startswith("racl: error: racl train: unrecognized arguments: --bogus-flag 1") and "racl: racl" not in err


# ---------------------------------------------------------------- --device auto (issue 28, item 1)
def test_auto_resolves_to_cuda_only_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RaclError, match=r"--device cuda: torch .* sees no CUDA GPU here; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(RaclError, match="is not a torch device"):
        resolve_device("gpu0")


def test_cpu_while_cuda_is_visible_warns_once(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.warns(UserWarning, match="running on the CPU although torch sees a CUDA GPU"):
        assert resolve_device("cpu") == "cpu"


def test_first_line_names_the_resolved_device(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # on a GPU machine too
    assert main(["search", "--preset", "tiny", "--no-draw", "--dataset", "synthetic", "--image-size", "8",
                 "--limit", "8", "--epochs", "1", "--set", "warmup_epochs=1", "--out", str(tmp_path / "s")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert re.match(r"racl search on cpu: ", first), first
