"""Skeleton sequences drawn as a strip of frames (PNG) or an animated GIF.

A sequence is ``(time, bodies, joints, dims)`` in the joint order of its layout (a window of a
skeleton dataset unflattens to it with :func:`harkit.data.skeleton.unflatten`). 2D keypoints
are drawn in image coordinates (y pointing down); 3D joints through a fixed orthographic view
(``elev`` / ``azim``, y up). A joint whose values are all zero (a missed detection, an absent
body) is not drawn, nor are its bones; a dim named ``c`` / ``conf`` / ``confidence`` /
``score`` is a confidence and not a coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.skeleton import DIM_NAMES, Layout, SkeletonInfo, get_layout, unflatten
from harkit.io import atomic_path
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


def _bare_axes(ax: Any, limits: tuple[float, ...]) -> None:
    """Equal-aspect axes with the given ``(x0, x1, y0, y1)`` limits and no ticks."""
    x0, x1, y0, y1 = limits
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _part_colour(lay: Layout) -> list[str]:
    """A colour per joint: its body part's (tab10 order), grey for joints in no part."""
    colours = ["tab:grey"] * lay.n_joints
    palette = [f"C{i}" for i in range(10)]
    for i, joints in enumerate(lay.parts.values()):
        for j in joints:
            colours[j] = palette[i % 10]
    return colours


class _Frame:
    """The artists of one drawn skeleton frame, updatable for animation: per body, one line
    collection of its bones (one artist, not one per bone: drawing many frames stays cheap)
    and one scatter of its joints."""

    def __init__(self, ax: Any, lay: Layout, bodies: int) -> None:
        from matplotlib.collections import LineCollection

        self.edges = np.array(lay.edges, dtype=np.int64).reshape(-1, 2)  # (bones, 2)
        colour = _part_colour(lay)
        self.colours = np.array([colour[b] for _, b in lay.edges], dtype=object)
        self.bones = [ax.add_collection(LineCollection([], linestyles=BODY_STYLES[m % 4],
                                                       linewidths=2))
                      for m in range(bodies)]
        self.joints = [ax.scatter([], [], s=12, color="black", zorder=3) for _ in range(bodies)]

    def draw(self, pts: np.ndarray, present: np.ndarray) -> None:
        """Show one frame: ``pts`` ``(M, J, 2)``, ``present`` ``(M, J)``."""
        a, b = self.edges[:, 0], self.edges[:, 1]
        for m, bones in enumerate(self.bones):
            shown = present[m, a] & present[m, b]  # a bone needs both its joints
            bones.set_segments(np.stack([pts[m, a[shown]], pts[m, b[shown]]], axis=1))
            bones.set_color(list(self.colours[shown]))
            self.joints[m].set_offsets(pts[m][present[m]].reshape(-1, 2))


def _heading(title: str, pred: str | None) -> str:
    parts = [title] if title else []
    if pred is not None:
        parts.append(f"predicted: {pred}")
    return " | ".join(parts)


def _spread(frames: np.ndarray, n: int, name: str = "n_frames") -> np.ndarray:
    """``n`` evenly spaced entries of ``frames`` (all of them when there are fewer)."""
    if n < 1:
        raise ValueError(f"{name}={n}: expected at least 1")
    return frames[np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames)))
                            .round().astype(int))]


def _strip(axes: Sequence[Any], pts: np.ndarray, present: np.ndarray, lay: Layout,
           frames: np.ndarray, shown: np.ndarray) -> None:
    """Draw frames ``shown`` of one prepared sequence, one per axes, on shared limits."""
    limits = _limits(pts, present, frames)
    for ax, t in zip(axes, shown, strict=True):
        _Frame(ax, lay, pts.shape[1]).draw(pts[t], present[t])
        _bare_axes(ax, limits)
        ax.set_title(f"t = {t}", fontsize=8)


def _view(is_3d: bool, elev: float, azim: float) -> str:
    return f" (3D, elev {elev:g}, azim {azim:g})" if is_3d else ""


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
    pts, present, lay, is_3d, frames = _prepare(seq, layout, dim_names, valid, elev, azim)
    shown = _spread(frames, n_frames)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(1.8 * len(shown) + 0.4, 2.6),
                             squeeze=False)
    _strip(axes[0], pts, present, lay, frames, shown)
    heading = _heading(title, pred)
    view = _view(is_3d, elev, azim)
    fig.suptitle(f"{heading}{view}" if heading else f"{lay.name}{view}", fontsize=9)
    return _save(fig, Path(path))


def plot_skeleton_rows(seqs: Sequence[np.ndarray], layout: str | Layout | dict[str, Any],
                       path: str | Path, titles: Sequence[str], title: str = "",
                       n_frames: int = 6, dim_names: Sequence[str] | None = None,
                       valid: Sequence[np.ndarray | None] | None = None,
                       elev: float = 15.0, azim: float = -30.0) -> Path:
    """Several skeleton sequences in one PNG: a :func:`plot_skeleton_frames` strip per row,
    headed by its entry of ``titles``. The headings are also stored in the PNG's
    ``Description`` text field, one per line.

    Args:
        seqs: sequences ``(time_i, bodies, joints, dims)`` of one layout.
        titles: a heading per sequence.
        title: a heading over all rows.
        valid: per sequence, its ``(time_i,)`` valid-frame flags or None.
        layout, path, n_frames, dim_names, elev, azim: as for :func:`plot_skeleton_frames`.

    Returns:
        ``path``.

    Example:
        >>> seqs = [np.random.default_rng(i).normal(size=(20, 1, 8, 3)) for i in range(2)]
        >>> plot_skeleton_rows(seqs, "natops8", "rows.png", ["a", "b"])  # doctest: +SKIP
    """
    if not seqs or len(titles) != len(seqs):
        raise ValueError(f"{len(seqs)} sequences and {len(titles)} titles: expected at least "
                         "one sequence and a title for each")
    flags = list(valid) if valid is not None else [None] * len(seqs)
    if len(flags) != len(seqs):
        raise ValueError(f"{len(flags)} valid flags for {len(seqs)} sequences")
    rows = [_prepare(s, layout, dim_names, v, elev, azim) for s, v in zip(seqs, flags,
                                                                           strict=True)]
    shown = [_spread(r[4], n_frames) for r in rows]
    cols = max(len(s) for s in shown)
    plt = _pyplot()
    fig = plt.figure(figsize=(1.8 * cols + 0.4, 2.1 * len(rows)))
    for sub, (pts, present, lay, _, frames), sel, heading in zip(
            fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, shown, titles,
            strict=True):
        axes = sub.subplots(1, cols, squeeze=False)[0]
        _strip(axes[: len(sel)], pts, present, lay, frames, sel)
        for ax in axes[len(sel):]:
            ax.axis("off")
        sub.suptitle(heading, fontsize=9)
    view = _view(rows[0][3], elev, azim)
    # above the first row's heading (the tight bounding box takes it in)
    fig.suptitle(f"{title or rows[0][2].name}{view}", fontsize=10, y=1.0, va="bottom")
    return _save(fig, Path(path), metadata={"Description": "\n".join(titles)})


def animate_skeleton(seq: np.ndarray, layout: str | Layout | dict[str, Any], path: str | Path,
                     title: str = "", pred: str | None = None, fps: int = 10,
                     dim_names: Sequence[str] | None = None, valid: np.ndarray | None = None,
                     elev: float = 15.0, azim: float = -30.0, dpi: int = 80,
                     max_frames: int | None = None) -> Path:
    """An animated GIF of one skeleton sequence, one GIF frame per (valid) frame, written
    with matplotlib's PillowWriter.

    Args:
        seq, layout, title, pred, dim_names, valid, elev, azim: as for
            :func:`plot_skeleton_frames`.
        path: the GIF to write (replaced atomically).
        fps: frames per second of the animation.
        dpi: resolution of the frames.
        max_frames: draw at most this many evenly spaced frames (None: every one); each
            GIF frame costs a render, so a quick preview wants a few dozen.

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
    limits = _limits(pts, present, frames)
    if max_frames is not None:
        frames = _spread(frames, max_frames, "max_frames")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.2, 3.4))
    _bare_axes(ax, limits)
    heading = _heading(title, pred)
    fig.suptitle(heading or lay.name, fontsize=9)
    artist = _Frame(ax, lay, pts.shape[1])
    target = Path(path)
    try:
        writer = PillowWriter(fps=fps)
        with atomic_path(target, suffix=".gif") as tmp, writer.saving(fig, str(tmp), dpi):
            for t in frames:
                artist.draw(pts[t], present[t])
                # the frame number keeps every GIF frame distinct (Pillow merges equal ones)
                ax.set_title(f"frame {t + 1} / {len(seq)}", fontsize=8)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return target


def example_windows(y_true: np.ndarray, max_classes: int = 6) -> list[int]:
    """The first window of each of the first ``max_classes`` classes present in ``y_true``.

    Example:
        >>> example_windows(np.array([2, 0, 2, 1, 0]), max_classes=2)
        [1, 3]
    """
    return [int(np.flatnonzero(y_true == c)[0]) for c in np.unique(y_true)[:max_classes]]


def plot_skeleton_report(windows: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                         skeleton: SkeletonInfo, classes: Sequence[str], folder: str | Path,
                         title: str = "", max_classes: int = 6, n_frames: int = 6,
                         gif_frames: int = 32) -> tuple[Path, Path]:
    """A run report's skeleton figures: ``skeleton_examples.png`` (a strip of frames of the
    first window of each of up to ``max_classes`` classes, headed by its true and predicted
    class) and ``skeleton_example.gif`` (the first of them animated, at most ``gif_frames``
    frames), in ``folder``.

    Args:
        windows: raw (un-normalised) skeleton windows ``(n, time, channels)``.
        y_true, y_pred: ``(n,)`` class indices.
        skeleton: how the windows unflatten (a ``valid`` channel hides padded frames).
        classes: class names.
        folder: where the two files go.
        title: a heading over the PNG's rows.

    Returns:
        the paths of the PNG and the GIF.

    Example:
        >>> info = SkeletonInfo("natops8", dims=3)
        >>> x = np.random.default_rng(0).normal(size=(4, 20, info.n_channels))
        >>> plot_skeleton_report(x, np.array([0, 1, 0, 1]), np.array([0, 0, 0, 1]), info,
        ...                      ["a", "b"], "plots")                     # doctest: +SKIP
    """
    folder = Path(folder)
    idx = example_windows(np.asarray(y_true), max_classes)
    if not idx:
        raise ValueError("no windows to draw")
    chosen = np.asarray(windows)[idx]
    seqs = unflatten(chosen, skeleton)  # (k, T, C) -> (k, T, M, J, D)
    valid = [w[:, -1] for w in chosen] if skeleton.valid_channel else [None] * len(idx)
    headings = [_heading(f"test window {i}, true: {classes[int(y_true[i])]}",
                         classes[int(y_pred[i])]) for i in idx]
    dims = skeleton.names_of_dims()
    png = plot_skeleton_rows(list(seqs), skeleton.layout, folder / "skeleton_examples.png",
                             headings, title=title, n_frames=n_frames, dim_names=dims,
                             valid=valid)
    gif = animate_skeleton(seqs[0], skeleton.layout, folder / "skeleton_example.gif",
                           title=f"test window {idx[0]}, true: {classes[int(y_true[idx[0]])]}",
                           pred=classes[int(y_pred[idx[0]])], dim_names=dims, valid=valid[0],
                           max_frames=gif_frames)
    return png, gif
