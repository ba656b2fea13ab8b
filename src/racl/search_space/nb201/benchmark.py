"""Look up NAS-Bench-201 cells in the published robustness data sets: accuracies, ranks, and the
random-search-with-benchmark baseline (best of K random cells by the benchmark).

`open_benchmark(path)` takes either data set as downloaded (formats: racl.search_space.nb201.benchmark_files):
the robustness dataset's root folder (meta.json + cifar10/ ...), or NAS-RobBench-201's folder or its
`NAS-RobBench-201_all.json` (with meta.json beside it). Isomorphic cells share their representative's
results, through the file's own `isomorph` mapping. A rank is 1 + the number of evaluated (unique)
architectures with a strictly higher value, out of all those with a value.
"""
from __future__ import annotations

import bisect
import random
from pathlib import Path
from typing import Any

from racl.errors import RaclError, shown
from racl.search_space.nb201 import benchmark_files as files
from racl.search_space.nb201.benchmark_files import NAS_ROBBENCH, NAS_ROBBENCH_FILE, ROBUSTNESS_DATASET
from racl.search_space.nb201.genotype import Nb201Genotype

DEFAULT_METRIC = {NAS_ROBBENCH: "val_pgd_8.0_acc", ROBUSTNESS_DATASET: None}  # PGD at its training eps 8/255
_ALIASES = {"ImageNet16-120": ("ImageNet16-120", "imagenet16-120", "imagenet")}  # main.py --data imagenet


class Benchmark:
    """One opened data set: `lookup` a cell, `rank` a value, `results` of a data set (metric -> uid -> value)."""

    def __init__(self, kind: str, path: Path, meta: files.Meta, data: Any = None):
        self.kind, self.path, self.meta, self._data = kind, path, meta, data
        self._results: dict[str, files.Results] = {}
        self._sorted: dict[tuple[str, str], list[float]] = {}

    def results(self, dataset: str) -> files.Results:
        """metric -> representative index -> accuracy for one data set, read on first use."""
        if dataset not in self._results:
            self._results[dataset] = self._load(dataset)
        return self._results[dataset]

    def _load(self, dataset: str) -> files.Results:
        if self.kind == ROBUSTNESS_DATASET:
            if dataset not in files.DATASETS:
                raise RaclError(f"unknown data set {shown(dataset)}; the robustness dataset has "
                                f"{', '.join(files.DATASETS)}")
            return files.read_robustness_dataset(self.path, dataset, self.meta.epsilons)
        return files.read_nas_robbench(self.path, self._file_key(dataset), self._data)

    def _file_key(self, dataset: str) -> str:
        for key in _ALIASES.get(dataset, (dataset,)):
            if key in self._data:
                return key
        raise RaclError(f"{self.path} has no data set {shown(dataset)}; it has: {', '.join(map(shown, self._data))}")

    def metric_values(self, dataset: str, metric: str) -> dict[int, float]:
        results = self.results(dataset)
        if metric not in results:
            raise RaclError(f"unknown metric {shown(metric)} for {dataset} in {self.path}; "
                            f"known: {', '.join(results)}")
        return results[metric]

    def rank(self, dataset: str, metric: str, value: float) -> tuple[int, int]:
        """(1 + number of architectures with a strictly higher value, number with a value)."""
        key = (dataset, metric)
        if key not in self._sorted:
            self._sorted[key] = sorted(self.metric_values(dataset, metric).values())
        ordered = self._sorted[key]
        return 1 + len(ordered) - bisect.bisect_right(ordered, value), len(ordered)

    def lookup(self, genotype: Nb201Genotype, dataset: str, metric: str | None = None) -> dict[str, Any]:
        """The cell's published accuracies (one metric, or all of them) with their ranks."""
        index = self.meta.index_of(genotype)
        uid = self.meta.isomorph[index]
        names = [metric] if metric else list(self.results(dataset))
        metrics = {}
        for name in names:
            value = self.metric_values(dataset, name).get(uid)
            rank, total = self.rank(dataset, name, value) if value is not None else (None, None)
            metrics[name] = {"value": value, "rank": rank, "of": total}
        if all(m["value"] is None for m in metrics.values()):
            raise RaclError(f"architecture {genotype} (index {index}, evaluated as {uid}) has no results for "
                            f"{dataset} in {self.path}")
        return {"benchmark": self.kind, "dataset": dataset, "arch": genotype.to_string(), "index": index,
                "representative": uid, "representative_arch": self.meta.strings.get(uid), "metrics": metrics}


def open_benchmark(path: str | Path) -> Benchmark:
    """Either robustness data set from the path a user downloaded it to (module docstring)."""
    path = Path(path)
    if not path.exists():
        raise RaclError(f"benchmark path not found: {path}")
    if path.is_file() and path.name == "meta.json":
        path = path.parent
    if path.is_dir():
        if (path / NAS_ROBBENCH_FILE).is_file():
            return _open_nas_robbench(path / NAS_ROBBENCH_FILE)
        if any((path / d).is_dir() for d in files.DATASETS):
            return Benchmark(ROBUSTNESS_DATASET, path, files.read_meta(path / "meta.json"))
        raise RaclError(f"{path} holds neither the robustness dataset (meta.json and cifar10/, cifar100/, "
                        f"ImageNet16-120/) nor NAS-RobBench-201 ({NAS_ROBBENCH_FILE} and meta.json)")
    return _open_nas_robbench(path)


def _open_nas_robbench(path: Path) -> Benchmark:
    data = files.read_json_file(path, "benchmark file")
    kind = files.kind_of_file(data)
    if kind == ROBUSTNESS_DATASET:
        raise RaclError(f"{path} is a file of the robustness dataset (Jung et al.: <dataset>/<key>_<measure>.json); "
                        "pass its root folder, the one holding meta.json")
    if kind != NAS_ROBBENCH:
        raise RaclError(f"{path} is neither {NAS_ROBBENCH_FILE} ({{dataset: {{architecture: {{metric: "
                        "{'1': value}}}}) nor a robustness dataset folder")
    meta_path = path.parent / "meta.json"
    if not meta_path.is_file():
        raise RaclError(f"NAS-RobBench-201 needs its meta.json beside {path.name} (in {path.parent})")
    return Benchmark(NAS_ROBBENCH, path, files.read_meta(meta_path), data)


def random_search(bench: Benchmark, dataset: str, k: int, seed: int, metric: str | None = None) -> dict[str, Any]:
    """Best of K cells drawn uniformly without replacement from the cells the file covers (all 15,625 in the
    published files), scored by the benchmark: the baseline a search should beat at equal cost."""
    metric = metric or DEFAULT_METRIC[bench.kind]
    if metric is None:
        raise RaclError("the robustness dataset has no default metric for random search; pass --metric "
                        "(racl nb201 lookup ARCH --benchmark PATH lists them)")
    values = bench.metric_values(dataset, metric)
    pool = [i for i, uid in sorted(bench.meta.isomorph.items()) if uid in values]
    if not 1 <= k <= len(pool):
        raise RaclError(f"--k must be in 1..{len(pool)} (the cells with a {metric} value), got {k}")
    drawn = random.Random(seed).sample(pool, k)
    best = max(drawn, key=lambda i: values[bench.meta.isomorph[i]])  # ties: the first drawn
    record = bench.lookup(Nb201Genotype.from_string(bench.meta.strings[best]), dataset, metric)
    return {"benchmark": bench.kind, "dataset": dataset, "metric": metric, "k": k, "seed": seed,
            "drawn": drawn, "best": record}
