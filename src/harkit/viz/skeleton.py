"""Skeleton sequences drawn as a strip of frames (PNG) or an animated GIF.

A sequence is ``(time, bodies, joints, dims)`` in the joint order of its layout (a window of a
skeleton dataset unflattens to it with :func:`harkit.data.skeleton.unflatten`). 2D keypoints
are drawn in image coordinates (y pointing down); 3D joints through a fixed orthographic view
(``elev`` / ``azim``, y up). A joint whose values are all zero (a missed detection, an absent
body) is not drawn, nor are its bones; a dim named ``c`` / ``conf`` / ``confidence`` /
``score`` is a confidence and not a coordinate.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.skeleton import DIM_NAMES, Layout, get_layout
from harkit.viz.plots import _pyplot, _save

BODY_STYLES = ("-", "--", ":", "-.")


def _prepare(seq: np.ndarray, layout: str | Layout | dict[str, Any],
             dim_names: Sequence[str] | None, valid: np.ndarray | None, elev: float,
             azim: float) -> tuple[np.ndarray, np.ndarray, Layout, bool, np.ndarray]:
    """Projected points ``(T, M, J, 2)``, presence ``(T, M, J)``, the layout, whether the
    data are 3D, and the frame indices to draw."""
    seq = np.asarray(seq, dtype=np.float64)
    lay = get_layout(layout)
    if seq.ndim != 4 or seq.shape[2] != lay.n_joints:
        raise ValueError(f"a skeleton sequence must be (time, bodies, {lay.n_joints} joints of "
                         f"{lay.name!r}, dims), got shape {seq.shape}")
    d = seq.shape[3]
    names = [n.lower() for n in (dim_names or DIM_NAMES.get(d, ()))]
    if len(names) != d:
        raise ValueError(f"dim_names: {len(names)} names for {d} dims")
    if "x" not in names or "y" not in names:
        raise ValueError(f"dim_names {names}: the sequence needs x and y dims to be drawn")
    present = np.any(seq != 0, axis=-1)  # (T, M, J)
    x, y = seq[..., names.index("x")], seq[..., names.index("y")]
    is_3d = "z" in names
    if is_3d:  # orthographic view: turn about the vertical (y) axis, then tilt
        z = seq[..., names.index("z")]
        a, e = math.radians(azim), math.radians(elev)
        u = x * math.cos(a) + z * math.sin(a)
        depth = -x * math.sin(a) + z * math.cos(a)
        v = y * math.cos(e) + depth * math.sin(e)
        pts = np.stack([u, v], axis=-1)
    else:
        pts = np.stack([x, -y], axis=-1)  # image coordinates: y points down
    frames = np.arange(len(seq))
    if valid is not None:
        frames = frames[np.asarray(valid, dtype=bool)[: len(seq)]]
    if len(frames) == 0:
        raise ValueError("the sequence has no valid frame to draw")
    return pts, present, lay, is_3d, frames


def _limits(pts: np.ndarray, present: np.ndarray, frames: np.ndarray) -> tuple[float, ...]:
    """Square axis limits holding every drawn joint (with a margin)."""
    sel = pts[frames][present[frames]]
    if len(sel) == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    lo, hi = sel.min(0), sel.max(0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6) * 1.1
    return (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def _part_colour(lay: Layout) -> list[str]:
    """A colour per joint: its body part's (tab10 order), grey for joints in no part."""
    colours = ["tab:grey"] * lay.n_joints
    palette = [f"C{i}" for i in range(10)]
    for i, joints in enumerate(lay.parts.values()):
        for j in joints:
            colours[j] = palette[i % 10]
    return colours


class _Frame:
    """The artists of one drawn skeleton frame, updatable for animation."""

    def __init__(self, ax: Any, lay: Layout, bodies: int) -> None:
        colour = _part_colour(lay)
        self.lay = lay
        self.bones = [[ax.plot([], [], BODY_STYLES[m % 4], color=colour[b], lw=2)[0]
                       for a, b in lay.edges] for m in range(bodies)]
        self.joints = [ax.scatter([], [], s=12, color="black", zorder=3) for _ in range(bodies)]

    def draw(self, pts: np.ndarray, present: np.ndarray) -> None:
        """Show one frame: ``pts`` ``(M, J, 2)``, ``present`` ``(M, J)``."""
        for m, lines in enumerate(self.bones):
            for line, (a, b) in zip(lines, self.lay.edges, strict=True):
                if present[m, a] and present[m, b]:
                    line.set_data([pts[m, a, 0], pts[m, b, 0]], [pts[m, a, 1], pts[m, b, 1]])
                else:
                    line.set_data([], [])
            self.joints[m].set_offsets(pts[m][present[m]].reshape(-1, 2))


def _heading(title: str, pred: str | None) -> str:
    parts = [title] if title else []
    if pred is not None:
        parts.append(f"predicted: {pred}")
    return " | ".join(parts)


def plot_skeleton_frames(seq: np.ndarray, layout: str | Layout | dict[str, Any],
                         path: str | Path, title: str = "", pred: str | None = None,
                         n_frames: int = 8, dim_names: Sequence[str] | None = None,
                         valid: np.ndarray | None = None, elev: float = 15.0,
                         azim: float = -30.0) -> Path:
    """A strip of ``n_frames`` evenly spaced frames of one skeleton sequence, as a PNG.

    Args:
        seq: ``(time, bodies, joints, dims)`` in the joint order of ``layout``.
        layout: a layout name (``coco18``, ``ntu25``, ...), Layout or layout dict.
        path: the PNG to write.
        title: a heading (e.g. the true class); ``pred`` adds the predicted class.
        n_frames: frames to draw (all of them when the sequence is shorter).
        dim_names: names of the dims (default x, y[, z]); ``("x", "y", "c")`` for 2D
            keypoints with a confidence.
        valid: ``(time,)`` flags of the real frames (a window's ``valid`` channel): padded
            frames are not drawn.
        elev, azim: the 3D view, in degrees.

    Returns:
        ``path``.

    Example:
        >>> seq = np.random.default_rng(0).normal(size=(30, 1, 18, 2))
        >>> plot_skeleton_frames(seq, "coco18", "frames.png", pred="wave")  # doctest: +SKIP
    """
    if n_frames < 1:
        raise ValueError(f"n_frames={n_frames}: expected at least 1")
    pts, present, lay, is_3d, frames = _prepare(seq, layout, dim_names, valid, elev, azim)
    shown = frames[np.unique(np.linspace(0, len(frames) - 1, min(n_frames, len(frames)))
                             .round().astype(int))]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(1.8 * len(shown) + 0.4, 2.6),
                             squeeze=False)
    x0, x1, y0, y1 = _limits(pts, present, frames)
    for ax, t in zip(axes[0], shown, strict=True):
        _Frame(ax, lay, pts.shape[1]).draw(pts[t], present[t])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"t = {t}", fontsize=8)
    heading = _heading(title, pred)
    view = f" (3D, elev {elev:g}, azim {azim:g})" if is_3d else ""
    fig.suptitle(f"{heading}{view}" if heading else f"{lay.name}{view}", fontsize=9)
    return _save(fig, Path(path))


def animate_skeleton(seq: np.ndarray, layout: str | Layout | dict[str, Any], path: str | Path,
                     title: str = "", pred: str | None = None, fps: int = 10,
                     dim_names: Sequence[str] | None = None, valid: np.ndarray | None = None,
                     elev: float = 15.0, azim: float = -30.0, dpi: int = 80) -> Path:
    """An animated GIF of one skeleton sequence, one GIF frame per (valid) frame, written
    with matplotlib's PillowWriter.

    Args:
        seq, layout, title, pred, dim_names, valid, elev, azim: as for
            :func:`plot_skeleton_frames`.
        path: the GIF to write (replaced atomically).
        fps: frames per second of the animation.
        dpi: resolution of the frames.

    Returns:
        ``path``.

    Example:
        >>> seq = np.random.default_rng(0).normal(size=(30, 2, 25, 3))
        >>> animate_skeleton(seq, "ntu25", "action.gif", pred="hugging")  # doctest: +SKIP
    """
    from matplotlib.animation import PillowWriter

    if fps <= 0:
        raise ValueError(f"fps={fps}: expected a positive integer")
    pts, present, lay, _, frames = _prepare(seq, layout, dim_names, valid, elev, azim)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.2, 3.4))
    x0, x1, y0, y1 = _limits(pts, present, frames)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    heading = _heading(title, pred)
    fig.suptitle(heading or lay.name, fontsize=9)
    artist = _Frame(ax, lay, pts.shape[1])
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".gif", dir=target.parent)
    os.close(fd)
    try:
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, tmp, dpi):
            for t in frames:
                artist.draw(pts[t], present[t])
                # the frame number keeps every GIF frame distinct (Pillow merges equal ones)
                ax.set_title(f"frame {t + 1} / {len(seq)}", fontsize=8)
                writer.grab_frame()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return target
