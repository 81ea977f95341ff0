"""Prediction with exactly the preprocessing stored in the checkpoint."""

from harkit.inference.predictor import Predictor, read_samples_csv

__all__ = ["Predictor", "read_samples_csv"]
