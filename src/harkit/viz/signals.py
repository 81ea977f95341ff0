"""One sensor window drawn as its signals: channels over time, written as a PNG.

Channels that form a 3-axis sensor (``acc_x``, ``acc_y``, ``acc_z``) share a panel; a window
with more panels than fit one figure legibly (OPPORTUNITY's 113 channels) is drawn as a
heatmap instead, one row per channel, each channel scaled to its own range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harkit.viz.plots import _pyplot, _save


def channel_panels(channels: Sequence[str]) -> list[list[int]]:
    """Channel indices grouped into panels: each 3-axis sensor together, every other channel
    alone, in the order of their first channel.

    Example:
        >>> channel_panels(["hr", "acc_x", "acc_y", "acc_z", "temp"])
        [[0], [1, 2, 3], [4]]
    """
    from harkit.data.augment import xyz_groups

    owner: dict[int, list[int]] = {}
    for group in xyz_groups(list(channels)):
        for i in group:
            owner[i] = list(group)
    panels: list[list[int]] = []
    for i in range(len(channels)):
        panel = sorted(owner.get(i, [i]))
        if panel[0] == i:  # a panel is placed where its first channel is
            panels.append(panel)
    return panels


def plot_window_signals(window: np.ndarray, channels: Sequence[str], path: str | Path,
                        title: str = "", sampling_rate: float | None = None,
                        units: Mapping[str, str] | None = None, max_panels: int = 8) -> Path:
    """Draw one window ``(time, channels)`` as its signals over time.

    Args:
        window: raw values ``(time, channels)``.
        channels: a name per channel (the last axis of ``window``).
        path: the PNG to write.
        title: a heading (e.g. the true and predicted class).
        sampling_rate: samples per second; the time axis is in seconds when given, else in
            samples.
        units: channel name -> unit, shown on a panel's axis when its channels share one.
        max_panels: with more panels than this, a heatmap of every channel (each scaled to
            its own minimum and maximum) replaces the line plots.

    Returns:
        ``path``.

    Raises:
        ValueError: ``window`` is not 2-D or its channels and ``channels`` disagree.

    Example:
        >>> w = np.random.default_rng(0).normal(size=(128, 3))
        >>> plot_window_signals(w, ["acc_x", "acc_y", "acc_z"], "w.png", sampling_rate=50)
        ... # doctest: +SKIP
    """
    x = np.asarray(window, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(channels):
        raise ValueError(f"window must be (time, channels) with {len(channels)} channels "
                         f"{list(channels)[:4]}..., got shape {x.shape}")
    t = np.arange(len(x)) / sampling_rate if sampling_rate else np.arange(len(x))
    xlabel = "time (s)" if sampling_rate else "sample"
    units = units or {}
    panels = channel_panels(channels)
    plt = _pyplot()
    if len(panels) > max_panels:
        fig, ax = plt.subplots(figsize=(9, min(12.0, 2.0 + 0.12 * len(channels))),
                               layout="constrained")
        lo, hi = x.min(axis=0), x.max(axis=0)
        scaled = (x - lo) / np.where(hi > lo, hi - lo, 1.0)  # each channel to [0, 1]
        extent = (float(t[0]), float(t[-1]) if len(t) > 1 else 1.0, len(channels) - 0.5, -0.5)
        im = ax.imshow(scaled.T, aspect="auto", cmap="viridis", interpolation="nearest",
                       extent=extent)  # (T, C) -> (C, T): one row per channel
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02,
                     label="value, scaled per channel (0 = min, 1 = max)")
        step = max(1, len(channels) // 40)
        ticks = list(range(0, len(channels), step))
        ax.set_yticks(ticks, labels=[channels[i] for i in ticks], fontsize=6)
        ax.set_xlabel(xlabel)
    else:
        fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.0 + 1.3 * len(panels)),
                                 sharex=True, squeeze=False)
        for ax, panel in zip(axes[:, 0], panels, strict=True):
            for i in panel:
                ax.plot(t, x[:, i], lw=1.0, label=channels[i])
            shared = {units.get(channels[i], "") for i in panel}
            if len(shared) == 1 and "" not in shared:
                ax.set_ylabel(shared.pop(), fontsize=8)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel(xlabel)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


__all__ = ["channel_panels", "plot_window_signals"]
