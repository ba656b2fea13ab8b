"""`make gpu-check` (benchmarks/gpu_check.py) without a GPU: its CPU path, its plan (time boxes within
the budget, every stage issue 28 asks for), its machinery (time boxes, budget, parsing) and its
stages run on the CPU at toy size; the bench switches."""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from racl.bench import cases

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up
_spec.loader.exec_module(gpu_check)
Step, run_step = gpu_check.Step, gpu_check.run_step
REQUIRED = ("tests", "slice-search", "slice-search-bf16", "slice-search-channels-last", "slice-train",
            "slice-train-bf16", "slice-train-channels-last", "two-ranks", "e2e", "sync-debug")


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
    assert set(REQUIRED) - {"tests"} == set(steps)
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
    assert run_step(ok, False, 5, tmp_path).reason.startswith("budget")       # under MIN_STAGE_S left
    cuda_step = Step("gpu", ok.argv, box_s=30)
    assert run_step(cuda_step, False, 100, tmp_path).reason == "no CUDA GPU"
    # a box is cut to what is left of the budget
    assert run_step(ok, False, 25, tmp_path).box_s == 25
    bad = Step("bad", [sys.executable, "-c", "import sys; sys.exit('boom')"], box_s=30, needs_cuda=False)
    res = run_step(bad, False, 100, tmp_path)
    assert res.status == "failed" and res.reason == "exit 1: boom"
    silent = Step("silent", [sys.executable, "-c", "pass"], box_s=30, needs_cuda=False)
    assert run_step(silent, False, 100, tmp_path).status == "failed"  # exit 0 but no result


def test_plan_fits_the_budget_and_holds_every_required_stage(tmp_path: Path, capsys) -> None:
    steps = gpu_check.plan(tmp_path)
    names = [s.name for s in steps]
    assert names == list(REQUIRED)  # every stage issue 28 asks for, in this order, nothing else
    assert sum(s.box_s for s in steps) <= gpu_check.DEFAULT_BUDGET_S
    assert gpu_check.DEFAULT_BUDGET_S + 20 < 8 * 60  # the Makefile's "under 8 minutes"
    assert "under 8 minutes" in (ROOT / "Makefile").read_text()
    by = {s.name: s.argv for s in steps}
    assert "--count-ops" in by["slice-search"] and "--gamma" not in by["slice-search"]  # the default gamma
    assert "--bf16" in by["slice-search-bf16"] and "--channels-last" in by["slice-train-channels-last"]
    two = by["two-ranks"]
    assert "torch.distributed.run" in two and two[two.index("--nproc-per-node") + 1] == "2"
    assert gpu_check.main(["--plan", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REQUIRED) and "450 s of time boxes; budget 450 s" in out
    assert not (tmp_path / "gpu-check.json").exists()  # the plan runs nothing


def test_every_planned_command_line_parses(tmp_path: Path) -> None:
    """The GPU stages cannot run here: at least their arguments must be ones the commands accept."""
    from racl.cli import build_parser

    racl_parser = build_parser()
    for step in gpu_check.plan(tmp_path):
        argv = step.argv[1:]
        if argv[:2] == ["-m", "torch.distributed.run"]:
            argv = argv[argv.index(str(gpu_check.SCRIPT)):]
        if argv[0] == str(gpu_check.SCRIPT):
            if not torch.cuda.is_available():
                with pytest.raises(SystemExit, match="no CUDA GPU"):  # parses, then refuses without a GPU
                    gpu_check.main(argv[1:])
        else:
            assert argv[:2] == ["-m", "pytest"], argv
    for argv in gpu_check.e2e_commands(tmp_path, "cuda").values():
        args = racl_parser.parse_args(argv[3:])
        assert args.device == "cuda"


def test_extrapolation_to_the_papers_runs() -> None:
    search = gpu_check.paper_search_setting()
    assert (search["epochs"], search["warmup_epochs"], search["batch"], search["images_per_half"]) == (50, 15, 128, 25000)
    assert search["gamma"] == 0.1  # the racl strategy's default: the slice measures the paper's objective
    assert (search["channels"], search["layers"]) == (16, 8)
    train = gpu_check.paper_train_setting()
    assert (train["epochs"], train["batch"], train["images"], train["attack_steps"]) == (100, 128, 50000, 7)
    s = gpu_check.search_totals(0.1, 0.3, 128, 50, 15, 25000)
    assert s["steps_per_epoch"] == 195 and s["total_s"] == pytest.approx(195 * (15 * 0.1 + 35 * 0.3))
    t = gpu_check.train_totals(0.5, 128, 100, 50000)
    assert t["steps_per_epoch"] == 390 and t["total_h"] == pytest.approx(390 * 100 * 0.5 / 3600)


def test_slices_run_on_cpu_at_toy_size(capsys) -> None:
    common = ["--device", "cpu", "--steps", "2", "--batch", "2", "--warmup", "0", "--max-s", "30"]
    assert gpu_check.main(["slice", "search", "--size", "tiny", "--image-size", "16", "--count-ops", *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["phases"]["warmup"]["steps_timed"] == 2 and out["phases"]["search"]["steps_timed"] == 2
    w, s = out["phases"]["warmup"]["mean_s"], out["phases"]["search"]["mean_s"]
    assert out["full"]["total_s"] == pytest.approx(out["full"]["steps_per_epoch"] * (15 * w + 35 * s))
    ops = out["op_count"]
    assert ops["gamma"] == out["setting"]["gamma"] == 0.1
    assert ops["search_step"]["ops"] > ops["search_step_gamma0"]["ops"] > 0  # the double backward costs ops
    assert 0 < ops["search_step"]["convolutions"] < ops["search_step"]["ops"]
    assert set(out["backends"]) >= {"cudnn_benchmark", "cudnn_allow_tf32", "matmul_allow_tf32"}
    assert gpu_check.main(["slice", "train", "--channels", "8", "--layers", "3", "--bf16", "--channels-last",
                           *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["step"]["steps_timed"] == 2 and out["full"]["epochs"] == 100 and out["setting"]["layers"] == 3
    assert out["switches"] == {"bf16": True, "channels_last": True}


def test_sync_debug_needs_cuda() -> None:
    with pytest.raises(SystemExit, match="CUDA"):
        gpu_check.main(["sync-debug", "--device", "cpu"])


@pytest.mark.slow
def test_two_ranks_stage_on_cpu(tmp_path: Path) -> None:
    """The two-ranks stage itself, on 2 CPU processes (gloo) instead of one GPU."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
            str(gpu_check._free_port()), str(gpu_check.SCRIPT), "two-ranks", "--device", "cpu", "--out",
            str(tmp_path / "r")]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ranks_identical"] and out["random_starts_differ"] and out["world_size"] == 2
    assert out["backend"] == "gloo" and out["all_reduce_calls"] > 0


@pytest.mark.slow
def test_e2e_stage_on_cpu_kills_and_resumes(tmp_path: Path, capsys) -> None:
    assert gpu_check.main(["e2e", "--device", "cpu", "--out", str(tmp_path / "e2e"), "--limit-s", "300"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("search", "train"):
        assert out[name]["first"]["killed"] and out[name]["epochs"] == 3
    assert "fgsm" in out["evaluate"]["robust_accuracy"]
    assert "resuming" in (tmp_path / "e2e" / "e2e.log").read_text()


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
