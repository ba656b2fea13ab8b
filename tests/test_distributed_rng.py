"""Several processes (2 gloo CPU processes): each draws its own random starts, all hold the same
parameters after every step, every process's RNG state is in the checkpoint and a resumed run ends
bit-identical to an uninterrupted one; gradient averaging is bucketed (one all_reduce per bucket).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_distributed import WORLD, _spawn

from racl import distributed
from racl.state import rank_seed, restore_rank_rng, seed_rank

SEARCH = ["robust.adv=pgd", "attack.steps=1", "epochs=2", "warmup_epochs=1"]  # PGD-1 random starts in the weight step


def _recording_starts(starts: list[torch.Tensor]) -> None:
    """PGD.random_init that also keeps every random start it draws (on this process)."""
    from racl.attacks.pgd import PGD

    original = PGD.random_init

    def random_init(self, images):
        out = original(self, images)
        starts.append((out - images).detach().clone())
        return out

    PGD.random_init = random_init


def _search(out: Path, **kw):
    from racl.search import apply_overrides, get_preset
    from test_distributed import _search_data

    from racl.search import loop

    built = []
    original = loop.build_run
    loop.build_run = lambda *a: built.append(original(*a)) or built[-1]
    try:
        loop.run_search(apply_overrides(get_preset("tiny"), SEARCH), _search_data(), out, draw=False, **kw)
    finally:
        loop.build_run = original
    return [t.detach().clone() for t in loop._synced_state(built[0])]


def _train(out: Path, **kw):
    from _tiny import train_config
    from racl.training import train
    from test_distributed import _train_data

    cfg = train_config(batch_size=4, epochs=2, channels=4, layers=3, steps=1, drop_path=0.2, val_images=8,
                       val_steps=1, lr=0.05, **{"attack.random_start": True, "validation.val_batch_size": 8})
    train("RACL", _train_data(), cfg, out, **kw)


def _worker(rank: int, tmp: Path) -> None:
    from racl.io import load_safetensors, save_safetensors
    from racl.state import load_state

    starts: list[torch.Tensor] = []
    _recording_starts(starts)
    out: dict[str, torch.Tensor] = {}
    full = _search(tmp / "search-full")
    out["search.first_start"] = starts[0]
    out["search.full_rng"] = torch.get_rng_state()
    _search(tmp / "search-cut", stop_after=1)
    cut = _search(tmp / "search-cut", resume=True)
    out["search.resumed_rng"] = torch.get_rng_state()
    out.update({f"search.full.{i}": t for i, t in enumerate(full)})
    out.update({f"search.resumed.{i}": t for i, t in enumerate(cut)})
    out["search.saved_rng_count"] = torch.tensor(len(load_state(tmp / "search-cut" / "checkpoint.safetensors")["rng"]))
    starts.clear()
    _train(tmp / "train-full")
    out["train.first_start"] = starts[0]
    out["train.full_rng"] = torch.get_rng_state()
    _train(tmp / "train-cut", max_epochs=1)
    _train(tmp / "train-cut", resume=True)
    out["train.resumed_rng"] = torch.get_rng_state()
    out["train.saved_rng_count"] = torch.tensor(len(load_state(tmp / "train-cut" / "state.safetensors")["rng"]))
    for run in ("train-full", "train-cut"):
        out.update({f"{run}.{k}": v for k, v in load_safetensors(tmp / run / "last.safetensors")[0].items()})
    save_safetensors(tmp / f"rank{rank}.safetensors", {k: v.contiguous() for k, v in out.items()})


@pytest.mark.slow
def test_ranks_draw_their_own_starts_stay_identical_and_resume_exactly(tmp_path):
    from racl.io import load_safetensors

    _spawn(_worker, tmp_path)
    r0, r1 = (load_safetensors(tmp_path / f"rank{r}.safetensors")[0] for r in range(WORLD))
    for what in ("search", "train"):
        # each process its own random starts (same shape, different draws) ...
        assert r0[f"{what}.first_start"].shape == r1[f"{what}.first_start"].shape
        assert not torch.equal(r0[f"{what}.first_start"], r1[f"{what}.first_start"]), what
        assert not torch.equal(r0[f"{what}.full_rng"], r1[f"{what}.full_rng"]), what
        # ... every process's stream in the checkpoint, and a resumed run continues each one exactly
        assert int(r0[f"{what}.saved_rng_count"]) == WORLD
        for r in (r0, r1):
            assert torch.equal(r[f"{what}.full_rng"], r[f"{what}.resumed_rng"]), what
    # the same parameters, buffers, distributions and duals on both processes, and resumed == uninterrupted
    keys = [k for k in r0 if k.startswith("search.full.")]
    assert len(keys) > 50
    for k in keys:
        resumed = k.replace(".full.", ".resumed.")
        assert torch.equal(r0[k], r1[k]) and torch.equal(r0[k], r0[resumed]) and torch.equal(r1[k], r1[resumed]), k
    weights = [k for k in r0 if k.startswith("train-full.")]
    assert weights
    for k in weights:
        assert torch.equal(r0[k], r1[k]) and torch.equal(r0[k], r0[k.replace("train-full.", "train-cut.")]), k
    metrics = [json.loads(line) for line in (tmp_path / "train-cut" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]


def _bucket_worker(rank: int, tmp: Path) -> None:
    import torch.distributed as dist

    calls: list[int] = []
    original = dist.all_reduce

    def counted(t, *a, **kw):
        calls.append(t.numel())
        return original(t, *a, **kw)

    dist.all_reduce = counted
    distributed.BUCKET_BYTES = 64 * 4  # 64 float32 per bucket: several buckets
    g = torch.Generator().manual_seed(rank)
    params = [torch.zeros(s, requires_grad=True) for s in ((3, 5), (40,), (100,), (2, 2, 3, 3), (7,))]
    for p in params[:-1]:
        p.grad = torch.randn(p.shape, generator=g)
    params[0].grad = params[0].grad.t().contiguous().t()  # a non-contiguous gradient
    params[3].grad = params[3].grad.to(memory_format=torch.channels_last)
    # the last parameter has no gradient on this process: it counts as zero
    mine = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    distributed.average_gradients(params)
    torch.save({"mine": mine, "avg": [p.grad for p in params], "calls": calls}, tmp / f"b{rank}.pt")


def test_gradient_averaging_is_bucketed(tmp_path):
    _spawn(_bucket_worker, tmp_path)
    b = [torch.load(tmp_path / f"b{r}.pt") for r in range(WORLD)]
    for k, avg in enumerate(b[0]["avg"]):
        expected = (b[0]["mine"][k] + b[1]["mine"][k]) / 2
        assert torch.equal(avg, b[1]["avg"][k]) and torch.allclose(avg, expected, rtol=0, atol=1e-7), k
    # buckets of <= 64 elements in order: [15, 40] = 55, [100] alone (larger than a bucket), [36, 7] = 43
    assert b[0]["calls"] == b[1]["calls"] == [55, 100, 43]


def test_buckets_and_rank_seeds():
    f32 = [torch.zeros(10), torch.zeros(20), torch.zeros(5, dtype=torch.float64), torch.zeros(30), torch.zeros(1)]
    got = distributed.buckets(f32, cap_bytes=30 * 4)
    assert [[t.numel() for t in b] for b in got] == [[10, 20], [5], [30], [1]]
    assert all(len({t.dtype for t in b}) == 1 for b in got)
    assert [[t.numel() for t in b] for b in distributed.buckets(f32)] == [[10, 20, 30, 1], [5]]
    # rank 0 keeps the run's seed (one process is unchanged); the others get distinct, fixed seeds
    seeds = [rank_seed(0, r) for r in range(8)]
    assert seeds[0] == 0 and len(set(seeds)) == 8 and seeds == [rank_seed(0, r) for r in range(8)]
    assert rank_seed(1, 1) != rank_seed(0, 1) and all(0 <= s < 2**32 for s in seeds)
    torch.manual_seed(3)
    before = torch.get_rng_state()
    seed_rank(3, 0)
    assert torch.equal(torch.get_rng_state(), before)  # rank 0: untouched
    seed_rank(3, 1)
    a = torch.rand(4)
    torch.manual_seed(rank_seed(3, 1))
    assert torch.equal(a, torch.rand(4))


def test_restore_rank_rng_takes_its_own_entry():
    from racl.state import get_rng_state

    states = []
    for s in (11, 12):
        torch.manual_seed(s)
        states.append(get_rng_state())
    draws = []
    for rank in (0, 1):
        assert restore_rank_rng(states, rank, 2, fresh_seed=0) is None
        draws.append(torch.rand(3))
    torch.manual_seed(12)
    assert torch.equal(draws[1], torch.rand(3)) and not torch.equal(draws[0], draws[1])
    note = restore_rank_rng(states, 2, 3, fresh_seed=5)  # a third process the checkpoint has no state for
    assert "2 process(es)" in note and "3" in note
    fresh = torch.rand(3)
    torch.manual_seed(rank_seed(5, 2))
    assert torch.equal(fresh, torch.rand(3))
    assert restore_rank_rng(states[0], 0, 1, fresh_seed=0) is None  # one process's dict
