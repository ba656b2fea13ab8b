"""`make gpu-check` (`python benchmarks/gpu_check.py`): is this CUDA machine ready, and how fast is it?

One command, under 8 minutes on one GPU (a global deadline, `--budget`, default 450 s of steps), each
step in its own process group with its own time box, everything written to OUT/gpu-check.json and
OUT/summary.md (OUT = runs/gpu-check):

  tests          the `gpu`-marked tests (tests/test_gpu.py): fast path vs reference on CUDA, bf16
                 autocast within its stated tolerance, channels-last
  slice-search   a timed slice of the paper's search (8 cells, C = 16, batch 128, 32x32 synthetic
                 inputs): warm-up steps (weight step) and search steps (weight + distribution step),
                 extrapolated to the full search (50 epochs, 15 of them warm-up, 25,000 images per half)
  slice-train    a timed slice of PGD-7 adversarial training of the 20-cell C = 36 network (the
                 trainer's objective, batch 128), extrapolated to 100 epochs of 50,000 images
  bench-*        `racl bench supernet|attack|train --device cuda`, fast vs reference (attack: racl vs
                 torchattacks), then again with --bf16, --no-channels-last and --compile while the
                 budget lasts (these are skipped first when time runs short)
  nccl-probe     `torchrun --nproc-per-node 1` joining an nccl group and all-reducing a CUDA tensor
  torchrun-search  `torchrun --nproc-per-node 1 -m racl search --preset tiny --distributed --device cuda`

Without CUDA it says so in one line, runs only the gpu tests (they skip) and exits 0.
Extrapolations use the mean step time (periodic work such as the Lipschitz refresh counts) and count
the steps only: no data loading or augmentation, no per-epoch validation or final evaluation, no
checkpointing.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[3]  # the repository (src/racl/bench/gpu_check.py, editable install)
if not (ROOT / "tests").is_dir():
    ROOT = Path.cwd()
DEFAULT_OUT = Path("runs/gpu-check")
DEFAULT_BUDGET_S = 450.0  # steps only; with start-up and the summary the command stays under 8 minutes
MIN_STEP_S = 20.0  # a step is skipped when less than this is left of the budget

# The paper's full runs (read from the configs' defaults where they hold them).
CIFAR10_TRAIN_IMAGES = 50_000


@dataclass
class Step:
    name: str
    argv: list[str]
    box_s: float             # time box: the step is killed after this long
    needs_cuda: bool = True
    optional: bool = False   # variants: skipped unless the whole box still fits in the budget
    parse: str = "json"      # how to read the result: json (stdout) | junit | search (a run folder)
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
def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def _bench(what: str, *extra: str) -> list[str]:
    sizes = ("--size", "default") if what == "supernet" else ()
    return _py("-m", "racl", "bench", what, "--json", "--device", "cuda", "--rounds", "1", "--repeats", "3",
               *sizes, *extra)


def _torchrun(*args: str) -> list[str]:
    return _py("-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", str(_free_port()), *args)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan(out: Path, slice_steps: int = 50) -> list[Step]:
    """Every step, in the order it runs: required steps first, then the benchmark variants."""
    me = ("-m", "racl.bench.gpu_check")
    steps = [
        Step("tests", _py("-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-o", "junit_logging=system-out",
                          str(ROOT / "tests" / "test_gpu.py"), f"--junitxml={out / 'gpu-tests.xml'}"), 150, needs_cuda=False, parse="junit",
             what="gpu-marked tests (fast vs reference on CUDA, bf16 autocast, channels-last)"),
        Step("slice-search", _py(*me, "slice", "search", "--device", "cuda", "--steps", str(slice_steps),
                                 "--max-s", "45"), 120,
             what=f"{slice_steps} warm-up + {slice_steps} search steps, 8 cells, C = 16, batch 128, 32x32"),
        Step("slice-train", _py(*me, "slice", "train", "--device", "cuda", "--steps", str(slice_steps),
                                "--max-s", "60"), 120,
             what=f"{slice_steps} PGD-7 training steps, RACL C = 36, 20 cells, batch 128, 32x32"),
        Step("bench-supernet", _bench("supernet"), 90, what="racl bench supernet (default size, batch 32)"),
        Step("bench-attack", _bench("attack"), 90, what="racl bench attack (PGD-20, batch 32)"),
        Step("bench-train", _bench("train"), 90, what="racl bench train (PGD-7 step, batch 32)"),
        Step("nccl-probe", _torchrun(*me, "nccl-probe"), 60,
             what="torchrun --nproc-per-node 1: nccl group, all_reduce on CUDA"),
        Step("torchrun-search", _torchrun("-m", "racl", "search", "--preset", "tiny", "--dataset", "synthetic",
                                          "--limit", "20", "--image-size", "16", "--device", "cuda",
                                          "--distributed", "--no-draw", "--overwrite",
                                          "--out", str(out / "torchrun-search")), 120, parse="search",
             what="torchrun --nproc-per-node 1 -m racl search --preset tiny --distributed --device cuda (nccl)"),
    ]
    variants = [("bf16", ("--bf16",), 75), ("nchw", ("--no-channels-last",), 75),
                ("compile", ("--compile",), 150)]
    order = [("train", "bf16"), ("attack", "bf16"), ("supernet", "bf16"), ("train", "compile"),
             ("train", "nchw"), ("attack", "nchw"), ("supernet", "nchw"), ("attack", "compile"),
             ("supernet", "compile")]
    by_name = {v[0]: v for v in variants}
    steps.append(Step("bench-attack-apgd", _bench("attack", "--attack", "apgd-ce"), 75, optional=True,
                      what="racl bench attack --attack apgd-ce (AutoAttack's APGD-CE vs torchattacks.APGD)"))
    for what, variant in order:
        _, flags, box = by_name[variant]
        steps.append(Step(f"bench-{what}-{variant}", _bench(what, *flags), box, optional=True,
                          what=f"racl bench {what} {' '.join(flags)}"))
    return steps


# ------------------------------------------------------------------ running one step
def run_step(step: Step, cuda: bool, remaining_s: float, log_dir: Path,
             env: dict[str, str] | None = None) -> StepResult:
    """Run `step` in its own process group, killed (the whole group) at its time box or at the end of
    the budget, whichever comes first; its stdout and stderr go to log_dir/NAME.log."""
    res = StepResult(step.name, "skipped", box_s=step.box_s, command=shlex.join(step.argv), what=step.what)
    if step.needs_cuda and not cuda:
        res.reason = "no CUDA GPU"
        return res
    need = step.box_s if step.optional else MIN_STEP_S
    if remaining_s < need:
        res.reason = f"budget: {remaining_s:.0f} s left, needs {need:.0f} s"
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
        _kill_group(proc)
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


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _parse(step: Step, stdout: str) -> Any:
    if step.parse == "search":  # a search run folder: its genotype and the epochs' lines
        folder = Path(step.argv[step.argv.index("--out") + 1])
        genotype = folder / "genotype.json"
        if not genotype.exists():
            raise ValueError(f"{genotype} was not written")
        epochs = [line.strip() for line in stdout.splitlines() if line.startswith("epoch ")]
        return {"genotype": str(genotype), "epochs": epochs}
    if step.parse == "junit":
        xml = next(a.split("=", 1)[1] for a in step.argv if a.startswith("--junitxml="))
        return junit_counts(Path(xml))
    text = stdout.strip()
    if not text:
        raise ValueError("no output")
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(text.splitlines()[-1])


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
            "images_per_half": round(CIFAR10_TRAIN_IMAGES * WEIGHT_FRACTION),
            "channels": cfg.supernet_size()["channels"], "layers": cfg.supernet_size()["layers"]}


def paper_train_setting() -> dict:
    from racl.training.config import TrainConfig

    cfg = TrainConfig().resolved()
    return {"epochs": cfg.epochs, "batch": cfg.batch_size, "images": CIFAR10_TRAIN_IMAGES,
            "channels": cfg.network.channels, "layers": cfg.network.layers, "attack_steps": cfg.attack.steps}


# ------------------------------------------------------------------ the slices (run as subprocesses)
def _timed_steps(fn: Callable[[], None], device, steps: int, max_s: float, warmup: int) -> dict:
    """Call fn `warmup` times untimed, then up to `steps` times (stopping once max_s have passed, after
    at least 3), each synchronised and timed."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync()
    warm_s = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < steps and (len(times) < 3 or time.perf_counter() - start < max_s):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return {"steps_timed": len(times), "steps_asked": steps, "median_s": statistics.median(times),
            "mean_s": statistics.fmean(times), "min_s": min(times), "max_s": max(times),
            "warmup_calls": warmup, "warmup_s": warm_s, "stopped_early": len(times) < steps}


def slice_main(args: argparse.Namespace) -> dict:
    import torch

    from racl.bench import cases
    from racl.bench.machine import describe_machine
    from racl.bench.timing import cuda_peak_mib, reset_cuda_peak

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check slice: no CUDA GPU present")
    switch = {"bf16": args.bf16, "channels_last": args.channels_last, "compile": args.compile or False}
    warmup = args.warmup if args.warmup is not None else (3 if args.compile else 2)
    out: dict[str, Any] = {"slice": args.what, "device": str(device), "switches": switch,
                           "machine": describe_machine(device)}
    reset_cuda_peak(device)
    if args.what == "search":
        paper = paper_search_setting()
        batch = args.batch or paper["batch"]
        kw = {"ops": "fast", "size": args.size, "batch": batch, "device": device, "image_size": args.image_size,
              **switch}
        phases = {}
        for phase, arch in (("warmup", False), ("search", True)):
            fn = cases.supernet_step(arch=arch, **kw)
            phases[phase] = _timed_steps(fn, device, args.steps, args.max_s, warmup)
            del fn
        out.update(phases=phases, setting={**cases.SUPERNET_SIZES[args.size], "batch": batch,
                                           "image_size": args.image_size})
        # the mean, not the median: periodic work (e.g. the Lipschitz refresh every few steps) counts
        out["full"] = search_totals(phases["warmup"]["mean_s"], phases["search"]["mean_s"], batch,
                                    paper["epochs"], paper["warmup_epochs"], paper["images_per_half"])
    else:
        paper = paper_train_setting()
        batch = args.batch or paper["batch"]
        fn = cases.train_step(ops="fast", batch=batch, device=device, channels=args.channels, layers=args.layers,
                              **switch)
        out["step"] = _timed_steps(fn, device, args.steps, args.max_s, warmup)
        out["setting"] = {"channels": args.channels, "layers": args.layers, "batch": batch, "attack": "PGD-7"}
        out["full"] = train_totals(out["step"]["mean_s"], batch, paper["epochs"], paper["images"])
    out["cuda_peak_mib"] = cuda_peak_mib(device)
    return out


def nccl_probe() -> dict:
    """Under torchrun: join the group through racl.distributed (nccl on CUDA), all-reduce a tensor."""
    import torch
    import torch.distributed as dist

    from racl.distributed import init_distributed, rank, world_size

    device = init_distributed("cuda", force=True)
    x = torch.full((4,), float(rank() + 1), device=device)
    dist.all_reduce(x)
    expected = world_size() * (world_size() + 1) / 2
    out = {"backend": dist.get_backend(), "world_size": world_size(), "device": str(device),
           "gpu": torch.cuda.get_device_name(device), "all_reduce": x.tolist(),
           "all_reduce_ok": bool(torch.all(x == expected))}
    dist.destroy_process_group()
    if out["backend"] != "nccl" or not out["all_reduce_ok"]:
        print(json.dumps(out))
        raise SystemExit(f"nccl probe failed: backend {out['backend']}, all_reduce {out['all_reduce']}")
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
                    capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version(),
                    nccl=_nccl_version())
    return cuda, info


def _nccl_version() -> str | None:
    try:
        import torch.cuda.nccl as nccl

        version = nccl.version()
        return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    except (ImportError, RuntimeError, AttributeError):
        return None


def no_gpu_line(info: dict) -> str:
    return (f"gpu-check: NO CUDA GPU PRESENT (torch {info['torch']}, torch.cuda.is_available() = "
            f"{info['cuda_available']}): nothing was measured; only the gpu tests ran (they skip). "
            "Run `make gpu-check` on a machine with one CUDA GPU.")


def check(out: Path, budget_s: float = DEFAULT_BUDGET_S, slice_steps: int = 50,
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
        print(f"  {res.name:<26} {res.status:<8} {res.wall_s:7.1f} s / box {res.box_s:5.0f} s  "
              f"{short_result(res)}", flush=True)
    report.extrapolation = extrapolation(report)
    report.wall_s = round(time.perf_counter() - t0, 1)
    write_report(report, out)
    for line in extrapolation_lines(report):
        print(line)
    print(f"gpu-check: {report.wall_s:.0f} s; wrote {out / 'gpu-check.json'} and {out / 'summary.md'}")
    return report


def extrapolation(report: Report) -> dict:
    ex = {}
    for res in report.steps:
        if res.name in ("slice-search", "slice-train") and res.status == "ok" and isinstance(res.result, dict):
            ex[res.name.split("-")[1]] = {**res.result["full"], "gpu": report.gpu,
                                          "setting": res.result.get("setting")}
    return ex


def extrapolation_lines(report: Report) -> list[str]:
    lines = []
    on = f"on {report.gpu}" if report.gpu else "(no GPU)"
    s = report.extrapolation.get("search")
    if s:
        lines.append(f"full search {on}: {s['epochs']} epochs ({s['warmup_epochs']} warm-up) x "
                     f"{s['steps_per_epoch']} steps of batch {s['batch']} ({s['images_per_half']:,} images per half); "
                     f"warm-up step {s['warmup_step_s']:.3f} s, search step {s['search_step_s']:.3f} s "
                     f"-> {s['total_h']:.2f} h (steps only)")
    t = report.extrapolation.get("train")
    if t:
        lines.append(f"full training {on}: {t['epochs']} epochs x {t['steps_per_epoch']} PGD-7 steps of batch "
                     f"{t['batch']} ({t['images']:,} images); step {t['step_s']:.3f} s -> {t['total_h']:.2f} h "
                     "(steps only)")
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
            return (f"warm-up step {p['warmup']['mean_s']:.3f} s, search step {p['search']['mean_s']:.3f} s "
                    f"({p['search']['steps_timed']} timed); full search {r['full']['total_h']:.2f} h")
        if res.name.startswith("slice-train"):
            return (f"step {r['step']['mean_s']:.3f} s ({r['step']['steps_timed']} timed); "
                    f"100-epoch training {r['full']['total_h']:.2f} h")
        if res.name == "torchrun-search":
            return f"{len(r['epochs'])} epochs, genotype written" + (f"; {r['epochs'][-1][-60:]}" if r["epochs"] else "")
        if res.name == "nccl-probe":
            return f"backend {r['backend']}, world {r['world_size']}, all_reduce ok {r['all_reduce_ok']}"
        if res.name.startswith("bench-attack"):
            return (f"racl {r['racl_images_per_s']:.1f} img/s, torchattacks {r['torchattacks_images_per_s']:.1f} "
                    f"img/s, ratio {r['ratio']:.2f}")
        if res.name.startswith("bench-"):
            cases = r["cases"] if "cases" in r else {"step": r}
            return "; ".join(f"{k}: fast {c['fast_s']:.4f} s, reference {c['reference_s']:.4f} s, "
                             f"speedup {c['speedup']:.2f}" for k, c in cases.items())
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
                     f"torch {m['torch']}, CUDA {m['torch_cuda']}, cuDNN {m.get('cudnn')}, NCCL {m.get('nccl')}; "
                     f"{report.wall_s:.0f} s in all (budget {report.budget_s:.0f} s of steps).")
    else:
        lines.append(no_gpu_line(report.machine))
    lines += ["", "| step | status | wall s | box s | result |", "|---|---|---|---|---|"]
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
    lines += ["", "Each step's command and output: `logs/STEP.log`; every figure: `gpu-check.json`.", ""]
    (out / "summary.md").write_text("\n".join(lines), encoding="utf-8")


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd")
    run = sub.add_parser("run", help="the whole check (the default)")
    for q in (p, run):
        q.add_argument("--out", type=Path, default=DEFAULT_OUT)
        q.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all steps")
        q.add_argument("--slice-steps", type=int, default=50)
        q.add_argument("--only", default=None, help="comma-separated step names")
        q.add_argument("--plan", action="store_true", help="print the steps and their time boxes, run nothing")
    s = sub.add_parser("slice", help="(internal) one timed slice, printed as one JSON line")
    s.add_argument("what", choices=("search", "train"))
    s.add_argument("--device", default="cuda")
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--max-s", type=float, default=60.0, help="stop timing after this long (at least 3 steps)")
    s.add_argument("--warmup", type=int, default=None)
    s.add_argument("--batch", type=int, default=None, help="default: the paper's (search 128, training 128)")
    s.add_argument("--size", default="default", help="supernet size (racl.bench.cases.SUPERNET_SIZES)")
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--channels", type=int, default=36)
    s.add_argument("--layers", type=int, default=20)
    s.add_argument("--bf16", action="store_true")
    s.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    s.add_argument("--compile", nargs="?", const="inductor", default=None)
    sub.add_parser("nccl-probe", help="(internal) run under torchrun")
    args = p.parse_args(argv)
    if args.cmd == "slice":
        if args.steps < 1:
            raise SystemExit("gpu_check slice: --steps must be >= 1")
        print(json.dumps(slice_main(args)))
        return 0
    if args.cmd == "nccl-probe":
        print(json.dumps(nccl_probe()))
        return 0
    if args.plan:
        for step in plan(args.out, args.slice_steps):
            kind = "optional" if step.optional else "required"
            cuda = "CUDA" if step.needs_cuda else "any"
            print(f"{step.name:<26} box {step.box_s:4.0f} s  {kind:<8} {cuda:<4}  {step.what}")
        print(f"budget {args.budget:.0f} s of steps; optional steps run only when their whole box still fits")
        return 0
    only = [x.strip() for x in args.only.split(",")] if args.only else None
    check(args.out, args.budget, args.slice_steps, only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
