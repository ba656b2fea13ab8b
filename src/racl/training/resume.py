"""What a `racl train` command runs: its own model, data and config, or the run in DIR continued.

`run_inputs` applies racl.lifecycle's resume rule on the command's behalf: with `resume` and a
saved state, the saved model, data and config are the base (what the command gives again must
agree; `train` checks); with `resume` and nothing saved yet, the command must name what to run
(then it starts from the beginning, as the killed run would have).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from racl.checkpoint import check_data
from racl.data import DataSplits
from racl.errors import RaclError
from racl.training.config import SCHEMA, TrainConfig
from racl.training.trainer import run_folder


def load_run(path: str | Path) -> dict:
    """config, model_spec, data_spec and data_info of the run in `path` (for `racl train --resume`)."""
    run = run_folder(path)
    if not run.state.is_file():
        raise RaclError(f"nothing to resume in {path} (no {run.state.name}: no epoch finished); run the original "
                        "command (with --genotype and the data flags) again with --resume or --overwrite")
    state = run.load_state()
    return {"data_info": state.get("data_info"), **{k: state[k] for k in ("config", "model_spec", "data_spec")}}


def run_inputs(out: str | Path, *, model: Any, load_data: Callable[[dict | None], DataSplits], resume: bool,
               config: dict[str, Any]) -> tuple[Any, DataSplits, TrainConfig]:
    """(model, data, config) to pass to `train`. `config`: `SCHEMA.build`'s keyword arguments (the
    command's preset, file, flag values and --set items); `load_data(recorded spec or None)`: the
    command's data (the run's recorded data spec when resuming, changed only by flags it gives; the
    trainer refuses a change). Resumed data is checked against what the model was trained on."""
    if resume and (model is None or run_folder(out).state.is_file()):
        saved = load_run(out)
        data = load_data(saved["data_spec"])
        check_data({**saved["model_spec"], "data_spec": saved["data_spec"], "data_info": saved["data_info"]},
                   data.info(), "the run being resumed")
        return model or saved["model_spec"], data, SCHEMA.build(**config, base=saved["config"])
    if model is None:
        raise RaclError("racl train needs --genotype (a zoo name, genotype file, resnet18, wrn34_10 or mobilenet_v2)")
    return model, load_data(None), SCHEMA.build(**config)
