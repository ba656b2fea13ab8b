"""Adversarial training: config, objectives, checkpoints, exact resume, out-dir safety, CLI.

Tiny CPU settings throughout: synthetic 16x16 data, the RACL genotype at C=4 with 3 cells, batch 8.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from racl.checkpoint import load_model_checkpoint
from racl.data import load_data, load_data_from_spec
from racl.errors import RaclError
from racl.state import load_state
from racl.training import TrainConfig, apply_overrides, load_config, load_run, make_objective, train
from racl.training.config import FLAGS
from racl.training.schedule import drop_path_prob, learning_rate

from _tiny import train_config

TINY = {"epochs": 1, "batch_size": 8, "channels": 4, "layers": 3, "steps": 2, "val_images": 16, "val_steps": 2,
        "validation.val_batch_size": 16}
FIELDS = {"epoch", "lr", "train_loss", "train_acc", "train_adv_acc", "val_clean_acc", "val_robust_acc", "seconds"}


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic", image_size=16, count=64, num_classes=4, noise=0.25)


def tiny(**changes) -> TrainConfig:
    return train_config(**{**TINY, **changes})


def run(data, out, resume=False, overwrite=False, max_epochs=None, **changes) -> dict:
    return train("RACL", data, tiny(**changes), out, resume=resume, overwrite=overwrite, log=None,
                 max_epochs=max_epochs)


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- config


def test_defaults_follow_the_protocol():
    c = TrainConfig().resolved()
    a, o = c.attack, c.optim
    assert (c.objective.adv, a.eps, a.alpha, a.steps, a.random_start) == ("pgd", 8 / 255, 2 / 255, 7, True)
    assert (o.lr, o.momentum, o.weight_decay, o.schedule, o.grad_clip) == (0.1, 0.9, 2e-4, "cosine", 5.0)
    assert TrainConfig().objective.trades_beta == 6.0 and c.objective.attack_mode == "eval"  # Pang et al.
    fast = train_config(adv="fgsm_rs").resolved()
    assert fast.attack.alpha == pytest.approx(1.25 * 8 / 255) and fast.objective.attack_mode == "train"
    assert train_config(attack_mode="train").resolved().objective.attack_mode == "train"
    assert train_config(adv="trades").resolved().objective.attack_mode == "eval"
    assert train_config(alpha=0.01).resolved().attack.alpha == 0.01
    assert train_config(eps=4 / 255).resolved().attack.alpha == pytest.approx(1 / 255)  # the one rule: eps / 4


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=0), dict(eps=1.5), dict(eps=-0.1), dict(lr=0),
                                 dict(lr=-1.0), dict(adv="fgm"), dict(schedule="linear"), dict(steps=0),
                                 dict(drop_path=1.0), dict(grad_clip=-1.0), dict(val_images=-1)])
def test_bad_config_values_are_refused(bad):
    with pytest.raises(RaclError):
        train_config(**bad)
    with pytest.raises(RaclError):
        apply_overrides(TrainConfig(), [f"{FLAGS[k].key}={v}" for k, v in bad.items()])


def test_config_from_yaml(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 3\nattack: {eps: 8/255, alpha: 0.01}\nobjective: {adv: trades}\n"
                    "optim:\n  step_milestones: [0.5]\n")  # nested by section
    c = load_config(path)
    assert (c.epochs, c.attack.eps, c.attack.alpha, c.objective.adv, c.optim.step_milestones) == \
        (3, 8 / 255, 0.01, "trades", (0.5,))
    assert c == train_config(epochs=3, eps=8 / 255, alpha=0.01, adv="trades", **{"optim.step_milestones": [0.5]})
    path.write_text("epochs: 3\neps: 8/255\n")  # a bare section key
    with pytest.raises(RaclError, match="did you mean attack.eps"):
        load_config(path)
    path.write_text("epochs: 3\nepochz: 4\n")
    with pytest.raises(RaclError, match="epochz"):
        load_config(path)
    path.write_text("epochs: three\n")
    with pytest.raises(RaclError, match="epochs"):
        load_config(path)


def test_schedules():
    c = train_config(epochs=10, lr=0.1)
    assert learning_rate(c, 0, 0, 5) == pytest.approx(0.1)
    assert learning_rate(c, 5, 0, 5) == pytest.approx(0.05)
    assert learning_rate(c, 9, 4, 5) < 0.001
    s = train_config(epochs=10, lr=0.1, schedule="step")
    assert [learning_rate(s, e, 0, 5) for e in (4, 5, 7, 8)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    assert [drop_path_prob(0.2, e, c.epochs) for e in (0, 5)] == pytest.approx([0.0, 0.1])


# ---------------------------------------------------------------- objectives


@pytest.mark.parametrize("adv", ["pgd", "trades", "fgsm_rs", "none"])
def test_objectives_give_finite_losses_and_leave_no_weight_grads(data, adv):
    from racl.models import build_model

    torch.manual_seed(0)
    model = build_model("RACL", num_classes=4, channels=4, layers=3).train()
    x, y = data.train.images[:8].float() / 255, data.train.labels[:8]
    out = make_objective(model, tiny(adv=adv).resolved())(x, y)
    assert out.loss.dim() == 0 and math.isfinite(out.loss.item())
    assert all(p.grad is None for p in model.parameters())  # the attack computed input gradients only
    assert model.training and out.clean_logits.shape == (8, 4)
    assert (out.adv_logits is None) == (adv == "none")


# ---------------------------------------------------------------- training runs


@pytest.mark.slow
def test_adversarial_training_beats_clean_training_under_pgd(tmp_path):
    """Same seed, data and budget (2 epochs, 180 train images, batch 8): PGD-3 training at eps 0.1
    gives higher PGD-5 validation accuracy than clean training. Settings chosen from a sweep over
    synthetic_seed / training seed 0..9, where PGD training won every time (see the report)."""
    splits = load_data("synthetic", image_size=16, count=240, num_classes=4, noise=0.25, val_fraction=0.25)
    robust = {}
    for adv in ("none", "pgd"):
        cfg = tiny(epochs=2, adv=adv, eps=0.1, alpha=0.05, steps=3, val_images=64, val_steps=5, drop_path=0.0,
                   augment=False)
        summary = train("RACL", splits, cfg, tmp_path / adv, log=None)
        robust[adv] = summary["last"]["metrics"]["val_robust_acc"]
    assert robust["pgd"] >= robust["none"] + 0.1, robust


def test_outputs_metrics_and_checkpoint_round_trip(data, tmp_path):
    out = tmp_path / "run"
    summary = run(data, out)
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "metrics.jsonl", "state.safetensors",
                                                "last.safetensors", "last.json", "best.safetensors", "best.json"}
    (record,) = metrics(out)
    assert set(record) == FIELDS and record["epoch"] == 1
    assert 0 <= record["val_robust_acc"] <= record["val_clean_acc"] <= 1
    assert summary["best"]["epoch"] == 1 and summary["last"]["metrics"] == record
    assert load_config(out / "config.yaml") == tiny().resolved()
    state = load_state(out / "state.safetensors")
    for name in ("last", "best"):
        model, meta = load_model_checkpoint(out / f"{name}.safetensors")
        loaded = model.state_dict()
        assert loaded.keys() == state["model"].keys()
        assert all(torch.equal(loaded[k], state["model"][k]) for k in loaded)
        assert meta["config"] == tiny().resolved().to_dict() and meta["epoch"] == 1
        assert meta["metrics"] == record and meta["model_args"]["channels"] == 4
    assert load_data_from_spec(meta["data"]).spec() == data.spec()


@pytest.mark.slow
def test_resume_is_bit_identical(data, tmp_path):
    """2 epochs in one go == 1 epoch, stop, resume 1 epoch (weights, optimiser, metrics, best)."""
    kw = dict(epochs=2, drop_path=0.2, val_images=8)
    full = run(data, tmp_path / "full", **kw)
    run(data, tmp_path / "split", max_epochs=1, **kw)
    assert len(metrics(tmp_path / "split")) == 1
    split = run(data, tmp_path / "split", resume=True, **kw)
    for name in ("last", "best"):
        a, _ = load_model_checkpoint(tmp_path / "full" / f"{name}.safetensors")
        b, _ = load_model_checkpoint(tmp_path / "split" / f"{name}.safetensors")
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in (metrics(tmp_path / "full"))]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in metrics(tmp_path / "split")]
    opt_a = load_state(tmp_path / "full" / "state.safetensors")["optimizer"]["state"]
    opt_b = load_state(tmp_path / "split" / "state.safetensors")["optimizer"]["state"]
    assert all(torch.equal(opt_a[k]["momentum_buffer"], opt_b[k]["momentum_buffer"]) for k in opt_a)
    assert (full["best"]["epoch"], full["steps"]) == (split["best"]["epoch"], split["steps"])


def test_out_dir_refusal_overwrite_and_resume_checks(data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RaclError, match="nothing to resume"):
        load_run(out)  # what a bare `racl train --resume DIR` continues: nothing
    fresh = run(data, tmp_path / "fresh", resume=True, val_images=0, adv="none")  # nothing saved: from the start
    assert fresh["epochs"] == 1 and len(metrics(tmp_path / "fresh")) == 1
    run(data, out, val_images=0, adv="none")
    with pytest.raises(RaclError, match="already holds a training run"):
        run(data, out, adv="none")
    with pytest.raises(RaclError, match="not both"):
        run(data, out, resume=True, overwrite=True)
    with pytest.raises(RaclError, match="config differs"):
        run(data, out, resume=True, val_images=0, adv="none", lr=0.05)
    summary = run(data, out, resume=True, val_images=0, adv="none")  # already complete: nothing to do
    assert summary["epochs"] == 1 and len(metrics(out)) == 1
    longer = run(data, out, resume=True, val_images=0, adv="none", epochs=2)  # `epochs` may change on resume
    assert longer["epochs"] == 2 and [r["epoch"] for r in metrics(out)] == [1, 2]
    assert load_config(out / "config.yaml").epochs == 2
    (out / "notes.txt").write_text("keep me")
    run(data, out, overwrite=True, adv="none", val_images=0, seed=1)
    assert (out / "notes.txt").read_text() == "keep me" and len(metrics(out)) == 1
    assert metrics(out)[0]["val_robust_acc"] is None


@pytest.mark.parametrize("adv", ["trades", "fgsm_rs"])
def test_trades_and_fast_fgsm_runs(data, tmp_path, adv):
    summary = run(data, tmp_path / adv, adv=adv)
    m = summary["last"]["metrics"]
    assert math.isfinite(m["train_loss"]) and 0 <= m["train_adv_acc"] <= 1
    assert load_config(tmp_path / adv / "config.yaml").objective.adv == adv


def test_auxiliary_head_and_drop_path(tmp_path):
    splits = load_data("synthetic", image_size=32, count=24, num_classes=3, noise=0.25)
    cfg = tiny(epochs=2, auxiliary=True, aux_weight=0.4, drop_path=0.3, steps=1, val_images=4, batch_size=4)
    from racl.models import build_model

    torch.manual_seed(cfg.seed)  # train() seeds the same way before building: the same initial weights
    init = build_model("RACL", num_classes=3, channels=4, layers=3, auxiliary=True).state_dict()
    train("RACL", splits, cfg, tmp_path / "aux", log=None, max_epochs=1)
    model, meta = load_model_checkpoint(tmp_path / "aux" / "last.safetensors")
    assert meta["model_args"]["auxiliary"] and meta["model_args"]["drop_path_prob"] == 0.3
    aux = [k for k in init if k.startswith("auxiliary_head") and k.endswith("weight")]
    assert aux and all(not torch.equal(init[k], model.state_dict()[k]) for k in aux)  # the aux loss trains it
    train("RACL", splits, cfg, tmp_path / "aux", log=None, resume=True)  # epoch 2: drop path 0.15
    small = load_data("synthetic", image_size=16, count=24, num_classes=3)
    with pytest.raises(RaclError, match="auxiliary head needs"):
        train("RACL", small, cfg, tmp_path / "small", log=None)


def test_non_finite_loss_stops_and_keeps_last_checkpoint(data, tmp_path, monkeypatch):
    import racl.training.trainer as trainer

    out = tmp_path / "run"
    run(data, out, epochs=2, adv="none", max_epochs=1)
    before, _ = load_model_checkpoint(out / "last.safetensors")
    real = trainer.make_objective

    def poisoned(model, config):
        objective = real(model, config)

        def step(x, y):
            result = objective(x, y)
            result.loss = result.loss * float("nan")
            return result
        return step

    monkeypatch.setattr(trainer, "make_objective", poisoned)
    with pytest.raises(RaclError, match="epoch 2, step 1"):
        run(data, out, epochs=2, adv="none", resume=True)
    after, meta = load_model_checkpoint(out / "last.safetensors")
    assert meta["epoch"] == 1
    assert all(torch.equal(v, after.state_dict()[k]) for k, v in before.state_dict().items())


# ---------------------------------------------------------------- CLI


def test_cli_train_mobilenet_v2(tmp_path, capsys):
    """The hand-designed efficient network trains from the CLI like resnet18, and its checkpoint rebuilds."""
    from racl.cli import main

    out = tmp_path / "mnv2"
    assert main(["train", "--genotype", "mobilenet_v2", "--dataset", "synthetic", "--limit", "4", "--image-size", "16",
                 "--val-fraction", "0.25", "--epochs", "1", "--set", "batch_size=8", "--set", "attack.steps=1",
                 "--set", "validation.val_images=8", "--set", "validation.val_steps=1", "--out", str(out)]) == 0
    model, meta = load_model_checkpoint(out / "last.safetensors")
    assert meta["model"] == "mobilenet_v2" and type(model).__name__ == "MobileNetV2"
    assert "channels" not in meta["model_args"]  # DARTS-space settings do not apply to it


def test_cli_train_config_file_refusal_and_resume(tmp_path, capsys, monkeypatch):
    from racl.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # --device auto resolves to cpu anywhere

    cfg = tmp_path / "train.yaml"
    cfg.write_text("batch_size: 8\nnetwork: {channels: 4, layers: 3}\nattack: {steps: 1, eps: 4/255}\n"
                   "validation: {val_images: 8, val_steps: 1}\n")
    out = tmp_path / "run"
    args = ["train", "--genotype", "RACL", "--dataset", "synthetic", "--limit", "6", "--val-fraction", "0.2",
            "--image-size", "16",
            "--config", str(cfg), "--epochs", "1", "--adv", "fgsm_rs", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "epoch   1/1" in printed and "best (epoch 1)" in printed
    assert printed.startswith("racl train on cpu")  # the resolved device first (--device auto, no GPU here)
    assert "model: RACL (C = 4, 3 cells), " in printed and " parameters" in printed
    assert "training: fast FGSM from a random start (Wong et al.), attack linf eps 4/255, 1 step(s) of 5/255" in printed
    assert "data: synthetic: train " in printed
    assert "train clean (eval BN)" in printed and "adv (train BN)" in printed  # the two BN modes, labelled
    saved = load_config(out / "config.yaml")
    assert (saved.objective.adv, saved.attack.eps, saved.batch_size, saved.attack.alpha) == \
        ("fgsm_rs", 4 / 255, 8, 1.25 * 4 / 255)
    assert main(args) == 2 and "already holds a training run" in capsys.readouterr().err
    # --resume alone: model, data and config come from the run (no data flag: not digits, the default)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    assert "epoch   2/2" in capsys.readouterr().out
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.5"]) == 2
    assert "config differs" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--limit", "5"]) == 2  # a data flag changes the data
    assert "data spec differs from the one given (limit: 6 -> 5" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 1\n")
    assert main(["train", "--genotype", "RACL", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "unknown training config key" in capsys.readouterr().err
