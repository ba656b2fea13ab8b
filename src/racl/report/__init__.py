"""Reports: figures of search and training histories, and one markdown file gathering a pipeline's runs."""
from racl.report.build import build_report
from racl.report.curves import plot_search_curves, plot_training_curves

__all__ = ["build_report", "plot_search_curves", "plot_training_curves"]
