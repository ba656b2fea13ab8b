"""Adversarial training (method.md section 6): config, objectives, schedule, the loop, `train()`."""
from racl.training.config import (PRESETS, TrainConfig, apply_overrides, build_config, config_from_dict, get_preset,
                                  load_config)
from racl.training.losses import StepOutput, TradesAttack, make_objective
from racl.training.resume import load_run, run_inputs
from racl.training.trainer import train

__all__ = ["PRESETS", "StepOutput", "TradesAttack", "TrainConfig", "apply_overrides", "build_config",
           "config_from_dict", "get_preset", "load_config", "load_run", "make_objective", "run_inputs", "train"]
