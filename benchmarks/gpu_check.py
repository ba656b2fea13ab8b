"""`make gpu-check`: is this CUDA machine ready for racl, and how fast is the real thing on it?

    .venv/bin/python benchmarks/gpu_check.py              # the whole check, one CUDA GPU, under 8 minutes
    .venv/bin/python benchmarks/gpu_check.py --plan       # the stages and their time boxes, runs nothing
    .venv/bin/python benchmarks/gpu_check.py --only tests,slice-train --budget 200

Every stage runs in its own process group, killed at its time box; the boxes add up to the budget
(450 s of stages, DEFAULT_BUDGET_S; with start-up and the summary the command stays under 8 minutes),
so the whole check cannot overrun. Results: OUT/gpu-check.json, OUT/summary.md, OUT/logs/STAGE.log
(OUT = runs/gpu-check). Settings as real runs use them: the layout racl.models.layers.place picks
(float32 NCHW on CUDA, channels-last under bf16), cudnn.benchmark on, TF32 left at torch's defaults.

  tests                     the `gpu`-marked tests (tests/test_gpu.py)
  slice-search              timed warm-up steps (weight step) and search steps (weight + distribution
                            step) of the paper's search (8 cells, C = 16, batch 128, 32x32, the racl
                            strategy's default gamma = 0.1), extrapolated to the full search; plus the
                            torch operations and convolutions of one search step at that gamma and at 0
  slice-search-bf16         the same under bf16 autocast (channels-last, as place() decides)
  slice-search-channels-last  the same in float32 with channels-last forced
  slice-train(-bf16, -channels-last)  PGD-7 adversarial training steps of the 20-cell C = 36 network
                            (the trainer's objective, batch 128), extrapolated to 100 epochs
  two-ranks                 `torchrun --nproc-per-node 2` on the one GPU (gloo: nccl refuses two ranks
                            per device): a tiny racl search with PGD starts; the ranks must end
                            bit-identical and draw different random starts
  e2e                       `racl search` (tiny preset) killed after its first checkpoint and resumed,
                            `racl train` on its genotype killed after its first epoch and resumed,
                            `racl evaluate --device cuda` on the result
  sync-debug                one search step and one training step under
                            torch.cuda.set_sync_debug_mode("warn"): the host-device syncs, counted

Without CUDA it says so in one line, runs only the gpu tests (they skip) and exits 0. Extrapolations
use the mean step time (periodic work such as the Lipschitz refresh counts) and count the steps
only: no data loading, per-epoch validation, final evaluation or checkpointing.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]  # the repository
DEFAULT_OUT = Path("runs/gpu-check")
DEFAULT_BUDGET_S = 450.0  # stages only; with start-up and the summary the command stays under 8 minutes
MIN_STAGE_S = 20.0  # a stage is skipped when less than this is left of the budget
CIFAR10_TRAIN_IMAGES = 50_000


@dataclass
class Step:
    name: str
    argv: list[str]
    box_s: float             # time box: the stage is killed after this long
    needs_cuda: bool = True
    parse: str = "json"      # how to read the result: json (last stdout line) | junit
    what: str = ""


@dataclass
class StepResult:
    name: str
    status: str              # ok | failed | timeout | skipped
    wall_s: float = 0.0
    box_s: float = 0.0
    command: str = ""
    reason: str = ""
    result: Any = None
    log: str = ""
    what: str = ""


@dataclass
class Report:
    gpu: str | None
    cuda: bool
    machine: dict
    started: str
    budget_s: float
    steps: list[StepResult] = field(default_factory=list)
    extrapolation: dict = field(default_factory=dict)
    wall_s: float = 0.0


# ------------------------------------------------------------------ the plan
def _me(*args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), *args]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan(out: Path, slice_steps: int = 30) -> list[Step]:
    """Every stage, in the order it runs; the boxes add up to DEFAULT_BUDGET_S."""
    steps = [Step("tests", [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                            "-o", "junit_logging=system-out", str(ROOT / "tests" / "test_gpu.py"),
                            f"--junitxml={out / 'gpu-tests.xml'}"], 45, needs_cuda=False, parse="junit",
                  what="gpu-marked tests (fast vs reference on CUDA, bf16 autocast, layouts)")]
    variants = (("", (), "float32, NCHW (place)"), ("-bf16", ("--bf16",), "bf16 autocast, channels-last (place)"),
                ("-channels-last", ("--channels-last",), "float32, channels-last forced"))
    for what, boxes, max_s, setting in (("search", (60, 30, 30), ("10", "5", "5"), "8 cells, C = 16, batch 128, gamma 0.1"),
                                        ("train", (45, 30, 30), ("12", "5", "5"), "PGD-7, C = 36, 20 cells, batch 128")):
        for (suffix, flags, how), box, limit in zip(variants, boxes, max_s):
            count = ("--count-ops",) if what == "search" and not suffix else ()
            steps.append(Step(f"slice-{what}{suffix}", _me("slice", what, "--device", "cuda", "--steps",
                                                            str(slice_steps), "--max-s", limit, *flags, *count),
                              box, what=f"{what} steps, {setting}; {how}" + ("; op count" if count else "")))
    steps += [
        Step("two-ranks", [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(_free_port()), str(SCRIPT), "two-ranks", "--device", "cuda",
                           "--out", str(out / "two-ranks")], 45,
             what="torchrun --nproc-per-node 2 on one GPU (gloo): tiny racl search, ranks identical"),
        Step("e2e", _me("e2e", "--device", "cuda", "--out", str(out / "e2e")), 105,
             what="racl search (killed, resumed) + racl train (killed, resumed) + racl evaluate --device cuda"),
        Step("sync-debug", _me("sync-debug", "--device", "cuda"), 30,
             what="torch.cuda.set_sync_debug_mode('warn') over one search step and one training step"),
    ]
    return steps


# ------------------------------------------------------------------ running one stage
def run_step(step: Step, cuda: bool, remaining_s: float, log_dir: Path,
             env: dict[str, str] | None = None) -> StepResult:
    """Run `step` in its own process group, killed (the whole group) at its time box or at the end of
    the budget, whichever comes first; its stdout and stderr go to log_dir/NAME.log."""
    res = StepResult(step.name, "skipped", box_s=step.box_s, command=shlex.join(step.argv), what=step.what)
    if step.needs_cuda and not cuda:
        res.reason = "no CUDA GPU"
        return res
    if remaining_s < MIN_STAGE_S:
        res.reason = f"budget: {remaining_s:.0f} s left, needs {MIN_STAGE_S:.0f} s"
        return res
    box = min(step.box_s, remaining_s)
    res.box_s = round(box, 1)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{step.name}.log"
    res.log = str(log)
    t0 = time.perf_counter()
    proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env or dict(os.environ), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=box)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_group(proc)
        stdout, stderr = proc.communicate()
        timed_out = True
    res.wall_s = round(time.perf_counter() - t0, 2)
    log.write_text(f"$ {res.command}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n", encoding="utf-8")
    if timed_out:
        res.status, res.reason = "timeout", f"killed after its {box:.0f} s time box"
        return res
    res.status = "ok" if proc.returncode == 0 else "failed"
    try:
        res.result = _parse(step, stdout)
    except (ValueError, OSError, ET.ParseError) as e:
        if res.status == "ok":
            res.status, res.reason = "failed", f"unreadable result: {e}"
    if res.status == "failed" and not res.reason:
        tail = [line for line in (stderr or stdout).strip().splitlines() if line.strip()]
        res.reason = f"exit {proc.returncode}: {tail[-1][:300] if tail else 'no output'}"
    return res


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """`sig`, then SIGKILL after 5 s, to the process group `proc` leads (it was started in its own session)."""
    for s in dict.fromkeys((sig, signal.SIGKILL)):
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _parse(step: Step, stdout: str) -> Any:
    if step.parse == "junit":
        xml = next(a.split("=", 1)[1] for a in step.argv if a.startswith("--junitxml="))
        return junit_counts(Path(xml))
    lines = stdout.strip().splitlines()
    if not lines:
        raise ValueError("no output")
    return json.loads(lines[-1])


def junit_counts(path: Path) -> dict:
    """passed / failed / errors / skipped of a pytest --junitxml file, and the names of failures."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": [], "skip_reasons": [],
              "measured": []}  # the tests' own "measured: ..." lines (tolerances' actual values)
    for suite in suites:
        for case in suite.iter("testcase"):
            counts["tests"] += 1
            for out in case.iter("system-out"):
                counts["measured"] += [line for line in (out.text or "").splitlines() if line.startswith("measured:")]
            name = f"{case.get('classname')}.{case.get('name')}"
            if case.find("failure") is not None:
                counts["failed"] += 1
                counts["failures"].append(name)
            elif case.find("error") is not None:
                counts["errors"] += 1
                counts["failures"].append(name)
            elif (skip := case.find("skipped")) is not None:
                counts["skipped"] += 1
                reason = skip.get("message", "")
                if reason not in counts["skip_reasons"]:
                    counts["skip_reasons"].append(reason)
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    return counts


# ------------------------------------------------------------------ extrapolation
def search_totals(warmup_step_s: float, search_step_s: float, batch: int, epochs: int, warmup_epochs: int,
                  images_per_half: int) -> dict:
    """Seconds of a full search: every epoch runs images_per_half // batch steps (as racl.search.loop:
    no partial batch), weight steps only in the warm-up epochs, weight + distribution steps afterwards."""
    steps = images_per_half // batch
    total = steps * (warmup_epochs * warmup_step_s + (epochs - warmup_epochs) * search_step_s)
    return {"steps_per_epoch": steps, "epochs": epochs, "warmup_epochs": warmup_epochs, "batch": batch,
            "images_per_half": images_per_half, "warmup_step_s": warmup_step_s, "search_step_s": search_step_s,
            "total_s": total, "total_h": total / 3600}


def train_totals(step_s: float, batch: int, epochs: int, images: int) -> dict:
    """Seconds of a full training: images // batch steps per epoch (as the trainer: no partial batch)."""
    steps = images // batch
    total = steps * epochs * step_s
    return {"steps_per_epoch": steps, "epochs": epochs, "batch": batch, "images": images, "step_s": step_s,
            "total_s": total, "total_h": total / 3600}


def paper_search_setting() -> dict:
    from racl.search.config import config_from_dict
    from racl.search.loop import WEIGHT_FRACTION

    cfg = config_from_dict({})  # the paper preset = the defaults
    return {"epochs": cfg.epochs, "warmup_epochs": cfg.warmup_epochs, "batch": cfg.batch_size,
            "images_per_half": round(CIFAR10_TRAIN_IMAGES * WEIGHT_FRACTION), "gamma": cfg.gamma,
            "channels": cfg.supernet_size()["channels"], "layers": cfg.supernet_size()["layers"]}


def paper_train_setting() -> dict:
    from racl.training.config import TrainConfig

    cfg = TrainConfig().resolved()
    return {"epochs": cfg.epochs, "batch": cfg.batch_size, "images": CIFAR10_TRAIN_IMAGES,
            "channels": cfg.network.channels, "layers": cfg.network.layers, "attack_steps": cfg.attack.steps}


# ------------------------------------------------------------------ stages run as subprocesses
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(fn: Callable[[], None], device, steps: int, max_s: float, warmup: int) -> dict:
    """Call fn `warmup` times untimed, then up to `steps` times (stopping once max_s have passed, after
    at least 3), each synchronised and timed."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    warm_s = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < steps and (len(times) < 3 or time.perf_counter() - start < max_s):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return {"steps_timed": len(times), "steps_asked": steps, "median_s": statistics.median(times),
            "mean_s": statistics.fmean(times), "min_s": min(times), "max_s": max(times),
            "warmup_calls": warmup, "warmup_s": warm_s, "stopped_early": len(times) < steps}


def count_ops(fn: Callable[[], None]) -> dict:
    """The torch operations (aten calls below autograd) of one call of fn, and how many are convolutions."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counting(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with Counting() as mode:
        fn()
    conv = sum(n for name, n in mode.ops.items() if "convolution" in name)
    return {"ops": sum(mode.ops.values()), "convolutions": conv, "top": dict(mode.ops.most_common(5))}


def _backend_settings() -> dict:
    import torch

    return {"cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def slice_main(args: argparse.Namespace) -> dict:
    import torch

    from racl.bench import cases
    from racl.bench.machine import describe_machine
    from racl.bench.timing import cuda_peak_mib, reset_cuda_peak

    device = _device(args.device)
    switch = {"bf16": args.bf16, "channels_last": args.channels_last}
    out: dict[str, Any] = {"slice": args.what, "device": str(device), "switches": switch,
                           "machine": describe_machine(device)}
    reset_cuda_peak(device)
    if args.what == "search":
        paper = paper_search_setting()
        batch = args.batch or paper["batch"]
        gamma = paper["gamma"] if args.gamma is None else args.gamma
        kw = {"ops": "fast", "size": args.size, "batch": batch, "device": device, "image_size": args.image_size,
              "gamma": gamma, **switch}
        phases = {}
        for phase, arch in (("warmup", False), ("search", True)):
            fn = cases.supernet_step(arch=arch, **kw)
            phases[phase] = _timed_steps(fn, device, args.steps, args.max_s, args.warmup)
            if arch and args.count_ops:
                out["op_count"] = {"gamma": gamma, "search_step": count_ops(fn),
                                   "search_step_gamma0": count_ops(cases.supernet_step(arch=True, **{**kw, "gamma": 0.0}))}
            del fn
        out.update(phases=phases, setting={**cases.SUPERNET_SIZES[args.size], "batch": batch,
                                           "image_size": args.image_size, "gamma": gamma})
        # the mean, not the median: periodic work (e.g. the Lipschitz refresh every few steps) counts
        out["full"] = search_totals(phases["warmup"]["mean_s"], phases["search"]["mean_s"], batch,
                                    paper["epochs"], paper["warmup_epochs"], paper["images_per_half"])
    else:
        paper = paper_train_setting()
        batch = args.batch or paper["batch"]
        fn = cases.train_step(ops="fast", batch=batch, device=device, channels=args.channels, layers=args.layers,
                              **switch)
        out["step"] = _timed_steps(fn, device, args.steps, args.max_s, args.warmup)
        out["setting"] = {"channels": args.channels, "layers": args.layers, "batch": batch, "attack": "PGD-7"}
        out["full"] = train_totals(out["step"]["mean_s"], batch, paper["epochs"], paper["images"])
    out["backends"] = _backend_settings()
    out["cuda_peak_mib"] = cuda_peak_mib(device)
    return out


def _device(name: str):
    import torch

    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU present")
    return device


def two_ranks(args: argparse.Namespace) -> dict | None:
    """Under torchrun: both ranks on the one device (gloo, which takes CUDA tensors; nccl refuses two ranks
    on one GPU); a tiny racl search with PGD-1 starts in its weight step. Its ranks must end with
    bit-identical state and have drawn different random starts. Rank 0 returns the result."""
    import torch
    import torch.distributed as dist

    from racl import distributed
    from racl.attacks.pgd import PGD
    from racl.data import load_data
    from racl.search import apply_overrides, get_preset, loop

    device = _device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("gloo")
    starts: list[float] = []
    reduces = [0]
    original_init, original_reduce = PGD.random_init, dist.all_reduce

    def random_init(self, images):
        adv = original_init(self, images)
        starts.append(float((adv - images).abs().sum()))
        return adv

    def all_reduce(t, *a, **kw):
        reduces[0] += 1
        return original_reduce(t, *a, **kw)

    PGD.random_init, dist.all_reduce = random_init, all_reduce
    built = []
    build = loop.build_run
    loop.build_run = lambda *a: built.append(build(*a)) or built[-1]
    config = apply_overrides(get_preset("tiny"), ["robust.adv=pgd", "attack.steps=1"])
    t0 = time.perf_counter()
    loop.run_search(config, load_data("synthetic", image_size=16, count=64), args.out, overwrite=True,
                    device=device, draw=False)
    seconds = time.perf_counter() - t0
    run = built[0]
    identical = distributed.same_on_all_ranks(loop._synced_state(run))
    first_starts = distributed.gather_object(starts[0] if starts else None)
    out = {"backend": dist.get_backend(), "world_size": distributed.world_size(), "device": str(device),
           "seconds": round(seconds, 2), "steps": run.global_step, "all_reduce_calls": reduces[0],
           "ranks_identical": identical, "first_random_start_l1": first_starts,
           "random_starts_differ": None not in first_starts and len(set(first_starts)) == len(first_starts)}
    me = distributed.rank()
    dist.destroy_process_group()
    if not (identical and out["random_starts_differ"]):
        raise SystemExit(f"two-ranks failed: {json.dumps(out)}")
    return out if me == 0 else None


def _racl(*args: str) -> list[str]:
    return [sys.executable, "-m", "racl", *args]


def e2e_commands(out: Path, device: str) -> dict[str, list[str]]:
    """The end-to-end commands: a tiny search and training (each later killed and resumed), an evaluation."""
    data = ("--dataset", "synthetic", "--limit", "24", "--image-size", "16")
    return {
        "search": _racl("search", "--preset", "tiny", *data, "--epochs", "3", "--device", device, "--no-draw",
                        "--out", str(out / "search")),
        "train": _racl("train", "--preset", "tiny", "--genotype", str(out / "search" / "genotype.json"), *data,
                       "--epochs", "3", "--steps", "2", "--device", device, "--out", str(out / "train")),
        "evaluate": _racl("evaluate", "--checkpoint", str(out / "train" / "last.safetensors"), "--attacks",
                          "fgsm,pgd5", "--n-images", "32", "--device", device, "--out", str(out / "eval")),
    }


def _kill_after(argv: list[str], marker: Path, log, limit_s: float) -> dict:
    """Run argv until `marker` exists (its first epoch is saved), then SIGKILL it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while proc.poll() is None and not marker.exists() and time.perf_counter() - t0 < limit_s:
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        kill_group(proc, signal.SIGKILL)
    return {"killed": killed, "exit": proc.wait(), "seconds": round(time.perf_counter() - t0, 2)}


def _run(argv: list[str], log) -> dict:
    t0 = time.perf_counter()
    code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"e2e: exit {code}: {shlex.join(argv)}")
    return {"exit": code, "seconds": round(time.perf_counter() - t0, 2)}


def e2e(args: argparse.Namespace) -> dict:
    """racl search, train and evaluate as a user runs them; search and training killed (SIGKILL) once
    their first epoch is saved, then resumed with --resume; the resumed runs must hold every epoch."""
    _device(args.device)
    out = Path(args.out)
    cmds = e2e_commands(out, args.device)
    result: dict[str, Any] = {}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "e2e.log", "w", encoding="utf-8") as log:
        for name, marker in (("search", out / "search" / "checkpoint.safetensors"),
                             ("train", out / "train" / "state.safetensors")):
            first = _kill_after([*cmds[name], "--overwrite"], marker, log, args.limit_s)
            if not first["killed"]:
                raise SystemExit(f"e2e: racl {name} ended (exit {first['exit']}) before it could be killed")
            resumed = _run([*cmds[name], "--resume"], log)
            lines = (out / name / "metrics.jsonl").read_text().splitlines()
            result[name] = {"first": first, "resumed": resumed, "epochs": len(lines)}
            if len(lines) != 3:
                raise SystemExit(f"e2e: the resumed {name} holds {len(lines)} epochs, not 3")
        result["evaluate"] = _run([*cmds["evaluate"], "--overwrite"], log)
        results = json.loads((out / "eval" / "results.json").read_text())
        result["evaluate"]["robust_accuracy"] = results.get("robust_accuracy")
    return result


def sync_debug(args: argparse.Namespace) -> dict:
    """Host-device syncs of one search step and one training step (after a warm-up call each), counted
    by torch.cuda.set_sync_debug_mode("warn"): each sync is one warning; the first places are kept."""
    import warnings

    import torch

    from racl.bench import cases

    device = _device(args.device)
    if device.type != "cuda":
        raise SystemExit("gpu_check sync-debug: needs a CUDA device (set_sync_debug_mode is CUDA's)")
    paper = paper_search_setting()
    steps = {"search_step": cases.supernet_step("fast", "default", 32, device, gamma=paper["gamma"]),
             "train_step": cases.train_step("fast", 32, device)}
    out: dict[str, Any] = {}
    for name, fn in steps.items():
        fn()
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        places = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
        out[name] = {"syncs": len(syncs), "places": dict(places.most_common(10))}
    return out


# ------------------------------------------------------------------ the whole check
def probe_machine() -> tuple[bool, dict]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                            "python": platform.python_version(), "host_cpus": os.cpu_count(),
                            "cuda_available": torch.cuda.is_available()}
    cuda = torch.cuda.is_available() and torch.cuda.device_count() > 0
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
    return cuda, info


def no_gpu_line(info: dict) -> str:
    return (f"gpu-check: NO CUDA GPU PRESENT (torch {info['torch']}, torch.cuda.is_available() = "
            f"{info['cuda_available']}): nothing was measured; only the gpu tests ran (they skip). "
            "Run `make gpu-check` on a machine with one CUDA GPU.")


def check(out: Path, budget_s: float = DEFAULT_BUDGET_S, slice_steps: int = 30,
          only: list[str] | None = None, cuda: bool | None = None) -> Report:
    t0 = time.perf_counter()
    detected, info = probe_machine()
    cuda = detected if cuda is None else cuda
    out.mkdir(parents=True, exist_ok=True)
    report = Report(gpu=info.get("gpu"), cuda=cuda, machine=info, budget_s=budget_s,
                    started=datetime.datetime.now().isoformat(timespec="seconds"))
    if not cuda:
        print(no_gpu_line(info), flush=True)
    else:
        print(f"gpu-check: {info['gpu']} ({info['gpu_memory_gib']} GiB, capability {info['capability']}), "
              f"torch {info['torch']}, CUDA {info['torch_cuda']}; budget {budget_s:.0f} s", flush=True)
    deadline = time.perf_counter() + budget_s
    for step in plan(out, slice_steps):
        if only and step.name not in only:
            continue
        res = run_step(step, cuda, deadline - time.perf_counter(), out / "logs")
        report.steps.append(res)
        print(f"  {res.name:<27} {res.status:<8} {res.wall_s:7.1f} s / box {res.box_s:5.0f} s  "
              f"{short_result(res)}", flush=True)
    report.extrapolation = extrapolation(report)
    report.wall_s = round(time.perf_counter() - t0, 1)
    write_report(report, out)
    for line in extrapolation_lines(report):
        print(line)
    print(f"gpu-check: {report.wall_s:.0f} s; wrote {out / 'gpu-check.json'} and {out / 'summary.md'}")
    return report


def extrapolation(report: Report) -> dict:
    """The full runs each slice (and each of its variants) predicts."""
    return {res.name.removeprefix("slice-"): {**res.result["full"], "setting": res.result.get("setting"),
                                              "switches": res.result.get("switches")}
            for res in report.steps
            if res.name.startswith("slice-") and res.status == "ok" and isinstance(res.result, dict)}


def extrapolation_lines(report: Report) -> list[str]:
    lines = []
    on = f"on {report.gpu}" if report.gpu else "(no GPU)"
    for name, x in report.extrapolation.items():
        if name.startswith("search"):
            lines.append(f"full search {on} [{name}]: {x['epochs']} epochs ({x['warmup_epochs']} warm-up) x "
                         f"{x['steps_per_epoch']} steps of batch {x['batch']}; warm-up step {x['warmup_step_s']:.3f} s, "
                         f"search step {x['search_step_s']:.3f} s -> {x['total_h']:.2f} h (steps only)")
        else:
            lines.append(f"full training {on} [{name}]: {x['epochs']} epochs x {x['steps_per_epoch']} PGD-7 steps "
                         f"of batch {x['batch']}; step {x['step_s']:.3f} s -> {x['total_h']:.2f} h (steps only)")
    return lines


def short_result(res: StepResult) -> str:
    if res.status in ("skipped", "timeout") or res.result is None:
        return res.reason
    r = res.result
    try:
        if res.name == "tests":
            return (f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, {r['skipped']} skipped"
                    + (f" ({r['skip_reasons'][0]})" if r["skipped"] and r["skip_reasons"] else "")
                    + (f": {', '.join(r['failures'])}" if r["failures"] else ""))
        if res.name.startswith("slice-search"):
            p = r["phases"]
            ops = r.get("op_count")
            return (f"warm-up step {p['warmup']['mean_s']:.3f} s, search step {p['search']['mean_s']:.3f} s "
                    f"({p['search']['steps_timed']} timed); full search {r['full']['total_h']:.2f} h"
                    + (f"; one search step: {ops['search_step']['ops']} ops, {ops['search_step']['convolutions']} "
                       f"convolutions (gamma 0: {ops['search_step_gamma0']['ops']})" if ops else ""))
        if res.name.startswith("slice-train"):
            return (f"step {r['step']['mean_s']:.3f} s ({r['step']['steps_timed']} timed); "
                    f"100-epoch training {r['full']['total_h']:.2f} h")
        if res.name == "two-ranks":
            return (f"{r['backend']}, {r['world_size']} ranks on {r['device']}: identical {r['ranks_identical']}, "
                    f"own random starts {r['random_starts_differ']}, {r['all_reduce_calls']} all_reduce in "
                    f"{r['steps']} steps, {r['seconds']:.1f} s")
        if res.name == "e2e":
            return "; ".join(f"{k} {v['first']['seconds']:.0f} s + resumed {v['resumed']['seconds']:.0f} s"
                             for k, v in r.items() if k != "evaluate") + \
                f"; evaluate {r['evaluate']['seconds']:.0f} s"
        if res.name == "sync-debug":
            return "; ".join(f"{k}: {v['syncs']} syncs" for k, v in r.items())
    except (KeyError, TypeError, IndexError) as e:
        return f"(result without {e})"
    return res.reason or "ok"


def write_report(report: Report, out: Path) -> None:
    data = asdict(report)
    (out / "gpu-check.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    lines = [f"# gpu-check, {report.started}", ""]
    if report.cuda:
        m = report.machine
        lines.append(f"GPU: **{report.gpu}** ({m.get('gpu_memory_gib')} GiB, capability {m.get('capability')}), "
                     f"torch {m['torch']}, CUDA {m['torch_cuda']}, cuDNN {m.get('cudnn')}; "
                     f"{report.wall_s:.0f} s in all (budget {report.budget_s:.0f} s of stages).")
    else:
        lines.append(no_gpu_line(report.machine))
    lines += ["", "| stage | status | wall s | box s | result |", "|---|---|---|---|---|"]
    for res in report.steps:
        lines.append(f"| {res.name} | {res.status} | {res.wall_s:.1f} | {res.box_s:.0f} | "
                     f"{short_result(res).replace('|', '/')} |")
    ex = extrapolation_lines(report)
    if ex:
        lines += ["", *[f"- {line}" for line in ex]]
    tests = next((r.result for r in report.steps if r.name == "tests" and isinstance(r.result, dict)), None)
    if tests and tests.get("measured"):
        lines += ["", "Measured by the gpu tests (against their tolerances, see tests/test_gpu.py):", "",
                  *[f"- {m.removeprefix('measured: ')}" for m in tests["measured"]]]
    lines += ["", "Each stage's command and output: `logs/STAGE.log`; every figure: `gpu-check.json`.", ""]
    (out / "summary.md").write_text("\n".join(lines), encoding="utf-8")


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all stages")
    p.add_argument("--slice-steps", type=int, default=30)
    p.add_argument("--only", default=None, help="comma-separated stage names")
    p.add_argument("--plan", action="store_true", help="print the stages and their time boxes, run nothing")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("slice", help="(internal) one timed slice, printed as one JSON line")
    s.add_argument("what", choices=("search", "train"))
    s.add_argument("--device", default="cuda")
    s.add_argument("--steps", type=int, default=30)
    s.add_argument("--max-s", type=float, default=10.0, help="stop timing after this long (at least 3 steps)")
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--batch", type=int, default=None, help="default: the paper's (search 128, training 128)")
    s.add_argument("--size", default="default", help="supernet size (racl.bench.cases.SUPERNET_SIZES)")
    s.add_argument("--gamma", type=float, default=None, help="default: the racl strategy's default")
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--channels", type=int, default=36)
    s.add_argument("--layers", type=int, default=20)
    s.add_argument("--bf16", action="store_true")
    s.add_argument("--channels-last", action="store_true", help="force channels-last (default: as place() decides)")
    s.add_argument("--count-ops", action="store_true")
    for name in ("two-ranks", "e2e", "sync-debug"):
        q = sub.add_parser(name, help="(internal) one stage, printed as one JSON line")
        q.add_argument("--device", default="cuda")
        if name != "sync-debug":
            q.add_argument("--out", type=Path, required=True)
    sub.choices["e2e"].add_argument("--limit-s", type=float, default=60.0, help="longest wait for the kill point")
    args = p.parse_args(argv)
    if args.cmd == "slice":
        if args.steps < 1:
            raise SystemExit("gpu_check slice: --steps must be >= 1")
        args.channels_last = True if args.channels_last else None
        print(json.dumps(slice_main(args)))
        return 0
    if args.cmd in ("two-ranks", "e2e", "sync-debug"):
        result = {"two-ranks": two_ranks, "e2e": e2e, "sync-debug": sync_debug}[args.cmd](args)
        if result is not None:
            print(json.dumps(result))
        return 0
    if args.plan:
        steps = plan(args.out, args.slice_steps)
        for step in steps:
            print(f"{step.name:<27} box {step.box_s:4.0f} s  {'CUDA' if step.needs_cuda else 'any':<4}  {step.what}")
        print(f"{sum(s.box_s for s in steps):.0f} s of time boxes; budget {args.budget:.0f} s")
        return 0
    only = [x.strip() for x in args.only.split(",")] if args.only else None
    check(args.out, args.budget, args.slice_steps, only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
