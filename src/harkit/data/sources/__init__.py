"""Dataset sources, registered by name. Each returns a :class:`WindowedDataset`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harkit.data.dataset import WindowedDataset
from harkit.registry import Entry, Registry

DATASETS: Registry[WindowedDataset] = Registry("dataset")

# Sources register themselves on import.
from harkit.data.sources import uci_har as _uci_har  # noqa: E402,F401


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> WindowedDataset:
    """Load registered dataset ``name`` (from ``data_dir``, ``HARKIT_DATA_DIR`` or the cache).

    Example:
        >>> ds = load_dataset("uci-har")          # doctest: +SKIP
        >>> ds.splits["train"].X.shape            # doctest: +SKIP
        (7352, 128, 9)
    """
    factory: Callable[..., WindowedDataset] = DATASETS.get(name).factory
    return factory(data_dir=data_dir, **kwargs)


def list_datasets() -> list[Entry[WindowedDataset]]:
    return DATASETS.entries()
