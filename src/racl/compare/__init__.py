"""`racl compare`: several architectures x seeds trained and attacked under one budget (docs/compare.md)."""
from racl.compare.plan import Arch, ComparePlan, check_compatible, make_plan, matched_resnet_width, parse_arch
from racl.compare.run import cell_dir, load_plan, run_cell, run_comparison
from racl.compare.table import aggregate, mean_std, results_markdown

__all__ = ["Arch", "ComparePlan", "aggregate", "cell_dir", "check_compatible", "load_plan", "make_plan",
           "matched_resnet_width", "mean_std", "parse_arch", "results_markdown", "run_cell", "run_comparison"]
