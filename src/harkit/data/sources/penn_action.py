"""Penn Action (Zhang, Zhu & Derpanis, ICCV 2013), 2D human keypoints of sports video clips.

On-disk format (a folder ``labels/``; the video frames are not needed)::

    labels/NNNN.mat        one MATLAB v5 file per clip (0001 .. 2326), with the fields
        x, y          (frames, 13) keypoint pixel coordinates (x to the right, y down) in the
                      joint order of layout ``penn13`` (head, left / right shoulder, elbow,
                      wrist, hip, knee, ankle)
        visibility    (frames, 13) 1 = the joint is visible, 0 = occluded (its x, y are then
                      the annotator's guess; 22 % of the joints)
        bbox          (frames, 4) the person's box x1, y1, x2, y2 per frame
        dimensions    (1, 3) image height, width and number of frames
        action        the class name (baseball_pitch ... tennis_serve, 15 actions)
        pose          the camera view (front, back, left, right; not used)
        train         1 = official training clip, -1 = test clip (1258 / 1068)
        nframes       the number of frames

What the real files look like, and what this loader does about it:

- Boxes: two clips (``1154``, ``1865``) have one bbox row fewer than frames; 26 clips have
  placeholder rows narrower or lower than 8 px (points, lines, ``0.75 0.75 0 0`` in
  ``2173``), and every box of ``1516`` is such a placeholder. The clip's box is the union of
  its real per-frame boxes (the smaller and larger of each pair of corners) and of its
  visible joints (:func:`clip_box`).
- Joints that were not annotated at all (out of the frame) sit in the image's top-left
  corner, at x = y = 0.67 to 1.5 px (pixel (1, 1) of the original video, scaled as the
  frames were): 187,352 of the 2,129,933 joint positions (8.8 %, in 770 clips), all marked
  invisible. An invisible joint closer than 2 px to the corner in x and in y is taken as
  not annotated and becomes (0, 0) after normalisation, the "missing joint" of
  :func:`~harkit.data.skeleton.joint_mask`, which :func:`~harkit.data.skeleton.prepare`
  skips (``interpolate`` fills it like an occluded joint where the joint is visible in some
  frame).
- Coordinates are normalised per clip (``normalise``): ``bbox`` subtracts the centre of that
  union box and divides by its longer side (coordinates within about -0.5..0.5, aspect kept,
  the person's motion within the clip kept); ``image`` divides x by the image width and y by
  its height (0..1); ``none`` keeps pixels.
- Occluded joints (``visibility``): ``channel`` keeps them and adds the visibility flag as a
  third value per joint (``dims`` x, y, visibility; ``policy="resample"`` makes it
  fractional where a joint appears or disappears between two frames); ``interpolate`` replaces an occluded
  joint's position by linear interpolation in time between the frames where that joint is
  visible (the nearest such frame at the ends; a joint never visible in the clip keeps the
  annotated guess); ``keep`` uses the annotated positions as they are.

Penn Action has no subject ids: every clip is its own "subject" (its number), so
subject-wise protocols, validation subjects included, hold out whole clips. The split is the
official ``train`` field. Clips have 18 to 663 frames; the release does not give a frame rate
(``sampling_rate`` 30 is nominal).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import (
    SkeletonInfo,
    check_choice,
    check_options,
    interpolate_joints,
    prepare,
    skeleton_dataset,
)
from harkit.data.sources import DATASETS
from harkit.data.splits import split_sequences
from harkit.data.store import cached_parse, locate_local
from harkit.errors import ConfigError, DataFormatError

HOME_URL = "http://dreamdragon.github.io/PennAction/"
CLASSES = ["baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk",
           "golf_swing", "jump_rope", "jumping_jacks", "pullup", "pushup", "situp", "squat",
           "strum_guitar", "tennis_forehand", "tennis_serve"]
VISIBILITY = ("channel", "interpolate", "keep")
NORMALISE = ("bbox", "image", "none")
JOINTS = 13
MIN_BOX_PX = 8.0  # smaller per-frame boxes are placeholders (points, lines, the corner)
CORNER_PX = 2.0  # not annotated joints lie closer than this to pixel (0, 0)
RATE = 30.0
CACHE_VERSION = 1
_FILE = re.compile(r"^(\d{4})\.mat$")


@dataclass
class PennClip:
    """One parsed clip.

    Attributes:
        clip: the clip number (``NNNN``).
        label: class index into :data:`CLASSES`.
        train: official training clip.
        xy: float32 ``(frames, 13, 2)`` pixel coordinates.
        visible: bool ``(frames, 13)``.
        box: the union of the clip's boxes ``(x1, y1, x2, y2)``.
        image: ``(height, width)`` in pixels.
    """

    clip: int
    label: int
    train: bool
    xy: np.ndarray
    visible: np.ndarray
    box: np.ndarray
    image: np.ndarray


def _field(m: dict[str, Any], key: str, path: Path) -> np.ndarray:
    if key not in m:
        raise DataFormatError(path, f"no field {key!r}")
    return np.asarray(m[key])


def _text(value: np.ndarray) -> str:
    return str(value.ravel()[0]).strip() if value.size else ""


def read_clip(path: Path, clip: int) -> PennClip:
    """Parse one ``NNNN.mat`` file.

    Raises:
        DataFormatError: naming the file and the field that is missing or malformed.
    """
    from scipy.io import loadmat

    try:
        m = loadmat(path)
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError, ... on bad input
        raise DataFormatError(path, f"not a readable MATLAB file ({e})") from None
    x, y, vis = (_field(m, k, path) for k in ("x", "y", "visibility"))
    if x.ndim != 2 or x.shape[1] != JOINTS or len(x) == 0:
        raise DataFormatError(path, f"field 'x' has shape {x.shape}, expected (frames, {JOINTS})")
    for key, v in (("y", y), ("visibility", vis)):
        if v.shape != x.shape:
            raise DataFormatError(path, f"field {key!r} has shape {v.shape}, 'x' {x.shape}")
    xy = np.stack([x, y], axis=-1).astype(np.float32)
    if not np.isfinite(xy).all():
        raise DataFormatError(path, "fields 'x' / 'y' hold values that are not finite")
    action = _text(_field(m, "action", path))
    if action not in CLASSES:
        raise DataFormatError(path, f"field 'action' is {action[:40]!r}, expected one of "
                                    f"{CLASSES}")
    train = _field(m, "train", path).ravel()
    if train.size != 1 or int(train[0]) not in (1, -1):
        raise DataFormatError(path, f"field 'train' is {train.tolist()[:3]}, expected 1 or -1")
    dims = _field(m, "dimensions", path).ravel()
    if dims.size < 2 or (dims[:2] <= 0).any():
        raise DataFormatError(path, f"field 'dimensions' is {dims.tolist()}, expected height, "
                                    "width, frames")
    bbox = _field(m, "bbox", path).astype(np.float64)
    if bbox.ndim != 2 or bbox.shape[1] != 4 or len(bbox) == 0:
        raise DataFormatError(path, f"field 'bbox' has shape {bbox.shape}, expected "
                                    "(frames, 4)")
    visible = vis.astype(bool)
    return PennClip(clip, CLASSES.index(action), int(train[0]) == 1, xy, visible,
                    clip_box(bbox, xy[visible], dims[:2]), dims[:2].astype(np.float32))


def clip_box(bbox: np.ndarray, points: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The box ``(x1, y1, x2, y2)`` around a clip's person: the union of its per-frame boxes
    ``(frames, 4)`` narrower or lower than :data:`MIN_BOX_PX` left out, and of ``points``
    ``(n, 2)`` (its visible joints); the image ``(height, width)`` when both are empty.

    Example:
        >>> clip_box(np.array([[10, 50, 30, 20], [0, 0, 1, 1]]), np.zeros((0, 2)),
        ...          np.array([100, 200])).tolist()
        [10.0, 20.0, 30.0, 50.0]
    """
    lo = np.minimum(bbox[:, :2], bbox[:, 2:])
    hi = np.maximum(bbox[:, :2], bbox[:, 2:])
    ok = ((hi - lo) >= MIN_BOX_PX).all(axis=1)
    corners = np.concatenate([lo[ok], hi[ok], points]).astype(np.float64)
    if len(corners) == 0:
        return np.array([0.0, 0.0, image[1], image[0]], np.float32)
    return np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)


def parse_folder(folder: Path) -> list[PennClip]:
    """Parse every ``NNNN.mat`` of ``folder`` (no caching)."""
    found = sorted(p for p in folder.iterdir() if _FILE.match(p.name))
    if not found:
        raise DataFormatError(folder, "no NNNN.mat files found")
    return [read_clip(p, int(p.stem)) for p in found]


def _save(clips: list[PennClip], f: Any) -> None:
    np.savez(f, xy=np.concatenate([c.xy for c in clips]),
             visible=np.concatenate([c.visible for c in clips]),
             lengths=np.array([len(c.xy) for c in clips]),
             ids=np.array([[c.clip, c.label, int(c.train)] for c in clips]),
             box=np.stack([c.box for c in clips]), image=np.stack([c.image for c in clips]))


def _load(path: Path) -> list[PennClip]:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}  # each z[k] access re-reads the member: read once
    bounds = np.concatenate([[0], np.cumsum(a["lengths"])])
    return [PennClip(int(i[0]), int(i[1]), bool(i[2]), a["xy"][s:e], a["visible"][s:e], box, img)
            for i, s, e, box, img in zip(a["ids"], bounds[:-1], bounds[1:], a["box"], a["image"],
                                         strict=True)]


def interpolate_occluded(xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Replace occluded joints of ``(frames, joints, 2)`` by linear interpolation in time
    between the frames where the joint is visible (the nearest such frame at the ends; a
    joint never visible keeps its annotated guess), by
    :func:`~harkit.data.skeleton.interpolate_joints`.

    Example:
        >>> xy = np.array([[[0.0, 0.0]], [[9.0, 9.0]], [[2.0, 4.0]]])
        >>> interpolate_occluded(xy, np.array([[True], [False], [True]]))[:, 0].tolist()
        [[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]]
    """
    # (frames, joints, 2) -> (frames, 1 body, joints, 2) and back
    return interpolate_joints(xy[:, None], visible[:, None], never_valid="keep")[:, 0]


def _normalised(c: PennClip, how: str) -> np.ndarray:
    if how == "bbox":
        side = float(max(c.box[2] - c.box[0], c.box[3] - c.box[1], 1.0))
        return (c.xy - (c.box[:2] + c.box[2:]) / 2) / side
    if how == "image":
        return c.xy / c.image[::-1]  # (height, width) -> divide x by width, y by height
    return c.xy


@DATASETS.register(
    "penn-action",
    description="Penn Action 2D keypoints (13 joints with visibility) of 2326 sports clips: 15 "
    "actions, official train / test split (1258 / 1068), each clip its own subject",
    kind="skeleton", classes=15,
)
def load_penn_action(data_dir: str | os.PathLike[str] | None = None,
                     visibility: str = "channel", normalise: str = "bbox", length: int = 64,
                     policy: str = "resample", centre: bool = False, scale: bool = False,
                     align: bool = False, use_cache: bool = True) -> WindowedDataset:
    """Load Penn Action as one window per clip, ``(n, length, 13 * dims)`` (layout ``penn13``).

    Args:
        data_dir: a folder holding ``penn-action/labels/`` (or ``labels/``); else
            ``HARKIT_DATA_DIR``. The dataset is not downloaded automatically.
        visibility: ``channel`` (x, y, visibility per joint), ``interpolate`` or ``keep``
            (x, y; see the module docstring).
        normalise: ``bbox``, ``image`` or ``none`` (pixels).
        length, policy: frames per window and how clips get there (``resample`` or ``pad``).
        centre, scale: per-clip transforms of x, y (:func:`~harkit.data.skeleton.prepare`):
            the hips' midpoint of the first frame to the origin, body size 1.
        align: not available (the keypoints are 2D); True raises ConfigError.

    Returns:
        a skeleton :class:`WindowedDataset` with the official ``train`` / ``test`` splits.

    Example:
        >>> ds = load_penn_action("/data")                       # doctest: +SKIP
        >>> ds.splits["train"].X.shape, ds.skeleton.dim_names    # doctest: +SKIP
        ((1258, 64, 39), ('x', 'y', 'visibility'))
    """
    check_choice("penn-action", "visibility", visibility, VISIBILITY)
    check_choice("penn-action", "normalise", normalise, NORMALISE)
    check_options("penn-action", length, policy, centre=centre, scale=scale, align=align)
    if align:
        raise ConfigError("penn-action: align=True needs 3D joints; Penn Action keypoints are "
                          "2D")
    src = locate_local("penn-action", "labels", HOME_URL, "is not downloaded automatically: "
                       "download it", data_dir)
    clips = cached_parse("penn-action", CACHE_VERSION, src, parse_folder, _save, _load,
                         use_cache)
    seqs: list[np.ndarray] = []
    for c in clips:
        absent = ~c.visible & (c.xy < CORNER_PX).all(axis=-1)  # (frames, 13) not annotated
        xy = _normalised(c, normalise)
        if visibility == "interpolate":
            xy = interpolate_occluded(xy, c.visible)
            absent &= ~c.visible.any(axis=0)  # only joints never visible are left to fill
        xy[absent] = 0.0
        xy = prepare(xy[:, None], "penn13", centre, scale)  # (frames, 1, 13, 2)
        if visibility == "channel":
            xy = np.concatenate([xy, c.visible[:, None, :, None].astype(xy.dtype)], axis=-1)
        seqs.append(xy)
    splits = split_sequences(seqs, np.array([c.label for c in clips], np.int64),
                             np.array([c.clip for c in clips], np.int64),
                             np.array([not c.train for c in clips]))
    info = SkeletonInfo("penn13", bodies=1, dims=3 if visibility == "channel" else 2,
                        dim_names=("x", "y", "visibility") if visibility == "channel" else ())
    desc = (f"Penn Action 2D keypoints: {len(splits['train'][1])} train + "
            f"{len(splits['test'][1])} test clips (official split, each clip its own subject); "
            f"coordinates normalised by {normalise}, occluded joints: {visibility}; {policy} "
            f"to {length} frames")
    return skeleton_dataset("penn-action", list(CLASSES), info, splits, length, policy, RATE,
                            desc)
