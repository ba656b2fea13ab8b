"""Adversarial training (method.md section 6): config, objectives, schedule, the loop, `train()`."""
from racl.training.config import TrainConfig, config_from_dict, load_config
from racl.training.losses import StepOutput, TradesAttack, make_objective
from racl.training.rundir import load_run
from racl.training.trainer import train

__all__ = ["StepOutput", "TradesAttack", "TrainConfig", "config_from_dict", "load_config", "load_run",
           "make_objective", "train"]
