"""A run's life, one shape for `racl search`, `racl train` and `racl compare`.

    RunFolder             the output folder: `prepare` (never clobber), config.yaml, metrics.jsonl,
                          the resumable state file; nothing outside the run's own files is touched
    check_resumable       the one resume rule of every command (below)
    cosine_lr             the per-step cosine learning-rate schedule
    progress_bar          tqdm on stderr, only on a terminal and on rank 0
    claim                 an exclusive claim on one piece of shared work (several processes on one
                          comparison: each takes the cells nobody holds)
    jsonable, flatten, differences   comparing saved and given settings
The divergence guard (stop at the first non-finite loss, gradient or weight) is racl.guards.

The resume rule: `resume` continues the run in the folder from its state file, provided every
setting and the data are what they were, except `epochs` (a run may be extended or shortened; the
schedule follows the new length). If no state was saved yet (the run was killed before its first
epoch ended, or never started) it starts from the beginning, after checking that a config.yaml left
there has the same settings. `overwrite` deletes the run's own files and starts again; a folder
holding a run needs one of the two, and never both.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

from racl import distributed
from racl.errors import RaclError
from racl.io import make_dir, read_yaml, remove_temp_files, write_text, write_yaml
from racl.state import load_state, save_state

MAY_CHANGE_ON_RESUME = ("epochs",)
CONFIG, METRICS = "config.yaml", "metrics.jsonl"


def jsonable(obj: Any) -> Any:
    """The value as it reads back from JSON (tuples -> lists), for comparing saved and given values."""
    return json.loads(json.dumps(obj))


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}, 'c': 2} -> {'a.b': 1, 'c': 2} (values JSON-normalised)."""
    if not isinstance(d, dict):
        return {prefix.rstrip("."): jsonable(d)} if prefix else {"": jsonable(d)}
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = jsonable(v)
    return out


def differences(saved: Any, given: Any, ignore: Iterable[str] = ()) -> list[str]:
    """'key: saved -> given' for every (flattened) key whose values differ."""
    old, new, skip = flatten(saved), flatten(given), set(ignore)
    keys = sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys]


def check_resumable(where: Any, what: str, saved: Any, given: Any,
                    may_change: Iterable[str] = MAY_CHANGE_ON_RESUME) -> None:
    """RaclError unless `saved` and `given` agree (except the keys in `may_change`)."""
    diff = differences(saved, given, may_change)
    if diff:
        raise RaclError(f"cannot resume {where}: its {what} differs from the one given ({', '.join(diff[:4])}); "
                        "resume with the same settings, or use --overwrite to start again")


class RunFolder:
    """A run's folder. `files`: the run's own files (state first: its presence means "resumable");
    `folders`: its own subfolders (deleted by overwrite when the state file is there) and `extra` its
    other files (deleted by overwrite; neither counts as "a run is here"); `kind`: "training run", "search run", ...; `normalise`: saved config -> dict."""

    def __init__(self, path: str | Path, kind: str, files: tuple[str, ...], folders: tuple[str, ...] = (),
                 extra: tuple[str, ...] = (), normalise: Callable[[Any], Any] | None = None):
        self.path = Path(path)
        self.kind, self.files, self.folders, self.extra = kind, files, folders, extra
        self.normalise = normalise or (lambda config: config)  # a saved config as the current code writes it
        self.state = self.path / files[0]
        self.config = self.path / CONFIG
        self.metrics = self.path / METRICS

    def existing(self) -> list[str]:
        return [name for name in self.files if (self.path / name).exists()]

    def check(self, *, resume: bool, overwrite: bool) -> None:
        """The folder rule without touching anything: a folder holding a run needs --resume or
        --overwrite, never both; --out must not be a file."""
        if resume and overwrite:
            raise RaclError("choose either --resume (continue the run) or --overwrite (start again), not both")
        if self.path.exists() and not self.path.is_dir():
            raise RaclError(f"--out {self.path} is a file, not a folder")
        existing = self.existing()
        if existing and not (resume or overwrite):
            article = "an" if self.kind[:1] in "aeiou" else "a"
            raise RaclError(f"{self.path} already holds {article} {self.kind} ({', '.join(existing)}); "
                            "pass --resume to continue it or --overwrite to replace it")

    def prepare(self, *, resume: bool, overwrite: bool, config: dict | None = None) -> bool:
        """Make the folder ready (module docstring); True if there is saved state to continue from.
        `config`: the settings given, checked against a config.yaml left by a run that saved no state."""
        self.check(resume=resume, overwrite=overwrite)
        remove_temp_files(self.path, self.files + self.extra)  # left by a run killed mid-write
        if resume and self.state.is_file():
            return True
        if resume and config is not None and self.config.is_file():
            check_resumable(self.path, "config", self.normalise(read_yaml(self.config, "saved config")), config)
        make_dir(self.path)
        ours = self.state.is_file()  # the state file says the subfolders are the run's too
        for name in self.files + self.extra:  # only our own files: never a folder the user pointed at
            (self.path / name).unlink(missing_ok=True)
        for name in self.folders if ours else ():
            shutil.rmtree(self.path / name, ignore_errors=True)
        return False

    def write_config(self, config: dict) -> Path:
        return write_yaml(self.config, config)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text(encoding="utf-8").splitlines() if line.strip()]

    def write_metrics(self, records: list[dict[str, Any]]) -> Path:
        """Rewrite metrics.jsonl from the records (atomic; always consistent with the state file)."""
        return write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in records))

    def save_state(self, state: dict[str, Any]) -> Path:
        return save_state(self.state, state)

    def load_state(self) -> dict[str, Any]:
        return load_state(self.state)


def cosine_lr(lr: float, lr_min: float, epoch: int, step: int, steps_per_epoch: int, epochs: int) -> float:
    """lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2, t in fractional epochs, updated every step
    (SGDR without restarts, Loshchilov & Hutter 2017; DARTS's per-step schedule)."""
    t = (epoch + step / max(steps_per_epoch, 1)) / epochs
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t))


def progress_bar(total: int, desc: str, enabled: bool | None = None, **kw: Any) -> Any:
    """A tqdm bar on stderr; `enabled` None = only when stderr is a terminal; never off rank 0."""
    on = (sys.stderr.isatty() if enabled is None else enabled) and distributed.is_main()
    return tqdm(total=total, desc=desc, leave=False, disable=not on, file=sys.stderr, dynamic_ncols=True, **kw)



CLAIM = ".claim"


@contextlib.contextmanager
def claim(folder: str | Path) -> Iterator[dict | None]:
    """Hold an exclusive lock on `folder/.claim` while the block runs: yields None when this process
    got it, or the holder's {"pid", "host"} when another process holds it (the caller skips the work).
    An OS file lock (flock), so a killed process's claim ends with it; the file itself stays (removing
    it would let two processes lock two different files)."""
    path = Path(folder) / CLAIM
    make_dir(path.parent)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
            except ValueError:
                holder = {}
            yield holder or {"pid": None, "host": None}
            return
        try:
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
            f.flush()
            yield None
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
