"""Plots (matplotlib imported lazily, Agg backend, files only)."""

from harkit.viz.plots import plot_confusion_matrix, plot_folds, plot_history
from harkit.viz.skeleton import (
    animate_skeleton,
    plot_skeleton_frames,
    plot_skeleton_report,
    plot_skeleton_rows,
)

__all__ = ["animate_skeleton", "plot_confusion_matrix", "plot_folds", "plot_history",
           "plot_skeleton_frames", "plot_skeleton_report", "plot_skeleton_rows"]
