"""Look at a dataset before training: ``harkit explore DATASET``.

:func:`explore` loads a registered dataset and writes, into one folder:

- ``class_distribution.png``: windows per class (stacked by split) and a subject x class
  heatmap of window counts, each subject labelled with its split;
- ``lengths.png``: recording lengths per recording and per subject (continuous sources), or
  windows per subject and the real sequence lengths (padded skeleton sequences);
- ``signals.png``: a typical window of each class, channel by channel over time (skeleton
  datasets: a strip of skeleton frames per class);
- ``channel_stats.csv`` / ``channel_stats.png``: per channel mean, std, min, max and the
  fraction of missing values, over the training split's windows only (what a normaliser is
  fitted on; where windows overlap, a sample counts once per window holding it);
- ``embedding.png`` / ``embedding.csv``: a 2D embedding (PCA, or UMAP) of standardised
  per-window features, coloured by class and by subject. The labels are never an input:
  neither the window subsample (drawn per split and subject) nor the features use them;
- ``summary.json``: the numbers behind it all.

Continuous sources are split by subject first and then windowed with the dataset's customary
window and hop, as training does (:meth:`~harkit.data.recording.RecordingDataset.to_windows`);
their recording lengths come from the recordings themselves.

Example:
    >>> from harkit.explore import explore
    >>> result = explore("uci-har", data_dir="/data")           # doctest: +SKIP
    >>> result.summary["splits"]["train"]["n_windows"]          # doctest: +SKIP
    7352
"""

from __future__ import annotations

import csv
import io
import json
import logging
import textwrap
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset, WindowSet
from harkit.data.recording import Recording, window_recordings
from harkit.data.skeleton import SkeletonInfo, unflatten
from harkit.errors import ConfigError
from harkit.io import atomic_write_text

log = logging.getLogger(__name__)

EMBEDDINGS = ("pca", "umap")
"""Embedding methods: ``pca`` (scikit-learn) and ``umap`` (needs ``umap-learn``)."""

FEATURES = ("mean", "std", "min", "max", "mean_abs_diff")
"""Per-channel features of a window, in the order of :func:`window_features`' columns."""

SPLIT_ORDER = ("train", "val", "test")


@dataclass
class ExploreResult:
    """What :func:`explore` returns.

    Attributes:
        output: the folder the files were written to.
        files: the paths written, in the order they were written (``summary.json`` last).
        summary: the contents of ``summary.json``.
    """

    output: Path
    files: list[Path]
    summary: dict[str, Any]


@dataclass
class DatasetView:
    """A loaded dataset as :func:`explore` sees it.

    Attributes:
        windows: windows ``(n, time, channels)`` with their splits.
        kind: ``windows`` (fixed sensor windows), ``recordings`` (continuous sensor
            recordings) or ``skeleton`` (skeleton sequences, windowed or continuous).
        recordings: split -> recordings for continuous sources; None for fixed windows.
    """

    windows: WindowedDataset
    kind: str
    recordings: dict[str, list[Recording]] | None = None

    @property
    def split_names(self) -> list[str]:
        return _ordered(self.windows.splits)

    def pooled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, subjects and split index (into :attr:`split_names`) of every window, in
        split order (the window arrays themselves are not copied)."""
        names = self.split_names
        parts = [self.windows.splits[s] for s in names]
        y = np.concatenate([p.y for p in parts]).astype(np.int64)
        subjects = np.concatenate([p.subjects for p in parts]).astype(np.int64)
        split = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
        return y, subjects, split

    def gather(self, index: np.ndarray) -> np.ndarray:
        """Windows ``(len(index), time, channels)`` at pooled positions ``index``."""
        parts = [self.windows.splits[s].X for s in self.split_names]
        bounds = np.cumsum([0] + [len(p) for p in parts])
        index = np.asarray(index, dtype=np.int64)
        which = np.searchsorted(bounds, index, side="right") - 1
        out = np.empty((len(index), *parts[0].shape[1:]), dtype=parts[0].dtype)
        for k, part in enumerate(parts):
            sel = which == k
            out[sel] = part[index[sel] - bounds[k]]
        return out


def _ordered(names: Iterable[str]) -> list[str]:
    """Split names in the order train, val, test, then the others sorted."""
    names = list(names)
    known = [s for s in SPLIT_ORDER if s in names]
    return known + sorted(s for s in names if s not in SPLIT_ORDER)


def load_view(dataset: str, data_dir: str | Path | None = None,
              options: dict[str, Any] | None = None) -> DatasetView:
    """Load registered ``dataset`` with source ``options`` as windows with splits.

    A continuous source is split by subject (or by its own session split) first and each
    recording is then cut with the dataset's customary window and hop, labelled by majority
    with at least half of its samples labelled (the training defaults). A continuous source
    without any test split is kept whole as one split named ``all``.

    Raises:
        ConfigError: an unknown dataset or option, or no windows at all.
    """
    from harkit.data import load_dataset

    ds = load_dataset(dataset, data_dir=data_dir, **(options or {}))
    if isinstance(ds, WindowedDataset):
        if not ds.splits:
            raise ConfigError(f"dataset {dataset!r} has no windows")
        return DatasetView(ds, "skeleton" if ds.skeleton is not None else "windows")
    try:
        parts = ds.split_recordings()
    except ConfigError as e:
        log.warning("%s; exploring all recordings as one split 'all'", e)
        parts = {"all": list(ds.recordings)}
    splits = {}
    for split, recs in parts.items():
        ws, _, _ = window_recordings(recs, ds.window, ds.hop, len(ds.classes))
        if len(ws):
            splits[split] = ws
    if not splits:
        raise ConfigError(f"dataset {dataset!r}: no window of {ds.window} samples has enough "
                          "labelled samples")
    windows = WindowedDataset(ds.name, list(ds.channels), list(ds.classes), ds.sampling_rate,
                              ds.hop, splits, dict(ds.units), ds.description, ds.skeleton)
    return DatasetView(windows, "skeleton" if ds.skeleton is not None else "recordings",
                       {k: v for k, v in parts.items() if k in splits or v})


# --- numbers ----------------------------------------------------------------------------------


def channel_stats(X: np.ndarray, chunk: int = 2048) -> dict[str, np.ndarray]:
    """Per channel statistics over every sample of windows ``X`` ``(windows, time, channels)``.

    Non-finite values (NaN, inf) count as missing and are left out of the statistics; a
    channel with no finite value gets NaN. Computed in two passes over chunks of windows in
    float64, so a large dataset needs no float64 copy of itself.

    Returns:
        ``mean``, ``std`` (population, ddof 0), ``min``, ``max`` and ``missing`` (fraction of
        non-finite samples), each ``(channels,)``.

    Example:
        >>> x = np.array([[[1.0, 0.0], [3.0, np.nan]]])            # (1 window, 2 steps, 2)
        >>> s = channel_stats(x)
        >>> s["mean"].tolist(), s["std"].tolist(), s["missing"].tolist()
        ([2.0, 0.0], [1.0, 0.0], [0.0, 0.5])
    """
    if X.ndim != 3:
        raise ValueError(f"windows must be (windows, time, channels), got shape {X.shape}")
    c = X.shape[2]
    count = np.zeros(c)
    total = np.zeros(c)
    lo = np.full(c, np.inf)
    hi = np.full(c, -np.inf)
    for i in range(0, len(X), chunk):
        v = X[i:i + chunk].reshape(-1, c).astype(np.float64)  # (windows * time, C)
        ok = np.isfinite(v)
        count += ok.sum(0)
        total += np.where(ok, v, 0.0).sum(0)
        lo = np.minimum(lo, np.where(ok, v, np.inf).min(0, initial=np.inf))
        hi = np.maximum(hi, np.where(ok, v, -np.inf).max(0, initial=-np.inf))
    have = count > 0
    mean = np.divide(total, count, out=np.full(c, np.nan), where=have)
    sq = np.zeros(c)
    for i in range(0, len(X), chunk):
        v = X[i:i + chunk].reshape(-1, c).astype(np.float64)
        d = np.where(np.isfinite(v), v - mean, 0.0)
        sq += (d * d).sum(0)
    n_values = len(X) * X.shape[1]
    return {
        "mean": mean,
        "std": np.where(have, np.sqrt(np.divide(sq, np.maximum(count, 1))), np.nan),
        "min": np.where(have, lo, np.nan),
        "max": np.where(have, hi, np.nan),
        "missing": 1.0 - count / n_values if n_values else np.zeros(c),
    }


def window_features(X: np.ndarray, skeleton: SkeletonInfo | None = None,
                    chunk: int = 512) -> np.ndarray:
    """Simple per-window features: for each channel its mean, std, min, max and mean absolute
    step (:data:`FEATURES`), ignoring non-finite values.

    On a skeleton dataset with a ``valid`` channel, the joint values of padded frames are
    left out too (the ``valid`` channel's own mean is then the real length's fraction).

    Args:
        X: windows ``(windows, time, channels)``.
        skeleton: the dataset's skeleton info, if any.
        chunk: windows converted to float64 at a time.

    Returns:
        ``(windows, len(FEATURES) * channels)``, feature-major (all means, then all stds, ...);
        NaN where a channel has no finite value in a window.

    Example:
        >>> x = np.array([[[0.0], [2.0], [1.0]]])             # (1 window, 3 steps, 1 channel)
        >>> window_features(x).round(3).tolist()
        [[1.0, 0.816, 0.0, 2.0, 1.5]]
    """
    if X.ndim != 3:
        raise ValueError(f"windows must be (windows, time, channels), got shape {X.shape}")
    out = np.empty((len(X), len(FEATURES) * X.shape[2]))
    for i in range(0, len(X), chunk):
        v = X[i:i + chunk].astype(np.float64)
        if skeleton is not None and skeleton.valid_channel:
            pad = v[:, :, -1] < 0.5  # (n, T) frames that are padding
            v[:, :, : skeleton.n_coords][pad] = np.nan
        v[~np.isfinite(v)] = np.nan
        with warnings.catch_warnings():  # an all-missing channel gives NaN, by design
            warnings.simplefilter("ignore", RuntimeWarning)
            step = np.abs(np.diff(v, axis=1)) if v.shape[1] > 1 else np.full_like(v, np.nan)
            feats = [np.nanmean(v, 1), np.nanstd(v, 1), np.nanmin(v, 1), np.nanmax(v, 1),
                     np.nanmean(step, 1)]
        out[i:i + chunk] = np.concatenate(feats, axis=1)
    return out


def feature_names(channels: Sequence[str]) -> list[str]:
    """Names of :func:`window_features`' columns (``mean(acc_x)``, ...)."""
    return [f"{f}({c})" for f in FEATURES for c in channels]


def standardise(F: np.ndarray, centre: str = "mean") -> np.ndarray:
    """Each column to centre 0 (its ``mean`` or ``median``), std 1; constant columns and
    missing values become 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmedian(F, axis=0) if centre == "median" else np.nanmean(F, axis=0)
        sd = np.nanstd(F, axis=0)
    z = (F - mu) / np.where(sd > 0, sd, 1.0)
    z[~np.isfinite(z)] = 0.0
    z[:, ~(sd > 0)] = 0.0
    return z


def subsample(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(k, n)`` items drawn at random (seeded) so that each group keeps
    its share (largest-remainder quotas): a stratified subsample by group.

    Args:
        groups: ``(n,)`` group of each item (explore uses split x subject, never the label).
        k: how many to keep.
        seed: random seed.

    Example:
        >>> idx = subsample(np.array([0, 0, 0, 0, 0, 0, 1, 1]), 4, seed=0)
        >>> len(idx), int((idx >= 6).sum())
        (4, 1)
    """
    n = len(groups)
    if n <= k:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    codes = codes.ravel()
    counts = np.bincount(codes)
    exact = counts * (k / n)
    quota = np.floor(exact).astype(np.int64)
    # the remaining items go to the largest remainders; equal remainders (many groups of one
    # item: one window per subject) are drawn at random, not taken in group order
    remainder = np.round(exact - quota, 9)
    extra = np.lexsort((rng.random(len(counts)), -remainder))[: k - int(quota.sum())]
    quota[extra] += 1
    perm = rng.permutation(n)
    grouped = perm[np.argsort(codes[perm], kind="stable")]  # by group, random within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    chosen = np.concatenate([grouped[s:s + q] for s, q in zip(starts, quota, strict=True)])
    return np.sort(chosen)


def _umap() -> Any:
    try:
        import umap
    except ImportError:
        raise ConfigError("embedding='umap' needs the umap-learn package: pip install "
                          "umap-learn (or use embedding='pca')") from None
    return umap


def _check_embedding(method: str) -> str:
    if method not in EMBEDDINGS:
        raise ConfigError(f"embedding {method!r}: expected one of {list(EMBEDDINGS)}")
    if method == "umap":
        _umap()
    return method


def embed_features(features: np.ndarray, method: str = "pca", seed: int = 0
                   ) -> tuple[np.ndarray, list[float]]:
    """Standardise ``features`` ``(n, F)`` and embed them in 2D.

    Returns:
        coordinates ``(n, 2)`` and, for PCA, the explained variance ratio of each axis.

    Raises:
        ConfigError: an unknown method, or UMAP without umap-learn installed.
    """
    _check_embedding(method)
    z = standardise(np.asarray(features, dtype=np.float64))
    n = len(z)
    coords = np.zeros((n, 2))
    if n < 3 or z.shape[1] == 0:
        return coords, []
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=min(2, z.shape[1]), svd_solver="full", random_state=seed)
        got = pca.fit_transform(z)
        coords[:, : got.shape[1]] = got
        return coords, [float(r) for r in pca.explained_variance_ratio_]
    reducer = _umap().UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1))
    coords[:] = np.asarray(reducer.fit_transform(z), dtype=np.float64)
    return coords, []


@dataclass
class WindowEmbedding:
    """What :func:`embed_windows` returns.

    Attributes:
        index: ``(k,)`` sorted indices of the embedded windows.
        coords: ``(k, 2)`` their coordinates.
        method: ``pca`` or ``umap``.
        explained_variance: PCA's explained variance ratio per axis (empty for UMAP).
    """

    index: np.ndarray
    coords: np.ndarray
    method: str
    explained_variance: list[float]


def embed_windows(windows: WindowSet, splits: np.ndarray | None = None, *,
                  method: str = "pca", max_windows: int = 5000, seed: int = 0,
                  skeleton: SkeletonInfo | None = None) -> WindowEmbedding:
    """A 2D embedding of (a subsample of) windows from their standardised
    :func:`window_features`.

    The labels ``windows.y`` are never used: the subsample is stratified by split and subject
    and the features come from the signals alone, so permuting the labels changes nothing.

    Args:
        windows: windows ``(n, time, channels)`` with subjects.
        splits: ``(n,)`` split of each window, for the stratified subsample (None: one split).
        method: ``pca`` or ``umap``.
        max_windows: embed at most this many windows.
        seed: seed of the subsample (and of UMAP).
        skeleton: the skeleton info of a skeleton dataset (padded frames are ignored).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ws = WindowSet(rng.normal(size=(50, 16, 3)), np.zeros(50, np.int64),
        ...                np.repeat(np.arange(5), 10))
        >>> emb = embed_windows(ws, max_windows=20)
        >>> emb.coords.shape, len(emb.index)
        ((20, 2), 20)
    """
    _check_embedding(method)
    if max_windows < 3:
        raise ConfigError(f"max_windows={max_windows}: expected at least 3")
    split = np.zeros(len(windows), np.int64) if splits is None else np.asarray(splits)
    _, split_code = np.unique(split, return_inverse=True)
    groups = _group_codes(split_code.ravel(), windows.subjects)
    index = subsample(groups, max_windows, seed)
    coords, ratio = embed_features(window_features(windows.X[index], skeleton), method, seed)
    return WindowEmbedding(index, coords, method, ratio)


def _group_codes(split: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """One integer per (split, subject) pair."""
    pairs = np.stack([np.asarray(split, np.int64), np.asarray(subjects, np.int64)], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].ravel()


def _json(v: Any) -> Any:
    """``v`` with numpy scalars and arrays as plain Python values (for json.dumps)."""
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    if isinstance(v, np.ndarray):
        return _json(v.tolist())
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, Path):
        return str(v)
    return v


# --- the steps ---------------------------------------------------------------------------------


@dataclass
class _Context:
    view: DatasetView
    out: Path
    title: str
    y: np.ndarray
    subjects: np.ndarray
    split: np.ndarray  # split index of each pooled window
    subject_ids: np.ndarray  # in drawing order: by split, then id
    subject_split: list[str]  # "train", "test" or "train+test" per subject


def _context(view: DatasetView, out: Path) -> _Context:
    y, subjects, split = view.pooled()
    names = view.split_names
    ids = np.unique(subjects)
    member = {int(s): sorted({int(k) for k in np.unique(split[subjects == s])}) for s in ids}
    order = sorted(ids.tolist(), key=lambda s: (member[s][0], s))
    labels = ["+".join(names[k] for k in member[s]) for s in order]
    ds = view.windows
    title = textwrap.fill(f"{ds.name}: {ds.description}" if ds.description else ds.name, 100)
    return _Context(view, out, title, y, subjects, split, np.array(order, np.int64), labels)


def _rows_of(order: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position in ``order`` (distinct ids) of every entry of ``values``."""
    sorter = np.argsort(order)
    return sorter[np.searchsorted(order, values, sorter=sorter)]


def _subject_labels(ctx: _Context) -> list[str]:
    return [f"{s} ({sp})" for s, sp in zip(ctx.subject_ids.tolist(), ctx.subject_split,
                                          strict=True)]


def _class_distribution(ctx: _Context) -> tuple[Path, dict[str, Any]]:
    from harkit.viz.explore import plot_class_distribution

    ds = ctx.view.windows
    k = ds.n_classes
    counts = {s: np.bincount(ctx.y[ctx.split == i], minlength=k)
              for i, s in enumerate(ctx.view.split_names)}
    rows = _rows_of(ctx.subject_ids, ctx.subjects)
    table = np.zeros((len(ctx.subject_ids), k), np.int64)
    np.add.at(table, (rows, ctx.y), 1)
    path = plot_class_distribution(counts, ds.classes, table, _subject_labels(ctx),
                                   ctx.subject_split, ctx.out / "class_distribution.png",
                                   ctx.title)
    return path, {s: dict(zip(ds.classes, c.tolist(), strict=True)) for s, c in counts.items()}


def _lengths(ctx: _Context) -> tuple[Path, dict[str, Any]]:
    from harkit.viz.explore import plot_recording_lengths, plot_window_counts

    view, ds = ctx.view, ctx.view.windows
    path = ctx.out / "lengths.png"
    info: dict[str, Any] = {}
    if view.recordings is not None:
        recs = [(split, r) for split in _ordered(view.recordings)
                for r in view.recordings[split]]
        # subjects with recordings but no window are drawn too (after the others)
        extra = sorted({r.subject for _, r in recs} - set(ctx.subject_ids.tolist()))
        order = np.concatenate([ctx.subject_ids, np.array(extra, np.int64)])
        split_of = {**{int(s): sp for s, sp in zip(ctx.subject_ids.tolist(),
                                                    ctx.subject_split, strict=True)},
                    **{s: "+".join(_ordered({sp for sp, r in recs if r.subject == s}))
                       for s in extra}}
        seconds = np.array([len(r) / ds.sampling_rate for _, r in recs])
        labelled = np.array([(r.labels >= 0).sum() / ds.sampling_rate for _, r in recs])
        rows = _rows_of(order, np.array([r.subject for _, r in recs], np.int64))
        plot_recording_lengths([f"{s}" for s in order.tolist()],
                               [split_of[s] for s in order.tolist()], rows, seconds, labelled,
                               [sp for sp, _ in recs], path, ctx.title)
        info["recordings"] = {
            "n": len(recs),
            "per_split": {sp: len(v) for sp, v in view.recordings.items()},
            "seconds": {"min": seconds.min(), "median": np.median(seconds),
                        "max": seconds.max(), "total": seconds.sum()},
            "labelled_fraction": labelled.sum() / max(seconds.sum(), 1e-12),
        }
        return path, info
    per_subject = np.bincount(_rows_of(ctx.subject_ids, ctx.subjects),
                              minlength=len(ctx.subject_ids))
    lengths = None
    sk = ds.skeleton
    if sk is not None and sk.valid_channel:
        lengths = {s: (ds.splits[s].X[:, :, -1] > 0.5).sum(1) for s in ctx.view.split_names}
        every = np.concatenate(list(lengths.values()))
        info["sequence_lengths"] = {
            "min": every.min(), "median": np.median(every), "max": every.max(),
            "full_length": int((every == ds.window_len).sum()),
            "per_split": {s: {"min": v.min(), "median": np.median(v), "max": v.max()}
                          for s, v in lengths.items()}}
    heading = ctx.title
    if lengths is None:
        heading += (f"\nevery window: {ds.window_len} samples "
                    f"({ds.window_len / ds.sampling_rate:.2f} s)")
    plot_window_counts([f"{s}" for s in ctx.subject_ids.tolist()], ctx.subject_split,
                       per_subject, path, lengths, ds.window_len, heading)
    return path, info


def _typical(view: DatasetView, index: np.ndarray) -> int:
    """The window among pooled ``index`` whose features are closest to their median."""
    z = standardise(window_features(view.gather(index), view.windows.skeleton), "median")
    return int(index[np.argmin((z * z).sum(1))])


def _examples(ctx: _Context, seed: int, max_classes: int, candidates: int = 256
              ) -> list[int]:
    """Pooled index of a typical training window for each of the first ``max_classes``
    classes present (classes absent from training: from the other splits)."""
    rng = np.random.default_rng(seed)
    train = ctx.split == 0  # the first split in order: train where there is one
    out = []
    for c in np.unique(ctx.y)[:max_classes]:
        pool = np.flatnonzero((ctx.y == c) & train)
        if len(pool) == 0:
            pool = np.flatnonzero(ctx.y == c)
        if len(pool) > candidates:
            pool = np.sort(rng.choice(pool, candidates, replace=False))
        out.append(_typical(ctx.view, pool))
    return out


def _signals(ctx: _Context, seed: int, max_classes: int = 12) -> tuple[Path, dict[str, Any]]:
    ds = ctx.view.windows
    names = ctx.view.split_names
    chosen = _examples(ctx, seed, max_classes)
    windows = ctx.view.gather(np.array(chosen, np.int64))
    starts = np.cumsum([0] + [len(ds.splits[s]) for s in names])
    described = []
    for i in chosen:
        k = int(ctx.split[i])
        described.append({"class": ds.classes[int(ctx.y[i])], "split": names[k],
                          "index": i - int(starts[k]), "subject": int(ctx.subjects[i])})
    heads = [f"{d['class']}\n({d['split']}, subject {d['subject']})" for d in described]
    n_cls = len(np.unique(ctx.y))
    note = f" (first {len(chosen)} of {n_cls} classes)" if len(chosen) < n_cls else ""
    path = ctx.out / "signals.png"
    sk = ds.skeleton
    if sk is not None:
        from harkit.viz.skeleton import plot_skeleton_rows

        seqs = unflatten(windows, sk)  # (k, T, C) -> (k, T, bodies, joints, dims)
        valid = ([w[:, -1] > 0.5 for w in windows] if sk.valid_channel
                 else [None] * len(windows))
        plot_skeleton_rows(list(seqs), sk.layout, path,
                           [h.replace("\n", " ") for h in heads],
                           title=f"{ds.name}: a typical sequence per class{note}",
                           n_frames=6, dim_names=sk.names_of_dims(), valid=valid)
    else:
        from harkit.viz.explore import plot_signal_examples

        plot_signal_examples(list(windows), heads, ds.channels, ds.units, ds.sampling_rate,
                             path, title=f"{ds.name}: a typical window per class{note}")
    return path, {"examples": described}


def _channel_stats(ctx: _Context) -> tuple[list[Path], dict[str, Any]]:
    from harkit.viz.explore import plot_channel_stats

    ds = ctx.view.windows
    split = "train" if "train" in ds.splits else ctx.view.split_names[0]
    stats = channel_stats(ds.splits[split].X)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["channel", "unit", "mean", "std", "min", "max", "missing_fraction"])
    for i, ch in enumerate(ds.channels):
        writer.writerow([ch, ds.units.get(ch, "")] + [
            repr(float(stats[k][i])) for k in ("mean", "std", "min", "max", "missing")])
    csv_path = ctx.out / "channel_stats.csv"
    atomic_write_text(csv_path, buf.getvalue())
    png = plot_channel_stats(ds.channels, ds.units, stats, ctx.out / "channel_stats.png",
                             f"{ds.name}: per channel statistics of the {split} split "
                             f"({len(ds.splits[split])} windows)")
    return [csv_path, png], {"channel_stats_split": split}


def _embedding(ctx: _Context, method: str, max_windows: int, seed: int
               ) -> tuple[list[Path], dict[str, Any]]:
    from harkit.viz.explore import plot_embedding

    view, ds = ctx.view, ctx.view.windows
    names = view.split_names
    # stratified by split and subject only: the labels must not decide what is embedded
    index = subsample(_group_codes(ctx.split, ctx.subjects), max_windows, seed)
    feats = np.concatenate([window_features(view.gather(index[i:i + 1024]), ds.skeleton)
                            for i in range(0, len(index), 1024)])
    coords, ratio = embed_features(feats, method, seed)
    if method == "pca":
        axes = tuple(f"PC{i + 1}" + (f" ({100 * ratio[i]:.1f}% of variance)"
                                     if i < len(ratio) else "") for i in range(2))
    else:
        axes = ("UMAP 1", "UMAP 2")
    split_names = [names[int(k)] for k in ctx.split[index]]
    png = plot_embedding(coords, ctx.y[index], ctx.subjects[index], split_names, ds.classes,
                         ctx.out / "embedding.png", (axes[0], axes[1]),
                         f"{ds.name}: {method.upper()} of {len(FEATURES)} standardised "
                         f"features per channel ({', '.join(FEATURES)}), {len(index)} of "
                         f"{len(ctx.y)} windows")
    starts = np.cumsum([0] + [len(ds.splits[s]) for s in names])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["split", "index", "subject", "class", "x", "y"])
    for j, i in enumerate(index):
        k = int(ctx.split[i])
        writer.writerow([names[k], int(i - starts[k]), int(ctx.subjects[i]),
                         ds.classes[int(ctx.y[i])], repr(float(coords[j, 0])),
                         repr(float(coords[j, 1]))])
    csv_path = ctx.out / "embedding.csv"
    atomic_write_text(csv_path, buf.getvalue())
    return [png, csv_path], {"embedding": {
        "method": method, "n_windows": len(index), "seed": seed, "features": list(FEATURES),
        "explained_variance_ratio": ratio}}


def _summary(ctx: _Context, options: dict[str, Any] | None) -> dict[str, Any]:
    view, ds = ctx.view, ctx.view.windows
    splits = {}
    for i, s in enumerate(view.split_names):
        subj = sorted(int(v) for v in np.unique(ctx.subjects[ctx.split == i]))
        splits[s] = {"n_windows": len(ds.splits[s]), "n_subjects": len(subj), "subjects": subj}
    return {
        "dataset": ds.name, "kind": view.kind, "continuous": view.recordings is not None,
        "description": ds.description, "options": dict(options or {}),
        "n_windows": len(ctx.y), "splits": splits,
        "n_subjects": len(ctx.subject_ids),
        "classes": list(ds.classes), "n_classes": ds.n_classes,
        "channels": list(ds.channels), "n_channels": ds.n_channels, "units": dict(ds.units),
        "sampling_rate": ds.sampling_rate, "window_len": ds.window_len,
        "window_seconds": ds.window_len / ds.sampling_rate, "hop": ds.hop,
        "skeleton": None if ds.skeleton is None else ds.skeleton.to_dict(),
    }


def explore(dataset: str, *, data_dir: str | Path | None = None,
            options: dict[str, Any] | None = None, output: str | Path | None = None,
            embedding: str = "pca", max_windows: int = 5000, seed: int = 0,
            progress: bool = False) -> ExploreResult:
    """Write the plots and numbers a person wants to see before training on ``dataset``.

    Files (in ``output``): ``class_distribution.png``, ``lengths.png``, ``signals.png``,
    ``channel_stats.csv`` / ``.png`` (training split only), ``embedding.png`` / ``.csv`` and
    ``summary.json``; each is written atomically, other files in the folder are left alone.

    Args:
        dataset: a registered dataset name (``harkit datasets``).
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
        options: the source's options (``{"activities": 12}`` for hapt).
        output: the folder to write to (default ``explore/<dataset>``).
        embedding: ``pca`` (default) or ``umap`` (needs ``pip install umap-learn``).
        max_windows: embed at most this many windows (a subsample stratified by split and
            subject, seeded).
        seed: seed of the subsample and of the example choice.
        progress: show a progress bar.

    Returns:
        the output folder, the files written and the summary.

    Raises:
        ConfigError: an unknown dataset, option or embedding, too small ``max_windows``, or
            ``umap`` without umap-learn.
        DatasetNotFoundError, DataFormatError: the data cannot be found or read.

    Example:
        >>> r = explore("hapt", data_dir="/data", options={"activities": 12})  # doctest: +SKIP
        >>> [p.name for p in r.files][:2]                                      # doctest: +SKIP
        ['class_distribution.png', 'lengths.png']
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    _check_embedding(embedding)
    if isinstance(max_windows, bool) or not isinstance(max_windows, int) or max_windows < 3:
        raise ConfigError(f"max_windows={max_windows!r}: expected an integer of at least 3")
    out = Path(output) if output is not None else Path("explore") / dataset
    t0 = time.perf_counter()
    view = load_view(dataset, data_dir, options)
    log.info("%s: loaded %d windows in %.1f s", dataset,
             sum(len(w) for w in view.windows.splits.values()), time.perf_counter() - t0)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _context(view, out)
    summary = _summary(ctx, options)
    files: list[Path] = []

    def class_distribution() -> None:
        path, counts = _class_distribution(ctx)
        files.append(path)
        for split, c in counts.items():
            summary["splits"][split]["class_counts"] = c

    def lengths() -> None:
        path, info = _lengths(ctx)
        files.append(path)
        summary.update(info)

    def signals() -> None:
        path, info = _signals(ctx, seed)
        files.append(path)
        summary.update(info)

    def stats() -> None:
        paths, info = _channel_stats(ctx)
        files.extend(paths)
        summary.update(info)

    def embed() -> None:
        paths, info = _embedding(ctx, embedding, max_windows, seed)
        files.extend(paths)
        summary.update(info)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("class distribution", class_distribution), ("lengths", lengths),
        ("signal examples", signals), ("channel statistics", stats),
        (f"{embedding.upper()} embedding", embed)]
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), disable=not progress,
                  transient=False) as bar:
        task = bar.add_task(f"exploring {dataset}", total=len(steps) + 1)
        for name, step in steps:
            bar.update(task, description=name)
            t = time.perf_counter()
            step()
            log.info("%s: %s in %.1f s", dataset, name, time.perf_counter() - t)
            bar.advance(task)
        summary_path = out / "summary.json"
        files.append(summary_path)
        summary["files"] = [p.name for p in files]
        atomic_write_text(summary_path, json.dumps(_json(summary), indent=2) + "\n")
        bar.advance(task)
    return ExploreResult(out, files, summary)


def parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    """Source options from ``key=value`` strings (values parsed as YAML: numbers, booleans,
    lists), as the CLI's ``--option`` gives them.

    Example:
        >>> parse_options(["activities=12", "subset=AS1", "test_subjects=[1, 2]"])
        {'activities': 12, 'subset': 'AS1', 'test_subjects': [1, 2]}
    """
    from harkit.config import parse_value

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {item!r}: expected key=value, e.g. activities=12")
        out[key.strip()] = parse_value(raw)
    return out
