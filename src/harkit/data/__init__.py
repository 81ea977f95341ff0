"""Data layer: dataset sources -> windows, subject-wise splits, train-only normalisation."""

from harkit.data.dataset import WindowedDataset, WindowSet
from harkit.data.sources import DATASETS, list_datasets, load_dataset

__all__ = ["DATASETS", "WindowSet", "WindowedDataset", "list_datasets", "load_dataset"]
