"""Data-parallel runs (racl.distributed) with 2 CPU processes over gloo, started by torch.multiprocessing.

1. a tiny RACL search leaves bit-identical weights, BN buffers, distribution parameters, duals and
   power-iteration vectors on both ranks, and the same genotype;
2. 2-process DDP training with batch b per rank equals 1-process training with batch 2b up to float
   rounding (same data, augmentation, PGD examples, averaged gradients), for the network with its
   BatchNorms replaced by GroupNorm; with BatchNorm the processes normalise over b images instead of
   2b, which is a different function (see TRAIN_TOLERANCE); a BatchNorm run is checked for outputs;
3. sharded evaluation (FGSM, PGD with random starts, APGD-CE) equals unsharded evaluation exactly.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from racl import distributed

WORLD = 2
# max |w_2proc - w_1proc| / max |w_1proc - w_init| over all weights after one epoch (5 SGD steps of
# PGD-2 training) of a tiny DARTS net with GroupNorm: measured 9.2e-7 (float rounding). For scale: one
# process at batch b instead of 2b gives 2.7 (L2), and the same comparison with the BatchNorm network
# gives 1.4 (per-process batch statistics; the gradients at init differ by 143% in L2).
TRAIN_TOLERANCE = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, tmp: Path, *args) -> None:
    mp.spawn(_worker, args=(fn, _free_port(), str(tmp), args), nprocs=WORLD, join=True)


def _worker(rank: int, fn, port: int, tmp: str, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    distributed.init_distributed("cpu")
    try:
        fn(rank, Path(tmp), *args)
    finally:
        distributed.destroy()


# ------------------------------------------------------------------ 1. search
def _search_data():
    from racl.data import load_data

    return load_data("synthetic", image_size=16, count=40, channels=3)


def _search_config(strategy: str = "racl"):
    from racl.search import apply_overrides, get_preset

    return apply_overrides(get_preset("tiny"), ["augment=true", f"strategy={strategy}"])


def _recording_batches(loop, seen: dict[str, list[torch.Tensor]]):
    """loop._batches that also keeps every batch (images and labels) each half's steps consumed."""
    original = loop._batches

    def batches(run, ds, name):
        for x, y in original(run, ds, name):
            seen.setdefault(name, []).append(torch.cat([x.flatten(1), y[:, None].float()], 1))
            yield x, y

    return batches


def _search_worker(rank: int, tmp: Path, strategy: str) -> None:
    from racl.io import save_safetensors
    from racl.search import loop

    built, seen = [], {}
    original = loop.build_run
    loop.build_run = lambda *a: built.append(original(*a)) or built[-1]
    loop._batches = _recording_batches(loop, seen)
    lines: list[str] = []
    result = loop.run_search(_search_config(strategy), _search_data(), tmp / "run", draw=False, log=lines.append)
    state = loop._synced_state(built[0])
    save_safetensors(tmp / f"state{rank}.safetensors", {str(i): t.contiguous() for i, t in enumerate(state)})
    save_safetensors(tmp / f"batches{rank}.safetensors", {f"{k}.{i}": b for k, v in seen.items() for i, b in enumerate(v)})
    (tmp / f"genotype{rank}.json").write_text(result.genotype.to_json())
    (tmp / f"log{rank}.txt").write_text("\n".join(lines))


def _one_process_batches(tmp: Path, batch_size: int, strategy: str = "racl") -> dict[str, torch.Tensor]:
    """The batches a one-process search at `batch_size` consumes (the global batch of two ranks)."""
    from racl.search import apply_overrides, loop

    seen: dict[str, list[torch.Tensor]] = {}
    original = loop._batches
    loop._batches = _recording_batches(loop, seen)
    try:
        config = apply_overrides(_search_config(strategy), [f"batch_size={batch_size}"])
        loop.run_search(config, _search_data(), tmp / "single", draw=False, log=None)
    finally:
        loop._batches = original
    return {f"{k}.{i}": b for k, v in seen.items() for i, b in enumerate(v)}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["racl", "advrush", "gdas"])  # the rivals: Gumbel draws, double backprop
def test_search_ranks_stay_identical(strategy, tmp_path):
    from racl.io import load_safetensors

    _spawn(_search_worker, tmp_path, strategy)
    # each rank's steps consumed its own half of every global batch, and together exactly the batches
    # of one process at twice the batch size (not each rank everything, nor both the same half)
    shares = [load_safetensors(tmp_path / f"batches{r}.safetensors")[0] for r in range(WORLD)]
    single = _one_process_batches(tmp_path, 2 * _search_config(strategy).batch_size, strategy)
    assert shares[0].keys() == shares[1].keys() == single.keys() and any(k.startswith("arch_data") for k in single)
    for key, whole in single.items():
        assert torch.equal(whole[0::2], shares[0][key]) and torch.equal(whole[1::2], shares[1][key]), key
        assert not torch.equal(shares[0][key], shares[1][key]), key
    states = [load_safetensors(tmp_path / f"state{r}.safetensors")[0] for r in range(WORLD)]
    assert states[0].keys() == states[1].keys() and len(states[0]) > 50
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert (tmp_path / "genotype0.json").read_text() == (tmp_path / "genotype1.json").read_text()
    log0 = (tmp_path / "log0.txt").read_text()
    assert "epoch 2/2" in log0 and "drifted" not in log0  # identical without the epoch-end repair
    assert (tmp_path / "log1.txt").read_text() == ""  # rank 1 stays quiet
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["arch_acc"] is not None


# ------------------------------------------------------------------ 2. training
TRAIN = {"epochs": 1, "channels": 4, "layers": 3, "steps": 2, "attack.random_start": False, "drop_path": 0.0,
         "val_images": 8, "val_steps": 1, "validation.val_batch_size": 8, "lr": 0.05, "grad_clip": 0.0}


def _train_data():
    from racl.data import load_data

    return load_data("synthetic", image_size=8, count=48, num_classes=4, noise=0.25)  # 32 train images


def _group_norm(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d replaced by GroupNorm(1, C): the same network without batch statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(1, child.num_features, affine=child.affine))
        else:
            _group_norm(child)
    return module


def _train(out: Path, batch_size: int, log=None, batch_norm: bool = False) -> dict:
    from racl.training import train, trainer

    from _tiny import train_config

    build = trainer.build_from_spec
    if not batch_norm:
        trainer.build_from_spec = lambda spec: _group_norm(build(spec))
    try:
        return train("RACL", _train_data(), train_config(batch_size=batch_size, **TRAIN), out, log=log)
    finally:
        trainer.build_from_spec = build


def _train_worker(rank: int, tmp: Path) -> None:
    lines: list[str] = []
    _train(tmp / "ddp", 4, lines.append)
    _train(tmp / "bn", 4, batch_norm=True)
    (tmp / f"log{rank}.txt").write_text("\n".join(lines))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from racl.io import load_safetensors

    return {k: v.double() for k, v in load_safetensors(path)[0].items() if torch.is_floating_point(v)}


def _init_weights() -> dict[str, torch.Tensor]:
    from racl.checkpoint import build_from_spec
    from racl.state import seed_everything
    from _tiny import train_config
    from racl.training.modelspec import make_model_spec

    cfg = train_config(batch_size=8, **TRAIN).resolved()
    seed_everything(cfg.seed)
    model = _group_norm(build_from_spec(make_model_spec("RACL", cfg, _train_data())))
    return {k: v.double() for k, v in model.state_dict().items() if torch.is_floating_point(v)}


def _gap(a: dict, b: dict, init: dict) -> float:
    """max |a - b| relative to how far b moved from the initial weights (parameters only)."""
    keys = [k for k in init if "running" not in k]
    moved = max(float((b[k] - init[k]).abs().max()) for k in keys)
    return max(float((a[k] - b[k]).abs().max()) for k in keys) / moved


@pytest.mark.slow
def test_training_two_processes_match_double_batch(tmp_path):
    _spawn(_train_worker, tmp_path)
    _train(tmp_path / "single", 8)
    ddp, single = _weights(tmp_path / "ddp" / "last.safetensors"), _weights(tmp_path / "single" / "last.safetensors")
    init = _init_weights()
    gap = _gap(ddp, single, init)
    assert gap < TRAIN_TOLERANCE, f"2 x batch 4 vs 1 x batch 8: relative gap {gap:.3f}"
    for run in ("ddp", "bn"):
        metrics = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert len(metrics) == 1 and metrics[0]["val_robust_acc"] is not None
        assert (tmp_path / run / "best.safetensors").exists() and (tmp_path / run / "state.safetensors").exists()
    assert "epoch   1/1" in (tmp_path / "log0.txt").read_text() and (tmp_path / "log1.txt").read_text() == ""


# ------------------------------------------------------------------ 3. evaluation
ATTACKS = ["fgsm", "pgd5"]
EVAL_KW = {"apgd": {"n_iter": 3}}


def _eval_setup():
    from _tiny import make_data, tiny_cnn

    images, labels = make_data(270, size=8, seed=3)
    torch.manual_seed(0)
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for i in range(0, 200 * 3, 50):  # 12 steps on 200 images: clean 0.34, PGD 0.30, APGD 0.27 on the 70 held out
        loss = torch.nn.functional.cross_entropy(model(images[i % 200:i % 200 + 50]), labels[i % 200:i % 200 + 50])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), images[200:], labels[200:]


def _eval(attacks: list[str]) -> dict:
    from racl.evaluation.evaluate import evaluate_robustness

    model, images, labels = _eval_setup()
    res = evaluate_robustness(model, images, labels, attacks, 2 / 255, batch_size=16, seed=5, attack_kw=EVAL_KW)
    return {k: v for k, v in res.items() if k != "seconds"}


def _counting_attacks(calls: list) -> None:
    """Record (seed, batch size) of every batch an attack runs on (racl.evaluation.evaluate)."""
    import racl.evaluation.evaluate as ev

    original = ev._attacked_correct

    def counted(attack, model, images, labels, device, seed):
        calls.append([seed, int(images.shape[0])])
        return original(attack, model, images, labels, device, seed)

    ev._attacked_correct = counted


def _eval_worker(rank: int, tmp: Path, attacks: list[str]) -> None:
    calls: list = []
    _counting_attacks(calls)
    (tmp / f"eval{rank}.json").write_text(json.dumps(_eval(attacks)))
    (tmp / f"batches{rank}.json").write_text(json.dumps(calls))


def _has_autoattack() -> bool:
    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        return False
    return True


def test_sharded_evaluation_equals_unsharded(tmp_path):
    attacks = ATTACKS + (["apgd"] if _has_autoattack() else [])
    _spawn(_eval_worker, tmp_path, attacks)  # 70 images in 5 batches: rank 0 takes 3, rank 1 takes 2
    sharded = [json.loads((tmp_path / f"eval{r}.json").read_text()) for r in range(WORLD)]
    single = json.loads(json.dumps(_eval(attacks)))
    assert sharded[0] == sharded[1] == single
    assert single["n_images"] == 70 and 0 < single["robust_accuracy"]["pgd5"] < single["clean_accuracy"]
    # the work was shared, not repeated: each rank attacked only its own batches, once per attack
    from racl.evaluation.evaluate import batch_seed

    calls = [json.loads((tmp_path / f"batches{r}.json").read_text()) for r in range(WORLD)]
    sizes = [16, 16, 16, 16, 6]
    for rank, ids in ((0, [0, 2, 4]), (1, [1, 3])):
        assert calls[rank] == [[batch_seed(5, k), sizes[k]] for _ in attacks for k in ids], rank


def test_single_process_helpers_are_identities():
    from racl.data import AugmentConfig, iterate_batches, load_data
    from racl.evaluation.evaluate import batch_seed

    assert distributed.world_size() == 1 and distributed.is_main() and not distributed.is_distributed()
    rt = distributed.Runtime.current()
    assert (rt.rank, rt.world, rt.is_main) == (0, 1, True) and rt == distributed.Runtime()
    assert rt.sum([1, 2.5]) == [1.0, 2.5] == distributed.all_reduce_sum([1, 2.5])
    assert rt.eval_shard(10, 4).tolist() == list(range(10)) and list(rt.eval_batches(3)) == [0, 1, 2]
    assert batch_seed(7, 0) == 7 and rt.on_main(lambda: 5) == 5 and rt.global_batch(4) == 4
    lines = []
    distributed.Runtime(logger=lines.append).log("a")
    distributed.Runtime(rank=1, world=2, logger=lines.append).log("b")  # only rank 0 logs
    assert lines == ["a"]
    ds = load_data("synthetic", image_size=8, count=24, num_classes=4).train
    a = list(rt.batches(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True))
    b = list(iterate_batches(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True))
    # two processes' shares (simulated) of each global batch are the one-process batch at twice the size
    aug = AugmentConfig(crop_padding=2)
    whole = list(iterate_batches(ds, 8, shuffle=True, generator=torch.Generator().manual_seed(0), augment=aug,
                                 drop_last=True))
    parts = [list(iterate_batches(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(0), augment=aug,
                                  drop_last=True, shard=(r, 2))) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts, strict=True):
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1) and torch.equal(y[0::2], y0)


def test_distributed_flag_needs_torchrun(monkeypatch):
    from racl.errors import RaclError

    for var in distributed.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RaclError, match="torchrun"):
        distributed.init_distributed("cpu", force=True)
    with pytest.raises(RaclError, match="CUDA"):
        distributed.wrap_ddp(torch.nn.Linear(2, 2), "cpu", sync_bn=True)
