"""Robustness evaluation: clean/robust accuracy per attack, eps sweeps, transfer matrices, honesty checks."""
from racl.evaluation.checks import run_model_checks, run_result_checks, warnings_from
from racl.evaluation.evaluate import (as_float_images, eps_sweep, evaluate_robustness, predict_correct,
                                      transfer_matrix)
from racl.evaluation.plots import plot_eps_sweep
from racl.evaluation.run import evaluate_checkpoint, evaluate_transfer

__all__ = ["as_float_images", "eps_sweep", "evaluate_checkpoint", "evaluate_transfer", "evaluate_robustness", "plot_eps_sweep", "predict_correct",
           "run_model_checks", "run_result_checks", "transfer_matrix", "warnings_from"]
