"""Readers for the two published NAS-Bench-201 robustness data sets, in exactly their published formats.

- `meta.json` (both data sets): `{"ids": {"<nb201 index>": {"nb201-string": "|...|", "isomorph": "<index>"}},
  "epsilons": {"<attack key>": [eps, ...]}}`; `isomorph` is the index of the evaluated representative.
  Read as steffen-jung/robustness-dataset `robustness_dataset.py` (`RobustnessDataset.__init__`, `get_uid`)
  and TT2408/nasrobbench201 `nasrobbench201.py` (`NasRobBench201.__init__`) read it.
- Jung, Lukasik, Keuper (ICLR 2023), "robustness dataset": a folder with `meta.json` and one folder per data
  set (`cifar10`, `cifar100`, `ImageNet16-120`) of files `<key>_<measure>.json` holding
  `{dataset: {key: {measure: {uid: value}}}}` (`RobustnessDataset.query`). Only the `accuracy` measure is read;
  `clean` holds one number per architecture, an attack key a list aligned with `meta["epsilons"][key]`.
- NAS-RobBench-201 (Wu et al., ICLR 2024): `NAS-RobBench-201_all.json`,
  `{dataset: {uid: {metric: {"1": value}}}}` with metrics named by TT2408/nasrobbench201 `main.py`
  (`val_acc`, `val_fgsm_3.0_acc`, `val_pgd_8.0_acc`, ...), read as `res[dataset][uid][metric]['1']`
  (`NasRobBench201.get_result`), with a `meta.json` beside it.
Values are accuracies in [0, 1], as published.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from racl.errors import RaclError, shown
from racl.search_space.nb201.genotype import Nb201Genotype
from racl.search_space.nb201.index import NUM_CELLS, from_index

ROBUSTNESS_DATASET = "robustness-dataset"  # Jung et al.
NAS_ROBBENCH = "nas-robbench-201"  # Wu et al.
NAS_ROBBENCH_FILE = "NAS-RobBench-201_all.json"
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
MEASURES = ("accuracy", "confidence", "cm")

Results = dict[str, dict[int, float]]  # metric -> representative index -> value


@dataclass
class Meta:
    """`meta.json`: the architecture string and evaluated representative of each benchmark index."""

    strings: dict[int, str]
    isomorph: dict[int, int]
    epsilons: dict[str, list[Any]] = field(default_factory=dict)
    by_string: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.by_string = {s: i for i, s in self.strings.items()}

    def index_of(self, genotype: Nb201Genotype) -> int:
        index = self.by_string.get(genotype.to_string())
        if index is None:
            raise RaclError(f"architecture {genotype} is not in this meta.json")
        return index


def read_json_file(path: Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise RaclError(f"{what} not found: {path}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RaclError(f"{what} {path} is not valid JSON: {e}") from e


def read_meta(path: Path) -> Meta:
    """Read and check `meta.json` against NB201's own enumeration (racl.search_space.nb201.index)."""
    data = read_json_file(path, "benchmark meta.json")
    if not isinstance(data, dict) or not isinstance(data.get("ids"), dict):
        raise RaclError(f"{path} is not a robustness data set meta.json (no \"ids\" object)")
    strings, isomorph = {}, {}
    for key, entry in data["ids"].items():
        index = _index(key, f"{path}: id {shown(key)}")
        if not isinstance(entry, dict) or not {"nb201-string", "isomorph"} <= set(entry):
            raise RaclError(f"{path}: id {key} must hold \"nb201-string\" and \"isomorph\"")
        string = entry["nb201-string"]
        if from_index(index).to_string() != string:
            raise RaclError(f"{path}: id {key} is {shown(string)}, but NB201 index {key} is {from_index(index)}")
        strings[index] = string
        isomorph[index] = _index(entry["isomorph"], f"{path}: isomorph of id {key}")
    epsilons = data.get("epsilons", {})
    if not isinstance(epsilons, dict) or not all(isinstance(v, list) for v in epsilons.values()):
        raise RaclError(f"{path}: \"epsilons\" must map each attack key to a list of epsilons")
    return Meta(strings, isomorph, epsilons)


def _index(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isdigit() and int(value) < NUM_CELLS:
        return int(value)
    raise RaclError(f"{where}: {shown(value)} is not an NB201 index (a string of 0..{NUM_CELLS - 1})")


def kind_of_file(data: Any) -> str | None:
    """Which published file a parsed JSON document looks like: 'meta', a Jung et al. per-key file,
    NAS-RobBench-201's results, or None."""
    if isinstance(data, dict) and "ids" in data:
        return "meta"
    if not isinstance(data, dict) or not data:
        return None
    first = next(iter(data.values()))
    if not isinstance(first, dict) or not first:
        return None
    inner = next(iter(first.values()))
    if isinstance(inner, dict) and set(inner) & set(MEASURES):
        return ROBUSTNESS_DATASET
    if isinstance(inner, dict) and all(isinstance(v, (dict, int, float)) for v in inner.values()):
        return NAS_ROBBENCH
    return None


def read_robustness_dataset(root: Path, dataset: str, epsilons: dict[str, list[Any]]) -> Results:
    """Every `<key>_accuracy.json` of one data set folder, as metric -> uid -> accuracy."""
    folder = root / dataset
    files = sorted(folder.glob("*_accuracy.json")) if folder.is_dir() else []
    if not files:
        raise RaclError(f"{root} has no {dataset}/<key>_accuracy.json files (download {dataset}.zip or "
                        f"{dataset}-accuracies.zip of the robustness dataset)")
    results: Results = {}
    for file in files:
        key = file.name[: -len("_accuracy.json")]
        data = read_json_file(file, "robustness dataset file")
        try:
            values = data[dataset][key]["accuracy"]
        except (KeyError, TypeError) as e:
            raise RaclError(f"{file} does not hold [{dataset!r}][{key!r}][\"accuracy\"]") from e
        if not isinstance(values, dict):
            raise RaclError(f"{file}: [{dataset!r}][{key!r}][\"accuracy\"] must map architectures to values")
        for uid, value in values.items():
            for name, v in _named_values(key, value, epsilons.get(key), file):
                results.setdefault(name, {})[_index(uid, f"{file}: architecture")] = v
    return results


def _named_values(key: str, value: Any, eps: list[Any] | None, file: Path) -> list[tuple[str, float]]:
    """`clean` -> [("clean", v)]; an attack's list -> [("key:eps", v), ...] (list positions from 1 when
    meta.json gives no epsilons for the key)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(key, float(value))]
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
        raise RaclError(f"{file}: values must be numbers or lists of numbers, got {type(value).__name__}")
    labels = eps if eps is not None and len(eps) == len(value) else range(1, len(value) + 1)
    return [(f"{key}:{label}", float(v)) for label, v in zip(labels, value)]


def read_nas_robbench(path: Path, dataset: str, data: Any) -> Results:
    """One data set of NAS-RobBench-201_all.json, as metric -> uid -> accuracy (each metric's run '1')."""
    if not isinstance(data[dataset], dict):
        raise RaclError(f"{path}: [{dataset!r}] must map architectures to their metrics")
    results: Results = {}
    for uid, metrics in data[dataset].items():
        index = _index(uid, f"{path}: architecture")
        if not isinstance(metrics, dict):
            raise RaclError(f"{path}: [{dataset!r}][{uid!r}] must map metric names to results")
        for name, value in metrics.items():
            if isinstance(value, dict):
                value = value.get("1")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RaclError(f"{path}: [{dataset!r}][{uid!r}][{name!r}] must hold a number under '1'")
            results.setdefault(name, {})[index] = float(value)
    return results
