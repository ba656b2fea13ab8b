"""Benchmark plumbing on tiny cases (timings themselves are never asserted)."""
from racl.bench import run, worker


def test_worker_times_a_case_and_reports_memory() -> None:
    for attack in ("pgd20", "apgd-ce"):
        for impl in ("racl", "torchattacks"):
            out = worker.main({"case": "attack", "which": attack, "impl": impl, "batch": 2, "repeats": 1,
                               "channels": 4, "layers": 3})
            assert out["median_s"] > 0 and len(out["times_s"]) == 1 and out["peak_rss_mib"] > 0


def test_apgd_case_attacks_every_point_the_same_way_in_both() -> None:
    """Labels are the network's predictions, so pyautoattack and torchattacks (both attack only points
    classified correctly) attack all of them; their APGD-CE finds the same robust accuracy."""
    import torch

    from racl.bench import cases

    accs = {}
    for impl in ("racl", "torchattacks"):
        run_case = cases.attack(impl, 16, torch.device("cpu"), which="apgd-ce", channels=4, layers=3)
        attack, (x, y) = run_case.attack, run_case.inputs
        model = run_case.model
        assert bool((model(x).argmax(1) == y).all())
        accs[impl] = float((model(attack(x, y)).argmax(1) == y).float().mean())
    assert abs(accs["racl"] - accs["torchattacks"]) <= 2 / 16, accs


def test_summary_ratio_is_reference_over_fast() -> None:
    fast = {"median_s": 2.0, "times_s": [2.0], "gflop": 10.0, "peak_rss_mib": 1.0, "cuda_peak_mib": None}
    ref = {**fast, "median_s": 5.0, "times_s": [5.0]}
    s = run._summary(fast, ref, peak=100.0)
    assert s["speedup"] == 2.5 and s["fast_fraction_of_peak"] == 10.0 / 2.0 / 100.0


def test_flop_counts_of_the_attack_and_training_cases() -> None:
    import torch

    from racl.bench import cases

    model = cases._eval_net("fast", torch.device("cpu"), 4, 3).train()
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 10, (2,))
    fwd, input_grad = cases._model_gflop(model, x, y, param_grads=False)
    fwd2, both = cases._model_gflop(model, x, y, param_grads=True)
    # a conv/linear net: the input gradient costs one forward, the weight gradients one more
    assert fwd > 0 and fwd2 == fwd and abs(input_grad / fwd - 1) < 0.02 and abs(both / fwd - 2) < 0.02
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    out = worker.main({"case": "attack", "impl": "racl", "batch": 2, "repeats": 1, "channels": 4,
                       "layers": 3, "count_flops": True})
    assert out["gflop"] > 0


def test_convolution_gradients_count_what_their_forward_counts() -> None:
    import torch

    from racl.bench import cases

    for groups, stride in ((1, 1), (8, 1), (8, 2), (2, 2)):  # dense, depthwise, strided
        conv = torch.nn.Conv2d(8, 8, 3, stride, 1, groups=groups, bias=False)
        x = torch.rand(2, 8, 12, 12, requires_grad=True)
        with cases.flop_counter() as forward:
            out = conv(x)
        with cases.flop_counter() as backward:
            out.sum().backward()
        expected = 2 * out.numel() * 8 // groups * 9
        assert forward.get_total_flops() == expected and backward.get_total_flops() == 2 * expected


def test_bench_search_times_racl_and_darts_steps(capsys) -> None:
    """`racl bench search --json` at the tiny size: every run listed, medians and their ratio (no timing
    asserted); --size both and --gradnorm-subset outside (0, 1] or elsewhere are refused."""
    import json

    import pytest

    from racl.cli import main

    assert main(["bench", "search", "--json", "--size", "tiny", "--batch-size", "2", "--repeats", "1",
                 "--rounds", "1", "--gradnorm-subset", "0.5", "--device", "cpu",
                 "--strategies", "racl,pcdarts,advrush,gdas"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["benchmark"] == "search" and r["gradnorm_subset"] == 0.5 and r["racl_gamma"] > 0
    assert list(r["steps"]) == ["racl", "pcdarts", "advrush", "gdas", "darts"]
    for step in r["steps"].values():
        assert len(step["times_s"]) == 1 and step["peak_rss_mib"] > 0
        assert step["ratio"] == pytest.approx(step["median_s"] / r["darts_s"])
    assert r["ratio"] == pytest.approx(r["racl_s"] / r["darts_s"]) == r["steps"]["racl"]["ratio"]
    assert main(["bench", "search", "--size", "tiny", "--batch-size", "2", "--repeats", "1", "--rounds", "1",
                 "--strategies", "gdas", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "gdas runs: " in out and "darts runs: " in out and "racl" not in out.replace("racl gradnorm", "")
    for bad in (["search", "--size", "both"], ["search", "--gradnorm-subset", "0"], ["train", "--gradnorm-subset", "0.5"],
                ["attack", "--size", "quick"], ["search", "--repeats", "0"], ["search", "--strategies", "dartz"],
                ["search", "--strategies", ","], ["train", "--strategies", "gdas"]):
        assert main(["bench", *bad]) == 2, bad
        assert capsys.readouterr().err.startswith("racl: error: "), bad
