"""`make gpu-check` without a GPU, and its machinery (time boxes, budget, parsing, slices, bench switches)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from racl.bench import cases, gpu_check
from racl.bench.gpu_check import Step, run_step

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_fallback_says_no_gpu_in_one_line_runs_the_skipping_tests_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}  # no GPU even on a GPU machine
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    first = done.stdout.splitlines()[0]
    assert first.startswith("gpu-check: NO CUDA GPU PRESENT") and "nothing was measured" in first
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["cuda"] is False and report["gpu"] is None
    steps = {s["name"]: s for s in report["steps"]}
    tests = steps.pop("tests")
    assert tests["status"] == "ok" and tests["result"]["tests"] > 0
    assert tests["result"]["skipped"] == tests["result"]["tests"] and tests["result"]["passed"] == 0
    assert steps and all(s["status"] == "skipped" and s["reason"] == "no CUDA GPU" for s in steps.values())
    assert {"slice-search", "slice-train", "bench-train", "nccl-probe", "torchrun-search"} <= set(steps)
    assert report["extrapolation"] == {}
    assert first in (tmp_path / "summary.md").read_text()


def test_time_box_kills_the_whole_process_group(tmp_path: Path) -> None:
    # the grandchild keeps the output pipe open: only killing the group lets the step return
    grandchild = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])"
    step = Step("sleepy", [sys.executable, "-c", grandchild], box_s=2, needs_cuda=False)
    t0 = time.perf_counter()
    res = run_step(step, cuda=False, remaining_s=100, log_dir=tmp_path)
    assert res.status == "timeout" and "2 s time box" in res.reason
    assert time.perf_counter() - t0 < 20 and 2 <= res.wall_s < 20
    assert (tmp_path / "sleepy.log").exists()


def test_budget_cuda_failure_and_json_result(tmp_path: Path) -> None:
    ok = Step("ok", [sys.executable, "-c", "print('noise'); print('{\"x\": 1}')"], box_s=30, needs_cuda=False)
    assert run_step(ok, False, 100, tmp_path).result == {"x": 1}
    assert run_step(ok, False, 100, tmp_path).status == "ok"
    assert run_step(ok, False, 5, tmp_path).reason.startswith("budget")       # under MIN_STEP_S left
    optional = Step("opt", ok.argv, box_s=90, needs_cuda=False, optional=True)
    assert run_step(optional, False, 60, tmp_path).status == "skipped"         # its whole box must fit
    cuda_step = Step("gpu", ok.argv, box_s=30)
    assert run_step(cuda_step, False, 100, tmp_path).reason == "no CUDA GPU"
    # a box is cut to what is left of the budget
    assert run_step(ok, False, 25, tmp_path).box_s == 25
    bad = Step("bad", [sys.executable, "-c", "import sys; sys.exit('boom')"], box_s=30, needs_cuda=False)
    res = run_step(bad, False, 100, tmp_path)
    assert res.status == "failed" and res.reason == "exit 1: boom"
    silent = Step("silent", [sys.executable, "-c", "pass"], box_s=30, needs_cuda=False)
    assert run_step(silent, False, 100, tmp_path).status == "failed"  # exit 0 but no result


def test_plan_fits_one_gpu_and_lists_every_part_of_the_issue(tmp_path: Path) -> None:
    steps = gpu_check.plan(tmp_path)
    names = [s.name for s in steps]
    assert names[0] == "tests" and len(set(names)) == len(names)
    required = [s for s in steps if not s.optional]
    assert all(not s.optional for s in steps[: len(required)])  # variants come last, skipped first
    for what in ("supernet", "attack", "train"):
        for variant in ("bf16", "nchw", "compile"):
            assert f"bench-{what}-{variant}" in names
    torchrun = next(s for s in steps if s.name == "torchrun-search").argv
    assert "torch.distributed.run" in torchrun and "--nproc-per-node" in torchrun and "cuda" in torchrun
    assert gpu_check.DEFAULT_BUDGET_S + 20 < 8 * 60


def test_every_planned_command_line_parses(tmp_path: Path) -> None:
    """The GPU steps cannot run here: at least their arguments must be ones the commands accept."""
    from racl.cli import build_parser

    racl_parser = build_parser()
    for step in gpu_check.plan(tmp_path):
        argv = step.argv[1:]
        if argv[:2] == ["-m", "torch.distributed.run"]:
            assert argv[2:4] == ["--nproc-per-node", "1"]
            argv = argv[argv.index("-m", 2):]
        if argv[:2] == ["-m", "racl"]:
            args = racl_parser.parse_args(argv[2:])
            assert args.device == "cuda"
        elif argv[:2] == ["-m", "racl.bench.gpu_check"] and argv[2] == "slice":
            if not torch.cuda.is_available():
                with pytest.raises(SystemExit, match="no CUDA GPU"):  # parses, then refuses without a GPU
                    gpu_check.main(argv[2:])
        elif argv[:2] == ["-m", "racl.bench.gpu_check"]:
            assert argv[2] == "nccl-probe"
        else:
            assert argv[:2] == ["-m", "pytest"], argv


def test_extrapolation_to_the_papers_runs() -> None:
    search = gpu_check.paper_search_setting()
    assert (search["epochs"], search["warmup_epochs"], search["batch"], search["images_per_half"]) == (50, 15, 128, 25000)
    assert (search["channels"], search["layers"]) == (16, 8)
    train = gpu_check.paper_train_setting()
    assert (train["epochs"], train["batch"], train["images"], train["attack_steps"]) == (100, 128, 50000, 7)
    s = gpu_check.search_totals(0.1, 0.3, 128, 50, 15, 25000)
    assert s["steps_per_epoch"] == 195 and s["total_s"] == pytest.approx(195 * (15 * 0.1 + 35 * 0.3))
    t = gpu_check.train_totals(0.5, 128, 100, 50000)
    assert t["steps_per_epoch"] == 390 and t["total_h"] == pytest.approx(390 * 100 * 0.5 / 3600)


def test_slices_run_on_cpu_at_toy_size(capsys) -> None:
    common = ["--device", "cpu", "--steps", "2", "--batch", "2", "--warmup", "0", "--max-s", "30"]
    assert gpu_check.main(["slice", "search", "--size", "tiny", "--image-size", "16", *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["phases"]["warmup"]["steps_timed"] == 2 and out["phases"]["search"]["steps_timed"] == 2
    w, s = out["phases"]["warmup"]["mean_s"], out["phases"]["search"]["mean_s"]
    assert out["full"]["total_s"] == pytest.approx(out["full"]["steps_per_epoch"] * (15 * w + 35 * s))
    assert gpu_check.main(["slice", "train", "--channels", "8", "--layers", "3", *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["step"]["steps_timed"] == 2 and out["full"]["epochs"] == 100 and out["setting"]["layers"] == 3


def test_memory_format_switch() -> None:
    from racl.models import build_model

    fast = build_model("RACL", num_classes=10, channels=8, layers=3)
    conv = next(p for p in fast.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    cases.set_memory_format(fast, False)
    assert conv.is_contiguous() and not fast.normalize.channels_last
    x = torch.rand(2, 3, 16, 16)
    assert fast.normalize(x).is_contiguous()
    ref = build_model("RACL", num_classes=10, channels=8, layers=3, ops="reference")
    cases.set_memory_format(ref, True)
    assert ref.normalize.channels_last and ref.normalize(x).is_contiguous(memory_format=torch.channels_last)
    assert cases.set_memory_format(ref, None) is ref and ref.normalize.channels_last  # None: unchanged


def test_bench_command_passes_its_switches(monkeypatch, capsys) -> None:
    from racl.bench import run
    from racl.cli import bench_cmd

    seen = {}

    def fake(**kw):
        seen.update(kw)
        return {"benchmark": "train", "fast_s": 1.0, "reference_s": 2.0, "speedup": 2.0}

    monkeypatch.setattr(run, "bench_train", fake)
    import argparse

    parser = argparse.ArgumentParser()
    bench_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "train", "--bf16", "--no-channels-last", "--compile", "--warmup", "2"])
    assert args.func(args) == 0
    assert seen["bf16"] is True and seen["channels_last"] is False and seen["compile"] == "inductor"
    assert seen["warmup"] == 2
    assert run.switches(compile="inductor")["warmup"] == 3 and run.switches()["channels_last"] is None


def test_compile_switch_compiles_the_network() -> None:
    fn = cases.train_step("fast", batch=2, device=torch.device("cpu"), channels=8, layers=3, compile="eager")
    assert fn.model._compiled_call_impl is not None
    fn()
    assert all(torch.isfinite(p).all() for p in fn.model.parameters())
