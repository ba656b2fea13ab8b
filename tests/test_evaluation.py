"""Robustness evaluation: per-attack and worst-case accuracy, honesty checks, the `racl evaluate` CLI."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from racl.cli import main
from racl.evaluation import evaluate_robustness, plot_eps_sweep, run_model_checks, transfer_matrix
from racl.evaluation.checks import (check_autoattack_vs_pgd, check_eps_monotone, check_transfer_vs_whitebox,
                                    run_result_checks, warnings_from)

from _tiny import make_data, tiny_cnn

EPS = 4 / 255


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    images, labels = make_data(1200)
    model = tiny_cnn()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(4):
        for i in range(0, 1000, 50):
            loss = F.cross_entropy(model(images[i:i + 50]), labels[i:i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), images[1000:], labels[1000:]


def test_evaluate_robustness(setup):
    model, images, labels = setup
    res = evaluate_robustness(model, images, labels, ["fgsm", "pgd5", "cwinf5"], EPS, batch_size=64, seed=0)
    assert res["n_images"] == 200 and res["eps"] == pytest.approx(EPS) and res["eps_text"] == "4/255"
    assert res["clean_accuracy"] > 0.6
    assert set(res["robust_accuracy"]) == set(res["seconds"]) == set(res["attacks"]) == {"fgsm", "pgd5", "cwinf5"}
    assert [(a["norm"], a["steps"], a["loss"]) for a in res["attacks"].values()] == \
        [("L-inf", 1, "ce"), ("L-inf", 5, "ce"), ("L-inf", 5, "margin")]  # what ran, beside its number
    for acc in res["robust_accuracy"].values():
        assert 0 <= acc <= res["clean_accuracy"]
    assert res["worst_case_accuracy"] <= min(res["robust_accuracy"].values())
    assert res["robust_accuracy"]["pgd5"] < res["clean_accuracy"]
    again = evaluate_robustness(model, (images * 255).round().to(torch.uint8), labels, ["pgd5"], EPS, seed=0)
    assert again["n_images"] == 200  # uint8 images are accepted (divided by 255)
    rng = torch.get_rng_state()
    same = evaluate_robustness(model, images, labels, ["pgd5"], EPS, batch_size=64, seed=0)
    assert same["robust_accuracy"]["pgd5"] == res["robust_accuracy"]["pgd5"]  # seeded: reruns agree
    assert torch.equal(torch.get_rng_state(), rng)  # ... without touching the caller's RNG


class Noisy(nn.Module):
    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + 0.5 * torch.randn(x.shape[0], 10)


class Rounded(Noisy):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x.round())  # zero gradient almost everywhere


class Softmaxed(Noisy):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x).softmax(dim=1)


def test_model_checks(setup):
    model, images, labels = setup
    x, y = images[:32], labels[:32]
    assert warnings_from(run_model_checks(model, x, y)) == []
    model.train()
    for wrapper, failing in ((Noisy, "randomized"), (Rounded, "gradients"), (Softmaxed, "logits")):
        checks = run_model_checks(wrapper(model), x, y)
        failed = [k for k, c in checks.items() if not c["passed"]]
        assert failed == [failing], (wrapper.__name__, checks)
        assert warnings_from(checks) and "Noisy" not in warnings_from(checks)[0]
    assert model.training  # checks restore the model's mode
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    model.eval()


def test_result_checks():
    assert not check_autoattack_vs_pgd({"pgd20": 0.50, "autoattack": 0.40})["passed"]
    assert check_autoattack_vs_pgd({"pgd20": 0.50, "autoattack": 0.47})["passed"]
    assert check_autoattack_vs_pgd({"fgsm": 0.5}) is None
    bad = check_transfer_vs_whitebox([[0.5, 0.6], [0.3, 0.55]], ["a", "b"])
    assert not bad["passed"] and "b -> a" in bad["message"]
    assert check_transfer_vs_whitebox([[0.4, 0.6], [0.5, 0.3]], ["a", "b"])["passed"]
    sweep = {"eps": [0, 1, 2], "robust_accuracy": {"pgd": [0.9, 0.5, 0.2], "odd": [0.9, 0.4, 0.6]}}
    assert check_eps_monotone(sweep)["value"] == ["odd"]
    checks = run_result_checks({"robust_accuracy": {"pgd20": 0.5, "autoattack": 0.3}, "eps_sweep": sweep,
                                "attack_warnings": {"autoattack": ["it looks randomised"]}})
    assert len(warnings_from(checks)) == 3


def test_a_model_at_chance_is_flagged():
    from racl.evaluation.checks import check_above_chance

    # 10 classes, 1000 images: the chance band is 10% +/- 2.8%
    assert not check_above_chance(0.1006, 1000, 10)["passed"] and not check_above_chance(0.12, 1000, 10)["passed"]
    assert check_above_chance(0.15, 1000, 10)["passed"] and check_above_chance(0.03, 1000, 10)["passed"]
    at_chance = {"eps": 8 / 255, "clean_accuracy": 0.1006, "n_images": 1000, "num_classes": 10,
                 "robust_accuracy": {"pgd20": 0.1006}}
    checks = run_result_checks(at_chance)
    assert not checks["above_chance"]["passed"] and not checks["attacks_bite"]["passed"]
    assert len(warnings_from(checks)) == 2
    # attacks that change nothing are flagged however good the clean accuracy; one that bites anywhere is fine
    untouched = {"eps": 8 / 255, "clean_accuracy": 0.9, "n_images": 100, "robust_accuracy": {"fgsm": 0.9},
                 "eps_sweep": {"eps": [0, 4 / 255], "robust_accuracy": {"fgsm": [0.9, 0.9]}}}
    assert not run_result_checks(untouched)["attacks_bite"]["passed"]
    untouched["eps_sweep"]["robust_accuracy"]["fgsm"][1] = 0.8
    assert run_result_checks(untouched)["attacks_bite"]["passed"]
    untouched["eps"] = 0.0  # eps 0 alone does not count as an attack
    untouched["eps_sweep"] = {"eps": [0.0], "robust_accuracy": {"fgsm": [0.9]}}
    assert "attacks_bite" not in run_result_checks(untouched)


def test_transfer_matrix(setup):
    model, images, labels = setup
    other = tiny_cnn()
    res = transfer_matrix({"a": model, "b": other}, images[:64], labels[:64], "pgd5", EPS, batch_size=32)
    acc = res["accuracy"]
    assert res["sources"] == res["targets"] == ["a", "b"] and len(acc) == 2 and len(acc[0]) == 2
    assert acc[0][0] < res["clean_accuracy"]["a"]
    assert all(0 <= v <= res["clean_accuracy"][t] for row in acc for v, t in zip(row, ["a", "b"]))


def test_eps_sweep_plot(tmp_path):
    sweep = {"eps": [0, 2 / 255, 8 / 255], "eps_text": ["0", "2/255", "8/255"], "clean_accuracy": 0.9,
             "robust_accuracy": {"fgsm": [0.9, 0.6, 0.3], "pgd20": [0.9, 0.5, 0.1]}, "n_images": 100}
    path = plot_eps_sweep(sweep, tmp_path / "eps_sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list:
    """Two tiny untrained DARTS-space networks saved with a synthetic-data spec in the sidecar."""
    from racl.checkpoint import model_spec, save_model_checkpoint
    from racl.data import load_data
    from racl.models import build_model

    data = load_data("synthetic", image_size=8, count=200, num_classes=4)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        kwargs = dict(num_classes=4, channels=4, layers=3, mean=data.mean, std=data.std)
        model = build_model("RACL", **kwargs)
        path = tmp_path_factory.mktemp(f"ckpt{seed}") / f"net{seed}.safetensors"
        save_model_checkpoint(path, model, model_spec("RACL", **kwargs), data=data.spec())
        paths.append(path)
    return paths


def test_cli_evaluate(checkpoints, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--checkpoint", str(checkpoints[0]), "--attacks", "fgsm,pgd3", "--eps", "8/255",
                 "--eps-sweep", "0,4/255,8/255", "--n-images", "12", "--batch-size", "8", "--out", str(out),
                 "--device", "cpu"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_images"] == 12 and res["eps_text"] == "8/255" and res["checkpoint"] == str(checkpoints[0])
    assert set(res["robust_accuracy"]) == {"fgsm", "pgd3"} and "clean_accuracy" in res
    assert res["model"]["model"] and isinstance(res["warnings"], list) and "gradients" in res["checks"]
    assert len(res["eps_sweep"]["robust_accuracy"]["pgd3"]) == 3
    assert (out / "eps_sweep.png").stat().st_size > 1000
    assert "| pgd3 |" in (out / "results.md").read_text()
    assert "pgd3" in capsys.readouterr().out


def test_cli_transfer(checkpoints, tmp_path):
    out = tmp_path / "transfer"
    argv = ["evaluate", "--transfer", *map(str, checkpoints), "--attacks", "fgsm", "--n-images", "8", "--out",
            str(out), "--device", "cpu"]
    assert main(argv) == 0
    res = json.loads((out / "transfer.json").read_text())
    assert res["names"] == ["net0", "net1"]
    assert len(res["matrices"]["fgsm"]["accuracy"]) == 2
    assert "source \\ target" in (out / "transfer.md").read_text()


def test_cli_errors(checkpoints, tmp_path, capsys):
    base = ["evaluate", "--checkpoint", str(checkpoints[0]), "--out", str(tmp_path), "--n-images", "4"]
    assert main(base + ["--eps", "300/255"]) == 2
    assert main(base + ["--attacks", "fgsm,deepfool"]) == 2
    assert main(["evaluate", "--transfer", str(checkpoints[0]), "--out", str(tmp_path)]) == 2
    sidecar = checkpoints[0].with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(checkpoints[0].read_bytes())
    bare.with_suffix(".json").write_text(json.dumps({k: v for k, v in meta.items() if k != "data"}))
    assert main(["evaluate", "--checkpoint", str(bare), "--attacks", "fgsm", "--out", str(tmp_path)]) == 2
    assert main(base + ["--dataset", "synthetic", "--image-size", "8"]) == 2  # 10 classes, model has 4
    err = capsys.readouterr().err
    assert "outside [0, 1]" in err and "unknown attack 'deepfool'" in err and "--dataset" in err
    assert "does not match what the model was trained on: classes 10 (data) vs 4 (the checkpoint)" in err


def test_data_override_and_val_split(checkpoints, tmp_path):
    from racl.data import load_data
    from racl.evaluation.run import evaluate_checkpoint

    other = load_data("synthetic", image_size=8, count=120, num_classes=4, synthetic_seed=5)
    res = evaluate_checkpoint(checkpoints[0], ["fgsm"], 8 / 255, tmp_path, split="val",
                              load=lambda meta: other)
    assert res["n_images"] == len(other.val) and res["data"]["options"]["synthetic_seed"] == 5


def test_interrupted_evaluation_resumes_with_finished_batches(checkpoints, tmp_path, monkeypatch):
    # a kill in the middle of the second attack: --resume attacks only the batches not yet done and
    # ends with exactly the numbers of an uninterrupted run; the partial file goes once it is complete
    import racl.evaluation.evaluate as ev
    from racl.evaluation.run import evaluate_checkpoint

    kw = dict(batch_size=4, device="cpu")  # the 20 test images: 5 batches per attack
    full = evaluate_checkpoint(checkpoints[0], ["fgsm", "pgd2"], 8 / 255, tmp_path / "full", **kw)
    assert full["batches_reused"] == 0 and not (tmp_path / "full" / ".partial").exists()
    calls = {"n": 0}
    original = ev._attacked_correct

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:  # fgsm's 5 batches done, pgd2's first 2 done, killed in the third
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(ev, "_attacked_correct", dying)
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(checkpoints[0], ["fgsm", "pgd2"], 8 / 255, tmp_path / "cut", **kw)
    assert list((tmp_path / "cut" / ".partial").glob("*.safetensors"))
    calls["n"] = -100  # no more kills
    resumed = evaluate_checkpoint(checkpoints[0], ["fgsm", "pgd2"], 8 / 255, tmp_path / "cut", resume=True, **kw)
    assert resumed["batches_reused"] == 7 and calls["n"] == -100 + 3  # only pgd2's last 3 batches attacked
    for key in ("clean_accuracy", "robust_accuracy", "worst_case_accuracy"):
        assert resumed[key] == full[key]
    assert not (tmp_path / "cut" / ".partial").exists()
    # without --resume, or with other settings, nothing is reused
    calls["n"] = -100
    again = evaluate_checkpoint(checkpoints[0], ["fgsm", "pgd2"], 8 / 255, tmp_path / "cut", resume=True,
                                seed=1, **kw)
    assert again["batches_reused"] == 0 and calls["n"] == -100 + 10


def test_eps_zero_is_clean_accuracy_without_running_attacks(setup, monkeypatch):
    import racl.evaluation.evaluate as ev

    model, images, labels = setup
    called = []
    monkeypatch.setattr(ev, "run_attack", lambda *a, **k: called.append(a) or None)
    res = evaluate_robustness(model, images[:32], labels[:32], ["fgsm", "pgd5"], 0.0, batch_size=16)
    assert not called and res["robust_accuracy"] == {"fgsm": res["clean_accuracy"], "pgd5": res["clean_accuracy"]}
    assert res["attacks"]["pgd5"]["steps"] == 5 and res["seconds"] == {"fgsm": 0.0, "pgd5": 0.0}
