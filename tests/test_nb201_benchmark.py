"""Look-up in the two NB201 robustness data sets, on small generated files in exactly their published formats.

Formats followed: steffen-jung/robustness-dataset `robustness_dataset.py` (meta.json read in `__init__`,
`<root>/<dataset>/<key>_<measure>.json` read in `query` as r[dataset][key][measure][uid], `get_uid` through
meta["ids"][str(i)]["isomorph"], attack values aligned with meta["epsilons"][key]) and TT2408/nasrobbench201
`nasrobbench201.py` (res[dataset][uid][metric]['1'] after `get_uid`; metric names from its `main.py`).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from racl.cli import main
from racl.errors import RaclError
from racl.search_space.nb201 import NUM_CELLS, Nb201Genotype, from_index, representative_index
from racl.search_space.nb201.benchmark import open_benchmark, random_search
from racl.search_space.nb201.benchmark_files import read_meta
from racl.search_space.nb201.index import unique_indices
from racl.search_space.nb201.zoo import ZOO

EPSILONS = {"fgsm@Linf": [0.1, 0.5, 1.0], "pgd@Linf": [0.1, 0.5, 1.0]}
ROBBENCH_METRICS = ("val_acc", "val_fgsm_3.0_acc", "val_fgsm_8.0_acc", "val_pgd_3.0_acc", "val_pgd_8.0_acc")


def value(uid: int, salt: int) -> float:
    """A made-up accuracy in [0, 1), different per architecture and metric, with ties."""
    return ((uid * 7919 + salt * 104729) % 500) / 500


def _dump(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _meta() -> dict:
    ids = {str(i): {"nb201-string": str(from_index(i)), "isomorph": str(representative_index(from_index(i)))}
           for i in range(NUM_CELLS)}
    return {"ids": ids, "epsilons": EPSILONS}


@pytest.fixture(scope="module")
def jung(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The robustness dataset's layout: meta.json, cifar10/ and cifar100/ with <key>_<measure>.json files."""
    root = tmp_path_factory.mktemp("robustness-data")
    _dump(root / "meta.json", _meta())
    uids = unique_indices()
    for dataset in ("cifar10", "cifar100"):
        _dump(root / dataset / "clean_accuracy.json",
              {dataset: {"clean": {"accuracy": {str(u): value(u, 0) for u in uids}}}})
        _dump(root / dataset / "clean_confidence.json", {dataset: {"clean": {"confidence": {str(u): 0.9 for u in uids}}}})
    for salt, key in enumerate(EPSILONS, start=1):
        _dump(root / "cifar10" / f"{key}_accuracy.json",
              {"cifar10": {key: {"accuracy": {str(u): [value(u, 10 * salt + j) for j in range(3)] for u in uids}}}})
    _dump(root / "cifar10" / "brightness_accuracy.json",  # a corruption: a list without epsilons in meta.json
          {"cifar10": {"brightness": {"accuracy": {str(u): [value(u, 50 + j) for j in range(5)] for u in uids}}}})
    return root


def _robbench_results(datasets: tuple[str, ...]) -> dict:
    return {d: {str(u): {m: {"1": value(u, 100 + k)} for k, m in enumerate(ROBBENCH_METRICS)}
                for u in unique_indices()} for d in datasets}


@pytest.fixture(scope="module")
def robbench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NAS-RobBench-201: NAS-RobBench-201_all.json with meta.json beside it."""
    root = tmp_path_factory.mktemp("nas-robbench")
    _dump(root / "meta.json", _meta())
    _dump(root / "NAS-RobBench-201_all.json", _robbench_results(("cifar10", "cifar100", "ImageNet16-120")))
    return root


def brute_rank(values: dict[int, float], v: float) -> int:
    return 1 + sum(x > v for x in values.values())


def test_meta_is_read_and_checked(jung: Path) -> None:
    meta = read_meta(jung / "meta.json")
    resnet = ZOO["resnet"]
    assert meta.index_of(resnet) == 11472 and meta.isomorph[11472] == 2528
    assert meta.epsilons == EPSILONS


def test_lookup_in_the_robustness_dataset(jung: Path) -> None:
    bench = open_benchmark(jung)
    record = bench.lookup(ZOO["resnet"], "cifar10")
    assert (record["index"], record["representative"]) == (11472, 2528)
    assert record["representative_arch"] == str(from_index(2528))
    metrics = record["metrics"]
    assert list(metrics) == ["brightness:1", "brightness:2", "brightness:3", "brightness:4", "brightness:5", "clean",
                             "fgsm@Linf:0.1", "fgsm@Linf:0.5", "fgsm@Linf:1.0", "pgd@Linf:0.1", "pgd@Linf:0.5",
                             "pgd@Linf:1.0"]
    assert metrics["clean"]["value"] == value(2528, 0)
    assert metrics["pgd@Linf:1.0"]["value"] == value(2528, 22)  # [uid][eps index 2] of the 2nd attack key
    pgd = bench.results("cifar10")["pgd@Linf:1.0"]
    assert metrics["pgd@Linf:1.0"]["rank"] == brute_rank(pgd, value(2528, 22))
    assert metrics["pgd@Linf:1.0"]["of"] == 6466


def test_isomorphic_cells_get_their_representatives_results(jung: Path, robbench: Path) -> None:
    for path in (jung, robbench):
        bench = open_benchmark(path)
        cell, rep = from_index(25), from_index(representative_index(from_index(25)))
        assert representative_index(cell) < 25
        a, b = bench.lookup(cell, "cifar10"), bench.lookup(rep, "cifar10")
        assert a["index"] == 25 and a["representative"] == b["index"] == b["representative"]
        assert a["metrics"] == b["metrics"]


def test_ranks_count_strictly_better_architectures(robbench: Path) -> None:
    bench = open_benchmark(robbench)
    values = bench.results("cifar100")["val_fgsm_3.0_acc"]
    for uid in unique_indices()[::500]:
        assert bench.rank("cifar100", "val_fgsm_3.0_acc", values[uid]) == (brute_rank(values, values[uid]), 6466)
    best = max(values.values())
    assert bench.rank("cifar100", "val_fgsm_3.0_acc", best)[0] == 1


def test_lookup_in_nas_robbench(robbench: Path) -> None:
    for path in (robbench, robbench / "NAS-RobBench-201_all.json", robbench / "meta.json"):
        record = open_benchmark(path).lookup(ZOO["all_skip"], "ImageNet16-120", "val_pgd_8.0_acc")
        assert record["benchmark"] == "nas-robbench-201" and list(record["metrics"]) == ["val_pgd_8.0_acc"]
        assert record["metrics"]["val_pgd_8.0_acc"]["value"] == value(1835, 104)
    everything = open_benchmark(robbench).lookup(ZOO["all_skip"], "cifar10")
    assert list(everything["metrics"]) == list(ROBBENCH_METRICS)


def test_imagenet_under_main_py_name(tmp_path: Path) -> None:
    _dump(tmp_path / "meta.json", _meta())
    _dump(tmp_path / "NAS-RobBench-201_all.json", _robbench_results(("imagenet",)))
    record = open_benchmark(tmp_path).lookup(ZOO["resnet"], "ImageNet16-120", "val_acc")
    assert record["metrics"]["val_acc"]["value"] == value(2528, 100)


def test_random_search_is_the_seeded_best_of_k(robbench: Path) -> None:
    bench = open_benchmark(robbench)
    result = random_search(bench, "cifar10", k=50, seed=3)
    assert result["metric"] == "val_pgd_8.0_acc" and len(set(result["drawn"])) == 50
    values = bench.results("cifar10")["val_pgd_8.0_acc"]
    scores = [values[bench.meta.isomorph[i]] for i in result["drawn"]]
    best = result["best"]
    assert best["metrics"]["val_pgd_8.0_acc"]["value"] == max(scores)
    assert best["index"] == result["drawn"][scores.index(max(scores))]
    assert random_search(bench, "cifar10", k=50, seed=3) == result
    assert random_search(bench, "cifar10", k=50, seed=4)["drawn"] != result["drawn"]
    assert random_search(bench, "cifar10", k=NUM_CELLS, seed=0)["best"]["metrics"]["val_pgd_8.0_acc"]["rank"] == 1


def test_random_search_errors(jung: Path, robbench: Path) -> None:
    with pytest.raises(RaclError, match="no default metric"):
        random_search(open_benchmark(jung), "cifar10", k=5, seed=0)
    assert random_search(open_benchmark(jung), "cifar10", k=5, seed=0, metric="clean")["k"] == 5
    with pytest.raises(RaclError, match=r"--k must be in 1..15625"):
        random_search(open_benchmark(robbench), "cifar10", k=0, seed=0)


@pytest.mark.parametrize("make, message", [
    (lambda j, r, t: t / "missing", "benchmark path not found"),
    (lambda j, r, t: j / "cifar10" / "pgd@Linf_accuracy.json", "is a file of the robustness dataset"),
    (lambda j, r, t: t, "holds neither the robustness dataset"),
])
def test_wrong_paths(jung: Path, robbench: Path, tmp_path: Path, make, message: str) -> None:
    with pytest.raises(RaclError, match=message):
        open_benchmark(make(jung, robbench, tmp_path))


def test_nas_robbench_needs_its_meta(tmp_path: Path) -> None:
    _dump(tmp_path / "results.json", _robbench_results(("cifar10",)))
    with pytest.raises(RaclError, match="needs its meta.json beside results.json"):
        open_benchmark(tmp_path / "results.json")
    _dump(tmp_path / "other.json", {"a": [1, 2]})
    with pytest.raises(RaclError, match="is neither NAS-RobBench-201_all.json"):
        open_benchmark(tmp_path / "other.json")


def test_meta_json_must_agree_with_nb201(tmp_path: Path) -> None:
    meta = {"ids": {"0": {"nb201-string": str(from_index(1)), "isomorph": "0"}}, "epsilons": {}}
    _dump(tmp_path / "meta.json", meta)
    with pytest.raises(RaclError, match="id 0 is .* but NB201 index 0 is"):
        read_meta(tmp_path / "meta.json")
    _dump(tmp_path / "meta.json", {"ids": {"x": {}}})
    with pytest.raises(RaclError, match="is not an NB201 index"):
        read_meta(tmp_path / "meta.json")
    _dump(tmp_path / "meta.json", [])
    with pytest.raises(RaclError, match="not a robustness data set meta.json"):
        read_meta(tmp_path / "meta.json")


def test_unknown_architecture_metric_and_data_set(jung: Path, robbench: Path, tmp_path: Path) -> None:
    with pytest.raises(RaclError, match="unknown metric pgd for cifar10 in .*; known: brightness:1"):
        open_benchmark(jung).lookup(ZOO["resnet"], "cifar10", "pgd")
    with pytest.raises(RaclError, match="has no ImageNet16-120/<key>_accuracy.json"):
        open_benchmark(jung).lookup(ZOO["resnet"], "ImageNet16-120")
    partial = {"ids": {k: v for k, v in _meta()["ids"].items() if int(k) < 100}}
    _dump(tmp_path / "meta.json", partial)
    _dump(tmp_path / "NAS-RobBench-201_all.json", {"cifar10": {"0": {"val_acc": {"1": 0.5}}}})
    bench = open_benchmark(tmp_path)
    with pytest.raises(RaclError, match="is not in this meta.json"):
        bench.lookup(ZOO["resnet"], "cifar10")
    with pytest.raises(RaclError, match=r"index 1, evaluated as 1\) has no results"):
        bench.lookup(from_index(1), "cifar10")
    with pytest.raises(RaclError, match="has no data set cifar100; it has: cifar10"):
        bench.lookup(from_index(0), "cifar100")


def test_cli_lookup_and_random(jung: Path, robbench: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nb201", "lookup", "resnet", "--benchmark", str(robbench), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["index"] == 11472 and set(record["metrics"]) == set(ROBBENCH_METRICS)
    assert main(["nb201", "lookup", "11472", "--benchmark", str(jung), "--metric", "clean"]) == 0
    out = capsys.readouterr().out
    assert "(index 11472, evaluated as 2528)" in out and f"{100 * value(2528, 0):.2f}" in out and "/ 6466" in out
    assert main(["nb201", "random", "--benchmark", str(robbench), "--k", "20", "--seed", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == 20
    assert main(["nb201", "random", "--benchmark", str(robbench), "--k", "20"]) == 0
    assert "best of 20 random cells (seed 0) by val_pgd_8.0_acc" in capsys.readouterr().out


def test_cli_errors_are_one_line(jung: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nb201", "lookup", "resnet", "--benchmark", str(jung / "cifar10" / "clean_accuracy.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("racl: error: ") and "is a file of the robustness dataset" in err and err.count("\n") == 1
    assert main(["nb201", "lookup", "|bad~0|", "--benchmark", str(jung)]) == 2
    assert "racl: error: NB201 architecture string" in capsys.readouterr().err


def test_malformed_files_give_one_line_errors(tmp_path: Path) -> None:
    _dump(tmp_path / "meta.json", _meta())
    _dump(tmp_path / "cifar10" / "clean_accuracy.json", {"cifar10": {"clean": {"accuracy": [0.5]}}})
    with pytest.raises(RaclError, match="must map architectures to values"):
        open_benchmark(tmp_path).lookup(ZOO["resnet"], "cifar10")
    _dump(tmp_path / "cifar10" / "clean_accuracy.json", {"cifar100": {}})
    with pytest.raises(RaclError, match=r"does not hold \['cifar10'\]\['clean'\]\[\"accuracy\"\]"):
        open_benchmark(tmp_path).lookup(ZOO["resnet"], "cifar10")
    _dump(tmp_path / "cifar10" / "clean_accuracy.json", {"cifar10": {"clean": {"accuracy": {"2528": "high"}}}})
    with pytest.raises(RaclError, match="values must be numbers"):
        open_benchmark(tmp_path).lookup(ZOO["resnet"], "cifar10")
    robbench = tmp_path / "rb"
    _dump(robbench / "meta.json", _meta())
    _dump(robbench / "NAS-RobBench-201_all.json", {"cifar10": {"2528": {"val_acc": {"2": 0.5}}}})
    with pytest.raises(RaclError, match=r"must hold a number under '1'"):
        open_benchmark(robbench).lookup(ZOO["resnet"], "cifar10")


def test_a_search_looks_its_cell_up_when_given_a_benchmark(robbench: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from racl.cli import main

    out = tmp_path / "s"
    args = ["search", "--space", "nb201", "--preset", "tiny", "--set", "supernet.layers=1", "--dataset", "synthetic",
            "--image-size", "8", "--limit", "6", "--device", "cpu", "--no-draw", "--out", str(out)]
    assert main([*args, "--benchmark", str(robbench)]) == 0
    record = json.loads((out / "benchmark.json").read_text())
    found = Nb201Genotype.load(out / "genotype.json")
    assert record["arch"] == found.to_string() and record["metrics"]["val_pgd_8.0_acc"]["rank"] >= 1
    assert "val_pgd_8.0_acc" in capsys.readouterr().out
    bad = tmp_path / "darts"
    assert main(["search", "--preset", "tiny", "--dataset", "synthetic", "--out", str(bad), "--benchmark",
                 str(robbench)]) == 2  # a DARTS search cannot be looked up: refused before any work
    assert not bad.exists()
