"""Prediction with exactly the preprocessing stored in the checkpoint."""

from harkit.inference.ensemble import EnsemblePredictor
from harkit.inference.predictor import Predictor, read_samples_csv

__all__ = ["EnsemblePredictor", "Predictor", "read_samples_csv"]
