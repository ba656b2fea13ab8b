"""Benchmark plumbing on tiny cases (timings themselves are never asserted)."""
from racl.bench import run, worker


def test_worker_times_a_case_and_reports_memory() -> None:
    for impl in ("racl", "torchattacks"):
        out = worker.main({"case": "attack_pgd20", "impl": impl, "batch": 2, "repeats": 1, "channels": 4,
                           "layers": 3})
        assert out["median_s"] > 0 and len(out["times_s"]) == 1 and out["peak_rss_mib"] > 0


def test_summary_ratio_is_reference_over_fast() -> None:
    fast = {"median_s": 2.0, "times_s": [2.0], "gflop": 10.0, "peak_rss_mib": 1.0, "cuda_peak_mib": None}
    ref = {**fast, "median_s": 5.0, "times_s": [5.0]}
    s = run._summary(fast, ref, peak=100.0)
    assert s["speedup"] == 2.5 and s["fast_fraction_of_peak"] == 10.0 / 2.0 / 100.0
