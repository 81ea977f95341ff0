"""Metrics: accuracy, macro / weighted F1, per-class report and confusion matrices."""

from harkit.evaluation.metrics import EvalReport, evaluate_predictions

__all__ = ["EvalReport", "evaluate_predictions"]
