"""``openpose``: your own clips as OpenPose keypoint JSON, one file per frame, with a labels CSV.

On-disk format (OpenPose ``--write_json`` output; ``data_dir`` is the folder of clips)::

    my_clips/
      labels.csv
      wave_01/                                  a clip per subfolder (named by the folder) ...
        wave_01_000000000000_keypoints.json
        wave_01_000000000001_keypoints.json
        ...
      jump_07_000000000000_keypoints.json       ... or files at the top, a clip per name prefix
      ...

Each JSON file is one frame ``<clip>_<frame number, 12 digits>_keypoints.json``::

    {"version": 1.3, "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}, ...]}

``pose_keypoints_2d`` (``pose_keypoints`` in OpenPose releases before 1.2) holds ``(x, y,
confidence)`` per joint: 75 values for the BODY_25 model, 54 for COCO-18, recognised per file
(a clip mixing both is an error). Undetected joints are ``0, 0, 0``. Other keys are ignored.
Source: OpenPose's output documentation (``doc/output.md``, "JSON Output Format").

``labels.csv`` (option ``labels``; a path, or a name inside ``data_dir``) maps clips to
actions and subjects; one row per clip, other columns ignored::

    clip,label,subject
    wave_01,waving,1
    jump_07,jumping,2

``clip`` is the subfolder name or the file-name prefix; ``subject`` is an integer id (text ids
are numbered 1, 2, ... in sorted order). Clips on disk without a row are skipped (with a
warning); a row naming a clip that is not on disk is an error naming the CSV line.

How a clip becomes one skeleton sequence (:func:`read_openpose_clip`):

- **Frames** are ordered by frame number; numbers missing between the first and the last
  (OpenPose skips unreadable frames) are inserted as frames where nobody was detected.
- **Tracking** (:func:`track_people`): each frame's people are matched to the tracks of the
  frames before by the Hungarian method on a pose distance: the mean distance of the joints
  both have detected, divided by the larger of the two poses' extents (bounding-box side).
  A track remembers each joint where it last saw it and never expires; pairs farther apart
  than ``max_match_distance`` (0.5) are not matched and the person starts a new track. The
  order of the ``people`` list plays no part.
- **Main actor** (:func:`rank_tracks`): the track with the largest ``frames detected x median
  extent``: a person present throughout beats a passer-by, and a person in front beats a
  small one in the background. Motion is not used: jittery false detections move a lot.
  ``bodies=2`` keeps the two best tracks (the second is zeros when there is none).
- **Missing joints** (``0, 0, 0`` or confidence below ``min_confidence``) are masked: with
  ``fill="interpolate"`` (default) their x, y are linearly interpolated in time per joint
  (the nearest detection before the first / after the last one; 0 for a joint never seen) and
  their confidence is 0; with ``fill="zero"`` they are ``0, 0, 0``.
- **Normalisation** (``normalize``): ``"body"`` (default) subtracts the main actor's mean neck
  position over the clip and divides by its median torso length (neck to the mean of the
  hips; else the median bounding-box height), so in-clip motion (a jump) is kept and the
  person's size and place in the image are not; ``"image"`` divides x, y by ``image_size``
  (width, height) to [0, 1]; ``"none"`` keeps pixels. Image y points down.
- **Layout**: ``coco18`` (default; BODY_25 converted with
  :data:`~harkit.data.skeleton.BODY25_TO_COCO18`) or ``body25`` (BODY_25 input only). Values
  per joint: x, y, confidence.

Dataset: each labelled clip is one sequence, brought to ``length`` frames (``policy``:
``resample`` the whole clip, or ``pad`` with a ``valid`` channel). Test split: the
``test_subjects`` option, else a reproducible 20% of the subjects (at least one); the window
subjects are the CSV's subject ids, so ``data.test_subjects`` and ``harkit cv`` work as for
any subject-wise dataset. OpenPose records no frame rate: ``sampling_rate`` (default 30).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset, resolve_classes
from harkit.data.skeleton import (
    BODY25_TO_COCO18,
    LENGTH_POLICIES,
    Layout,
    SkeletonInfo,
    check_choice,
    get_layout,
    interpolate_joints,
    keypoint_mask,
    skeleton_dataset,
)
from harkit.data.sources import DATASETS
from harkit.data.splits import subject_numbers, subject_split
from harkit.data.store import cached_parse
from harkit.data.textio import FLOAT32_MAX
from harkit.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

FRAME_FILE = re.compile(r"^(?P<clip>.+)_(?P<frame>\d+)_keypoints\.json$")
MODEL_OF_LENGTH = {75: "body25", 54: "coco18"}
LAYOUTS = ("coco18", "body25")
FILL_POLICIES = ("interpolate", "zero")
NORMALIZATIONS = ("body", "image", "none")
DIM_NAMES = ("x", "y", "confidence")
CACHE_VERSION = 1


@dataclass
class ClipInfo:
    """What :func:`read_openpose_clip` found in a clip.

    Attributes:
        name: the clip name (file-name prefix).
        frame_numbers: ``(T,)`` OpenPose frame number of each output frame.
        missing_frames: frame numbers without a file (inserted as undetected frames).
        source_layout: ``body25`` or ``coco18`` as found in the files (None: nobody anywhere).
        layout: the output layout.
        people: ``(T,)`` people detected in each frame (0 on inserted frames).
        detected: ``(T, bodies)`` whether each kept track was detected on each frame.
        n_tracks: tracks found in the clip.
        centre: ``(2,)`` what was subtracted from x, y (pixels).
        scale: ``(2,)`` what x, y were then divided by.
    """

    name: str
    frame_numbers: np.ndarray
    missing_frames: list[int]
    source_layout: str | None
    layout: str
    people: np.ndarray
    detected: np.ndarray
    n_tracks: int
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))
    scale: np.ndarray = field(default_factory=lambda: np.ones(2))


def read_keypoints_file(path: str | os.PathLike[str], data: bytes | None = None
                        ) -> tuple[str | None, np.ndarray]:
    """The people of one OpenPose JSON frame.

    Args:
        path: the file (read unless ``data`` is given; always used in error messages).
        data: the file's bytes, when already read.

    Returns:
        ``(model, keypoints)``: ``"body25"`` / ``"coco18"`` (None when nobody is in the frame)
        and float32 ``(people, joints, 3)`` (x, y, confidence).

    Raises:
        DataFormatError: invalid JSON, no ``people`` list, or a pose of another length.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c_000000000000_keypoints.json"
        >>> _ = p.write_text('{"people": [{"pose_keypoints_2d": [' + ",".join(["1"] * 54) + ']}]}')
        >>> model, kp = read_keypoints_file(p)
        >>> model, kp.shape
        ('coco18', (1, 18, 3))
    """
    path = Path(path)
    raw = path.read_bytes() if data is None else data
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataFormatError(path, "not UTF-8 text (not an OpenPose JSON file?)") from None
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"not valid JSON: {e.msg} (column {e.colno})", e.lineno) from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise DataFormatError(path, f"not valid JSON: {e}") from None
    except RecursionError:
        raise DataFormatError(path, "not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise DataFormatError(path, "expected an object with a 'people' list (OpenPose "
                                    "--write_json output)")
    poses = []
    model: str | None = None
    for k, person in enumerate(doc["people"]):
        if not isinstance(person, dict):
            raise DataFormatError(path, f"people[{k}] is not an object")
        values = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
        if not isinstance(values, list):
            raise DataFormatError(path, f"people[{k}] has no 'pose_keypoints_2d' list")
        this = MODEL_OF_LENGTH.get(len(values))
        if this is None:
            raise DataFormatError(path, f"people[{k}].pose_keypoints_2d has {len(values)} values; "
                                        "expected 75 (BODY_25: 25 joints x (x, y, confidence)) "
                                        "or 54 (COCO-18)")
        if model is not None and this != model:
            raise DataFormatError(path, f"people[{k}] is {this} while people[0] is {model}")
        model = this
        bad = next((i for i, v in enumerate(values) if not _is_float32(v)), None)
        if bad is not None:
            raise DataFormatError(path, f"people[{k}].pose_keypoints_2d[{bad}] is "
                                        f"{values[bad]!r}, expected a finite number (32-bit "
                                        "float range)")
        poses.append(np.asarray(values, dtype=np.float32).reshape(-1, 3))
    if not poses:
        return None, np.zeros((0, 0, 3), np.float32)
    return model, np.stack(poses)


def _is_float32(v: Any) -> bool:
    """A JSON number that is finite as a 32-bit float (JSON integers can be any size)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v) and abs(v) <= FLOAT32_MAX
    except OverflowError:  # an integer too large for a float
        return False


def _extent(xy: np.ndarray) -> float:
    """Side of the bounding box of points ``(n, 2)`` (its larger side; 0 for < 2 points)."""
    if len(xy) < 2:
        return 0.0
    return float(np.max(xy.max(axis=0) - xy.min(axis=0)))


def pose_distance(a: np.ndarray, a_ok: np.ndarray, b: np.ndarray, b_ok: np.ndarray) -> float:
    """Mean distance of the joints both poses have, over the larger of the poses' extents.

    Args:
        a, b: ``(joints, 2)`` positions.
        a_ok, b_ok: ``(joints,)`` which joints are detected.

    Returns:
        the distance (``inf`` when no joint is detected in both).

    Example:
        >>> a = np.array([[0.0, 0.0], [0.0, 10.0]]); ok = np.array([True, True])
        >>> pose_distance(a, ok, a + [2.0, 0.0], ok)
        0.2
    """
    common = a_ok & b_ok
    if not common.any():
        return math.inf
    d = float(np.linalg.norm(a[common] - b[common], axis=1).mean())
    size = max(_extent(a[a_ok]), _extent(b[b_ok]))
    if size <= 0:
        return 0.0 if d == 0 else math.inf
    return d / size


def track_people(frames: Sequence[np.ndarray], min_confidence: float = 0.1,
                 max_match_distance: float = 0.5) -> tuple[np.ndarray, list[np.ndarray]]:
    """Link the people detected in consecutive frames into tracks.

    Each frame's detections are matched to the existing tracks by the Hungarian method
    (:func:`scipy.optimize.linear_sum_assignment`) on :func:`pose_distance` to the joints
    where each track was last seen. A detection left over that shares no joint with a
    track's match in the same frame and lies within ``max_match_distance`` of that track is
    a fragment of the same person (OpenPose splits a person cut by the image border into,
    say, an arm and the legs) and is merged into the match; any other detection starts a new
    track. Detections with no detected joint are ignored.

    Args:
        frames: per frame, the people ``(people, joints, 3)`` (x, y, confidence).
        min_confidence: joints below this confidence count as undetected.
        max_match_distance: the largest :func:`pose_distance` of a match.

    Returns:
        ``(tracks, frames)``: int64 ``(frames, tracks)``, the index of each track's detection
        in each frame's people list (-1 where the track is not detected), and the frames with
        merged fragments (the fragment's joints copied into the detection it joins, its own
        confidences set to 0).

    Example:
        >>> def person(x): return np.array([[x, 0.0, 1.0], [x, 10.0, 1.0]], np.float32)
        >>> frames = [np.stack([person(0), person(50)]), np.stack([person(51), person(1)])]
        >>> track_people(frames)[0].tolist()      # the list order swapped; the tracks did not
        [[0, 1], [1, 0]]
    """
    from scipy.optimize import linear_sum_assignment

    far = 1e6  # cost of a pair beyond the gate: the assignment ignores them alike
    last_xy: list[np.ndarray] = []
    last_ok: list[np.ndarray] = []
    per_frame: list[dict[int, int]] = []
    merged: list[np.ndarray] = []
    for people in frames:
        people = np.array(people, dtype=np.float32, copy=True)
        ok = keypoint_mask(people, min_confidence) if len(people) else np.zeros((0, 0), bool)
        dets = [k for k in range(len(people)) if ok[k].any()]
        match: dict[int, int] = {}
        if dets and last_xy:
            cost = np.array([[pose_distance(last_xy[i], last_ok[i], people[k, :, :2], ok[k])
                              for k in dets] for i in range(len(last_xy))])
            gated = np.where(cost <= max_match_distance, cost, far)
            for i, j in zip(*linear_sum_assignment(gated), strict=True):
                if cost[i, j] <= max_match_distance:
                    match[int(i)] = dets[int(j)]
        taken = set(match.values())
        for k in dets:
            if k in taken:
                continue
            best: tuple[float, int] | None = None
            for i, k1 in match.items():
                if i < len(last_xy) and not (ok[k] & ok[k1]).any():
                    d = pose_distance(last_xy[i], last_ok[i], people[k, :, :2], ok[k])
                    if d <= max_match_distance and (best is None or d < best[0]):
                        best = (d, i)
            if best is not None:  # a fragment of the person matched to track best[1]
                k1 = match[best[1]]
                people[k1, ok[k]] = people[k, ok[k]]
                people[k, :, 2] = 0.0
                ok[k1] |= ok[k]
                ok[k] = False
                continue
            match[len(last_xy)] = k
            last_xy.append(np.zeros((people.shape[1], 2), np.float32))
            last_ok.append(np.zeros(people.shape[1], bool))
        for i, k in match.items():
            last_xy[i][ok[k]] = people[k, ok[k], :2]
            last_ok[i] |= ok[k]
        per_frame.append(match)
        merged.append(people)
    out = np.full((len(frames), len(last_xy)), -1, dtype=np.int64)
    for t, match in enumerate(per_frame):
        for i, k in match.items():
            out[t, i] = k
    return out, merged


def rank_tracks(frames: Sequence[np.ndarray], tracks: np.ndarray,
                min_confidence: float = 0.1) -> list[int]:
    """Track indices, best first: by ``frames detected x median extent`` (ties: the earlier
    track first).

    Example:
        >>> def person(x, h): return np.array([[x, 0.0, 1.0], [x, h, 1.0]], np.float32)
        >>> frames = [np.stack([person(0, 10), person(50, 30)]), person(1, 10)[None]]
        >>> rank_tracks(frames, track_people(frames)[0])   # big for 1 frame beats small for 2
        [1, 0]
    """
    scores = []
    for i in range(tracks.shape[1]):
        sizes = []
        for t in np.flatnonzero(tracks[:, i] >= 0).tolist():
            kp = frames[t][tracks[t, i]]
            sizes.append(_extent(kp[keypoint_mask(kp, min_confidence), :2]))
        scores.append(len(sizes) * float(np.median(sizes)) if sizes else 0.0)
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def finish_keypoints(raw: np.ndarray, valid: np.ndarray, layout: str | Layout,
                     fill: str = "interpolate", normalize: str = "body",
                     image_size: Sequence[float] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalise 2D keypoints and mask the undetected ones (see the module docstring).

    Args:
        raw: ``(..., time, bodies, joints, 3)`` x, y (pixels), confidence; leading axes are
            independent sequences.
        valid: ``(..., time, bodies, joints)`` True where a joint is detected.
        layout: the joint layout (its ``neck``, ``r_hip`` and ``l_hip`` joints are used).
        fill: ``interpolate`` or ``zero``.
        normalize: ``body`` (per sequence, from body 0), ``image`` or ``none``.
        image_size: ``(width, height)`` for ``normalize="image"``.

    Returns:
        ``(keypoints, centre, scale)``: float32 ``(..., time, bodies, joints, 3)`` (masked
        joints interpolated or zero, their confidence 0), and per sequence the ``(..., 2)``
        centre subtracted from and scale dividing x, y.

    Example:
        >>> raw = np.zeros((3, 1, 18, 3), np.float32); raw[..., 2] = 1
        >>> raw[:, 0, 1, :2] = [[10, 20], [0, 0], [30, 40]]      # the neck, lost on frame 1
        >>> valid = np.zeros((3, 1, 18), bool); valid[[0, 2], 0, 1] = True
        >>> out, c, s = finish_keypoints(raw, valid, "coco18", normalize="none")
        >>> out[:, 0, 1].tolist()
        [[10.0, 20.0, 1.0], [20.0, 30.0, 0.0], [30.0, 40.0, 1.0]]
    """
    check_choice("openpose", "fill", fill, FILL_POLICIES)
    check_choice("openpose", "normalize", normalize, NORMALIZATIONS)
    lay = get_layout(layout)
    if raw.ndim < 4 or raw.shape[-1] != 3 or valid.shape != raw.shape[:-1]:
        raise ValueError(f"keypoints {raw.shape} / valid {valid.shape}: expected "
                         "(..., time, bodies, joints, 3) / (..., time, bodies, joints)")
    lead = raw.shape[:-4]
    xy = raw[..., :2].astype(np.float64)
    centre, scale = np.zeros((*lead, 2)), np.ones((*lead, 2))
    if normalize == "image":
        if image_size is None or len(image_size) != 2 or not all(
                isinstance(v, (int, float)) and v > 0 for v in image_size):
            raise ConfigError(f"image_size={image_size!r}: normalize='image' needs the image "
                              "(width, height) in pixels")
        scale = np.broadcast_to(np.asarray(image_size, dtype=np.float64), (*lead, 2)).copy()
    elif normalize == "body" and raw.shape[-3] > 0:
        centre, size = body_frame(xy[..., 0, :, :], valid[..., 0, :], lay)
        scale = np.stack([size, size], axis=-1)
    per_seq = (..., None, None, None, slice(None))  # (..., 2) against (..., T, B, J, 2)
    out = np.zeros(raw.shape, np.float32)
    out[..., :2] = (xy - centre[per_seq]) / scale[per_seq]
    out[..., 2] = np.where(valid, raw[..., 2], 0.0)
    if fill == "zero":
        out[..., :2][~valid] = 0.0
    else:
        out[..., :2] = interpolate_joints(out[..., :2], valid)
    return out, centre, scale


def body_frame(xy: np.ndarray, ok: np.ndarray, layout: str | Layout
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence, the mean neck position and the median torso length of a body.

    Args:
        xy: ``(..., time, joints, 2)`` positions.
        ok: ``(..., time, joints)`` which are detected.
        layout: its ``neck`` joint (else the layout's centre) and ``r_hip`` / ``l_hip``.

    Returns:
        ``(centre (..., 2), size (...,))``. Without a neck: the mean of every detected joint;
        torso length = neck to the mean of the detected hips, else the median height of the
        detected joints' bounding box; a sequence with nothing detected gets 0 and 1.

    Example:
        >>> xy = np.zeros((2, 18, 2)); ok = np.zeros((2, 18), bool)
        >>> xy[:, 1] = [[10, 10], [12, 10]]; xy[:, 8] = [[10, 30], [12, 34]]; ok[:, [1, 8]] = True
        >>> centre, size = body_frame(xy, ok, "coco18")
        >>> centre.tolist(), float(size)
        ([11.0, 10.0], 22.0)
    """
    import warnings

    lay = get_layout(layout)
    neck = lay.index("neck") if "neck" in lay.joints else lay.centre[0]
    hips = [lay.index(h) for h in ("r_hip", "l_hip") if h in lay.joints]
    okf = ok.astype(np.float64)
    n_neck = okf[..., neck].sum(axis=-1)
    neck_mean = (xy[..., neck, :] * okf[..., neck, None]).sum(axis=-2) / np.maximum(
        n_neck, 1)[..., None]
    n_all = okf.sum(axis=(-2, -1))
    all_mean = (xy * okf[..., None]).sum(axis=(-3, -2)) / np.maximum(n_all, 1)[..., None]
    centre = np.where((n_neck > 0)[..., None], neck_mean, all_mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: handled below
        torso = np.full(ok.shape[:-1], np.nan)
        if hips:
            h_ok = okf[..., hips]
            n_hip = h_ok.sum(axis=-1)
            hip = (xy[..., hips, :] * h_ok[..., None]).sum(axis=-2) / np.maximum(
                n_hip, 1)[..., None]
            length = np.linalg.norm(hip - xy[..., neck, :], axis=-1)
            torso = np.where(ok[..., neck] & (n_hip > 0) & (length > 0), length, np.nan)
        size = np.nanmedian(torso, axis=-1)
        y = xy[..., 1]
        top = np.where(ok, y, np.inf).min(axis=-1)
        bottom = np.where(ok, y, -np.inf).max(axis=-1)
        height = np.where(ok.sum(axis=-1) > 1, bottom - top, np.nan)
        height = np.where(height > 0, height, np.nan)
        size = np.where(np.isfinite(size), size, np.nanmedian(height, axis=-1))
    size = np.where(np.isfinite(size) & (size > 0), size, 1.0)
    return centre, size


def _frame_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
                 ) -> tuple[str, list[tuple[int, Path]]]:
    """The clip name and its ``(frame number, file)`` pairs, sorted."""
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise DataFormatError(folder, "no such folder of OpenPose JSON files")
        files = [p for p in folder.iterdir() if p.is_file() and FRAME_FILE.match(p.name)]
        if not files:
            raise DataFormatError(folder, "no <clip>_<frame>_keypoints.json files")
        prefixes = sorted({FRAME_FILE.match(p.name).group("clip") for p in files})  # type: ignore[union-attr]
        if len(prefixes) > 1:
            raise DataFormatError(folder, f"holds the frames of several clips {prefixes[:5]}; "
                                          "give one clip's files")
    else:
        files = [Path(p) for p in source]
        if not files:
            raise ConfigError("read_openpose_clip: no files given")
    pairs: dict[int, Path] = {}
    name = ""
    for p in files:
        m = FRAME_FILE.match(p.name)
        if m is None:
            raise DataFormatError(p, "not named <clip>_<frame number>_keypoints.json")
        n = int(m.group("frame"))
        if n in pairs:
            raise DataFormatError(p, f"frame {n} given twice (also {pairs[n].name})")
        pairs[n] = p
        name = name or m.group("clip")
    return name, sorted(pairs.items())


def read_openpose_clip(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                       layout: str = "coco18", bodies: int = 1, min_confidence: float = 0.1,
                       fill: str = "interpolate", normalize: str = "body",
                       image_size: Sequence[float] | None = None,
                       max_match_distance: float = 0.5) -> tuple[np.ndarray, ClipInfo]:
    """Read one clip of OpenPose JSON frames into a tracked skeleton sequence.

    Args:
        source: a folder holding one clip's ``<clip>_<frame>_keypoints.json`` files, or the
            files themselves (in any order).
        layout: ``coco18`` or ``body25`` (BODY_25 input only).
        bodies: tracks to keep, best first (1 or 2).
        min_confidence: joints below this confidence are undetected.
        fill, normalize, image_size: see :func:`finish_keypoints`.
        max_match_distance: see :func:`track_people`.

    Returns:
        ``(frames, info)``: float32 ``(time, bodies, joints, 3)`` x, y, confidence in
        ``layout``, one frame per frame number from the first to the last, and a
        :class:`ClipInfo`.

    Raises:
        DataFormatError: a file that is not OpenPose JSON (naming it), or a clip mixing models.
        ConfigError: an option out of range, or ``body25`` asked of COCO-18 files.

    Example:
        >>> frames, info = read_openpose_clip("clips/wave_01")        # doctest: +SKIP
        >>> frames.shape, info.missing_frames                          # doctest: +SKIP
        ((120, 1, 18, 3), [57])
    """
    check_choice("openpose", "layout", layout, LAYOUTS)
    if bodies not in (1, 2):
        raise ConfigError(f"bodies={bodies!r}: expected 1 or 2")
    if not 0 <= min_confidence < 1:
        raise ConfigError(f"min_confidence={min_confidence!r}: expected a value in [0, 1)")
    if not max_match_distance > 0:
        raise ConfigError(f"max_match_distance={max_match_distance!r}: expected > 0")
    check_choice("openpose", "fill", fill, FILL_POLICIES)
    check_choice("openpose", "normalize", normalize, NORMALIZATIONS)
    name, pairs = _frame_files(source)
    lay = get_layout(layout)
    first, last = pairs[0][0], pairs[-1][0]
    n_frames = last - first + 1
    empty = np.zeros((0, lay.n_joints, 3), np.float32)
    frames: list[np.ndarray] = [empty] * n_frames
    source_model: str | None = None
    model_file: Path | None = None
    for n, path in pairs:
        model, kp = read_keypoints_file(path)
        if model is None:
            continue
        if source_model is not None and model != source_model:
            raise DataFormatError(path, f"{model} keypoints while {model_file} has "
                                        f"{source_model}: one clip must come from one model")
        source_model, model_file = model, model_file or path
        if layout == "coco18" and model == "body25":
            kp = kp[:, list(BODY25_TO_COCO18)]
        elif layout == "body25" and model == "coco18":
            raise ConfigError(f"{path}: COCO-18 keypoints cannot be read as layout 'body25' "
                              "(it has joints COCO-18 lacks); use layout='coco18'")
        frames[n - first] = kp
    present = {n for n, _ in pairs}
    missing = [n for n in range(first, last + 1) if n not in present]
    tracks, frames = track_people(frames, min_confidence, max_match_distance)
    keep = rank_tracks(frames, tracks, min_confidence)[:bodies]
    raw = np.zeros((n_frames, bodies, lay.n_joints, 3), np.float32)
    detected = np.zeros((n_frames, bodies), bool)
    for slot, i in enumerate(keep):
        for t in np.flatnonzero(tracks[:, i] >= 0).tolist():
            raw[t, slot] = frames[t][tracks[t, i]]
            detected[t, slot] = True
    valid = keypoint_mask(raw, min_confidence) & detected[:, :, None]
    out, centre, scale = finish_keypoints(raw, valid, lay, fill, normalize, image_size)
    info = ClipInfo(name, np.arange(first, last + 1), missing, source_model, layout,
                    np.array([len(f) for f in frames]), detected, tracks.shape[1], centre, scale)
    return out, info


def find_clips(root: Path) -> dict[str, list[Path]]:
    """Clip name -> its JSON files: one clip per subfolder of ``root`` holding frame files
    (named by the folder), and one per file-name prefix among the files directly in ``root``.

    Raises:
        DataFormatError: a subfolder holding several clips, or two clips of one name.
    """
    clips: dict[str, list[Path]] = {}
    top: dict[str, list[Path]] = {}
    for p in sorted(root.iterdir()):
        if p.is_dir():
            files = sorted(q for q in p.iterdir() if q.is_file() and FRAME_FILE.match(q.name))
            if not files:
                continue
            prefixes = sorted({FRAME_FILE.match(q.name).group("clip") for q in files})  # type: ignore[union-attr]
            if len(prefixes) > 1:
                raise DataFormatError(p, f"holds the frames of several clips {prefixes[:5]}; "
                                         "put one clip per folder (or all files in the top "
                                         "folder, a clip per prefix)")
            clips[p.name] = files
        elif m := FRAME_FILE.match(p.name):
            top.setdefault(m.group("clip"), []).append(p)
    for name, files in top.items():
        if name in clips:
            raise DataFormatError(root / name, f"clip {name!r} is both a folder and a file "
                                               "prefix")
        clips[name] = files
    return clips


@dataclass
class LabelRow:
    """One row of a labels CSV."""

    clip: str
    label: str
    subject: str
    line: int


def read_labels_csv(path: Path) -> list[LabelRow]:
    """Rows of a ``clip,label,subject`` CSV (header required; other columns ignored).

    Raises:
        DataFormatError: a missing column, an empty field or a clip listed twice, naming the
            line.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
        >>> _ = p.write_text("clip,label,subject\\nwave_01,waving,3\\n")
        >>> read_labels_csv(p)[0]
        LabelRow(clip='wave_01', label='waving', subject='3', line=2)
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataFormatError(path, "labels CSV not found (columns clip,label,subject; set "
                                    "data.options.labels)") from None
    except UnicodeDecodeError:
        raise DataFormatError(path, "not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))  # newline="": a lone CR is a line end
    numbered: list[tuple[int, list[str]]] = []
    try:
        numbered = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise DataFormatError(path, f"not a readable CSV ({e})", reader.line_num) from None
    header = numbered[0][1] if numbered else None
    if header is None:
        raise DataFormatError(path, "empty; expected a header 'clip,label,subject'", 1)
    cols = [h.strip().lower() for h in header]
    missing = [c for c in ("clip", "label", "subject") if c not in cols]
    if missing:
        raise DataFormatError(path, f"header has no column(s) {missing}; it has {header} "
                                    "(expected clip,label,subject)", 1)
    idx = {c: cols.index(c) for c in ("clip", "label", "subject")}
    rows: list[LabelRow] = []
    seen: dict[str, int] = {}
    for line, row in numbered[1:]:
        if not any(v.strip() for v in row):
            continue
        values = {c: (row[i].strip() if i < len(row) else "") for c, i in idx.items()}
        empty = [c for c, v in values.items() if not v]
        if empty:
            raise DataFormatError(path, f"empty {', '.join(empty)}", line)
        if values["clip"] in seen:
            raise DataFormatError(path, f"clip {values['clip']!r} is listed twice (also line "
                                        f"{seen[values['clip']]})", line)
        seen[values["clip"]] = line
        rows.append(LabelRow(values["clip"], values["label"], values["subject"], line))
    if not rows:
        raise DataFormatError(path, "no rows after the header")
    return rows


def _save_clips(clips: list[tuple[str, np.ndarray]], f: Any) -> None:
    np.savez(f, names=np.array([c[0] for c in clips], dtype=str),
             lengths=np.array([len(c[1]) for c in clips], dtype=np.int64),
             frames=np.concatenate([c[1] for c in clips]) if clips else np.zeros((0,)))


def _load_clips(path: Path) -> list[tuple[str, np.ndarray]]:
    with np.load(path) as z:
        names, lengths, frames = z["names"], z["lengths"], z["frames"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [(str(n), frames[bounds[i]:bounds[i + 1]]) for i, n in enumerate(names)]


@DATASETS.register(
    "openpose",
    description="your own clips as OpenPose JSON keypoints (one file per frame) with a labels "
    "CSV (clip, label, subject); tracked main actor, coco18 or body25",
    kind="skeleton",
)
def load_openpose(data_dir: str | os.PathLike[str] | None = None, labels: str = "labels.csv",
                  layout: str = "coco18", bodies: int = 1, min_confidence: float = 0.1,
                  fill: str = "interpolate", normalize: str = "body",
                  image_size: list[float] | None = None, length: int = 64,
                  policy: str = "resample", classes: list[str] | None = None,
                  test_subjects: list[int] | None = None, sampling_rate: float = 30.0,
                  use_cache: bool = True) -> WindowedDataset:
    """Load a folder of OpenPose JSON clips as one skeleton sequence per labelled clip.

    Args:
        data_dir: the folder of clips (required).
        labels: the labels CSV (``clip,label,subject``), a path or a name in ``data_dir``.
        layout, bodies, min_confidence, fill, normalize, image_size: see
            :func:`read_openpose_clip` and the module docstring.
        length, policy: frames per sequence and how clips get there (``resample`` / ``pad``).
        classes: class names in this order (default: the CSV's labels, sorted).
        test_subjects: subjects of the test split (default: a reproducible 20%).
        sampling_rate: the videos' frame rate (not recorded by OpenPose).
        use_cache: keep the parsed clips in the harkit cache.

    Returns:
        a :class:`~harkit.data.dataset.WindowedDataset` of windows
        ``(clips, length, bodies * joints * 3 [+ valid])`` with its ``skeleton`` info.

    Example:
        >>> ds = load_openpose("my_clips/")                           # doctest: +SKIP
        >>> ds.skeleton.layout, ds.splits["train"].X.shape[1:]         # doctest: +SKIP
        ('coco18', (64, 54))
    """
    if data_dir is None:
        raise ConfigError("dataset 'openpose' reads your own clips: give the folder with "
                          "--data-dir (or data.data_dir)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataFormatError(root, "no such folder of OpenPose clips")
    check_choice("openpose", "policy", policy, LENGTH_POLICIES)
    if not (isinstance(sampling_rate, (int, float)) and sampling_rate > 0):
        raise ConfigError(f"openpose: sampling_rate={sampling_rate!r}, expected frames per second")
    csv_path = Path(labels).expanduser()
    if not csv_path.is_absolute() and not csv_path.exists():
        csv_path = root / labels
    rows = read_labels_csv(csv_path)
    size = [float(v) for v in image_size] if image_size else None
    opts = {"layout": layout, "bodies": bodies, "min_confidence": min_confidence, "fill": fill,
            "normalize": normalize, "image_size": size}
    key = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:10]
    read = partial(read_openpose_clip, layout=layout, bodies=bodies,
                   min_confidence=min_confidence, fill=fill, normalize=normalize,
                   image_size=size)

    def parse(path: Path) -> list[tuple[str, np.ndarray]]:
        out = []
        for name, files in find_clips(path).items():
            frames, _ = read(files)
            out.append((name, frames))
        if not out:
            raise DataFormatError(path, "no OpenPose clips (<clip>_<frame>_keypoints.json "
                                        "files in subfolders or at the top)")
        return out

    parsed: list[tuple[str, np.ndarray]] = cached_parse(
        f"openpose-{key}", CACHE_VERSION, root, parse, _save_clips, _load_clips, use_cache)
    clips = dict(parsed)
    unlisted = sorted(set(clips) - {r.clip for r in rows})
    if unlisted:
        log.warning("openpose: %d clip(s) without a row in %s skipped: %s", len(unlisted),
                    csv_path, ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else ""))
    for r in rows:
        if r.clip not in clips:
            raise DataFormatError(csv_path, f"clip {r.clip!r} is not in {root} (clips found: "
                                            f"{sorted(clips)[:5]}{' ...' if len(clips) > 5 else ''})",
                                  r.line)
    class_names = resolve_classes((r.label for r in rows), classes, csv_path, "column 'label'")
    sid = subject_numbers([r.subject for r in rows])
    seqs, y, subj = [], [], []
    for r in rows:
        frames = clips[r.clip]
        if not frames[..., 2].any():
            log.warning("openpose: clip %s (%s line %d): nobody detected, skipped", r.clip,
                        csv_path.name, r.line)
            continue
        seqs.append(frames)
        y.append(class_names.index(r.label))
        subj.append(sid[r.subject])
    splits = subject_split(seqs, np.array(y, np.int64), np.array(subj, np.int64),
                           test_subjects, f"openpose ({csv_path})",
                           f"the subject column of {csv_path}")
    info = SkeletonInfo(layout, bodies=bodies, dims=3, dim_names=DIM_NAMES)
    return skeleton_dataset("openpose", class_names, info, splits, length, policy,
                            float(sampling_rate),
                            f"{len(seqs)} OpenPose clips from {root} ({layout}, "
                            f"normalize={normalize}, fill={fill})")
