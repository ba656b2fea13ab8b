"""The search loop: config handling, end-to-end tiny searches, exact resume, outputs, CLI, NaN handling."""
import json
import re

import pytest
import torch

from racl.cli import main
from racl.data import load_data
from racl.errors import RaclError
from racl.models import build_model
from racl.search import (SearchConfig, apply_overrides, config_from_dict, config_to_dict, get_preset,
                         load_search_config, run_search)
from racl.search.outputs import read_metrics
from racl.search_space import Genotype
from racl.state import load_state

REQUIRED = {"epoch", "train_acc", "val_acc", "mu_F", "sigma_F", "prob_within_bound", "constraint_g", "dual_nu",
            "rho", "ln_lbar", "genotype", "seconds", "train_loss", "grad_norm", "lr"}


@pytest.fixture(scope="module")
def data():
    # 40 images -> 32 train (16 + 16 halves: 2 steps of 8 per epoch), 4 val, 4 test
    return load_data("synthetic", image_size=16, count=40, channels=3)


def tiny(*items: str) -> SearchConfig:
    return apply_overrides(get_preset("tiny"), list(items))


# ------------------------------------------------------------------ config (the loader: tests/test_config.py)
def test_config_defaults_are_the_paper_settings():
    c = SearchConfig()
    assert c.space == "darts" and c.supernet_size() == {"channels": 16, "layers": 8, "steps": 4}
    assert (c.batch_size, c.epochs) == (128, 50)
    assert c.constraint.eta == 0.9 and c.optim.arch_lr == 6e-4 and c.optim.arch_wd == 1e-3
    assert get_preset("paper") == c


def test_config_yaml_round_trip_and_unknown_keys(tmp_path):
    c = tiny("constraint.eta=0.8", "robust.adv=pgd", "attack.eps=4/255")
    assert c.constraint.eta == 0.8 and c.attack.eps == pytest.approx(4 / 255) and c.attack.steps == 4
    (tmp_path / "c.yaml").write_text("constraint:\n  lbar: 1e12\n  lbar_mode: absolute\nepochs: 3\n")
    loaded = load_search_config(tmp_path / "c.yaml", c)
    assert loaded.constraint.lbar == 1e12 and loaded.epochs == 3 and loaded.constraint.eta == 0.8
    assert config_from_dict(config_to_dict(loaded)) == loaded
    for bad in ({"etaa": 1}, {"constraint": {"nope": 1}}, {"constraint": {"eta": 1.5}}, {"strategy": "x"}):
        with pytest.raises(RaclError):
            config_from_dict(bad)
    with pytest.raises(RaclError):
        apply_overrides(c, ["no_such_key=1"])
    with pytest.raises(RaclError):
        apply_overrides(c, ["constraint.eta"])


def test_search_attack_is_an_attack_spec():
    """The weight step's x' is the `attack` section (AttackSpec, step eps / 4 by default)."""
    c = tiny("robust.adv=pgd")
    assert c.attack.resolved().alpha == pytest.approx(c.attack.eps / 4) and c.attack.steps >= 4


# ------------------------------------------------------------------ end to end
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["racl", "darts", "random", "advrush", "gdas"])
def test_tiny_search_end_to_end(strategy, data, tmp_path):
    out = tmp_path / strategy
    result = run_search(tiny(f"strategy={strategy}"), data, out, draw=strategy == "racl", log=None)
    genotype = Genotype.load(out / "genotype.json")
    assert genotype == result.genotype
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    model = build_model(genotype, num_classes=10, channels=4, layers=3)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 10)
    metrics = read_metrics(out)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics == result.metrics
    assert [m["phase"] for m in metrics] == ["warmup", "search"]
    for m in metrics:
        assert REQUIRED <= set(m), REQUIRED - set(m)
        assert Genotype.from_dict(m["genotype"])
    assert metrics[-1]["mu_F"] is not None
    if strategy == "racl":
        last = metrics[-1]
        assert last["arch_loss"] is not None and 0 <= last["prob_within_bound"] <= 1
        assert last["constraint_g"] == pytest.approx(last["mu_F"] + 1.2815515655 * last["sigma_F"] - last["ln_lbar"],
                                                     abs=1e-5)
    else:
        assert metrics[-1]["sigma_F"] == 0.0 and metrics[-1]["dual_nu"] is None
    files = {"config.yaml", "checkpoint.safetensors"} | ({"normal.png", "reduction.dot"} if strategy == "racl" else set())
    assert files <= {p.name for p in out.iterdir()}


@pytest.mark.slow
def test_resume_is_exact(data, tmp_path):
    # the interruption falls inside the architecture phase; adversarial inputs, the gradient-norm term,
    # augmentation and the Monte-Carlo bound exercise every RNG stream
    cfg = tiny("warmup_epochs=0", "robust.adv=fgsm_rs", "robust.gamma=0.1", "augment=true", "bound.bound_method=mc")
    full = run_search(cfg, data, tmp_path / "full", draw=False, log=None)
    part = run_search(cfg, data, tmp_path / "part", stop_after=1, log=None)
    assert len(part.metrics) == 1
    resumed = run_search(cfg, data, tmp_path / "part", resume=True, draw=False, log=None)
    assert resumed.genotype == full.genotype

    def strip(ms):
        return [{k: v for k, v in m.items() if k != "seconds"} for m in ms]

    assert strip(read_metrics(tmp_path / "part")) == strip(read_metrics(tmp_path / "full")) == strip(full.metrics)
    a, b = (load_state(tmp_path / d / "checkpoint.safetensors") for d in ("full", "part"))
    def same(x, y, where):  # tensors, and the optimisers' state dicts
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), where
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                same(x[k], y[k], f"{where}.{k}")
        else:
            assert x == y, where

    for part_name in ("strategy", "w_opt", "arch_opt"):
        same(a[part_name], b[part_name], part_name)
    assert any(k.startswith("supernet.") for k in a["strategy"])  # the strategy's state holds the supernet
    assert a["arch_opt"]["state"]  # the optimiser's state is in the checkpoint
    assert full.metrics[-1]["dual_nu"] > 0 and full.metrics[-1]["grad_norm"] > 0


def test_out_dir_holding_a_run_is_refused(data, tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(RaclError, match="--resume"):
        run_search(tiny(), data, tmp_path, log=None)


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(data, tmp_path, monkeypatch):
    from racl.search_space.darts.supernet import Supernet

    forward, calls = Supernet.forward, {"n": 0}

    def poisoned(self, x, weights):
        calls["n"] += 1
        out = forward(self, x, weights)
        return out * float("nan") if calls["n"] > 3 and torch.is_grad_enabled() else out

    run_search(tiny("strategy=darts", "epochs=1", "warmup_epochs=0"), data, tmp_path, draw=False, log=None)
    monkeypatch.setattr(Supernet, "forward", poisoned)
    with pytest.raises(RaclError, match=r"epoch 2, step \d"):
        run_search(tiny("strategy=darts", "warmup_epochs=0"), data, tmp_path, resume=True, log=None)
    assert load_state(tmp_path / "checkpoint.safetensors")["epoch"] == 1


# ------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_search_and_refusal(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["search", "--preset", "tiny", "--strategy", "darts", "--dataset", "synthetic", "--image-size", "16",
            "--limit", "4", "--epochs", "1", "--seed", "3", "--out", out, "--set", "warmup_epochs=0", "--no-draw"]
    assert main(args) == 0
    assert Genotype.load(tmp_path / "run" / "genotype.json")
    saved = load_search_config(tmp_path / "run" / "config.yaml")
    assert (saved.seed, saved.epochs, saved.strategy, saved.warmup_epochs) == (3, 1, "darts", 0)
    assert main(args) == 2
    assert "already holds a search run" in capsys.readouterr().err
    assert main(args + ["--resume", "--epochs", "2"]) == 0  # extend the finished run by one epoch
    assert [m["epoch"] for m in read_metrics(tmp_path / "run")] == [1, 2]
    printed = capsys.readouterr().out
    assert re.search(r"^search summary: no Lipschitz constraint \(darts strategy\); genotype: \d+\.\d\dM parameters "
                     r"\(racl train's default network: C = 36, 20 cells, 10 classes\)$", printed, re.M), printed
    # --resume alone: the run's own config and data (not digits, the default dataset); a data flag that
    # changes the data is refused
    assert main(["search", "--out", out, "--resume", "--epochs", "3"]) == 0
    assert [m["epoch"] for m in read_metrics(tmp_path / "run")] == [1, 2, 3]
    assert main(["search", "--out", out, "--resume", "--epochs", "4", "--limit", "5"]) == 2
    assert "data spec differs from the one given (limit: 4 -> 5" in capsys.readouterr().err
    assert main(["search", "--out", out, "--set", "bogus=1"]) == 2
    json.loads((tmp_path / "run" / "genotype.json").read_text())


def test_end_summary_says_whether_the_constraint_holds():
    from racl.search.summary import constraint_status, end_summary
    from racl.search_space import resolve_genotype

    racl = get_preset("paper")
    violated = {"constraint_g": 0.757, "prob_within_bound": 0.0, "constraint_regime": "active"}
    line = constraint_status(violated, racl)
    assert line.startswith("constraint violated: Pr(L_F <= L_bar) 0.000 against eta 0.9 (the eta-quantile of ln L_F "
                           "lies 0.76 above ln L_bar)") and "--epochs" in line and "arch_lr" in line
    quick = get_preset("quick")  # already at arch_lr 0.01: the advice says to go above it
    assert constraint_status(violated, quick).endswith("raise the architecture learning rate above its 0.01 "
                                                       "(--set optim.arch_lr=...)")
    assert constraint_status({**violated, "constraint_g": -0.1, "prob_within_bound": 0.95}, racl).startswith(
        "constraint met: Pr(L_F <= L_bar) 0.950")
    unreachable = {**violated, "constraint_regime": "unreachable", "ln_l_min": 3.0, "ln_lbar": 2.0}
    assert constraint_status(unreachable, racl).startswith("constraint unreachable")
    assert "never measured" in constraint_status({"constraint_g": None, "prob_within_bound": None}, racl)
    line = end_summary([violated], racl, resolve_genotype("RACL"), num_classes=10, in_channels=3)
    assert line.endswith("genotype: 3.57M parameters (racl train's default network: C = 36, 20 cells, 10 classes)")
