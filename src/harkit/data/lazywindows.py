"""Windows gathered on demand from concatenated recordings, in memory or memory-mapped.

Materialised windows cost ``N * T * C`` floats; with heavy overlap (a hop of one sample) that is
``T`` times the raw signal. A :class:`WindowView` keeps the raw samples once, as one contiguous
float32 array ``(S, C)`` (in memory, or an :class:`numpy.memmap` of a window cache file), plus
the first sample, label and subject of each window. ``view[idx]`` gathers a batch with one
vectorised ``take`` and normalises it, so the Trainer indexes a view exactly as it indexes the
materialised tensor, with the same numbers, and a dataset whose windows do not fit in memory
still trains (``data.window_cache=mmap``).

The window cache (``<cache>/windows``, beside the parsed-data cache of
:mod:`harkit.data.store`) holds, per dataset and windowing configuration, three files named by a
hash of the source samples, labels and windowing parameters: ``<stem>.f32`` (raw samples),
``<stem>.index.npz`` (per split: window starts, labels, subjects) and ``<stem>.json`` (shape,
dtype, digests, parameters). Each is written to a temporary sibling, fsynced and renamed; the
JSON header is written last and is what makes an entry trusted, so a crash at any point leaves
nothing that a later run would use. A changed source or windowing parameter gives another hash,
hence another entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harkit.data.dataset import WindowedDataset, WindowSet
from harkit.data.recording import Recording, RecordingDataset, kept_windows
from harkit.data.store import cache_dir, file_lock
from harkit.data.transforms import (
    Identity,
    MinMaxScaler,
    Normalizer,
    SkeletonStandardizer,
    Standardizer,
)
from harkit.errors import ConfigError, DataFormatError
from harkit.io import atomic_open, atomic_write_text, fsync_dir

log = logging.getLogger(__name__)

WINDOW_CACHE_MODES = ("off", "memory", "mmap")
"""Values of ``data.window_cache``: materialised windows (``off``), or a :class:`WindowView`
over samples held in memory or memory-mapped from the window cache."""

CACHE_FORMAT = "harkit-window-cache"
CACHE_VERSION = 1
_CHUNK_VALUES = 1 << 22  # values per chunk when windows are gathered in bulk (16 MiB of f32)

Index = int | slice | np.ndarray | torch.Tensor | Sequence[int]


class WindowView:
    """Windows ``(N, T, C)`` of one contiguous sample array, gathered on demand.

    Holds the samples of every recording concatenated into one float32 array ``(S, C)``
    (in memory or an :class:`numpy.memmap`) and, per window, its first sample (an int64
    offset into the samples), class index and subject; optionally the per-channel ``mean``
    and ``std`` of a fitted normaliser. ``view[idx]`` (an int, slice, index or boolean
    array / tensor) gathers ``samples[starts[idx, None] + arange(T)]`` in one vectorised
    ``take`` and normalises it: a float32 tensor ``(len(idx), T, C)`` equal, bit for bit, to
    indexing the materialised, normalised windows. Memory: ``S * C`` floats and three int64
    per window, never ``N * T * C``.

    The Trainer accepts a view wherever it takes training or validation windows ``X``: it
    only needs ``X[idx]``, ``X[i : i + b]`` and ``len(X)``.

    Args:
        samples: float32 ``(S, C)``: every recording's samples, one after the other.
        starts: int64 ``(N,)``: first sample of each window (windows never cross recordings;
            that is the caller's concern).
        window: samples per window ``T``.
        y: int64 ``(N,)`` class indices (default: zeros).
        subjects: int64 ``(N,)`` subject ids (default: zeros).
        mean, std: float32 ``(C,)``: windows are returned as ``(x - mean) / std`` when given.
        device: the device gathered batches are moved to (default: CPU).

    Example:
        >>> samples = np.arange(12, dtype=np.float32).reshape(6, 2)   # (S=6, C=2)
        >>> view = WindowView(samples, np.array([0, 1, 3]), window=3)
        >>> view.shape
        (3, 3, 2)
        >>> view[torch.tensor([2])][0, :, 0].tolist()   # window 2 = samples 3, 4, 5 of channel 0
        [6.0, 8.0, 10.0]
    """

    def __init__(self, samples: np.ndarray, starts: np.ndarray, window: int,
                 y: np.ndarray | None = None, subjects: np.ndarray | None = None,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None,
                 device: torch.device | str | None = None) -> None:
        if samples.ndim != 2 or samples.dtype != np.float32:
            raise ValueError(f"samples must be float32 (S, C), got {samples.dtype} "
                             f"{samples.shape}")
        starts = np.asarray(starts, dtype=np.int64)
        n = len(starts)
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        if n and (starts.min() < 0 or starts.max() + window > len(samples)):
            raise ValueError(f"window starts reach beyond the {len(samples)} samples "
                             f"(window {window}, starts {starts.min()}..{starts.max()})")
        self.samples = samples
        self.starts = starts
        self.window = int(window)
        self.y = np.zeros(n, np.int64) if y is None else np.asarray(y, dtype=np.int64)
        self.subjects = (np.zeros(n, np.int64) if subjects is None
                         else np.asarray(subjects, dtype=np.int64))
        if not (len(self.y) == len(self.subjects) == n):
            raise ValueError(f"starts, y and subjects disagree on the number of windows: {n}, "
                             f"{len(self.y)}, {len(self.subjects)}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self.device = None if device is None else torch.device(device)
        # a plain ndarray over the same buffer (a memmap's own indexing returns memmaps)
        self._data = np.asarray(samples)
        self._offsets = np.arange(self.window, dtype=np.int64)

    # -- what the Trainer uses -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.starts)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(N, T, C)``, as the materialised windows."""
        return (len(self.starts), self.window, int(self.samples.shape[1]))

    @property
    def ndim(self) -> int:
        return 3

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def __getitem__(self, idx: Index) -> torch.Tensor:
        """Windows ``idx`` as a float32 tensor ``(len(idx), T, C)`` (``(T, C)`` for an int)."""
        if isinstance(idx, (int, np.integer)):
            return self[np.array([int(idx)])][0]
        if isinstance(idx, torch.Tensor):
            idx = idx.detach().cpu().numpy()
        starts = self.starts[idx if isinstance(idx, slice) else np.asarray(idx)]
        out = torch.from_numpy(self._gather(starts))
        return out if self.device is None else out.to(self.device)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> WindowView:
        """This view with batches moved to ``device`` (as ``Tensor.to``; nothing is copied
        now). Only float32 is offered."""
        if dtype is not None and dtype != torch.float32:
            raise TypeError(f"a WindowView gives float32 windows, not {dtype}")
        if device is None:
            return self
        return self._replace(device=device)

    # -- building blocks -------------------------------------------------------------------
    def _gather(self, starts: np.ndarray) -> np.ndarray:
        """Windows starting at ``starts`` as float32 ``(n, T, C)``, normalised."""
        rows = starts[:, None] + self._offsets  # (n, T) sample indices, time order kept
        out = np.take(self._data, rows, axis=0)  # (n, T, C): one gather, no Python loop
        if self.mean is not None and self.std is not None:
            # the operations of Standardizer.transform, in place: the same float32 results
            np.subtract(out, self.mean, out=out)
            np.divide(out, self.std, out=out)
        return out

    def _replace(self, **changes: Any) -> WindowView:
        fields: dict[str, Any] = {
            "samples": self.samples, "starts": self.starts, "window": self.window, "y": self.y,
            "subjects": self.subjects, "mean": self.mean, "std": self.std,
            "device": self.device}
        fields.update(changes)
        return WindowView(**fields)

    def chunks(self, raw: bool = False) -> Iterator[np.ndarray]:
        """The windows in order, as float32 arrays ``(k, T, C)`` of a bounded size
        (normalised unless ``raw``)."""
        view = self._replace(mean=None, std=None) if raw else self
        k = max(1, _CHUNK_VALUES // (self.window * self.shape[2]))
        for i in range(0, len(self), k):
            yield view._gather(self.starts[i : i + k])

    def to_numpy(self) -> np.ndarray:
        """Materialise every window: float32 ``(N, T, C)`` (``N * T * C`` floats of memory)."""
        out = np.empty(self.shape, dtype=np.float32)
        i = 0
        for part in self.chunks():
            out[i : i + len(part)] = part
            i += len(part)
        return out

    def to_tensor(self) -> torch.Tensor:
        """Materialise every window as a float32 tensor ``(N, T, C)`` on CPU."""
        return torch.from_numpy(self.to_numpy())

    @property
    def nbytes(self) -> int:
        """Bytes behind the view (samples, in memory or on disk, and the per-window arrays):
        ``O(S * C + N)``, where the materialised windows take ``4 * N * T * C``."""
        return int(self.samples.nbytes + self.starts.nbytes + self.y.nbytes
                   + self.subjects.nbytes)

    @property
    def memory_mapped(self) -> bool:
        return isinstance(self.samples, np.memmap)

    # -- WindowSet-like operations ----------------------------------------------------------
    def select(self, mask: np.ndarray) -> WindowView:
        """The windows where ``mask`` is true (boolean or index array), sharing the samples."""
        return self._replace(starts=self.starts[mask], y=self.y[mask],
                             subjects=self.subjects[mask])

    def normalized(self, norm: Normalizer) -> WindowView:
        """This view returning windows transformed by the fitted ``norm``.

        Raises:
            ValueError: the view is already normalised.
        """
        if self.mean is not None:
            raise ValueError("this WindowView is already normalised")
        if isinstance(norm, Identity):
            return self
        if norm.mean is None or norm.std is None:
            raise RuntimeError("normalized() needs a fitted normaliser")
        if len(norm.mean) != self.shape[2]:
            raise ConfigError(f"input has {self.shape[2]} channels, the normaliser was fitted "
                              f"on {len(norm.mean)}")
        return self._replace(mean=norm.mean, std=norm.std)

    def subject_ids(self) -> list[int]:
        return sorted(int(s) for s in np.unique(self.subjects))

    @staticmethod
    def concat(views: Sequence[WindowView]) -> WindowView:
        """One view of the windows of ``views`` in order (they must share their samples)."""
        first = views[0]
        if any(v.samples is not first.samples or v.window != first.window
               or v.mean is not first.mean for v in views):
            raise ValueError("only views of the same samples, window and normalisation concat")
        return first._replace(starts=np.concatenate([v.starts for v in views]),
                              y=np.concatenate([v.y for v in views]),
                              subjects=np.concatenate([v.subjects for v in views]))

    def __repr__(self) -> str:
        where = "memory-mapped" if self.memory_mapped else "in memory"
        return (f"WindowView({len(self)} windows of {self.window} x {self.shape[2]} over "
                f"{len(self.samples)} samples {where}"
                f"{', normalised' if self.mean is not None else ''})")


class LazyWindowSet(WindowSet):
    """A :class:`~harkit.data.WindowSet` whose windows stay in a :class:`WindowView`.

    Everything that works on labels and subjects (``select``, ``subject_ids``, splits) stays
    lazy; ``X`` materialises the windows (normalised if the view is) for code that needs an
    array, such as evaluation. The training path takes :attr:`view` instead.
    """

    def __init__(self, view: WindowView) -> None:  # X is derived, so no dataclass __init__
        self.view = view
        self.y = view.y
        self.subjects = view.subjects

    @property
    def X(self) -> np.ndarray:
        """All windows materialised, float32 ``(N, T, C)``."""
        return self.view.to_numpy()

    @X.setter
    def X(self, value: np.ndarray) -> None:
        raise AttributeError("a LazyWindowSet's windows come from its view; build a new one")

    def __len__(self) -> int:
        return len(self.view)

    @property
    def window_len(self) -> int:
        return self.view.window

    def select(self, mask: np.ndarray) -> LazyWindowSet:
        return LazyWindowSet(self.view.select(mask))

    def normalized(self, norm: Normalizer) -> LazyWindowSet:
        """These windows transformed by the fitted ``norm`` (still lazy)."""
        return LazyWindowSet(self.view.normalized(norm))

    @staticmethod
    def join(parts: Sequence[WindowSet]) -> LazyWindowSet:
        """:meth:`WindowSet.concat` for lazy sets of the same samples."""
        views = [p.view for p in parts if isinstance(p, LazyWindowSet)]
        if len(views) != len(parts):
            raise TypeError("LazyWindowSet.join needs LazyWindowSets")
        return LazyWindowSet(WindowView.concat(views))

    def __repr__(self) -> str:
        return f"LazyWindowSet({self.view!r})"


# -- normaliser fitting without materialising -----------------------------------------------

def fit_normalizer(norm: Normalizer, view: WindowView) -> Normalizer:
    """Fit ``norm`` on the windows of ``view`` as ``norm.fit(materialised windows)`` would,
    with the windows gathered a bounded chunk at a time (memory ``O(chunk)``).

    A :class:`~harkit.data.transforms.Standardizer` sums the samples of every window in
    window order, as numpy reduces a ``(N*T, C)`` array along its first axis (one row after
    the other), so the fitted mean and std equal those of the materialised path bit for bit
    for multichannel data; with one channel numpy sums pairwise and they agree to float64
    rounding. Min-max statistics are exact.

    Raises:
        ConfigError: a skeleton normaliser (fit it on materialised windows:
            ``data.window_cache=off``).
    """
    if isinstance(norm, SkeletonStandardizer):
        raise ConfigError("data.window_cache: the skeleton normaliser is fitted on "
                          "materialised windows only; use data.window_cache=off on skeleton "
                          "datasets")
    if isinstance(norm, Identity):
        return norm
    n_ch = view.shape[2]
    if len(view) == 0:
        raise ConfigError("cannot fit the normaliser on an empty training split")
    if isinstance(norm, MinMaxScaler):
        lo = np.full(n_ch, np.inf)
        hi = np.full(n_ch, -np.inf)
        for part in view.chunks(raw=True):
            flat = part.reshape(-1, n_ch)  # (k*T, C): channel axis kept
            lo = np.minimum(lo, flat.min(0))
            hi = np.maximum(hi, flat.max(0))
        norm.mean = lo.astype(np.float32)
        norm.std = np.where(hi - lo > 1e-8, hi - lo, 1.0).astype(np.float32)
        return norm
    if not isinstance(norm, Standardizer):  # pragma: no cover - Normalizer is a closed union
        raise ConfigError(f"cannot fit {type(norm).__name__} on a WindowView")
    count = len(view) * view.window
    total = _sequential_sum(part.reshape(-1, n_ch).astype(np.float64)
                            for part in view.chunks(raw=True))
    mean = total / count
    squares = _sequential_sum(np.square(part.reshape(-1, n_ch).astype(np.float64) - mean)
                              for part in view.chunks(raw=True))
    std = np.sqrt(squares / count)
    norm.mean = mean.astype(np.float32)
    norm.std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
    return norm


def _sequential_sum(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Column sums of the rows of all ``blocks`` ``(k, C)`` added one after the other: the
    running total joins each block's first row, so the order of additions is that of one
    ``sum(axis=0)`` over the stacked rows."""
    acc: np.ndarray | None = None
    for block in blocks:
        if not len(block):
            continue
        if acc is not None:
            block[0] += acc
        acc = block.sum(0)
    if acc is None:
        raise ValueError("no rows to sum")
    return acc


# -- building views from datasets ---------------------------------------------------------------

def _check_mode(mode: str) -> None:
    if mode not in ("memory", "mmap"):
        raise ConfigError(f"data.window_cache={mode!r}: expected one of "
                          f"{', '.join(WINDOW_CACHE_MODES)}")


def window_cache_dir() -> Path:
    """Where window caches live: ``<harkit cache>/windows`` (beside ``parsed/``)."""
    return cache_dir() / "windows"


def lazy_recording_windows(ds: RecordingDataset, mode: str, window: int | None = None,
                           hop: int | None = None, label_policy: str = "majority",
                           min_labeled: float = 0.5, min_purity: float = 0.0,
                           test_subjects: list[int] | None = None,
                           channels: list[str] | None = None,
                           directory: Path | None = None) -> WindowedDataset:
    """:meth:`RecordingDataset.to_windows` without materialising the windows.

    The same windows, labels, subjects and order, as :class:`LazyWindowSet` splits over one
    concatenation of the recordings' samples: in memory (``mode="memory"``) or memory-mapped
    from the window cache (``"mmap"``; built on first use, see the module docstring).

    Args:
        ds: the recordings.
        mode: ``memory`` or ``mmap``.
        window, hop, label_policy, min_labeled, min_purity, test_subjects: as
            :meth:`RecordingDataset.to_windows`.
        channels: keep only these channels, in this order (``data.channels``).
        directory: the window cache directory (default: :func:`window_cache_dir`).

    Raises:
        ConfigError: an unknown mode or channel, or a split without windows.
        DataFormatError: a damaged cache entry (naming its file).
    """
    _check_mode(mode)
    window = window or ds.window
    hop = hop or ds.hop
    names, cols = _channels(ds.name, list(ds.channels), channels)
    parts = ds.split_recordings(test_subjects)
    recs: list[tuple[str, Recording]] = [(k, r) for k, rs in parts.items() for r in rs]

    def signals() -> Iterator[np.ndarray]:
        for _, r in recs:
            sig = r.signal if cols is None else r.signal[:, cols]
            yield np.ascontiguousarray(sig, dtype=np.float32)

    def index() -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, list[np.ndarray]]] = {
            k: {"starts": [], "y": [], "subjects": []} for k in parts}
        offset = 0
        for split, r in recs:
            starts, y = kept_windows(r, window, hop, len(ds.classes), label_policy,
                                     min_labeled, min_purity)
            out[split]["starts"].append(starts + offset)
            out[split]["y"].append(y)
            out[split]["subjects"].append(np.full(len(starts), r.subject, dtype=np.int64))
            offset += len(r)
        return {k: {a: np.concatenate(v[a]) if v[a] else np.empty(0, np.int64) for a in v}
                for k, v in out.items()}

    def source_hash(h: Any) -> None:
        for split, r in recs:
            h.update(f"{split}|{r.session}|{r.subject}|{r.signal.shape}|".encode())
            h.update(np.ascontiguousarray(r.labels, dtype=np.int64).data)
        for sig in signals():
            h.update(sig.data)

    params = {"dataset": ds.name, "kind": "recordings", "window": window, "hop": hop,
              "label_policy": label_policy, "min_labeled": min_labeled,
              "min_purity": min_purity, "test_subjects": test_subjects, "channels": names,
              "classes": list(ds.classes), "sampling_rate": ds.sampling_rate}
    samples, idx = _samples_and_index(mode, ds.name, params, signals, index, source_hash,
                                      int(sum(len(r) for _, r in recs)), len(names), directory)
    splits: dict[str, WindowSet] = {}
    for split in parts:
        v = WindowView(samples, idx[split]["starts"], window, idx[split]["y"],
                       idx[split]["subjects"])
        if len(v) == 0:
            raise ConfigError(f"{ds.name}: the {split} split has no windows with these window "
                              "/ label settings")
        splits[split] = LazyWindowSet(v)
    if "train" not in splits:
        raise ConfigError(f"dataset {ds.name!r} has no 'train' split")
    skeleton = ds.skeleton if names == list(ds.channels) else None
    units = dict(ds.units) if cols is None else {n: ds.units.get(n, "") for n in names}
    return WindowedDataset(ds.name, names, list(ds.classes), ds.sampling_rate, hop, splits,
                           units, ds.description, skeleton)


def lazy_windowed(ds: WindowedDataset, mode: str, directory: Path | None = None
                  ) -> WindowedDataset:
    """A pre-windowed dataset as :class:`LazyWindowSet` splits over its windows laid end to
    end (``starts = i * T``): in memory, or memory-mapped from the window cache (``mmap``),
    so the windows leave the process's memory once the source's arrays are dropped.

    Raises:
        ConfigError: an unknown mode.
        DataFormatError: a damaged cache entry (naming its file).
    """
    _check_mode(mode)
    T, C = ds.window_len, ds.n_channels
    sets = list(ds.splits.items())

    def signals() -> Iterator[np.ndarray]:
        for _, ws in sets:
            yield np.ascontiguousarray(ws.X, dtype=np.float32).reshape(-1, C)

    def index() -> dict[str, dict[str, np.ndarray]]:
        out, offset = {}, 0
        for k, ws in sets:
            out[k] = {"starts": offset + np.arange(len(ws), dtype=np.int64) * T,
                      "y": ws.y.astype(np.int64), "subjects": ws.subjects.astype(np.int64)}
            offset += len(ws) * T
        return out

    def source_hash(h: Any) -> None:
        for k, ws in sets:
            h.update(f"{k}|{len(ws)}|".encode())
            h.update(np.ascontiguousarray(ws.y, dtype=np.int64).data)
            h.update(np.ascontiguousarray(ws.subjects, dtype=np.int64).data)
        for sig in signals():
            h.update(sig.data)

    params = {"dataset": ds.name, "kind": "windows", "window": T, "channels": list(ds.channels),
              "classes": list(ds.classes)}
    samples, idx = _samples_and_index(mode, ds.name, params, signals, index, source_hash,
                                      sum(len(ws) for _, ws in sets) * T, C, directory)
    splits: dict[str, WindowSet] = {
        k: LazyWindowSet(WindowView(samples, idx[k]["starts"], T, idx[k]["y"],
                                    idx[k]["subjects"])) for k, _ in sets}
    return WindowedDataset(ds.name, list(ds.channels), list(ds.classes), ds.sampling_rate,
                           ds.hop, splits, dict(ds.units), ds.description, ds.skeleton)


def _channels(name: str, available: list[str], wanted: list[str] | None
              ) -> tuple[list[str], list[int] | None]:
    """The kept channel names and their columns (None: all, in order)."""
    if not wanted:
        return available, None
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ConfigError(f"data.channels: unknown channel(s) {missing} for {name}; "
                          f"available: {available}")
    return list(wanted), [available.index(n) for n in wanted]


def _samples_and_index(mode: str, name: str, params: dict[str, Any],
                       signals: Callable[[], Iterable[np.ndarray]],
                       index: Callable[[], dict[str, dict[str, np.ndarray]]],
                       source_hash: Callable[[Any], None], n_samples: int, n_ch: int,
                       directory: Path | None
                       ) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """The ``(S, C)`` samples and per-split index: concatenated in memory, or from (or into)
    the window cache."""
    if mode == "memory":
        parts = list(signals())
        samples = (np.concatenate(parts) if parts else np.empty((0, n_ch), np.float32))
        return samples, index()
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, **params},
                        sort_keys=True, default=str).encode())
    source_hash(h)
    key = h.hexdigest()
    stem = (directory or window_cache_dir()) / f"{_safe(name)}-{key}"
    cache = WindowCache(stem)
    with file_lock(stem.with_name(stem.name + ".lock")):
        if not cache.header_path.exists() or not cache.data_path.exists() \
                or not cache.index_path.exists():
            log.info("building the window cache %s", cache.data_path)
            cache.write(signals(), index(), (n_samples, n_ch), key, params)
        return cache.open(key)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class WindowCache:
    """One window cache entry: ``<stem>.f32``, ``<stem>.index.npz`` and ``<stem>.json``.

    Args:
        stem: the path without suffix (``<cache>/windows/<dataset>-<hash>``).
    """

    def __init__(self, stem: Path) -> None:
        self.stem = stem
        self.data_path = stem.with_name(stem.name + ".f32")
        self.index_path = stem.with_name(stem.name + ".index.npz")
        self.header_path = stem.with_name(stem.name + ".json")

    def write(self, signals: Iterable[np.ndarray], index: dict[str, dict[str, np.ndarray]],
              shape: tuple[int, int], key: str, params: dict[str, Any]) -> None:
        """Write the entry; the header last, so an interrupted write leaves no trusted entry.

        Each file goes to a temporary sibling, is fsynced and renamed into place; a stale
        header is removed first, so a crash between the files cannot pair an old header with
        new data.
        """
        self.header_path.unlink(missing_ok=True)
        digest = hashlib.blake2b(digest_size=16)
        written = 0
        with atomic_open(self.data_path, "wb") as f:
            for sig in signals:
                if sig.ndim != 2 or sig.shape[1] != shape[1]:
                    raise ValueError(f"samples {sig.shape} do not have {shape[1]} channels")
                buf = np.ascontiguousarray(sig, dtype=np.float32)
                f.write(buf.data)
                digest.update(buf.data)
                written += len(buf)
        if written != shape[0]:
            self.data_path.unlink(missing_ok=True)
            raise ValueError(f"wrote {written} samples, expected {shape[0]}")
        flat: dict[str, Any] = {f"{split}/{k}": v for split, arrays in index.items()
                                for k, v in arrays.items()}
        with atomic_open(self.index_path, "wb") as f:
            np.savez(f, **flat)
        header = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key,
                  "dtype": "float32", "shape": list(shape),
                  "bytes": int(shape[0] * shape[1] * 4), "blake2b": digest.hexdigest(),
                  "splits": {k: len(v["starts"]) for k, v in index.items()},
                  "params": params}
        atomic_write_text(self.header_path, json.dumps(header, indent=1, default=str) + "\n")
        fsync_dir(self.stem.parent)

    def header(self) -> dict[str, Any]:
        """The parsed JSON header.

        Raises:
            DataFormatError: unreadable, not JSON, or not a window cache header.
        """
        try:
            header = json.loads(self.header_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataFormatError(self.header_path, f"damaged window cache header ({e}); "
                                  f"{self._remedy()}") from None
        if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
            raise DataFormatError(self.header_path, f"not a {CACHE_FORMAT} header; "
                                  f"{self._remedy()}")
        return header

    def open(self, key: str, verify: bool = True
             ) -> tuple[np.memmap, dict[str, dict[str, np.ndarray]]]:
        """Memory-map the samples and load the index, after checking the header.

        Args:
            key: the hash the entry must have been written for.
            verify: also check the samples' digest (reads the file once).

        Raises:
            DataFormatError: a header for another key or version, a data file of the wrong
                size or digest, or an unreadable index; each names the file.
        """
        header = self.header()
        if header.get("version") != CACHE_VERSION or header.get("key") != key:
            raise DataFormatError(self.header_path, f"window cache header is for version "
                                  f"{header.get('version')} / key {header.get('key')}, expected "
                                  f"{CACHE_VERSION} / {key}; {self._remedy()}")
        try:
            shape = (int(header["shape"][0]), int(header["shape"][1]))
            expected = shape[0] * shape[1] * 4
            if header.get("dtype") != "float32":
                raise ValueError(f"dtype {header.get('dtype')!r}")
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataFormatError(self.header_path, f"window cache header lacks a valid "
                                  f"shape / dtype ({e}); {self._remedy()}") from None
        size = self.data_path.stat().st_size
        if size != expected:
            raise DataFormatError(self.data_path, f"window cache is truncated or damaged: "
                                  f"{size} bytes, the header says {expected} "
                                  f"({shape[0]} x {shape[1]} float32); {self._remedy()}")
        if verify and _file_digest(self.data_path) != header.get("blake2b"):
            raise DataFormatError(self.data_path, "window cache is damaged: its content does "
                                  f"not match the digest in {self.header_path.name}; "
                                  f"{self._remedy()}")
        samples = (np.memmap(self.data_path, dtype=np.float32, mode="r", shape=shape)
                   if expected else np.empty(shape, np.float32).view(np.memmap))
        try:
            with np.load(self.index_path) as z:
                index: dict[str, dict[str, np.ndarray]] = {}
                for split in header["splits"]:
                    index[split] = {k: z[f"{split}/{k}"] for k in ("starts", "y", "subjects")}
        except (OSError, KeyError, ValueError) as e:
            raise DataFormatError(self.index_path, f"damaged window cache index ({e}); "
                                  f"{self._remedy()}") from None
        for split, arrays in index.items():
            starts = arrays["starts"]
            if len(starts) and (starts.min() < 0 or starts.max() + int(
                    header["params"]["window"]) > shape[0]):
                raise DataFormatError(self.index_path, f"split {split!r} has windows beyond "
                                      f"the {shape[0]} cached samples; {self._remedy()}")
        return samples, index

    def _remedy(self) -> str:
        return f"delete {self.stem.name}.* in {self.stem.parent} to rebuild it"

    def remove(self) -> None:
        """Delete the entry (header first, so it is never half trusted)."""
        for p in (self.header_path, self.data_path, self.index_path):
            p.unlink(missing_ok=True)


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


