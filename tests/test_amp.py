"""`--amp bf16` (issue 28 point 5): bf16 autocast on the forward passes, checked on the CPU's autocast
(the code path CUDA takes) against float32 within stated tolerances.

Tolerances (tiny networks at initialisation, 8x8 images, measured here): one search step's weight
loss and architecture CE within 5% (relative) of float32, the supernet's weight update with cosine
> 0.9 to float32's; the bound's constants, the distributions and their update exactly as in float32
maths (float32 tensors; a refresh inside an autocast region gives the same bits as outside); one
epoch of training within 5% on the loss; a bf16 evaluation's clean and robust accuracies within 0.1
(absolute, 40 images) of float32's.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from racl.amp import FP16_REFUSED, autocast, check_amp
from racl.data import load_data
from racl.errors import RaclError
from racl.search import apply_overrides, get_preset, load_search_config
from racl.search.loop import _batches, build_run, search_step
from racl.tally import Tally

LOSS_RTOL = 0.05
UPDATE_COSINE = 0.9
ACC_ATOL = 0.1


def test_choices_and_fp16_refused():
    assert check_amp("none") == "none" and check_amp("bf16") == "bf16"
    with pytest.raises(RaclError, match="fp16 is not supported"):
        check_amp("fp16")
    with pytest.raises(RaclError, match="amp must be one of"):
        check_amp("bf8")
    assert FP16_REFUSED.count("\n") == 0
    with autocast("bf16", "cpu"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("none", "cpu"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic", image_size=8, count=40, channels=3)


def _one_step(data, amp: str, **sets):
    cfg = apply_overrides(get_preset("tiny"), [f"optim.amp={amp}", "warmup_epochs=0", "robust.adv=fgsm_rs",
                                               "robust.gamma=0.1", "batch_size=8",
                                               *(f"{k}={v}" for k, v in sets.items())])
    run = build_run(cfg, data, Path(tempfile.mkdtemp()), torch.device("cpu"))
    run.supernet.train()
    run.strategy.start_arch_phase()
    before = [p.detach().clone() for p in run.supernet.parameters()]
    tally = Tally()
    search_step(run, tally, 0, 1, next(_batches(run, run.weight_half, "weight_data")),
                next(_batches(run, run.arch_half, "arch_data")))
    delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(run.supernet.parameters(), before)])
    return run, tally.read(), delta


@pytest.mark.parametrize("strategy", ["racl", "darts"])
def test_search_step_bf16_agrees_with_float32(data, strategy):
    run32, v32, d32 = _one_step(data, "none", strategy=strategy)
    run16, v16, d16 = _one_step(data, "bf16", strategy=strategy)
    for key in ("loss", "ce", "grad_norm", "arch_loss"):
        assert abs(v16[key] - v32[key]) <= LOSS_RTOL * abs(v32[key]), (key, v16[key], v32[key])
    assert torch.nn.functional.cosine_similarity(d16, d32, dim=0) > UPDATE_COSINE
    assert all(p.dtype == torch.float32 for p in run16.strategy.parameters())  # supernet, distributions
    bound = run16.strategy.bound
    assert all(b.dtype == torch.float32 for b in bound.buffers())
    if strategy == "racl":
        assert run16.strategy.constraint.nu.dtype == torch.float64
        mu, sigma = run16.strategy.lognormal(torch.Generator().manual_seed(0))
        assert mu.dtype == sigma.dtype == torch.float32
    # the refresh is float32 maths whatever autocast the caller is in
    run16.strategy.refresh_bound(measure=False)
    plain = bound.log_ops.clone()
    saved = {k: v.clone() for k, v in bound.state_dict().items()}
    with autocast("bf16", "cpu"):
        run16.strategy.refresh_bound(measure=False)
    in_autocast = bound.log_ops.clone()
    bound.load_state_dict(saved)
    run16.strategy.refresh_bound(measure=False)
    assert torch.equal(in_autocast, bound.log_ops) and plain.dtype == torch.float32


def test_amp_is_in_the_saved_config(data, tmp_path):
    from racl.search import run_search

    cfg = apply_overrides(get_preset("tiny"), ["optim.amp=bf16", "epochs=1", "batch_size=8"])
    run_search(cfg, data, tmp_path, draw=False, log=None)
    assert load_search_config(tmp_path / "config.yaml").optim.amp == "bf16"


def test_training_and_evaluation_bf16_agree_with_float32(tmp_path):
    from racl.evaluation import evaluate_checkpoint
    from _tiny import train_config
    from racl.training import train

    data = load_data("synthetic", image_size=8, count=48, num_classes=4)
    results = {}
    for amp in ("none", "bf16"):
        cfg = train_config(epochs=1, batch_size=8, channels=4, layers=3, adv="pgd", steps=2, val_images=0, amp=amp)
        results[amp] = train("RACL", data, cfg, tmp_path / amp, log=None)
    loss = {k: r["last"]["metrics"]["train_loss"] for k, r in results.items()}
    assert abs(loss["bf16"] - loss["none"]) <= LOSS_RTOL * loss["none"], loss
    assert results["bf16"]["config"]["optim"]["amp"] == "bf16"  # written to config.yaml, kept on resume
    checkpoint = results["none"]["last"]["path"]
    test = load_data("synthetic", image_size=8, count=400, num_classes=4, seed=1)  # 40 test images
    evals = {amp: evaluate_checkpoint(checkpoint, ["pgd5"], 8 / 255, tmp_path / f"eval-{amp}", batch_size=20,
                                      load=lambda _meta: test, amp=amp) for amp in ("none", "bf16")}
    assert evals["none"]["n_images"] == 40
    assert evals["bf16"]["amp"] == "bf16"
    for key in ("clean_accuracy",):
        assert abs(evals["bf16"][key] - evals["none"][key]) <= ACC_ATOL, (key, evals)
    robust = {k: e["robust_accuracy"]["pgd5"] for k, e in evals.items()}
    assert abs(robust["bf16"] - robust["none"]) <= ACC_ATOL, robust
