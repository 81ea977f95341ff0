"""Containers for windowed data. Windows are always ``(windows, time, channels)``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.skeleton import SkeletonInfo
from harkit.errors import ConfigError, DataFormatError


def resolve_classes(found: Iterable[str], classes: Sequence[Any] | None,
                    source: str | Path, where: str) -> list[str]:
    """The class names of a user's own dataset: ``classes`` in its order when given (every
    label found must be among them), else the labels found, sorted.

    Args:
        found: the labels that occur in the data.
        classes: the user's ``data.options.classes`` (None: not given).
        source: the file or folder the labels come from (named in errors).
        where: what holds the labels, for errors (``"column 'activity'"``).

    Raises:
        ConfigError: a label found that ``classes`` does not list.
        DataFormatError: fewer than 2 classes.

    Example:
        >>> resolve_classes(["walk", "run"], None, "labels.csv", "column 'label'")
        ['run', 'walk']
        >>> resolve_classes(["walk"], ["walk", "sit"], "labels.csv", "column 'label'")
        ['walk', 'sit']
    """
    labels = sorted(set(found))
    if classes is None:
        names = labels
    else:
        names = [str(c) for c in classes]
        extra = sorted(set(labels) - set(names))
        if extra:
            raise ConfigError(f"data.options.classes: labels {extra} occur in {where} of "
                              f"{source} but are not listed in {names}")
    if len(names) < 2:
        raise DataFormatError(source, f"found {len(names)} class(es) {names} in {where}; need "
                                      "at least 2 classes")
    return names


@dataclass
class WindowSet:
    """Windows with their labels and subject ids.

    Attributes:
        X: float32 array ``(windows, time, channels)``.
        y: int64 class indices ``(windows,)`` into the dataset's ``classes``.
        subjects: int64 subject id of each window ``(windows,)``.
    """

    X: np.ndarray
    y: np.ndarray
    subjects: np.ndarray

    def __post_init__(self) -> None:
        if self.X.ndim != 3:
            raise ValueError(f"X must be (windows, time, channels), got shape {self.X.shape}")
        if not (len(self.X) == len(self.y) == len(self.subjects)):
            raise ValueError(
                f"X, y and subjects disagree on the number of windows: "
                f"{len(self.X)}, {len(self.y)}, {len(self.subjects)}"
            )

    def __len__(self) -> int:
        return len(self.X)

    @property
    def window_len(self) -> int:
        """Samples per window (``X.shape[1]``)."""
        return int(self.X.shape[1])

    def select(self, mask: np.ndarray) -> WindowSet:
        """Windows where ``mask`` is true (boolean array or index array)."""
        return WindowSet(self.X[mask], self.y[mask], self.subjects[mask])

    def subject_ids(self) -> list[int]:
        return sorted(int(s) for s in np.unique(self.subjects))

    @staticmethod
    def concat(parts: list[WindowSet]) -> WindowSet:
        """One WindowSet holding the windows of ``parts`` in order."""
        return WindowSet(np.concatenate([p.X for p in parts]),
                         np.concatenate([p.y for p in parts]),
                         np.concatenate([p.subjects for p in parts]))


@dataclass
class WindowedDataset:
    """A dataset cut into fixed-length windows with its dataset-defined splits.

    Attributes:
        name: registry name of the source.
        channels: channel names, in the order of the last axis of ``X``.
        classes: class names; ``y == i`` means ``classes[i]``.
        sampling_rate: samples per second.
        hop: samples between the starts of consecutive windows of one recording.
        splits: dataset-defined splits, e.g. ``{"train": ..., "test": ...}``.
        skeleton: for skeleton datasets, how the channels unflatten to
            ``(time, bodies, joints, dims)`` (see :mod:`harkit.data.skeleton`); None for
            sensor data.
    """

    name: str
    channels: list[str]
    classes: list[str]
    sampling_rate: float
    hop: int
    splits: dict[str, WindowSet]
    units: dict[str, str] = field(default_factory=dict)
    description: str = ""
    skeleton: SkeletonInfo | None = None

    @property
    def window_len(self) -> int:
        return next(iter(self.splits.values())).window_len

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def resplit(self, test_subjects: list[int]) -> WindowedDataset:
        """Pool every split and hold out ``test_subjects`` as the test split (a subject-wise
        protocol on a pre-windowed dataset; valid because its windows never mix subjects)."""
        pooled = WindowSet.concat(list(self.splits.values()))
        present = set(pooled.subject_ids())
        unknown = sorted(set(test_subjects) - present)
        if unknown:
            raise ConfigError(f"data.test_subjects: {unknown} are not subjects of {self.name} "
                              f"({sorted(present)})")
        mask = np.isin(pooled.subjects, list(test_subjects))
        if mask.all():
            raise ConfigError("data.test_subjects: every subject would be in the test split")
        return WindowedDataset(self.name, list(self.channels), list(self.classes),
                               self.sampling_rate, self.hop,
                               {"train": pooled.select(~mask), "test": pooled.select(mask)},
                               dict(self.units), self.description, self.skeleton)

    def select_channels(self, names: list[str]) -> WindowedDataset:
        """A copy keeping only the channels ``names``, in that order."""
        missing = [n for n in names if n not in self.channels]
        if missing:
            raise ConfigError(
                f"data.channels: unknown channel(s) {missing} for {self.name}; "
                f"available: {self.channels}"
            )
        idx = [self.channels.index(n) for n in names]
        splits = {
            k: WindowSet(v.X[:, :, idx], v.y, v.subjects) for k, v in self.splits.items()
        }
        return WindowedDataset(
            self.name, list(names), self.classes, self.sampling_rate, self.hop, splits,
            {n: self.units.get(n, "") for n in names}, self.description,
            # a subset of a skeleton's channels is no longer that skeleton
            self.skeleton if list(names) == list(self.channels) else None,
        )
