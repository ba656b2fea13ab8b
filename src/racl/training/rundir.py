"""A training run's output directory: refusing to clobber, resumable state, metrics log.

DIR/config.yaml        resolved TrainConfig
DIR/metrics.jsonl      one JSON record per finished epoch
DIR/last.safetensors   (+ .json sidecar) weights after the latest epoch
DIR/best.safetensors   (+ .json sidecar) weights with the best robust validation accuracy
DIR/state.safetensors  everything `--resume` needs, written last at the end of each epoch
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from racl.errors import RaclError
from racl.io import append_jsonl, make_dir, remove_temp_files, write_text, write_yaml
from racl.state import load_state, save_state

OUTPUTS = ("config.yaml", "metrics.jsonl", "state.safetensors", "last.safetensors", "last.json",
           "best.safetensors", "best.json")


def _jsonable(obj: Any) -> Any:
    """The value as it reads back from JSON (tuples -> lists), for comparing saved and given settings."""
    return json.loads(json.dumps(obj))


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.jsonl"
        self.state = self.path / "state.safetensors"
        self.last = self.path / "last.safetensors"
        self.best = self.path / "best.safetensors"
        self.tensorboard: Any = None  # a racl.tblog.TensorBoardLog that train() attaches (--tensorboard)

    def holds_run(self) -> bool:
        return any((self.path / name).exists() for name in OUTPUTS)

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse to mix runs: an existing run needs resume (continue) or overwrite (start afresh)."""
        if resume and overwrite:
            raise RaclError("choose either --resume (continue the run) or --overwrite (start again), not both")
        if self.path.exists() and not self.path.is_dir():
            raise RaclError(f"--out {self.path} exists and is not a directory")
        if resume:
            if not self.state.is_file():
                raise RaclError(f"nothing to resume in {self.path} (no state.safetensors: no epoch finished); "
                                f"start again with {'--overwrite' if self.holds_run() else 'no --resume'}")
            remove_temp_files(self.path, OUTPUTS)  # left by a run killed mid-write
            return
        if self.holds_run():
            if not overwrite:
                raise RaclError(f"{self.path} already holds a training run; pass --resume to continue it "
                                "or --overwrite to replace it")
            for name in OUTPUTS:  # only our own files: never delete a directory the user pointed at
                (self.path / name).unlink(missing_ok=True)
        remove_temp_files(self.path, OUTPUTS)
        make_dir(self.path)

    def write_config(self, config: dict) -> None:
        write_yaml(self.config, config)

    def append_metrics(self, record: dict) -> None:
        append_jsonl(self.metrics, record)
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text(encoding="utf-8").splitlines() if line]

    def truncate_metrics(self, epochs: int) -> list[dict]:
        """Keep the records of the first `epochs` epochs (a run killed after logging but before saving
        its state re-runs that epoch, which must not log it twice)."""
        records = self.read_metrics()[:epochs]
        write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in records))
        return records

    def save_state(self, state: dict) -> None:
        save_state(self.state, state)

    def load_state(self, *, config: dict, model_spec: dict, data_spec: dict) -> dict:
        """The saved state, after checking it belongs to the same config, model and data."""
        state = load_state(self.state)
        for what, given in (("config", config), ("model_spec", model_spec), ("data_spec", data_spec)):
            if _jsonable(state.get(what)) != _jsonable(given):
                raise RaclError(f"cannot resume {self.path}: its {what.replace('_', ' ')} differs from the "
                                f"one given ({_differences(state.get(what), given)}); resume with the same "
                                "settings or start a new run")
        return state


def _differences(saved: Any, given: Any) -> str:
    if isinstance(saved, dict) and isinstance(given, dict):
        keys = sorted(k for k in set(saved) | set(given) if _jsonable(saved.get(k)) != _jsonable(given.get(k)))
        return ", ".join(f"{k}: {saved.get(k)!r} -> {given.get(k)!r}" for k in keys[:4])
    return "different values"


def load_run(path: str | Path) -> dict:
    """config, model_spec and data_spec of the run in `path` (for `racl train --resume DIR`)."""
    run = RunDir(path)
    if not run.state.is_file():
        raise RaclError(f"nothing to resume in {path} (no state.safetensors)")
    state = load_state(run.state)
    return {k: state[k] for k in ("config", "model_spec", "data_spec")}
