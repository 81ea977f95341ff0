"""Plots (matplotlib imported lazily, Agg backend, files only)."""

from harkit.viz.plots import plot_confusion_matrix, plot_folds, plot_history

__all__ = ["plot_confusion_matrix", "plot_folds", "plot_history"]
