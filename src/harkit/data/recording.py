"""Continuous recordings, the common currency of continuous datasets, and their windowing.

A recording is one subject's continuous multichannel signal with per-sample labels. Splits
assign whole recordings (by subject) to train / validation / test *before* windowing, and
windows are cut per recording, so no window crosses a recording or a split boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset, WindowSet
from harkit.data.skeleton import SkeletonInfo
from harkit.data.windowing import sliding_windows, window_starts
from harkit.errors import ConfigError

UNLABELED = -1
"""Label value of samples that belong to no class (gaps between annotated segments)."""

LABEL_POLICIES = ("majority", "last", "centre")


@dataclass
class Recording:
    """One subject's continuous signal.

    Attributes:
        signal: float32 ``(time, channels)``.
        labels: int64 ``(time,)`` class index per sample, :data:`UNLABELED` where unannotated.
        subject: subject id.
        session: a name unique within the dataset (e.g. ``exp01_user01``).
        meta: free-form session metadata (experiment id, repetition, device, ...).
        split: the dataset-defined split of this recording (``train``, ``val`` or ``test``)
            when the dataset's standard protocol splits by session rather than by subject
            (OPPORTUNITY); None when the split is by subject (``test_subjects``).
    """

    signal: np.ndarray
    labels: np.ndarray
    subject: int
    session: str
    meta: dict[str, Any] = field(default_factory=dict)
    split: str | None = None

    def __post_init__(self) -> None:
        if self.signal.ndim != 2:
            raise ValueError(f"{self.session}: signal must be (time, channels), got "
                             f"{self.signal.shape}")
        if self.labels.shape != (len(self.signal),):
            raise ValueError(f"{self.session}: {len(self.labels)} labels for "
                             f"{len(self.signal)} samples")
        if self.split not in (None, "train", "val", "test"):
            raise ValueError(f"{self.session}: split {self.split!r}, expected train, val, "
                             "test or None")

    def __len__(self) -> int:
        return len(self.signal)


def window_labels(labels: np.ndarray, starts: np.ndarray, window: int, policy: str,
                  n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label each window ``labels[s : s + window]``.

    Returns ``(label, labeled_fraction, purity)`` per window: the label chosen by ``policy``
    (``majority`` of labelled samples, ``last`` sample, ``centre`` sample), the fraction of
    samples that are labelled, and the fraction of labelled samples that carry the majority
    label.

    Example:
        >>> lab = np.array([0, 0, 0, 1, 1, -1, -1, -1])
        >>> y, frac, pur = window_labels(lab, np.array([0, 4]), 4, "majority", 2)
        >>> y.tolist(), frac.tolist(), pur.tolist()
        ([0, 1], [1.0, 0.25], [0.75, 1.0])
    """
    if policy not in LABEL_POLICIES:
        raise ConfigError(f"window label policy {policy!r}: expected one of {LABEL_POLICIES}")
    n = len(starts)
    if n == 0:
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty
    idx = starts[:, None] + np.arange(window)[None, :]  # (n, window) sample indices
    win = labels[idx]
    labeled = win >= 0
    counts = np.zeros((n, n_classes), dtype=np.int64)
    rows = np.repeat(np.arange(n), window)[labeled.ravel()]
    np.add.at(counts, (rows, win.ravel()[labeled.ravel()]), 1)
    n_lab = labeled.sum(1)
    majority = counts.argmax(1)
    purity = np.divide(counts.max(1), n_lab, out=np.zeros(n), where=n_lab > 0)
    if policy == "majority":
        y = np.where(n_lab > 0, majority, UNLABELED)
    elif policy == "last":
        y = win[:, -1]
    else:
        y = win[:, window // 2]
    return y.astype(np.int64), n_lab / window, purity


def kept_windows(rec: Recording, window: int, hop: int, n_classes: int,
                 label_policy: str = "majority", min_labeled: float = 0.5,
                 min_purity: float = 0.0, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """First sample and label of each window of ``rec`` that :func:`window_recordings` keeps.

    Labels are computed ``chunk`` windows at a time, so memory stays bounded even when
    windows overlap heavily (a hop of one sample).

    Example:
        >>> rec = Recording(np.zeros((8, 1), np.float32), np.array([0, 0, 0, 1, 1, -1, -1, -1]),
        ...                 subject=1, session="r")
        >>> starts, y = kept_windows(rec, 4, 2, n_classes=2)
        >>> starts.tolist(), y.tolist()
        ([0, 2], [0, 1])
    """
    starts = window_starts(len(rec), window, hop)
    kept_s, kept_y = [], []
    for i in range(0, max(len(starts), 1), chunk):  # at least once: the policy is checked
        s = starts[i : i + chunk]
        y, frac, purity = window_labels(rec.labels, s, window, label_policy, n_classes)
        keep = (y >= 0) & (frac >= min_labeled) & (purity >= min_purity)
        kept_s.append(s[keep])
        kept_y.append(y[keep])
    return np.concatenate(kept_s), np.concatenate(kept_y)


def window_recordings(recordings: list[Recording], window: int, hop: int, n_classes: int,
                      label_policy: str = "majority", min_labeled: float = 0.5,
                      min_purity: float = 0.0) -> tuple[WindowSet, np.ndarray, np.ndarray]:
    """Cut every recording into windows separately and label them.

    Windows whose chosen label is unlabelled, whose labelled fraction is below
    ``min_labeled`` or whose purity is below ``min_purity`` (1.0 drops every window that mixes
    classes) are dropped.

    Returns:
        ``(windows, recording_index, start)``: a WindowSet ``(N, window, channels)`` and, per
        window, the index of its recording in ``recordings`` and its first sample.
    """
    if window <= 0 or hop <= 0:
        raise ConfigError(f"window ({window}) and hop ({hop}) must be positive sample counts")
    Xs, ys, ss, ri, st = [], [], [], [], []
    n_ch = recordings[0].signal.shape[1] if recordings else 0
    for i, rec in enumerate(recordings):
        starts, y = kept_windows(rec, window, hop, n_classes, label_policy, min_labeled,
                                 min_purity)
        if not len(starts):
            continue
        Xs.append(sliding_windows(rec.signal, window, hop)[starts // hop])
        ys.append(y)
        ss.append(np.full(len(starts), rec.subject, dtype=np.int64))
        ri.append(np.full(len(starts), i, dtype=np.int64))
        st.append(starts)
    if not Xs:
        empty = np.empty(0, dtype=np.int64)
        return (WindowSet(np.empty((0, window, n_ch), np.float32), empty, empty), empty, empty)
    ws = WindowSet(np.ascontiguousarray(np.concatenate(Xs), dtype=np.float32),
                   np.concatenate(ys), np.concatenate(ss))
    return ws, np.concatenate(ri), np.concatenate(st)


@dataclass
class RecordingDataset:
    """A continuous dataset: recordings plus what is needed to window and split them.

    Attributes:
        name: registry name of the source.
        channels: channel names (last axis of every recording's signal).
        classes: class names; labels index into them (:data:`UNLABELED` = no class).
        sampling_rate: samples per second.
        recordings: all recordings.
        window, hop: the dataset's customary window and hop in samples.
        test_subjects: subjects of the dataset-defined test split (None: no such split).
        units: unit of each channel, by name.
        description: one line about the source.
        skeleton: for continuous skeleton recordings (each sample one frame, channels in the
            order of :meth:`~harkit.data.skeleton.SkeletonInfo.channel_names`), how a
            window unflattens to ``(time, bodies, joints, dims)``; carried into the windows
            of :meth:`to_windows` so skeleton models and augmentations see it. None for
            sensor data.
    """

    name: str
    channels: list[str]
    classes: list[str]
    sampling_rate: float
    recordings: list[Recording]
    window: int
    hop: int
    test_subjects: list[int] | None = None
    units: dict[str, str] = field(default_factory=dict)
    description: str = ""
    skeleton: SkeletonInfo | None = None

    def __post_init__(self) -> None:
        if self.skeleton is not None and self.skeleton.channel_names() != list(self.channels):
            raise ValueError(f"{self.name}: channels {self.channels[:3]}... are not those of "
                             f"the skeleton {self.skeleton.channel_names()[:3]}... "
                             f"({self.skeleton.n_channels} channels)")

    def subject_ids(self) -> list[int]:
        return sorted({r.subject for r in self.recordings})

    def resample(self, to_hz: float) -> RecordingDataset:
        """A copy with every recording resampled to ``to_hz`` (anti-aliased; labels taken
        from the nearest original sample). The customary window keeps its duration; the
        ``skeleton`` info carries over (every channel is resampled, so frames stay frames)."""
        from dataclasses import replace

        from harkit.data.resample import resample_recording

        if abs(to_hz - self.sampling_rate) < 1e-9:
            return self
        ratio = to_hz / self.sampling_rate
        return replace(self, sampling_rate=float(to_hz),
                       recordings=[resample_recording(r, self.sampling_rate, to_hz)
                                   for r in self.recordings],
                       window=max(1, round(self.window * ratio)),
                       hop=max(1, round(self.hop * ratio)))

    def split_recordings(self, test_subjects: list[int] | None = None
                         ) -> dict[str, list[Recording]]:
        """Assign whole recordings to splits, before any windowing.

        ``test_subjects`` (a subject-wise split) wins; else the recordings' own dataset-defined
        ``split`` (session-wise protocols such as OPPORTUNITY's); else the dataset's
        ``test_subjects``.
        """
        if test_subjects is None and any(r.split is not None for r in self.recordings):
            unassigned = [r.session for r in self.recordings if r.split is None]
            if unassigned:
                raise ConfigError(f"{self.name}: recordings {unassigned[:3]} have no "
                                  "dataset-defined split; set data.test_subjects")
            parts = {k: [r for r in self.recordings if r.split == k]
                     for k in ("train", "val", "test")}
            return {k: v for k, v in parts.items() if v or k != "val"}
        test = test_subjects if test_subjects is not None else self.test_subjects
        if not test:
            raise ConfigError(f"dataset {self.name!r} defines no test subjects; set "
                              "data.test_subjects")
        unknown = sorted(set(test) - set(self.subject_ids()))
        if unknown:
            raise ConfigError(f"data.test_subjects: {unknown} are not subjects of {self.name} "
                              f"({self.subject_ids()})")
        return {"train": [r for r in self.recordings if r.subject not in test],
                "test": [r for r in self.recordings if r.subject in test]}

    def to_windows(self, window: int | None = None, hop: int | None = None,
                   label_policy: str = "majority", min_labeled: float = 0.5,
                   min_purity: float = 0.0,
                   test_subjects: list[int] | None = None) -> WindowedDataset:
        """Split recordings by subject into train / test first, then window each recording.

        Args:
            window, hop: in samples (default: the dataset's).
            label_policy, min_labeled, min_purity: see :func:`window_recordings`.
            test_subjects: override the dataset-defined split with these test subjects.

        Returns:
            windows ``(n, window, channels)`` with ``train`` and ``test`` splits, and ``val``
            when the dataset defines validation recordings (then used instead of carving
            validation subjects); the dataset's ``skeleton`` info carries over.
        """
        window = window or self.window
        hop = hop or self.hop
        parts = self.split_recordings(test_subjects)
        splits = {}
        for split, recs in parts.items():
            ws, _, _ = window_recordings(recs, window, hop, len(self.classes), label_policy,
                                         min_labeled, min_purity)
            if len(ws) == 0:
                raise ConfigError(f"{self.name}: the {split} split has no windows with these "
                                  "window / label settings")
            splits[split] = ws
        return WindowedDataset(self.name, list(self.channels), list(self.classes),
                               self.sampling_rate, hop, splits, dict(self.units),
                               self.description, self.skeleton)
