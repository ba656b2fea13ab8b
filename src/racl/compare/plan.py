"""The grid of a comparison: architectures x seeds, all trained and attacked under one budget.

The budget is one `TrainConfig` (epochs, objective, attack steps, eps, lr, batch size, channels C and
cells L of every DARTS-space network, ...) that every run shares except its `seed`; seed k gives every
architecture the same initialisation seed, data order and augmentation draws. Evaluation is shared
too: the same attacks, eps, test images (`eval_limit` drawn with `eval_seed`) and attack seed.
ResNet-18 "at matched size" gets the width whose parameter count is closest to the mean of the
DARTS-space networks in the comparison, at least MIN_WIDTH (docs/compare.md).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from racl.attacks import parse_attack_list
from racl.attacks.base import check_eps
from racl.checkpoint import build_from_spec
from racl.data import DataSplits
from racl.errors import RaclError
from racl.lifecycle import MAY_CHANGE_ON_RESUME, differences, flatten, jsonable
from racl.models import HAND_DESIGNED, count_parameters, hand_designed
from racl.search_space import resolve_genotype
from racl.search_space.resolve import from_zoo, zoo_key
from racl.training.config import SCHEMA, TrainConfig
from racl.training.modelspec import check_inputs, make_model_spec

CHECKPOINTS = ("best", "last")
MAX_WIDTH = 256
# ResNets narrower than 8 run NCHW (a torch 2.14.1 CPU channels-last crash, models/layers.py):
# the same maths, only the layout (and so the training time) differs.
MIN_WIDTH = 2


@dataclass(frozen=True)
class Arch:
    """One row of the comparison. `model`: zoo name, hand-designed name or genotype dict."""

    label: str
    source: str
    model: Any
    model_args: dict
    params: int

    def train_spec(self) -> dict:
        """What `racl.training.train` takes: the model plus build args that override the budget's."""
        return {"model": self.model, "model_args": dict(self.model_args)}


@dataclass(frozen=True)
class ComparePlan:
    archs: tuple[Arch, ...]
    seeds: tuple[int, ...]
    config: TrainConfig  # the shared budget; `seed` is replaced by each run's seed
    attacks: tuple[str, ...]
    eps: float
    eval_limit: int | None  # test images attacked (the same for every run); None = the whole test split
    eval_seed: int
    checkpoint: str  # which checkpoint is attacked: best (robust validation accuracy) or last
    data: dict  # the data spec every run trains and is evaluated on
    resnet_width: dict | None = None  # {"width", "target_params", "mode"} when resnet18 takes part

    def cells(self) -> list[tuple[Arch, int]]:
        """Every (architecture, seed) run, architecture-major."""
        return [(arch, seed) for arch in self.archs for seed in self.seeds]

    def run_config(self, seed: int) -> TrainConfig:
        return dataclasses.replace(self.config, seed=seed)

    def shared(self) -> dict:
        """Everything that must be identical across runs (and across a resume, except the budget's epochs).
        The budget is written with the keys `--set` takes (`optim.lr`, `attack.eps`, ...)."""
        budget = {k: v for k, v in flatten(SCHEMA.to_dict(self.config)).items() if k != "seed"}
        return {"budget": budget, "attacks": list(self.attacks), "eps": self.eps, "eval_limit": self.eval_limit,
                "eval_seed": self.eval_seed, "checkpoint": self.checkpoint, "data": self.data}

    def to_dict(self) -> dict:
        return jsonable({**self.shared(), "seeds": list(self.seeds), "resnet_width": self.resnet_width,
                          "archs": [dataclasses.asdict(a) for a in self.archs], "format": "racl-compare-v1"})

    @classmethod
    def from_dict(cls, d: dict) -> "ComparePlan":
        if not isinstance(d, dict) or d.get("format") != "racl-compare-v1":
            raise RaclError("plan.json is not a racl compare plan; start a new comparison with --overwrite")
        archs = tuple(Arch(**a) for a in d["archs"])
        return cls(archs, tuple(d["seeds"]), SCHEMA.set(TrainConfig(), d["budget"]), tuple(d["attacks"]), d["eps"],
                   d["eval_limit"], d["eval_seed"], d["checkpoint"], d["data"], d.get("resnet_width"))


def parse_arch(text: str) -> tuple[str, Any]:
    """'NAME', 'PATH' or 'LABEL=NAME_OR_PATH' -> (label, zoo name | hand-designed name | genotype dict)."""
    label, _, spec = text.partition("=") if "=" in text and "/" not in text.split("=")[0] else ("", "", text)
    if not spec:
        raise RaclError(f"empty architecture in {text!r}; give a zoo name, genotype file, resnet18 or LABEL=SPEC")
    if hand_designed(spec):
        return label or spec, hand_designed(spec)
    if from_zoo(spec) is not None:  # a zoo name of any space
        return label or zoo_key(spec), zoo_key(spec)
    path = Path(spec)
    genotype = resolve_genotype(spec, also=HAND_DESIGNED)  # RaclError for anything else
    if path.exists():
        name = path.name if path.is_dir() else path.resolve().parent.name
    else:  # a space's textual form (an NB201 architecture string): name it with LABEL= for a short label
        name = spec
    return label or name, genotype.to_dict()


def safe_label(label: str) -> str:
    """A label usable as a folder name."""
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", label).strip("._") or "arch"
    return clean


def count_params(model: Any, model_args: dict, config: TrainConfig, data: DataSplits) -> int:
    """Parameters (auxiliary head excluded) of the network a run would train, checked against the data."""
    spec = make_model_spec({"model": model, "model_args": model_args}, config, data)
    check_inputs(spec, data)
    return count_parameters(build_from_spec(spec))


def matched_resnet_width(target: float, config: TrainConfig, data: DataSplits) -> int:
    """The ResNet-18 width whose parameter count is closest to `target` (counts grow with width)."""
    lo, hi = MIN_WIDTH, MAX_WIDTH
    while lo < hi:  # smallest width with params >= target
        mid = (lo + hi) // 2
        if count_params("resnet18", {"width": mid}, config, data) >= target:
            hi = mid
        else:
            lo = mid + 1
    candidates = [w for w in (lo - 1, lo) if w >= MIN_WIDTH]
    return min(candidates, key=lambda w: abs(count_params("resnet18", {"width": w}, config, data) - target))


def _check_args(archs: Sequence[str], seeds: Sequence[int], eval_limit: int | None, checkpoint: str) -> None:
    if not archs:
        raise RaclError("racl compare needs --genotypes with at least one architecture")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise RaclError(f"--seeds must be distinct non-negative integers, got {list(seeds)}")
    if eval_limit is not None and eval_limit < 0:
        raise RaclError(f"--n-images must be >= 0 (0 = the whole test split), got {eval_limit}")
    if checkpoint not in CHECKPOINTS:
        raise RaclError(f"--weights must be best or last, got {checkpoint!r}")


def _resnet_width(parsed: list[tuple[str, Any]], width: int | None, config: TrainConfig,
                  data: DataSplits, darts_params: list[int]) -> dict | None:
    if not any(model == "resnet18" for _, model in parsed):
        return None
    if width is not None:
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise RaclError(f"--resnet-width must be in {MIN_WIDTH}..{MAX_WIDTH}, got {width}")
        return {"width": width, "target_params": None, "mode": "given"}
    if not darts_params:
        return {"width": 64, "target_params": None, "mode": "standard (no DARTS-space network to match)"}
    target = sum(darts_params) / len(darts_params)
    w = matched_resnet_width(target, config, data)
    clamped = w == MIN_WIDTH and count_params("resnet18", {"width": w}, config, data) > target
    mode = f"matched, clamped to the minimum width {MIN_WIDTH}" if clamped else "matched"
    return {"width": w, "target_params": round(target), "mode": mode}


def make_plan(archs: Sequence[str], seeds: Sequence[int], config: TrainConfig, data: DataSplits, *,
              attacks: Sequence[str] = ("pgd20", "autoattack"), eps: float | None = None,
              eval_limit: int | None = 500, eval_seed: int = 0, checkpoint: str = "best",
              resnet_width: int | None = None) -> ComparePlan:
    """Resolve architectures and labels, count parameters, match ResNet-18's width; nothing is written."""
    _check_args(archs, seeds, eval_limit, checkpoint)
    config = config.resolved()  # the budget as runs use it (method defaults filled in)
    attacks = tuple(parse_attack_list(",".join(attacks)))
    eps = check_eps(config.attack.eps if eps is None else eps)
    parsed = [parse_arch(a) for a in archs]
    labels = [safe_label(label) for label, _ in parsed]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise RaclError(f"two architectures are labelled {dupes[0]!r}; name them apart with LABEL=FILE")
    darts = [count_params(m, {}, config, data) if not hand_designed(m) else None for _, m in parsed]
    width = _resnet_width(parsed, resnet_width, config, data, [p for p in darts if p is not None])
    rows = []
    for text, label, (_, model), params in zip(archs, labels, parsed, darts):
        args = {"width": width["width"]} if model == "resnet18" and width else {}
        if params is None:
            params = count_params(model, args, config, data)
        rows.append(Arch(label, text, model, args, params))
    return ComparePlan(tuple(rows), tuple(int(s) for s in seeds), config, attacks, float(eps),
                       eval_limit or None, int(eval_seed), checkpoint, jsonable(data.spec()), width)


def check_compatible(saved: ComparePlan, new: ComparePlan) -> None:
    """A resumed comparison may add architectures or seeds, and change the budget's epochs (racl.lifecycle's
    rule); it may not change anything else the runs share."""
    diff = differences(saved.shared(), new.shared(), ignore=[f"budget.{k}" for k in MAY_CHANGE_ON_RESUME])
    if diff:
        raise RaclError(f"cannot resume: {', '.join(d.split(':')[0] for d in diff[:4])} differ from the saved plan; "
                        "repeat the original flags (or only `--resume --out DIR`), or use --overwrite")
    old = {a.label: a for a in saved.archs}
    for arch in new.archs:
        if arch.label in old and jsonable([old[arch.label].model, old[arch.label].model_args]) != \
                jsonable([arch.model, arch.model_args]):
            raise RaclError(f"cannot resume: architecture {arch.label!r} differs from the saved plan's "
                            "(for resnet18 pin the old width with --resnet-width); use another label or --overwrite")
