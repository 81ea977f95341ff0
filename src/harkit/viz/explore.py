"""The figures of ``harkit explore``: class balance, lengths, example signals, channel
statistics and a 2D embedding of windows, each written as a PNG.

Every function takes plain arrays (the numbers are computed in :mod:`harkit.explore`), draws
one figure with matplotlib (imported lazily, Agg backend) and writes it atomically. Splits have
one colour everywhere: train blue, val green, test orange.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.viz.plots import _pyplot, _save

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:green", "test": "tab:orange",
                 "all": "tab:grey"}
SPLIT_MARKERS = {"train": "o", "val": "s", "test": "^", "all": "o"}


def split_colour(split: str) -> str:
    """The colour of a split (its first part for a ``train+test`` subject)."""
    return SPLIT_COLOURS.get(split.split("+")[0], "tab:purple")


def channel_groups(channels: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Channels grouped for drawing on one axis (the panels of
    :func:`harkit.viz.signals.channel_panels`), each named: a 3-axis sensor by its stem, any
    other channel by itself.

    Example:
        >>> channel_groups(["acc_x", "acc_y", "acc_z", "hr", "gyro.X", "gyro.Y", "gyro.Z"])
        [('acc', [0, 1, 2]), ('hr', [3]), ('gyro', [4, 5, 6])]
    """
    from harkit.viz.signals import channel_panels

    return [(channels[idx[0]][:-2] if len(idx) == 3 else channels[idx[0]], idx)
            for idx in channel_panels(channels)]


def _split_handles(splits: Sequence[str]) -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(color=split_colour(s), label=s) for s in splits]


def _class_colours(n: int) -> list[Any]:
    """Distinct colours for ``n`` classes (tab10, tab20, then a sampled turbo map)."""
    plt = _pyplot()
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(v) for v in np.linspace(0.0, 1.0, n)]


def _subject_ticks(ax: Any, labels: Sequence[str], splits: Sequence[str], axis: str,
                   max_labels: int = 60) -> None:
    """Subject tick labels coloured by split; without labels (too many) a title says so."""
    n = len(labels)
    setter = ax.set_yticks if axis == "y" else ax.set_xticks
    if n > max_labels:
        setter([])
        return
    fontsize = 8 if n <= 30 else 6
    if axis == "y":
        ax.set_yticks(range(n), labels=list(labels), fontsize=fontsize)
        ticks = ax.get_yticklabels()
    else:
        ax.set_xticks(range(n), labels=list(labels), fontsize=fontsize, rotation=90)
        ticks = ax.get_xticklabels()
    for tick, split in zip(ticks, splits, strict=True):
        tick.set_color(split_colour(split))


def plot_class_distribution(counts: Mapping[str, np.ndarray], classes: Sequence[str],
                            subject_counts: np.ndarray, subject_labels: Sequence[str],
                            subject_splits: Sequence[str], path: str | Path,
                            title: str = "") -> Path:
    """Windows per class stacked by split (left) and a subject x class heatmap of window
    counts (right; blank cells: no window; rows ordered by split, split borders drawn).

    Args:
        counts: split -> windows per class ``(classes,)``.
        classes: class names.
        subject_counts: ``(subjects, classes)`` window counts.
        subject_labels: a row label per subject (``"3 (test)"``).
        subject_splits: the split of each subject (tick colour).
        path: the PNG to write.
        title: a heading.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    n_cls, n_sub = len(classes), len(subject_labels)
    w_bars, w_map = max(5.0, 0.4 * n_cls + 2.0), max(4.5, 0.35 * n_cls + 3.0)
    height = min(16.0, max(4.5, 0.2 * n_sub + 2.0)) if n_sub <= 60 else 7.0
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(w_bars + w_map, height), layout="constrained",
                                   gridspec_kw={"width_ratios": [w_bars, w_map]})
    x = np.arange(n_cls)
    bottom = np.zeros(n_cls)
    for split, c in counts.items():
        c = np.asarray(c, dtype=float)
        ax1.bar(x, c, bottom=bottom, color=split_colour(split),
                label=f"{split} ({int(c.sum())} windows)")
        bottom += c
    for xi, total in zip(x, bottom, strict=True):
        ax1.text(xi, total, f"{int(total)}", ha="center", va="bottom", fontsize=7)
    rot = 45 if n_cls <= 12 else 90
    ax1.set_xticks(x, labels=list(classes), rotation=rot, ha="right" if rot == 45 else "center",
                   fontsize=8)
    ax1.set_ylabel("windows")
    ax1.set_title("windows per class (stacked by split)")
    ax1.legend(fontsize=8)
    ax1.grid(axis="y", alpha=0.3)

    data = np.asarray(subject_counts, dtype=float)
    im = ax2.imshow(np.ma.masked_equal(data, 0), aspect="auto", cmap="viridis",
                    interpolation="nearest", vmin=0, vmax=max(1.0, float(data.max(initial=0))))
    fig.colorbar(im, ax=ax2, label="windows")
    ax2.set_xticks(x, labels=list(classes), rotation=rot, ha="right" if rot == 45 else "center",
                   fontsize=8)
    _subject_ticks(ax2, subject_labels, subject_splits, "y")
    # a line between consecutive splits (rows are ordered by split)
    for r in range(1, n_sub):
        if subject_splits[r] != subject_splits[r - 1]:
            ax2.axhline(r - 0.5, color="black", lw=1.0)
    if n_sub > 60:
        ax2.set_ylabel(f"{n_sub} subjects, ordered by split (lines) then id")
    else:
        ax2.set_ylabel("subject (split)")
    if n_sub * n_cls <= 400:
        top = data.max() if data.size else 0
        for i in range(n_sub):
            for j in range(n_cls):
                if data[i, j] > 0:
                    ax2.text(j, i, f"{int(data[i, j])}", ha="center", va="center", fontsize=6,
                             color="black" if data[i, j] > 0.6 * top else "white")
    ax2.set_title("windows per subject and class (blank: none)")
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


def plot_recording_lengths(subject_labels: Sequence[str], subject_splits: Sequence[str],
                           rec_subject: np.ndarray, rec_seconds: np.ndarray,
                           rec_labelled: np.ndarray, rec_split: Sequence[str],
                           path: str | Path, title: str = "") -> Path:
    """Continuous recordings: the length of every recording, one dot per recording above its
    subject (left), and the recorded time of each subject split into labelled and unlabelled
    seconds (right).

    Args:
        subject_labels, subject_splits: per subject (in drawing order) its label and split.
        rec_subject: ``(recordings,)`` row of each recording's subject in ``subject_labels``.
        rec_seconds: ``(recordings,)`` length in seconds.
        rec_labelled: ``(recordings,)`` seconds with a class label.
        rec_split: the split of each recording.
        path: the PNG to write.
        title: a heading.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    n_sub = len(subject_labels)
    rec_subject = np.asarray(rec_subject, dtype=int)
    seconds = np.asarray(rec_seconds, dtype=float)
    labelled = np.asarray(rec_labelled, dtype=float)
    width = max(5.0, min(12.0, 0.25 * n_sub + 3.0))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(2 * width, 4.5), layout="constrained")
    # deterministic horizontal spread so recordings of one subject do not hide each other
    spread = np.random.default_rng(0).uniform(-0.25, 0.25, len(seconds))
    splits = list(dict.fromkeys(rec_split))
    for split in splits:
        sel = np.array([s == split for s in rec_split], dtype=bool)
        ax1.scatter(rec_subject[sel] + spread[sel], seconds[sel], s=14, alpha=0.7,
                    color=split_colour(split), label=f"{split} ({int(sel.sum())} recordings)")
    ax1.set_ylabel("recording length (s)")
    ax1.set_xlabel("subject")
    ax1.set_title(f"{len(seconds)} recordings, one dot each (median "
                  f"{np.median(seconds) if len(seconds) else 0:.1f} s)")
    ax1.legend(fontsize=8)
    ax1.grid(axis="y", alpha=0.3)
    _subject_ticks(ax1, subject_labels, subject_splits, "x")

    total = np.bincount(rec_subject, weights=seconds, minlength=n_sub)
    lab = np.bincount(rec_subject, weights=labelled, minlength=n_sub)
    colours = [split_colour(s) for s in subject_splits]
    xs = np.arange(n_sub)
    ax2.bar(xs, lab, color=colours, label="labelled")
    ax2.bar(xs, total - lab, bottom=lab, color=colours, alpha=0.3, hatch="//",
            label="unlabelled")
    ax2.set_ylabel("recorded time (s)")
    ax2.set_xlabel("subject")
    frac = lab.sum() / total.sum() if total.sum() > 0 else 0.0
    ax2.set_title(f"time per subject: {total.sum():.0f} s, {100 * frac:.1f}% labelled")
    _subject_ticks(ax2, subject_labels, subject_splits, "x")
    ax2.legend(handles=[*ax2.get_legend_handles_labels()[0], *_split_handles(
        list(dict.fromkeys(subject_splits)))], fontsize=8)
    ax2.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


def plot_window_counts(subject_labels: Sequence[str], subject_splits: Sequence[str],
                       windows_per_subject: np.ndarray, path: str | Path,
                       lengths: Mapping[str, np.ndarray] | None = None, window_len: int = 0,
                       title: str = "") -> Path:
    """Fixed windows: windows per subject (left) and, where the windows are sequences padded
    to a common length, a histogram of their real lengths in frames, stacked by split (right).

    Args:
        subject_labels, subject_splits: per subject (in drawing order) its label and split.
        windows_per_subject: ``(subjects,)`` counts.
        path: the PNG to write.
        lengths: split -> real frames of each window (None: every window is full length).
        window_len: frames per window (the histogram's upper end).
        title: a heading.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    n_sub = len(subject_labels)
    panels = 2 if lengths else 1
    width = max(5.0, min(14.0, 0.2 * n_sub + 3.0))
    fig, axes = plt.subplots(1, panels, figsize=(width + 5.0 * (panels - 1), 4.5),
                             squeeze=False, layout="constrained")
    ax1 = axes[0, 0]
    counts = np.asarray(windows_per_subject, dtype=float)
    names = list(dict.fromkeys(subject_splits))
    if n_sub <= 60:
        ax1.bar(np.arange(n_sub), counts, color=[split_colour(s) for s in subject_splits])
        _subject_ticks(ax1, subject_labels, subject_splits, "x")
        ax1.set_xlabel("subject")
        ax1.set_ylabel("windows")
        ax1.legend(handles=_split_handles(names), fontsize=8)
    else:  # too many subjects for a bar each: how many subjects have how many windows
        split_arr = np.asarray(list(subject_splits), dtype=object)
        top = int(counts.max(initial=1))
        bins = np.arange(0, top + 2) - 0.5 if top <= 80 else np.linspace(0, top + 1, 41)
        ax1.hist([counts[split_arr == s] for s in names], bins=bins, stacked=True,
                 color=[split_colour(s) for s in names], label=names)
        ax1.set_xlabel("windows of a subject")
        ax1.set_ylabel("subjects")
        ax1.legend(fontsize=8)
    ax1.set_title(f"windows per subject ({int(counts.sum())} windows, {n_sub} subjects)")
    ax1.grid(axis="y", alpha=0.3)
    if lengths:
        ax2 = axes[0, 1]
        top = max(window_len, max((int(v.max()) for v in lengths.values() if len(v)), default=1))
        bins = np.arange(0, top + 2) - 0.5 if top <= 80 else np.linspace(0, top + 1, 41)
        names = list(lengths)
        ax2.hist([lengths[s] for s in names], bins=bins, stacked=True,
                 color=[split_colour(s) for s in names], label=names)
        ax2.set_xlabel(f"real frames per window (of {window_len}; the rest is padding)")
        ax2.set_ylabel("windows")
        ax2.set_title("sequence lengths")
        ax2.legend(fontsize=8)
        ax2.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


def plot_signal_examples(examples: Sequence[np.ndarray], row_labels: Sequence[str],
                         channels: Sequence[str], units: Mapping[str, str],
                         sampling_rate: float, path: str | Path, max_groups: int = 6,
                         title: str = "") -> Path:
    """One example window per row (a class), drawn channel group by channel group: a column
    per group of :func:`channel_groups` (an xyz sensor on one axis), time in seconds, the
    unit in the column heading; columns share their y-axis so classes compare directly.

    Args:
        examples: windows ``(time, channels)``, one per row.
        row_labels: a label per row (the class); also stored, one line each, in the PNG's
            ``Description`` text field.
        channels: channel names.
        units: unit per channel name (missing: none shown).
        sampling_rate: samples per second.
        path: the PNG to write.
        max_groups: draw at most this many groups (the first ones); the heading says how
            many channels are shown.
        title: a heading.

    Returns:
        ``path``.
    """
    if not examples or len(examples) != len(row_labels):
        raise ValueError(f"{len(examples)} examples and {len(row_labels)} labels: expected at "
                         "least one example and a label for each")
    plt = _pyplot()
    groups = channel_groups(channels)
    shown = groups[:max_groups]
    rows, cols = len(examples), len(shown)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols + 0.8, 1.45 * rows + 1.0),
                             sharex=True, sharey="col", squeeze=False, layout="constrained")
    t = np.arange(len(examples[0])) / float(sampling_rate)
    for r, (window, label) in enumerate(zip(examples, row_labels, strict=True)):
        for c, (name, idx) in enumerate(shown):
            ax = axes[r, c]
            for k in idx:
                short = channels[k][-1] if len(idx) == 3 else channels[k]
                ax.plot(t, window[:, k], lw=0.9, label=short)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0:
                unit = {units.get(channels[k], "") for k in idx}
                head = f"{name} ({unit.pop()})" if len(unit) == 1 and "" not in unit else name
                ax.set_title(head, fontsize=9)
                if len(idx) > 1:
                    ax.legend(fontsize=6, loc="upper right", ncol=len(idx))
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == rows - 1:
                ax.set_xlabel("time (s)", fontsize=8)
    n_shown = sum(len(i) for _, i in shown)
    note = (f"{n_shown} of {len(channels)} channels shown" if n_shown < len(channels)
            else f"all {len(channels)} channels")
    fig.suptitle(f"{title}: {note}" if title else note, fontsize=10)
    # the row labels, one line each, in the PNG's Description text field
    lines = [" ".join(label.split()) for label in row_labels]
    return _save(fig, Path(path), metadata={"Description": "\n".join(lines)})


def plot_channel_stats(channels: Sequence[str], units: Mapping[str, str],
                       stats: Mapping[str, np.ndarray], path: str | Path,
                       title: str = "") -> Path:
    """Per channel mean +- std (thick bar), min to max (thin line) and the fraction of
    missing values (lower panel).

    Args:
        channels: channel names.
        units: unit per channel name.
        stats: ``mean``, ``std``, ``min``, ``max``, ``missing`` arrays ``(channels,)``.
        path: the PNG to write.
        title: a heading (say which split the statistics come from).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    n = len(channels)
    x = np.arange(n)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(min(24.0, max(6.0, 0.22 * n + 2.0)), 6.0),
                                   sharex=True, gridspec_kw={"height_ratios": [3, 1]},
                                   layout="constrained")
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    ax1.vlines(x, stats["min"], stats["max"], color="grey", lw=1, label="min to max")
    ax1.errorbar(x, mean, yerr=std, fmt="o", ms=3, color="tab:blue", elinewidth=3,
                 label="mean +- std")
    ax1.set_ylabel("value (channel units)")
    ax1.legend(fontsize=8)
    ax1.grid(axis="y", alpha=0.3)
    missing = np.asarray(stats["missing"], dtype=float)
    ax2.bar(x, missing, color="tab:red")
    ax2.set_ylim(0, max(0.05, float(missing.max()) * 1.15 if n else 0.05))
    ax2.set_ylabel("missing")
    if n and not missing.any():
        ax2.text(0.5, 0.5, "no missing values", transform=ax2.transAxes, ha="center",
                 va="center", fontsize=9)
    labels = [f"{c} ({units[c]})" if units.get(c) else c for c in channels]
    if n <= 80:
        ax2.set_xticks(x, labels=labels, rotation=90, fontsize=7)
    else:
        step = int(np.ceil(n / 80))
        ax2.set_xticks(x[::step], labels=labels[::step], rotation=90, fontsize=6)
    ax1.set_title(title or "channel statistics")
    return _save(fig, Path(path))


def plot_embedding(coords: np.ndarray, y: np.ndarray, subjects: np.ndarray,
                   splits: Sequence[str], classes: Sequence[str], path: str | Path,
                   axis_labels: tuple[str, str] = ("component 1", "component 2"),
                   title: str = "") -> Path:
    """A 2D embedding of windows in two panels: coloured by class (left) and by subject
    (right); the marker shape gives the split (train circle, val square, test triangle).

    Args:
        coords: ``(windows, 2)``.
        y: ``(windows,)`` class indices (colour only; never part of the embedding).
        subjects: ``(windows,)`` subject ids.
        splits: the split of each window.
        classes: class names.
        path: the PNG to write.
        axis_labels: names of the two axes.
        title: a heading.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    coords = np.asarray(coords, dtype=float)
    y = np.asarray(y, dtype=int)
    split_arr = np.asarray(list(splits), dtype=object)
    uniq_subj, subj_rank = np.unique(np.asarray(subjects), return_inverse=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6), layout="constrained")
    colours = np.array(_class_colours(len(classes)))
    size = 10 if len(coords) <= 2000 else 4
    cmap = plt.get_cmap("tab20" if len(uniq_subj) <= 20 else "turbo")
    names = list(dict.fromkeys(splits))
    for split in names:
        sel = split_arr == split
        marker = SPLIT_MARKERS.get(split, "D")
        ax1.scatter(coords[sel, 0], coords[sel, 1], c=colours[y[sel]], s=size, alpha=0.7,
                    marker=marker, linewidths=0)
        sc = ax2.scatter(coords[sel, 0], coords[sel, 1], c=subj_rank[sel], s=size, alpha=0.7,
                         marker=marker, linewidths=0, cmap=cmap, vmin=-0.5,
                         vmax=len(uniq_subj) - 0.5)
    present = np.unique(y)
    handles = [Line2D([], [], marker="o", ls="", color=colours[c], label=classes[c])
               for c in present[:30]]
    handles += [Line2D([], [], marker=SPLIT_MARKERS.get(s, "D"), ls="", color="black",
                       label=s) for s in names]
    ax1.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax1.set_title(f"by class ({len(present)} classes)")
    if len(names):
        bar = fig.colorbar(sc, ax=ax2, label="subject")
        if len(uniq_subj) <= 30:
            bar.set_ticks(range(len(uniq_subj)), labels=[str(s) for s in uniq_subj])
    ax2.set_title(f"by subject ({len(uniq_subj)} subjects)")
    for ax in (ax1, ax2):
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{len(coords)} windows")
    return _save(fig, Path(path))
