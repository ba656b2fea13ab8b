"""Crash safety, no pickle, numerical guards (issue 6, items 1, 2 and 4).

- `racl search` and `racl train` run as real processes, are killed with SIGKILL at seeded random
  moments (KILLS per command) and resumed with `--resume` until done; genotype, weights, every piece
  of resumable state and metrics (less wall-clock seconds) must equal an uninterrupted run's, bit for bit.
- A process killed while it rewrites a file leaves the previous complete file (atomic writes).
- A pickle whose unpickling would create a marker file, placed wherever racl expects a checkpoint,
  is refused with one line and never executed; no source file calls torch.load or pickle.
- A non-finite value stops a run before it reaches a checkpoint; the distributions' factors and
  log-weights stay finite for any parameter values.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from racl.cli import main
from racl.errors import RaclError
from racl.io import load_safetensors, remove_temp_files, save_safetensors
from racl.state import load_state, read_entry

ROOT = Path(__file__).parents[1]
KILLS = 3  # kill/resume cycles per command
SEARCH = ["search", "--preset", "tiny", "--strategy", "racl", "--dataset", "synthetic", "--image-size", "16",
          "--limit", "4", "--epochs", "5", "--seed", "1", "--no-draw", "--set", "augment=true",
          "--set", "bound.bound_method=mc"]
TRAIN = ["train", "--genotype", "DARTS_V2", "--dataset", "synthetic", "--image-size", "16", "--limit", "6",
         "--channels", "4", "--layers", "3", "--epochs", "5", "--batch-size", "8", "--adv", "pgd", "--steps", "2",
         "--val-images", "8", "--val-steps", "2", "--drop-path", "0.2", "--seed", "1"]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "RACL_CACHE": str(tmp / "cache"), "PYTHONPATH": str(ROOT / "src")}


def _racl(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "racl", *args]


def _finish(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(_racl(args), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _epochs_on_disk(out: Path) -> int:
    metrics = out / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def _saved_epoch(out: Path) -> int:
    """Epochs the resumable state holds (what --resume continues after): 0 before the first save."""
    for name, key in (("checkpoint.safetensors", "epoch"), ("state.safetensors", "counters")):
        if (out / name).is_file():
            value = read_entry(out / name, key)
            return int(value["epoch"] if isinstance(value, dict) else value)
    return 0


def _first_epoch(stdout: str) -> int | None:
    """The first epoch a run's log reports (search and train lines start `epoch N/`)."""
    match = re.search(r"^epoch\s+(\d+)/", stdout, re.M)
    return int(match.group(1)) if match else None


def _kill_points(seed: int, epochs: int, epoch_seconds: float) -> list[tuple[int, float]]:
    """Seeded kill moments: (epochs on disk to wait for, then seconds more); epoch 0 = during start-up.
    At least one waits for a finished epoch, so that a kill lands mid-run."""
    rng = random.Random(seed)
    at = [rng.randrange(epochs) for _ in range(KILLS - 1)] + [1 + rng.randrange(epochs - 2)]  # the last: 1..E-2
    at.sort()
    return [(e, rng.uniform(0.0, 1.2) * epoch_seconds) for e in at]


def _kill_and_resume(args: list[str], out: Path, points: list[tuple[int, float]],
                     env: dict[str, str]) -> list[tuple[int, int | None]]:
    """Start the run, SIGKILL it at each kill point (restarting with --resume), then --resume it to the end.
    Returns, for each kill that landed (a run that finished first is not killed), the epochs its saved
    state held and the first epoch the next process reported (None if it reported none before it was
    killed in turn)."""
    landed, logs = [], []
    for k, (epoch, extra) in enumerate(points):
        log = out.parent / f"{out.name}.{k}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(_racl([*args, "--out", str(out), *(["--resume"] if k else [])]), env=env,
                                    stdout=f, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 300
            while proc.poll() is None and _epochs_on_disk(out) < epoch and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(extra)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                landed.append(k)
            else:
                assert proc.returncode == 0
        logs.append((k, _saved_epoch(out), log))
    final = _finish([*args, "--out", str(out), "--resume"], env)
    starts = [_first_epoch(log.read_text()) for _, _, log in logs[1:]] + [_first_epoch(final)]
    return [(saved, starts[k]) for k, saved, _ in logs if k in landed]


def _check_resumes(kills: list[tuple[int, int | None]]) -> None:
    """A kill landed after a finished epoch, and every run after a kill started at the epoch after the
    last one saved (a --resume that silently started again from epoch 1 fails here)."""
    assert any(saved >= 1 for saved, _ in kills), f"no kill landed mid-run: {kills}"
    assert all(start is None or start == saved + 1 for saved, start in kills), kills
    assert any(saved >= 1 and start == saved + 1 for saved, start in kills), kills


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive equality; tensors and arrays bit-identical; wall-clock `seconds` ignored."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            if k != "seconds":
                assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _reference(args: list[str], out: Path, capsys) -> float:
    """The uninterrupted run, in this process (the killed ones run in their own): mean seconds per epoch."""
    assert main([*args, "--out", str(out)]) == 0
    capsys.readouterr()
    records = _jsonl(out / "metrics.jsonl")
    return sum(r["seconds"] for r in records) / len(records)


@pytest.mark.slow
def test_search_killed_and_resumed_equals_uninterrupted(tmp_path, capsys):
    epoch_seconds = _reference(SEARCH, tmp_path / "ref", capsys)
    landed = _kill_and_resume(SEARCH, tmp_path / "run", _kill_points(0, 5, epoch_seconds), _env(tmp_path))
    with capsys.disabled():
        print(f"\nsearch: {epoch_seconds:.1f} s per epoch, kills (saved epochs, next start) {landed}")
    _check_resumes(landed)
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert (ref / "genotype.json").read_text() == (run / "genotype.json").read_text()
    assert (ref / "config.yaml").read_text() == (run / "config.yaml").read_text()
    assert_same(_jsonl(ref / "metrics.jsonl"), _jsonl(run / "metrics.jsonl"), "metrics")
    # weights, distribution parameters, dual variables, power-iteration vectors, optimiser, RNGs, generators
    assert_same(load_state(ref / "checkpoint.safetensors"), load_state(run / "checkpoint.safetensors"), "state")
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert landed, "every run finished before its kill"


@pytest.mark.slow
def test_train_killed_and_resumed_equals_uninterrupted(tmp_path, capsys):
    epoch_seconds = _reference(TRAIN, tmp_path / "ref", capsys)
    landed = _kill_and_resume(TRAIN, tmp_path / "run", _kill_points(1, 5, epoch_seconds), _env(tmp_path))
    with capsys.disabled():
        print(f"\ntrain: {epoch_seconds:.1f} s per epoch, kills (saved epochs, next start) {landed}")
    _check_resumes(landed)
    ref, run = tmp_path / "ref", tmp_path / "run"
    for name in ("last", "best"):
        assert_same(load_safetensors(ref / f"{name}.safetensors"), load_safetensors(run / f"{name}.safetensors"), name)
        assert_same(json.loads((ref / f"{name}.json").read_text()), json.loads((run / f"{name}.json").read_text()),
                    f"{name}.json")
    assert_same(_jsonl(ref / "metrics.jsonl"), _jsonl(run / "metrics.jsonl"), "metrics")
    # weights, optimiser (momentum buffers), RNG states, data-order generator, counters
    assert_same(load_state(ref / "state.safetensors"), load_state(run / "state.safetensors"), "state")
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert landed, "every run finished before its kill"


def _writer(path: str, ready: Any) -> None:
    """Rewrite one file forever, each version filled with its own number."""
    i = 0
    ready.set()
    while True:
        i += 1
        save_safetensors(path, {"x": torch.full((1 << 18,), float(i))}, {"i": i})


def test_kill_mid_write_leaves_a_complete_file(tmp_path):
    """A process rewriting one file in a loop is killed at seeded moments: the file always loads whole."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # no second interpreter start-up: cycles take ~0.5 s
    target = tmp_path / "checkpoint.safetensors"
    rng = random.Random(0)
    versions = []
    for _ in range(KILLS):
        ready = ctx.Event()
        proc = ctx.Process(target=_writer, args=(str(target), ready))
        proc.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.2, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        tensors, meta = load_safetensors(target)  # never half a file
        assert torch.equal(tensors["x"], torch.full((1 << 18,), float(meta["i"])))
        versions.append(meta["i"])
    assert max(versions) > 1  # the kills did land among rewrites
    remove_temp_files(tmp_path, ["checkpoint.safetensors"])
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]


def test_resume_after_a_kill_before_the_first_epoch_starts_afresh(tmp_path, capsys):
    """Killed before any epoch finished (config.yaml and a stale temporary file, no state): the original
    command with --resume runs from the start, as an uninterrupted run would."""
    args = ["train", "--genotype", "RACL", "--dataset", "synthetic", "--image-size", "16", "--limit", "4",
            "--channels", "4", "--layers", "3", "--epochs", "1", "--batch-size", "8", "--adv", "none",
            "--val-images", "0"]
    out = tmp_path / "run"
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    out.mkdir()
    (out / "config.yaml").write_text((tmp_path / "ref" / "config.yaml").read_text())
    (out / ".state.safetensors.abcd1234.tmp").write_bytes(b"half a file")
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert_same(load_state(tmp_path / "ref" / "state.safetensors"), load_state(out / "state.safetensors"))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    (out / "state.safetensors").unlink()
    assert main([*args, "--out", str(out), "--resume", "--lr", "0.5"]) == 2  # other settings: refused
    assert "config differs" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume"]) == 2  # bare --resume: nothing to resume, says what to do
    assert "run the original command" in capsys.readouterr().err


# ---------------------------------------------------------------- no pickle
class _Payload:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": _Payload(marker)}, path)  # what a booby-trapped torch checkpoint looks like
    return path


def test_the_payload_is_live(tmp_path):
    """Sanity check of the test itself: torch.load without weights_only runs the payload."""
    marker = tmp_path / "proof"
    torch.load(_malicious(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.fixture()
def evil(tmp_path):
    marker = tmp_path / "PWNED"
    payload = _malicious(tmp_path / "payload.pt", marker).read_bytes()
    return marker, payload


def _refused(argv: list[str], capsys, pattern: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("racl: error: ") and re.search(pattern, err), err


def test_pickle_as_checkpoint_for_evaluate_is_refused(tmp_path, evil, capsys):
    marker, payload = evil
    ckpt = tmp_path / "best.safetensors"
    ckpt.write_bytes(payload)
    ckpt.with_suffix(".json").write_text(json.dumps({"format": "racl-model-v1", "model": "RACL",
                                                     "model_args": {"num_classes": 10, "channels": 4, "layers": 3}}))
    _refused(["evaluate", "--checkpoint", str(ckpt), "--attacks", "fgsm", "--out", str(tmp_path / "e")], capsys,
             r"not a readable safetensors checkpoint")
    pt = tmp_path / "model.pt"
    pt.write_bytes(payload)
    _refused(["evaluate", "--checkpoint", str(pt), "--attacks", "fgsm", "--out", str(tmp_path / "e")], capsys,
             r"never unpickles")
    assert not marker.exists() and not (tmp_path / "e").exists()


def test_pickle_as_resume_state_is_refused(tmp_path, evil, capsys):
    marker, payload = evil
    train_dir, search_dir = tmp_path / "train", tmp_path / "search"
    for d, name in ((train_dir, "state.safetensors"), (search_dir, "checkpoint.safetensors")):
        d.mkdir()
        (d / name).write_bytes(payload)
    _refused(["train", "--out", str(train_dir), "--resume"], capsys, r"state.safetensors is not a readable safetensors")
    _refused(["search", "--preset", "tiny", "--dataset", "synthetic", "--image-size", "16", "--limit", "4",
              "--out", str(search_dir), "--resume"], capsys, r"checkpoint.safetensors is not a readable safetensors")
    for loader in (load_state, load_safetensors):
        with pytest.raises(RaclError):
            loader(search_dir / "checkpoint.safetensors")
    assert not marker.exists()
    assert [p.name for p in search_dir.iterdir()] == ["checkpoint.safetensors"]  # nothing else written


def test_pickle_in_the_data_cache_is_ignored(tmp_path, evil, monkeypatch):
    from racl.data import cache

    marker, payload = evil
    monkeypatch.setenv("RACL_CACHE", str(tmp_path / "cache"))
    cache.cache_dir().mkdir(parents=True)
    (cache.cache_dir() / "k.safetensors").write_bytes(payload)
    assert cache.load("k") is None and not marker.exists()


def test_no_pickle_or_torch_load_in_racl_sources():
    pattern = re.compile(r"torch\.load\(|\bimport pickle\b|\bpickle\.loads?\(|\bimport dill\b|\bjoblib\.load\(")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "src" / "racl").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


# ---------------------------------------------------------------- numerical guards
def test_search_stops_before_a_non_finite_checkpoint(tmp_path, monkeypatch):
    """Statistics that turn infinite while every loss stays finite never reach the checkpoint."""
    from racl.data import load_data
    from racl.search import apply_overrides, get_preset, run_search
    from racl.search import loop

    data = load_data("synthetic", image_size=16, count=40, channels=3)
    cfg = apply_overrides(get_preset("tiny"), ["strategy=darts", "warmup_epochs=0"])
    run_search(cfg, data, tmp_path, stop_after=1, draw=False, log=None)
    before = load_state(tmp_path / "checkpoint.safetensors")
    real = loop.weight_step

    def poisoned(supernet, *args, **kwargs):  # BN statistics: train-mode steps never read them, no loss sees it
        result = real(supernet, *args, **kwargs)
        bn = next(m for m in supernet.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats)
        bn.running_var.fill_(float("inf"))
        return result

    monkeypatch.setattr(loop, "weight_step", poisoned)
    with pytest.raises(RaclError, match=r"non-finite values in supernet\.\S+ at the end of epoch 2; .*"
                                        r"last good checkpoint .* is intact"):
        run_search(cfg, data, tmp_path, resume=True, draw=False, log=None)
    assert_same(before, load_state(tmp_path / "checkpoint.safetensors"))


def test_training_stops_before_a_non_finite_checkpoint(tmp_path, monkeypatch):
    from racl.data import load_data
    from racl.training import train

    from _tiny import train_config

    data = load_data("synthetic", image_size=16, count=40, num_classes=4)
    cfg = train_config(epochs=2, batch_size=8, channels=4, layers=3, adv="none", val_images=0)
    train("RACL", data, cfg, tmp_path, log=None, max_epochs=1)
    before, _ = load_safetensors(tmp_path / "last.safetensors")
    real = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        self.param_groups[0]["params"][-1].data.fill_(float("nan"))  # the loss of this step was finite
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    with pytest.raises(RaclError, match=r"(non-finite values in model\.\S+ at the end of epoch 2|training diverged)"):
        train("RACL", data, cfg, tmp_path, log=None, resume=True)
    after, meta = load_safetensors(tmp_path / "last.safetensors")
    assert_same(before, after)
    assert load_state(tmp_path / "state.safetensors")["counters"]["epoch"] == 1


def test_distribution_factors_and_log_weights_stay_finite():
    """Any parameter values (a diverged optimiser, a hand-edited checkpoint): finite factors, samples, weights."""
    from racl.distributions.arch import LOG_RANGE, SIGMA_RANGE, ArchDistribution
    from racl.search_space import CellTopology, PRIMITIVES

    dist = ArchDistribution(CellTopology(("normal", "reduce"), PRIMITIVES, 2, 2, 2), cov="full")  # 5 edges
    with torch.no_grad():
        for i, p in enumerate(dist.parameters()):
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * 1e30)
    mean, factor = dist.mean_and_factor()
    assert torch.isfinite(mean).all() and torch.isfinite(factor).all()
    assert factor.abs().max() <= SIGMA_RANGE[1]
    logs = dist.sample_log(64, generator=torch.Generator().manual_seed(0))
    for field in (t for w in logs.values() for t in (w.alpha, w.beta)):
        assert torch.isfinite(field).all() and field.abs().max() <= max(map(abs, LOG_RANGE))
        assert torch.isfinite(field.exp()).all()  # exp(30) fits float32 with room to spare
    loss = sum(t.exp().sum() for w in dist.sample_log(4, generator=torch.Generator().manual_seed(1)).values()
               for t in (w.alpha, w.beta))
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in dist.parameters())
