"""Sync-free steps (issue 28 point 4): no host-device synchronisation inside a search or training step.

`SyncCounter` (a TorchDispatchMode) counts, during one step, the calls that synchronise with a CUDA
device: `.item()` / `float()` / `int()` / `bool()` of a tensor (aten._local_scalar_dense), nonzero,
masked_select, unique, repeat_interleave without an output size, boolean-mask indexing, `.tolist()`
and `.numpy()`, and tensors made from Python data (aten.lift_fresh: on CUDA they are copied to the
device, a blocking copy that set_sync_debug_mode reports). On this CPU-only machine every tensor is a
host tensor, so these are the proxy for the syncs; `torch.cuda.set_sync_debug_mode("error")` checks
the same steps on a GPU (the gpu-marked test, skipped without CUDA). Not counted: torch's optimisers'
`step()` (a non-capturable Adam keeps its step count on the host, read there) and, for the strategies
that sample on the host by design, their sampling: random search draws its path with a CPU generator
(`samples_on_host`), and GDAS reads its hard Gumbel sample to compute only the chosen op per edge (the
point of GDAS: 6 reads per sample, data-dependent control flow); the counts there are asserted too.
"""
from __future__ import annotations

import collections
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from racl.data import AugmentConfig, iterate_batches, load_data
from racl.search import apply_overrides, get_preset
from racl.search.loop import _batches, build_run, search_step
from racl.tally import Tally

aten = torch.ops.aten
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
            aten._unique.default, aten._unique2.default, aten.unique_dim.default, aten.unique_consecutive.default,
            aten.repeat_interleave.Tensor, aten.lift_fresh.default}
INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


class SyncCounter(TorchDispatchMode):
    """Counts the calls that synchronise on CUDA (see the module docstring), by name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()
        self.paused = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused:
            if func in SYNC_OPS:
                self.calls[str(func)] += 1
            elif func in INDEX_OPS and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                           for i in args[1] or ()):
                self.calls[f"{func} (boolean mask)"] += 1
        return func(*args, **(kwargs or {}))

    @contextmanager
    def pause(self):
        self.paused += 1
        try:
            yield
        finally:
            self.paused -= 1

    def __enter__(self):
        saved = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
        counter = self

        def counted(name):
            def call(t, *args, **kwargs):
                if not counter.paused:
                    counter.calls[name] += 1
                return saved[name](t, *args, **kwargs)
            return call

        for name in saved:
            setattr(torch.Tensor, name, counted(name))
        self._saved = saved
        self._hooks = [register_optimizer_step_pre_hook(lambda *a: setattr(self, "paused", self.paused + 1)),
                       register_optimizer_step_post_hook(lambda *a: setattr(self, "paused", self.paused - 1))]
        return super().__enter__()

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(torch.Tensor, name, fn)
        for h in self._hooks:
            h.remove()
        return super().__exit__(*exc)


def test_the_counter_sees_the_syncs():
    x = torch.arange(6.0)
    with SyncCounter() as c:
        x.sum().item()
        bool(x.max() > 1)
        x[x > 2]
        x.tolist()
        torch.tensor([1.0, 2.0])
        x.nonzero()
        x.unique()
        x * 2  # not a sync
    assert c.calls["aten._local_scalar_dense.default"] == 2 and c.calls["tolist"] == 1
    assert c.calls["aten.lift_fresh.default"] == 1 and c.calls["aten.nonzero.default"] == 1
    assert any("boolean mask" in k for k in c.calls) and any("unique" in k for k in c.calls)


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic", image_size=8, count=40, channels=3)


STRATEGIES = [("racl", ["robust.gamma=0.1"]), ("racl", ["space=nb201", "bound.bound_method=mc"]), ("darts", []),
              ("advrush", []), ("pcdarts", ["supernet.channels=8"]), ("random", []), ("gdas", [])]


@pytest.mark.parametrize("strategy,sets", STRATEGIES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(STRATEGIES)])
def test_search_steps_do_not_synchronise(strategy, sets, data):
    cfg = apply_overrides(get_preset("tiny"), [f"strategy={strategy}", "warmup_epochs=0", "robust.adv=fgsm_rs",
                                               "augment=true", "batch_size=4", *sets])
    run = build_run(cfg, data, Path(tempfile.mkdtemp()), torch.device("cpu"))
    run.supernet.train()
    run.strategy.start_arch_phase()
    tally = Tally()
    w_batches = _batches(run, run.weight_half, "weight_data")
    a_batches = _batches(run, run.arch_half, "arch_data") if run.strategy.has_arch_step else None
    counter, sampled = SyncCounter(), SyncCounter()
    host_sampler = run.strategy.samples_on_host or strategy == "gdas"
    if host_sampler:  # its sampling, counted apart
        name = "_sample" if strategy == "gdas" else "sample_weights"
        sample = getattr(run.strategy, name)

        def counted_sample(*args):
            with counter.pause():
                return sample(*args)
        setattr(run.strategy, name, counted_sample)
    search_step(run, tally, 0, 3, next(w_batches), next(a_batches) if a_batches else None)  # first: lazy set-up
    with counter:  # global steps 1 and 2 (bound.lipschitz_refresh_every = 2 in the tiny preset: one refresh)
        for step in (1, 2):
            search_step(run, tally, step, 3, next(w_batches), next(a_batches) if a_batches else None)
    assert dict(counter.calls) == {}, f"{strategy}: host-device syncs inside a step: {dict(counter.calls)}"
    assert run.global_step == 3 and tally.read()["steps"] == 3
    if strategy == "gdas":  # per cell type: the noise's and the probabilities' finiteness, the mask
        with sampled:
            run.strategy.sample_weights(run.generators["sample"])
        assert sum(sampled.calls.values()) == 3 * len(run.strategy.topology.cell_types), dict(sampled.calls)


def test_training_step_does_not_synchronise(tmp_path, monkeypatch):
    from _tiny import train_config
    from racl.training import train
    from racl.training.trainer import TrainLoop

    data = load_data("synthetic", image_size=8, count=24, num_classes=4)
    cfg = train_config(epochs=1, batch_size=4, channels=4, layers=3, adv="pgd", steps=2, val_images=0, grad_clip=5.0)
    counter, real_step, calls = SyncCounter(), TrainLoop.train_step, []

    def step(self, x, y, epoch, i, tally):
        calls.append(i)
        if i == 0:  # the first step makes the folded copy and the optimiser's state
            return real_step(self, x, y, epoch, i, tally)
        with counter:
            return real_step(self, x, y, epoch, i, tally)

    monkeypatch.setattr(TrainLoop, "train_step", step)
    train("RACL", data, cfg, tmp_path, log=None)
    assert len(calls) >= 3
    assert dict(counter.calls) == {}, f"host-device syncs inside a training step: {dict(counter.calls)}"
    # the batches: order and augmentation drawn where the data is
    gen = torch.Generator().manual_seed(0)
    batches = iterate_batches(data.train, 4, shuffle=True, generator=gen, augment=AugmentConfig(cutout=2),
                              drop_last=True)
    next(batches)
    with SyncCounter() as c:
        next(batches)
    assert dict(c.calls) == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_steps_on_cuda_do_not_synchronise(tmp_path, monkeypatch):
    """The same steps on a GPU under torch.cuda.set_sync_debug_mode("error") (a sync raises)."""
    from _tiny import train_config
    from racl.training import train
    from racl.training.trainer import TrainLoop

    @contextmanager
    def sync_errors():
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")

    data = load_data("synthetic", image_size=8, count=40, channels=3)
    for strategy, sets in STRATEGIES:
        if strategy == "gdas":
            continue  # synchronises in its sampling by design (module docstring)
        cfg = apply_overrides(get_preset("tiny"), [f"strategy={strategy}", "warmup_epochs=0", "robust.adv=fgsm_rs",
                                                   "augment=true", "batch_size=4", *sets])
        run = build_run(cfg, data, tmp_path / f"{strategy}-{len(sets)}", torch.device("cuda"))
        run.supernet.train()
        run.strategy.start_arch_phase()
        tally = Tally()
        w = _batches(run, run.weight_half, "weight_data")
        a = _batches(run, run.arch_half, "arch_data") if run.strategy.has_arch_step else None
        search_step(run, tally, 0, 3, next(w), next(a) if a else None)
        with sync_errors():
            for step in (1, 2):
                search_step(run, tally, step, 3, next(w), next(a) if a else None)
        tally.read()

    real_step = TrainLoop.train_step

    def step(self, x, y, epoch, i, tally):
        if i == 0:
            return real_step(self, x, y, epoch, i, tally)
        with sync_errors():
            return real_step(self, x, y, epoch, i, tally)

    monkeypatch.setattr(TrainLoop, "train_step", step)
    cfg = train_config(epochs=1, batch_size=4, channels=4, layers=3, adv="pgd", steps=2, val_images=0)
    train("RACL", load_data("synthetic", image_size=8, count=24, num_classes=4), cfg, tmp_path / "train",
          device="cuda", log=None)
