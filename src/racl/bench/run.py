"""Side-by-side benchmarks: the two variants alternate in fresh processes; medians over all repetitions."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import torch

from racl.bench import cases
from racl.bench.cases import ATTACKS
from racl.bench.machine import describe_machine, matmul_peak_gflops
from racl.training.config import ObjectiveConfig, TrainConfig


def _worker(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "racl.bench.worker", json.dumps(spec)], capture_output=True,
                         text=True, check=False, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {spec}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(specs: dict[str, dict], rounds: int, flops: bool = True) -> dict[str, dict]:
    """Run each named spec `rounds` times, interleaved (a, b, a, b, ...); pool the timings.
    flops: count the GFLOP of one call in the first round (one more untimed call)."""
    runs: dict[str, list[dict]] = {name: [] for name in specs}
    for r in range(rounds):
        for name, spec in specs.items():
            runs[name].append(_worker({**spec, "count_flops": flops and r == 0}))
    out = {}
    for name, results in runs.items():
        times = [t for res in results for t in res["times_s"]]
        out[name] = {"median_s": statistics.median(times), "times_s": times,
                     "peak_rss_mib": max(res["peak_rss_mib"] for res in results),
                     "cuda_peak_mib": results[0]["cuda_peak_mib"], "gflop": results[0].get("gflop")}
    return out


def _fraction(gflop: float | None, seconds: float, peak: float) -> float | None:
    return None if gflop is None else gflop / seconds / peak


def switches(bf16: bool = False, channels_last: bool | None = None, compile: bool | str = False,
             warmup: int | None = None) -> dict:
    """The switches every benchmark takes (racl.bench.cases), as they go to the workers and the JSON.
    warmup: untimed calls per process (default 1, 3 with compile: recompilations happen early)."""
    return {"bf16": bool(bf16), "channels_last": channels_last, "compile": compile,
            "warmup": (3 if compile else 1) if warmup is None else int(warmup)}


def bench_supernet(device: str = "cpu", repeats: int = 2, rounds: int = 2, batch: int = 32,
                   sizes: tuple[str, ...] = ("default", "quick"), **switch) -> dict:
    dev = torch.device(device)
    peak = matmul_peak_gflops(dev)
    sw = switches(**switch)
    result = {"benchmark": "supernet", "what": "one weight step + one distribution step (racl strategy)",
              "batch": batch, "switches": sw, "machine": describe_machine(dev), "matmul_peak_gflops": peak,
              "cases": {}}
    for size in sizes:
        common = {"case": "supernet_step", "size": size, "batch": batch, "device": device,
                  "repeats": repeats, **sw}
        r = compare({"fast": {**common, "ops": "fast"}, "reference": {**common, "ops": "reference"}}, rounds)
        result["cases"][size] = _summary(r["fast"], r["reference"], peak)
    return result


def bench_search(device: str = "cpu", repeats: int = 2, rounds: int = 2, batch: int = 32, size: str = "default",
                 gradnorm_subset: float = 1.0, strategies: tuple[str, ...] = ("racl",), **switch) -> dict:
    """One full search step (weight step with the strategy's objective + architecture step) of each of
    `strategies` at its defaults (racl: the input-gradient-norm term, gamma = robust.gamma's default) and of
    first-order darts, same supernet and batch, alternating processes. steps[name]: its median, every
    run, peak RSS and ratio = its median / darts's; racl_s, darts_s, ratio: racl's (when timed)."""
    from racl.search.config import GAMMA_DEFAULT

    dev = torch.device(device)
    sw = switches(**switch)
    common = {"case": "supernet_step", "ops": "fast", "size": size, "batch": batch, "device": device,
              "repeats": repeats, "gamma": None, **sw}
    names = [*dict.fromkeys(n for n in strategies if n != "darts"), "darts"]
    specs = {n: {**common, "strategy": n, **({"robust": {"gradnorm_subset": gradnorm_subset}} if n == "racl" else {})}
             for n in names}
    r = compare(specs, rounds, flops=False)
    darts_s = r["darts"]["median_s"]
    steps = {n: {"median_s": r[n]["median_s"], "times_s": r[n]["times_s"], "peak_rss_mib": r[n]["peak_rss_mib"],
                 "ratio": r[n]["median_s"] / darts_s} for n in names}
    out = {"benchmark": "search", "what": "one search step (weight step + architecture step) at each "
           "strategy's defaults vs first-order darts", "size": size, "supernet": cases.SUPERNET_SIZES[size],
           "batch": batch, "racl_gamma": GAMMA_DEFAULT, "gradnorm_subset": gradnorm_subset, "switches": sw,
           "machine": describe_machine(dev), "steps": steps, "darts_s": darts_s}
    if "racl" in steps:
        out.update(racl_s=steps["racl"]["median_s"], ratio=steps["racl"]["ratio"])
    return out


def _summary(fast: dict, ref: dict, peak: float) -> dict:
    return {"fast_s": fast["median_s"], "reference_s": ref["median_s"],
            "speedup": ref["median_s"] / fast["median_s"], "gflop": ref["gflop"],
            "fast_fraction_of_peak": _fraction(ref["gflop"], fast["median_s"], peak),  # same work: the plain count
            "reference_fraction_of_peak": _fraction(ref["gflop"], ref["median_s"], peak),
            "fast_peak_rss_mib": fast["peak_rss_mib"], "reference_peak_rss_mib": ref["peak_rss_mib"],
            "fast_cuda_peak_mib": fast["cuda_peak_mib"], "reference_cuda_peak_mib": ref["cuda_peak_mib"],
            "fast_times_s": fast["times_s"], "reference_times_s": ref["times_s"]}


def bench_attack(device: str = "cpu", repeats: int = 2, rounds: int = 2, batch: int = 32, attack: str = "pgd20",
                 **switch) -> dict:
    dev = torch.device(device)
    peak = matmul_peak_gflops(dev)
    sw = switches(**switch)
    common = {"case": "attack", "which": attack, "batch": batch, "device": device, "repeats": repeats, **sw}
    r = compare({"racl": {**common, "impl": "racl"}, "torchattacks": {**common, "impl": "torchattacks"}}, rounds)
    return {"benchmark": "attack", "attack": attack, "what": f"{ATTACKS[attack]} on RACL, C=16, 8 cells",
            "batch": batch, "switches": sw, "machine": describe_machine(dev), "matmul_peak_gflops": peak,
            "racl_images_per_s": batch / r["racl"]["median_s"],
            "torchattacks_images_per_s": batch / r["torchattacks"]["median_s"],
            "ratio": r["torchattacks"]["median_s"] / r["racl"]["median_s"],
            "gflop": r["racl"]["gflop"],
            "racl_fraction_of_peak": _fraction(r["racl"]["gflop"], r["racl"]["median_s"], peak),
            "torchattacks_fraction_of_peak": _fraction(r["racl"]["gflop"], r["torchattacks"]["median_s"], peak),
            "racl_peak_rss_mib": r["racl"]["peak_rss_mib"],
            "torchattacks_peak_rss_mib": r["torchattacks"]["peak_rss_mib"],
            "racl_times_s": r["racl"]["times_s"], "torchattacks_times_s": r["torchattacks"]["times_s"]}


def bench_train(device: str = "cpu", repeats: int = 1, rounds: int = 2, batch: int = 32,
                attack_mode: str | None = None, **switch) -> dict:
    dev = torch.device(device)
    peak = matmul_peak_gflops(dev)
    sw = switches(**switch)
    mode = TrainConfig(objective=ObjectiveConfig(attack_mode=attack_mode)).resolved().objective.attack_mode
    common = {"case": "train_step", "batch": batch, "device": device, "repeats": repeats, "attack_mode": mode, **sw}
    r = compare({"fast": {**common, "ops": "fast"}, "reference": {**common, "ops": "reference"}}, rounds)
    return {"benchmark": "train", "what": f"one PGD-7 adversarial training step ({mode}-mode attack), RACL "
            "C=36, 20 cells", "attack_mode": mode, "batch": batch, "switches": sw, "machine": describe_machine(dev), "matmul_peak_gflops": peak,
            **_summary(r["fast"], r["reference"], peak)}
