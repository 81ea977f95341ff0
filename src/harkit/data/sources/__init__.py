"""Dataset sources, registered by name. Each returns a :class:`WindowedDataset`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harkit.data.dataset import WindowedDataset
from harkit.data.recording import RecordingDataset
from harkit.errors import ConfigError
from harkit.registry import Entry, Registry

AnyDataset = WindowedDataset | RecordingDataset
DATASETS: Registry[AnyDataset] = Registry("dataset")

# Sources register themselves on import.
from harkit.data.sources import berkeley_mhad as _berkeley_mhad  # noqa: E402,F401
from harkit.data.sources import custom as _custom  # noqa: E402,F401
from harkit.data.sources import hapt as _hapt  # noqa: E402,F401
from harkit.data.sources import mhad_pose as _mhad_pose  # noqa: E402,F401
from harkit.data.sources import msr_action3d as _msr_action3d  # noqa: E402,F401
from harkit.data.sources import natops as _natops  # noqa: E402,F401
from harkit.data.sources import ntu as _ntu  # noqa: E402,F401
from harkit.data.sources import openpose as _openpose  # noqa: E402,F401
from harkit.data.sources import opportunity as _opportunity  # noqa: E402,F401
from harkit.data.sources import pamap2 as _pamap2  # noqa: E402,F401
from harkit.data.sources import penn_action as _penn_action  # noqa: E402,F401
from harkit.data.sources import skoda as _skoda  # noqa: E402,F401
from harkit.data.sources import ts as _ts  # noqa: E402,F401
from harkit.data.sources import uci_har as _uci_har  # noqa: E402,F401
from harkit.data.sources import utkinect as _utkinect  # noqa: E402,F401
from harkit.data.sources import wisdm as _wisdm  # noqa: E402,F401


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> AnyDataset:
    """Load registered dataset ``name`` (from ``data_dir``, ``HARKIT_DATA_DIR`` or the cache).

    Pre-windowed sources (``uci-har``) return a :class:`WindowedDataset`; continuous sources
    (``hapt``) return a :class:`~harkit.data.recording.RecordingDataset` to be split by
    subject and then windowed (:meth:`RecordingDataset.to_windows`).

    Example:
        >>> ds = load_dataset("uci-har")          # doctest: +SKIP
        >>> ds.splits["train"].X.shape            # doctest: +SKIP
        (7352, 128, 9)
    """
    factory: Callable[..., AnyDataset] = DATASETS.get(name).factory
    import inspect

    allowed = [p for p in inspect.signature(factory).parameters if p not in ("data_dir",)]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"dataset {name!r}: unknown option(s) {unknown}; it accepts {allowed}")
    from harkit.data.store import cache_writes_on_success

    with cache_writes_on_success():  # a load that fails part-way caches nothing
        return factory(data_dir=data_dir, **kwargs)


def list_datasets() -> list[Entry[AnyDataset]]:
    return DATASETS.entries()
