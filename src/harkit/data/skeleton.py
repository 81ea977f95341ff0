"""Skeleton joint layouts and the bridge between skeleton sequences and sensor-style windows.

A skeleton sequence is ``(time, bodies, joints, dims)``: ``dims`` is 2 (x, y), 3 (x, y, z) or
3 for 2D keypoints with a confidence. A :class:`Layout` names the joints and gives the bone
graph (edges), the body-part groups (for part-based models) and the centre joint(s).

harkit keeps one pipeline for sensors and skeletons: a skeleton dataset is a
:class:`~harkit.data.dataset.WindowedDataset` whose windows are the sequences flattened to
``(windows, time, bodies * joints * dims)`` in body-major, joint-major, dim-minor order
(channel ``b0.neck.x``), optionally followed by one ``valid`` channel (1 on real frames, 0 on
padding). Its :attr:`~harkit.data.dataset.WindowedDataset.skeleton` field (a
:class:`SkeletonInfo`) tells skeleton models and skeleton augmentations how to unflatten;
every sensor model simply sees channels.

Example:
    >>> lay = get_layout("coco18")
    >>> lay.n_joints, lay.joints[1], lay.index("neck")
    (18, 'neck', 1)
    >>> info = SkeletonInfo("coco18", bodies=1, dims=2)
    >>> info.channel_names()[:3]
    ['b0.nose.x', 'b0.nose.y', 'b0.neck.x']
    >>> x = np.zeros((4, 10, info.n_channels), np.float32)
    >>> unflatten(x, info).shape
    (4, 10, 1, 18, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harkit.data.windowing import to_length
from harkit.errors import ConfigError

DIM_NAMES = {2: ("x", "y"), 3: ("x", "y", "z")}


@dataclass(frozen=True)
class Layout:
    """A named joint layout.

    Attributes:
        name: registry name (``coco18``, ``ntu25``, ...).
        joints: joint names in array order.
        edges: bones as ``(parent, child)`` joint index pairs (a tree where the layout is one).
        parts: body-part groups, name -> joint indices (torso, arms, legs where present).
        centre: joint indices whose mean is the body centre (root for centring).
        description: where the layout comes from.
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    centre: tuple[int, ...] = (0,)
    description: str = ""

    def __post_init__(self) -> None:
        n = len(self.joints)
        if len(set(self.joints)) != n:
            raise ConfigError(f"layout {self.name!r}: joint names must be distinct")
        for a, b in self.edges:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise ConfigError(f"layout {self.name!r}: edge ({a}, {b}) is not a pair of "
                                  f"distinct joints in 0..{n - 1}")
        for part, idx in self.parts.items():
            if not idx or any(not 0 <= i < n for i in idx):
                raise ConfigError(f"layout {self.name!r}: part {part!r} has joint indices "
                                  f"outside 0..{n - 1}")
        if not self.centre or any(not 0 <= i < n for i in self.centre):
            raise ConfigError(f"layout {self.name!r}: centre {self.centre} outside 0..{n - 1}")

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise ConfigError(f"layout {self.name!r} has no joint {joint!r}; it has "
                              f"{list(self.joints)}") from None

    def neighbours(self) -> list[list[int]]:
        """Each joint's bone neighbours, in the order of :attr:`edges`.

        Example:
            >>> get_layout("natops8").neighbours()[4]    # l_wrist: l_elbow, l_hand_tip, l_thumb
            [2, 0, 6]
        """
        out: list[list[int]] = [[] for _ in range(self.n_joints)]
        for a, b in self.edges:
            out[a].append(b)
            out[b].append(a)
        return out

    def adjacency(self, self_loops: bool = True) -> np.ndarray:
        """Symmetric 0/1 adjacency ``(joints, joints)`` of the bone graph."""
        a = np.zeros((self.n_joints, self.n_joints), np.float32)
        for i, j in self.edges:
            a[i, j] = a[j, i] = 1.0
        if self_loops:
            a += np.eye(self.n_joints, dtype=np.float32)
        return a

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["joints"] = list(self.joints)
        d["edges"] = [list(e) for e in self.edges]
        d["parts"] = {k: list(v) for k, v in self.parts.items()}
        d["centre"] = list(self.centre)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Layout:
        """A layout from ``to_dict`` output or a user's declaration (joint names may be used
        in ``edges``, ``parts`` and ``centre`` instead of indices)."""
        try:
            joints = tuple(str(j) for j in d["joints"])
            name = str(d.get("name", "custom"))
        except (KeyError, TypeError):
            raise ConfigError("a skeleton layout needs 'joints' (a list of names)") from None

        def idx(v: Any) -> int:
            if isinstance(v, str):
                if v not in joints:
                    raise ConfigError(f"layout {name!r}: unknown joint {v!r}")
                return joints.index(v)
            return int(v)

        return Layout(
            name=name, joints=joints,
            edges=tuple((idx(a), idx(b)) for a, b in d.get("edges", [])),
            parts={str(k): tuple(idx(i) for i in v) for k, v in d.get("parts", {}).items()},
            centre=tuple(idx(i) for i in d.get("centre", [0])),
            description=str(d.get("description", "")))


LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to the named layouts (a user's own layout included)."""
    LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str | Layout | dict[str, Any]) -> Layout:
    """A layout by name (or passed through / built from a dict)."""
    if isinstance(name, Layout):
        return name
    if isinstance(name, dict):
        return Layout.from_dict(name)
    if name not in LAYOUTS:
        raise ConfigError(f"unknown skeleton layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def _layout(name: str, joints: str, edges: list[tuple[str, str]], parts: dict[str, str],
            centre: str, description: str) -> Layout:
    j = tuple(joints.split())
    ix = {n: i for i, n in enumerate(j)}
    return register_layout(Layout(
        name, j, tuple((ix[a], ix[b]) for a, b in edges),
        {p: tuple(ix[n] for n in v.split()) for p, v in parts.items()},
        tuple(ix[n] for n in centre.split()), description))


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for pair in text.split(","):
        a, b = pair.split("-")
        out.append((a.strip(), b.strip()))
    return out


_layout(
    "coco18",
    "nose neck r_shoulder r_elbow r_wrist l_shoulder l_elbow l_wrist r_hip r_knee r_ankle "
    "l_hip l_knee l_ankle r_eye l_eye r_ear l_ear",
    _pairs("neck-nose, neck-r_shoulder, r_shoulder-r_elbow, r_elbow-r_wrist, neck-l_shoulder,"
           "l_shoulder-l_elbow, l_elbow-l_wrist, neck-r_hip, r_hip-r_knee, r_knee-r_ankle,"
           "neck-l_hip, l_hip-l_knee, l_knee-l_ankle, nose-r_eye, r_eye-r_ear, nose-l_eye,"
           "l_eye-l_ear"),
    {"torso": "nose neck r_eye l_eye r_ear l_ear", "left_arm": "l_shoulder l_elbow l_wrist",
     "right_arm": "r_shoulder r_elbow r_wrist", "left_leg": "l_hip l_knee l_ankle",
     "right_leg": "r_hip r_knee r_ankle"},
    "neck", "OpenPose COCO 18 keypoints (2D, with confidence)")

_layout(
    "body25",
    "nose neck r_shoulder r_elbow r_wrist l_shoulder l_elbow l_wrist mid_hip r_hip r_knee "
    "r_ankle l_hip l_knee l_ankle r_eye l_eye r_ear l_ear l_big_toe l_small_toe l_heel "
    "r_big_toe r_small_toe r_heel",
    _pairs("neck-mid_hip, neck-nose, neck-r_shoulder, r_shoulder-r_elbow, r_elbow-r_wrist,"
           "neck-l_shoulder, l_shoulder-l_elbow, l_elbow-l_wrist, mid_hip-r_hip,"
           "r_hip-r_knee, r_knee-r_ankle, mid_hip-l_hip, l_hip-l_knee, l_knee-l_ankle,"
           "nose-r_eye, r_eye-r_ear, nose-l_eye, l_eye-l_ear, l_ankle-l_big_toe,"
           "l_big_toe-l_small_toe, l_ankle-l_heel, r_ankle-r_big_toe, r_big_toe-r_small_toe,"
           "r_ankle-r_heel"),
    {"torso": "nose neck mid_hip r_eye l_eye r_ear l_ear",
     "left_arm": "l_shoulder l_elbow l_wrist", "right_arm": "r_shoulder r_elbow r_wrist",
     "left_leg": "l_hip l_knee l_ankle l_big_toe l_small_toe l_heel",
     "right_leg": "r_hip r_knee r_ankle r_big_toe r_small_toe r_heel"},
    "mid_hip", "OpenPose BODY_25 keypoints (2D, with confidence)")

BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
"""BODY_25 joint index of each COCO-18 joint (BODY_25 adds mid_hip and the feet)."""

_layout(
    "ntu25",
    "spine_base spine_mid neck head l_shoulder l_elbow l_wrist l_hand r_shoulder r_elbow "
    "r_wrist r_hand l_hip l_knee l_ankle l_foot r_hip r_knee r_ankle r_foot spine_shoulder "
    "l_hand_tip l_thumb r_hand_tip r_thumb",
    _pairs("spine_base-spine_mid, spine_mid-spine_shoulder, spine_shoulder-neck, neck-head,"
           "spine_shoulder-l_shoulder, l_shoulder-l_elbow, l_elbow-l_wrist, l_wrist-l_hand,"
           "l_hand-l_hand_tip, l_wrist-l_thumb, spine_shoulder-r_shoulder,"
           "r_shoulder-r_elbow, r_elbow-r_wrist, r_wrist-r_hand, r_hand-r_hand_tip,"
           "r_wrist-r_thumb, spine_base-l_hip, l_hip-l_knee, l_knee-l_ankle, l_ankle-l_foot,"
           "spine_base-r_hip, r_hip-r_knee, r_knee-r_ankle, r_ankle-r_foot"),
    {"torso": "spine_base spine_mid neck head spine_shoulder",
     "left_arm": "l_shoulder l_elbow l_wrist l_hand l_hand_tip l_thumb",
     "right_arm": "r_shoulder r_elbow r_wrist r_hand r_hand_tip r_thumb",
     "left_leg": "l_hip l_knee l_ankle l_foot", "right_leg": "r_hip r_knee r_ankle r_foot"},
    "spine_mid", "NTU RGB+D / Kinect v2, 25 joints in 3D (metres)")

_KINECT1_EDGES = _pairs(
    "hip_centre-spine, spine-shoulder_centre, shoulder_centre-head,"
    "shoulder_centre-l_shoulder, l_shoulder-l_elbow, l_elbow-l_wrist, l_wrist-l_hand,"
    "shoulder_centre-r_shoulder, r_shoulder-r_elbow, r_elbow-r_wrist, r_wrist-r_hand,"
    "hip_centre-l_hip, l_hip-l_knee, l_knee-l_ankle, l_ankle-l_foot,"
    "hip_centre-r_hip, r_hip-r_knee, r_knee-r_ankle, r_ankle-r_foot")
_KINECT1_PARTS = {
    "torso": "hip_centre spine shoulder_centre head",
    "left_arm": "l_shoulder l_elbow l_wrist l_hand",
    "right_arm": "r_shoulder r_elbow r_wrist r_hand",
    "left_leg": "l_hip l_knee l_ankle l_foot", "right_leg": "r_hip r_knee r_ankle r_foot"}

_layout(
    "kinect20",
    "hip_centre spine shoulder_centre head l_shoulder l_elbow l_wrist l_hand r_shoulder "
    "r_elbow r_wrist r_hand l_hip l_knee l_ankle l_foot r_hip r_knee r_ankle r_foot",
    _KINECT1_EDGES, _KINECT1_PARTS, "hip_centre",
    "Kinect v1 SDK order, 20 joints in 3D (UTKinect-Action3D)")

_layout(
    "msr20",
    "l_shoulder r_shoulder shoulder_centre spine l_hip r_hip hip_centre l_elbow r_elbow "
    "l_wrist r_wrist l_hand r_hand l_knee r_knee l_ankle r_ankle l_foot r_foot head",
    _KINECT1_EDGES, _KINECT1_PARTS, "hip_centre",
    "MSR Action3D joint order (Kinect v1, 20 joints in 3D; 'neck' = shoulder_centre)")

_layout(
    "penn13",
    "head l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist l_hip r_hip l_knee r_knee "
    "l_ankle r_ankle",
    _pairs("head-l_shoulder, head-r_shoulder, l_shoulder-r_shoulder, l_shoulder-l_elbow,"
           "l_elbow-l_wrist, r_shoulder-r_elbow, r_elbow-r_wrist, l_shoulder-l_hip,"
           "r_shoulder-r_hip, l_hip-r_hip, l_hip-l_knee, l_knee-l_ankle, r_hip-r_knee,"
           "r_knee-r_ankle"),
    {"torso": "head l_shoulder r_shoulder", "left_arm": "l_elbow l_wrist",
     "right_arm": "r_elbow r_wrist", "left_leg": "l_hip l_knee l_ankle",
     "right_leg": "r_hip r_knee r_ankle"},
    "l_hip r_hip", "Penn Action, 13 2D keypoints with visibility")

_layout(
    "natops8",
    "l_hand_tip r_hand_tip l_elbow r_elbow l_wrist r_wrist l_thumb r_thumb",
    _pairs("l_elbow-l_wrist, l_wrist-l_hand_tip, l_wrist-l_thumb, r_elbow-r_wrist,"
           "r_wrist-r_hand_tip, r_wrist-r_thumb"),
    {"left_arm": "l_elbow l_wrist l_hand_tip l_thumb",
     "right_arm": "r_elbow r_wrist r_hand_tip r_thumb"},
    "l_elbow r_elbow", "NATOPS (UEA), 8 body locations in 3D")


@dataclass(frozen=True)
class SkeletonInfo:
    """How a skeleton dataset's flattened channels unflatten.

    Attributes:
        layout: layout name (or a full layout dict for a user's own layout).
        bodies: bodies per frame (``M``).
        dims: values per joint (2 or 3; 3 may be x, y, confidence for 2D keypoints).
        dim_names: names of the ``dims`` values (default x, y[, z]).
        valid_channel: whether a trailing ``valid`` channel (1 = real frame) follows.
    """

    layout: str | dict[str, Any]
    bodies: int = 1
    dims: int = 3
    dim_names: tuple[str, ...] = ()
    valid_channel: bool = False

    def __post_init__(self) -> None:
        if self.dims < 1 or self.bodies < 1:
            raise ConfigError(f"skeleton: bodies={self.bodies}, dims={self.dims} must be >= 1")
        if self.dim_names and len(self.dim_names) != self.dims:
            raise ConfigError(f"skeleton: {len(self.dim_names)} dim_names for {self.dims} dims")

    @property
    def get_layout(self) -> Layout:
        return get_layout(self.layout)

    @property
    def n_joints(self) -> int:
        return self.get_layout.n_joints

    @property
    def n_coords(self) -> int:
        """Channels that carry joint values (``bodies * joints * dims``)."""
        return self.bodies * self.n_joints * self.dims

    @property
    def n_channels(self) -> int:
        return self.n_coords + int(self.valid_channel)

    def names_of_dims(self) -> tuple[str, ...]:
        return self.dim_names or DIM_NAMES.get(self.dims, tuple(f"d{i}" for i in
                                                               range(self.dims)))

    def channel_names(self) -> list[str]:
        dn = self.names_of_dims()
        names = [f"b{m}.{j}.{d}" for m in range(self.bodies) for j in self.get_layout.joints
                 for d in dn]
        return names + (["valid"] if self.valid_channel else [])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dim_names"] = list(self.dim_names)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SkeletonInfo:
        d = dict(d)
        d["dim_names"] = tuple(d.get("dim_names", ()))
        return SkeletonInfo(**d)


def flatten(seq: np.ndarray) -> np.ndarray:
    """``(..., time, bodies, joints, dims)`` -> ``(..., time, bodies * joints * dims)``."""
    return seq.reshape(*seq.shape[:-3], -1)


def unflatten(x: Any, info: SkeletonInfo) -> Any:
    """``(..., time, channels)`` -> ``(..., time, bodies, joints, dims)`` (numpy or torch);
    a trailing ``valid`` channel is dropped (take it with ``x[..., -1]``)."""
    coords = x[..., : info.n_coords]
    return coords.reshape(*x.shape[:-1], info.bodies, info.n_joints, info.dims)


LENGTH_POLICIES = ("resample", "pad")


def sequences_to_windows(seqs: list[np.ndarray], length: int, policy: str = "resample",
                         valid_channel: bool | None = None) -> np.ndarray:
    """Skeleton sequences ``(time_i, bodies, joints, dims)`` of any lengths -> windows
    ``(n, length, bodies * joints * dims [+ 1])``.

    ``resample`` linearly interpolates each whole sequence onto ``length`` frames (a
    sequence is one action, so this keeps all of it); ``pad`` repeats the last frame (and cuts
    longer sequences) and appends a ``valid`` channel (1 on real frames). ``valid_channel``
    forces that channel on or off (default: on for ``pad``).

    Example:
        >>> a = np.zeros((5, 1, 2, 3), np.float32); b = np.ones((2, 1, 2, 3), np.float32)
        >>> w = sequences_to_windows([a, b], 4, "pad")
        >>> w.shape, w[1, :, -1].tolist()
        ((2, 4, 7), [1.0, 1.0, 0.0, 0.0])
    """
    if policy not in LENGTH_POLICIES:
        raise ConfigError(f"skeleton length policy {policy!r}: expected one of "
                          f"{LENGTH_POLICIES}")
    if not isinstance(length, int) or length < 1:
        raise ConfigError(f"skeleton sequence length {length!r}: expected a positive integer")
    valid = policy == "pad" if valid_channel is None else valid_channel
    out = []
    for s in seqs:
        if s.ndim != 4 or len(s) == 0:
            raise ValueError(f"a skeleton sequence must be (time>0, bodies, joints, dims), got "
                             f"{s.shape}")
        x, v = to_length(flatten(s).astype(np.float32), length, policy)
        out.append(np.concatenate([x, v[:, None]], axis=1) if valid else x)
    if not out:
        width = 0 if not seqs else flatten(seqs[0]).shape[-1]
        return np.empty((0, length, width + int(valid)), np.float32)
    return np.stack(out).astype(np.float32)


def skeleton_dataset(name: str, classes: list[str], info: SkeletonInfo,
                     splits: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]],
                     length: int, policy: str = "resample", sampling_rate: float = 30.0,
                     description: str = "") -> Any:
    """A :class:`~harkit.data.dataset.WindowedDataset` of skeleton sequences.

    Args:
        name: the source's registry name.
        classes: class names.
        info: the layout, bodies and dims of every sequence (``valid_channel`` is set here
            from ``policy``).
        splits: split name -> (sequences ``(time_i, bodies, joints, dims)``, labels
            ``(n,)``, subject ids ``(n,)``).
        length, policy: see :func:`sequences_to_windows`.
        sampling_rate: frames per second of the source.
    """
    from dataclasses import replace

    from harkit.data.dataset import WindowedDataset, WindowSet

    info = replace(info, valid_channel=policy == "pad")
    ws = {}
    for split, (seqs, y, subjects) in splits.items():
        for s in seqs:
            if s.shape[1:] != (info.bodies, info.n_joints, info.dims):
                raise ValueError(f"{name} {split}: a sequence of shape {s.shape}, expected "
                                 f"(time, {info.bodies}, {info.n_joints}, {info.dims})")
        ws[split] = WindowSet(sequences_to_windows(seqs, length, policy),
                              np.asarray(y, np.int64), np.asarray(subjects, np.int64))
    units = {"valid": "0/1"} if info.valid_channel else {}
    return WindowedDataset(name, info.channel_names(), list(classes), float(sampling_rate),
                           length, ws, units, description, info)


# --- per-sequence transforms --------------------------------------------------------------
#
# Pure functions of one sequence ``(time, bodies, joints, dims)``: nothing is fitted, so a
# source applies them once while loading and training, evaluation and inference all see the
# same values. A joint counts as missing where any of its values is not finite or all of them
# are exactly 0 (the Kinect and OpenPose convention for an untracked joint); missing joints
# are left as they are (zeros stay zeros) and never enter a centre or a body size. For 2D
# keypoints with a confidence, pass the coordinates only (``seq[..., :2]``).


def joint_mask(seq: np.ndarray) -> np.ndarray:
    """Which joints were measured: boolean ``(time, bodies, joints)`` (finite values, not all
    zeros).

    Example:
        >>> s = np.array([[[[0.0, 0.0], [1.0, 0.0], [np.nan, 2.0]]]])   # (1, 1, 3, 2)
        >>> joint_mask(s).tolist()
        [[[False, True, False]]]
    """
    return np.isfinite(seq).all(axis=-1) & (seq != 0).any(axis=-1)


def keypoint_mask(kp: np.ndarray, min_confidence: float = 0.0) -> np.ndarray:
    """Which 2D keypoints ``(..., joints, 3)`` (x, y, confidence) were detected: boolean
    ``(..., joints)``, True where the confidence is positive and at least ``min_confidence``
    and x, y are not both 0 (OpenPose writes an undetected joint as ``0, 0, 0``).

    Example:
        >>> kp = np.array([[[5.0, 5.0, 0.9], [0.0, 0.0, 0.9], [5.0, 5.0, 0.05]]])
        >>> keypoint_mask(kp, 0.1).tolist()
        [[True, False, False]]
    """
    conf = kp[..., 2]
    return (conf >= min_confidence) & (conf > 0) & ~((kp[..., 0] == 0) & (kp[..., 1] == 0))


NEVER_VALID = ("zero", "keep")


def interpolate_joints(seq: np.ndarray, valid: np.ndarray | None = None,
                       never_valid: str = "zero") -> np.ndarray:
    """Fill the joints where ``valid`` is False by linear interpolation over time.

    Each joint is filled between its valid frames before and after; before its first valid
    frame it takes the first valid value, after its last one the last (np.interp's ends).

    Args:
        seq: ``(..., time, bodies, joints, dims)``; leading axes are independent sequences.
        valid: ``(..., time, bodies, joints)`` (default: :func:`joint_mask` of ``seq``).
        never_valid: what a joint never valid in its sequence becomes: ``"zero"`` (0) or
            ``"keep"`` (its values as they are).

    Returns:
        a copy of ``seq`` (same shape and dtype); valid values are unchanged.

    Example:
        >>> x = np.array([0.0, 9.0, 4.0, 9.0, 9.0]).reshape(5, 1, 1, 1)
        >>> ok = np.array([True, False, True, False, False]).reshape(5, 1, 1)
        >>> interpolate_joints(x, ok).ravel().tolist()
        [0.0, 2.0, 4.0, 4.0, 4.0]
        >>> interpolate_joints(x, np.zeros_like(ok), "keep").ravel().tolist()
        [0.0, 9.0, 4.0, 9.0, 9.0]
    """
    if never_valid not in NEVER_VALID:
        raise ConfigError(f"never_valid={never_valid!r}: expected one of {list(NEVER_VALID)}")
    x = np.asarray(seq)
    if valid is None:
        valid = joint_mask(x)
    if x.ndim < 4 or np.shape(valid) != x.shape[:-1]:
        raise ValueError(f"skeleton sequence {x.shape} / valid {np.shape(valid)}: expected "
                         "(..., time, bodies, joints, dims) / (..., time, bodies, joints)")
    n = x.shape[-4]
    xt = np.moveaxis(x, -4, -1)  # (..., T, B, J, D) -> (..., B, J, D, T)
    ok = np.broadcast_to(np.moveaxis(valid, -3, -1)[..., None, :], xt.shape)
    steps = np.arange(n)
    prev = np.maximum.accumulate(np.where(ok, steps, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(ok, steps, n), -1), axis=-1), -1)
    p, q = np.clip(prev, 0, n - 1), np.clip(nxt, 0, n - 1)
    xp = np.take_along_axis(xt, p, axis=-1).astype(np.float64)
    xq = np.take_along_axis(xt, q, axis=-1).astype(np.float64)
    # np.interp's arithmetic (slope times offset), so results match it to the last bit
    slope = (xq - xp) / np.maximum(q - p, 1)
    both = (prev >= 0) & (nxt < n)
    never = xt.astype(np.float64) if never_valid == "keep" else 0.0
    filled = np.where(both, slope * (steps - p) + xp, np.where(prev >= 0, xp,
                                                         np.where(nxt < n, xq, never)))
    return np.moveaxis(filled.astype(x.dtype), -1, -4)  # back to (..., T, B, J, D)


def _as_sequence(seq: np.ndarray, layout: Layout) -> np.ndarray:
    """A floating copy of ``seq`` after checking it is ``(time, bodies, joints, dims)``."""
    seq = np.asarray(seq)
    if seq.ndim != 4 or seq.shape[2] != layout.n_joints:
        raise ValueError(f"a {layout.name} skeleton sequence must be (time, bodies, "
                         f"{layout.n_joints}, dims), got shape {seq.shape}")
    return seq.astype(np.result_type(seq.dtype, np.float32), copy=True)


def _joint_indices(layout: Layout, joints: Any) -> tuple[int, ...]:
    out = tuple(layout.index(j) if isinstance(j, str) else int(j) for j in joints)
    if not out or any(not 0 <= i < layout.n_joints for i in out):
        raise ConfigError(f"layout {layout.name!r}: centre joints {list(joints)} must be joint "
                          f"names or indices in 0..{layout.n_joints - 1}")
    return out


def centre(seq: np.ndarray, layout: str | Layout, joints: Any = None,
           per_frame: bool = False) -> np.ndarray:
    """Translate a sequence so that the body centre is the origin.

    The centre is the mean of the measured ``joints`` (default: the layout's ``centre``) of
    body 0, the main actor; every body is moved by the same vector, so two people keep their
    relative position. By default the centre of the first frame where it is measured is
    subtracted from every frame: the body's own movement through space (walking, jumping)
    stays in the data. ``per_frame=True`` subtracts each frame's own centre instead (frames
    without a measured centre use the nearest earlier one, else the first). Missing joints
    stay untouched; a sequence whose centre is never measured is returned unchanged.

    Args:
        seq: ``(time, bodies, joints, dims)``.
        layout: the joint layout of ``seq``.
        joints: joint names or indices whose mean is the centre.
        per_frame: centre every frame, not only the first.

    Returns:
        a float copy of ``seq``, same shape.

    Example:
        >>> lay = get_layout("msr20")
        >>> s = np.ones((2, 1, 20, 3)); s[1] += 5.0
        >>> c = centre(s, lay)
        >>> c[0, 0, lay.index("hip_centre")].tolist(), c[1, 0, 0].tolist()
        ([0.0, 0.0, 0.0], [5.0, 5.0, 5.0])
        >>> centre(s, lay, per_frame=True)[1, 0, 0].tolist()
        [0.0, 0.0, 0.0]
    """
    lay = get_layout(layout)
    out = _as_sequence(seq, lay)
    idx = lay.centre if joints is None else _joint_indices(lay, joints)
    mask = joint_mask(out)
    sel = mask[:, 0, list(idx)]  # (time, centre joints) of body 0
    have = sel.any(axis=1)
    if not have.any():
        return out
    pts = np.where(sel[..., None], out[:, 0, list(idx)], 0.0)
    c = pts.sum(axis=1) / np.maximum(sel.sum(axis=1), 1)[:, None]  # (time, dims)
    if per_frame:
        # frames without a centre take the last one seen (the first one before any)
        last = np.maximum.accumulate(np.where(have, np.arange(len(c)), -1))
        c = c[np.where(last < 0, int(np.argmax(have)), last)]
    else:
        c = np.broadcast_to(c[int(np.argmax(have))], c.shape)
    out -= np.where(mask[..., None], c[:, None, None, :], 0.0).astype(out.dtype)
    return out


def body_size(seq: np.ndarray, layout: str | Layout) -> float:
    """The body's size: the mean over bones of each bone's median length (over frames and
    bodies where both its joints are measured); 0.0 when no bone is measured.

    Medians per bone make it robust to tracking glitches, and averaging bones measured in
    different frames makes it robust to joints missing in some frames.

    Example:
        >>> s = np.zeros((1, 1, 8, 3)); s[0, 0, :, 0] = np.arange(1, 9)   # joints on a line
        >>> body_size(s, "natops8")     # bones of lengths 2, 4, 2 on each arm
        2.6666666666666665
    """
    lay = get_layout(layout)
    x = _as_sequence(seq, lay)
    mask = joint_mask(x)
    lengths = []
    for a, b in lay.edges:
        ok = mask[:, :, a] & mask[:, :, b]
        if ok.any():
            d = np.linalg.norm(x[:, :, b] - x[:, :, a], axis=-1)
            lengths.append(float(np.median(d[ok])))
    return float(np.mean(lengths)) if lengths else 0.0


def normalise_scale(seq: np.ndarray, layout: str | Layout) -> np.ndarray:
    """Divide a sequence by its :func:`body_size`, so that bodies of any size or distance from
    the camera measure 1 (a sequence without a measured bone is returned unchanged).

    Example:
        >>> s = np.random.default_rng(0).normal(size=(5, 1, 20, 3))
        >>> round(body_size(normalise_scale(3.0 * s, "kinect20"), "kinect20"), 6)
        1.0
    """
    lay = get_layout(layout)
    out = _as_sequence(seq, lay)
    size = body_size(out, lay)
    if size > 0:
        out /= size
    return out


def _landmark(lay: Layout, single: tuple[str, ...], pair: tuple[str, str]
              ) -> tuple[int, ...] | None:
    """Joints whose mean is a landmark: the first of ``single`` the layout has, else
    ``pair``."""
    for name in single:
        if name in lay.joints:
            return (lay.joints.index(name),)
    if all(p in lay.joints for p in pair):
        return tuple(lay.joints.index(p) for p in pair)
    return None


def align_view(seq: np.ndarray, layout: str | Layout) -> np.ndarray:
    """Rotate a 3D sequence into a body-fixed frame of its first frame.

    In the first frame where the needed joints of body 0 are measured, ``x`` becomes the
    direction from the left to the right shoulder (the hips where the layout has no
    shoulders), ``y`` the spine (hip centre to shoulder centre, made perpendicular to ``x``)
    and ``z`` completes a right-handed frame. The same rotation, about the origin, applies to
    every frame and body, so :func:`centre` first to rotate about the body. A sequence
    without such a frame is returned unchanged.

    Raises:
        ConfigError: ``seq`` is not 3D, or the layout lacks shoulders / hips and a spine.

    Example:
        >>> lay = get_layout("kinect20")
        >>> s = np.random.default_rng(1).normal(size=(3, 1, 20, 3))
        >>> a = align_view(s, lay)
        >>> line = a[0, 0, lay.index("r_shoulder")] - a[0, 0, lay.index("l_shoulder")]
        >>> bool(line[0] > 0), np.allclose(line[1:], 0)
        (True, True)
    """
    lay = get_layout(layout)
    out = _as_sequence(seq, lay)
    if out.shape[-1] != 3:
        raise ConfigError(f"align_view needs 3D joints (x, y, z); this {lay.name} sequence has "
                          f"{out.shape[-1]} values per joint")
    line = _landmark(lay, (), ("l_shoulder", "r_shoulder")) or \
        _landmark(lay, (), ("l_hip", "r_hip"))
    bottom = _landmark(lay, ("hip_centre", "spine_base", "mid_hip"), ("l_hip", "r_hip"))
    top = _landmark(lay, ("shoulder_centre", "spine_shoulder", "neck"),
                    ("l_shoulder", "r_shoulder"))
    if line is None or bottom is None or top is None:
        raise ConfigError(f"align_view: layout {lay.name!r} has no left / right shoulders or "
                          "hips and spine to align with")
    mask = joint_mask(out)[:, 0]  # (time, joints) of body 0
    needed = list({*line, *bottom, *top})
    for t in np.flatnonzero(mask[:, needed].all(axis=1)):
        p = out[t, 0].astype(np.float64)
        ex = p[line[1]] - p[line[0]]
        up = p[list(top)].mean(axis=0) - p[list(bottom)].mean(axis=0)
        nx = np.linalg.norm(ex)
        if nx < 1e-9:
            continue
        ex /= nx
        ey = up - (up @ ex) * ex
        ny = np.linalg.norm(ey)
        if ny < 1e-9:
            continue
        ey /= ny
        rot = np.stack([ex, ey, np.cross(ex, ey)])  # rows: the new axes in old coordinates
        return (out @ rot.T).astype(out.dtype)  # zeros (missing joints) stay zeros
    return out


def parents(layout: str | Layout) -> tuple[int, ...]:
    """Each joint's parent in the layout's bone tree (-1 for a root).

    The parent is the first edge ``(parent, child)`` naming the joint as child; an edge that
    would close a cycle (layouts such as ``penn13`` join both shoulders and both hips) is
    not a tree edge.

    Example:
        >>> parents("penn13")[:5]      # head is the root; r_shoulder hangs from the head
        (-1, 0, 0, 1, 2)
    """
    lay = get_layout(layout)
    par = [-1] * lay.n_joints

    def ancestors(j: int) -> set[int]:
        seen = set()
        while j >= 0 and j not in seen:
            seen.add(j)
            j = par[j]
        return seen

    for a, b in lay.edges:
        if par[b] == -1 and b not in ancestors(a):
            par[b] = a
    return tuple(par)


def part_roots(layout: str | Layout) -> tuple[int, ...]:
    """Each joint's body-part root: the first joint of the layout part that holds it (the
    shoulder of an arm, the hip of a leg), -1 for a part's root itself and for joints in no
    part (the first part listing a joint wins).

    Example:
        >>> r = part_roots("msr20"); lay = get_layout("msr20")
        >>> [lay.joints[r[lay.index(j)]] for j in ("r_hand", "l_foot", "head")]
        ['r_shoulder', 'l_hip', 'hip_centre']
        >>> r[lay.index("r_shoulder")]
        -1
    """
    lay = get_layout(layout)
    root = [-1] * lay.n_joints
    for idx in lay.parts.values():
        for j in idx[1:]:
            if root[j] == -1:
                root[j] = idx[0]
    return tuple(root)


def extremities(layout: str | Layout) -> tuple[int, ...]:
    """The joints at the ends of the skeleton: those with exactly one bone (head, hands, feet
    on the Kinect layouts), in joint order.

    Example:
        >>> lay = get_layout("msr20")
        >>> [lay.joints[j] for j in extremities(lay)]
        ['l_hand', 'r_hand', 'l_foot', 'r_foot', 'head']
    """
    lay = get_layout(layout)
    degree = np.zeros(lay.n_joints, np.int64)
    for a, b in set(tuple(sorted(e)) for e in lay.edges):
        degree[a] += 1
        degree[b] += 1
    return tuple(int(j) for j in np.flatnonzero(degree == 1))


def bones(seq: np.ndarray, layout: str | Layout) -> np.ndarray:
    """Bone vectors: each joint minus its :func:`parents` joint, same shape as ``seq``; roots
    and bones with a missing end are zeros.

    Example:
        >>> s = np.zeros((1, 1, 8, 3)); s[0, 0, :, 0] = np.arange(1, 9)
        >>> bones(s, "natops8")[0, 0, :, 0].tolist()   # l_wrist - l_elbow = 5 - 3, ...
        [-4.0, -4.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]
    """
    lay = get_layout(layout)
    x = _as_sequence(seq, lay)
    par = np.array(parents(lay))
    child = np.flatnonzero(par >= 0)
    mask = joint_mask(x)
    out = np.zeros_like(x)
    ok = mask[:, :, child] & mask[:, :, par[child]]
    out[:, :, child] = np.where(ok[..., None], x[:, :, child] - x[:, :, par[child]], 0.0)
    return out


def motion(seq: np.ndarray) -> np.ndarray:
    """Frame differences ``seq[t + 1] - seq[t]``, same shape (the last frame is zeros, and so
    is a joint missing in either frame).

    Example:
        >>> s = np.arange(3.0)[:, None, None, None] * np.ones((3, 1, 2, 2)) + 1
        >>> motion(s)[:, 0, 0, 0].tolist()
        [1.0, 1.0, 0.0]
    """
    x = np.asarray(seq)
    if x.ndim != 4:
        raise ValueError(f"a skeleton sequence must be (time, bodies, joints, dims), got shape "
                         f"{x.shape}")
    x = x.astype(np.result_type(x.dtype, np.float32))
    mask = joint_mask(x)
    out = np.zeros_like(x)
    ok = mask[1:] & mask[:-1]
    out[:-1] = np.where(ok[..., None], x[1:] - x[:-1], 0.0)
    return out


_centre = centre


def prepare(seq: np.ndarray, layout: str | Layout, centre: bool = True, scale: bool = True,
            align: bool = False) -> np.ndarray:
    """The usual normalisation of one sequence: :func:`centre` on the first frame, then
    :func:`normalise_scale`, then :func:`align_view` (3D only).

    Example:
        >>> s = np.random.default_rng(2).normal(size=(4, 1, 20, 3)) + 10.0
        >>> p = prepare(s, "msr20", align=True)
        >>> round(body_size(p, "msr20"), 6), bool(np.allclose(p[0, 0, 6], 0.0))
        (1.0, True)
    """
    lay = get_layout(layout)
    out = _centre(seq, lay) if centre else _as_sequence(seq, lay)
    if scale:
        out = normalise_scale(out, lay)
    if align:
        out = align_view(out, lay)
    return out


def check_choice(source: str, name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (a source's option).

    Example:
        >>> check_choice("penn-action", "normalise", "box", ("bbox", "image", "none"))
        Traceback (most recent call last):
        ...
        harkit.errors.ConfigError: penn-action: normalise='box', expected one of ['bbox', 'image', 'none']
    """
    if value not in choices:
        raise ConfigError(f"{source}: {name}={value!r}, expected one of {list(choices)}")


def check_options(source: str, length: Any = None, policy: Any = None,
                  **flags: Any) -> None:
    """Validate a skeleton source's ``length`` / ``policy`` and boolean transform options.

    Raises:
        ConfigError: naming the source and the option.

    Example:
        >>> check_options("msr-action3d", 64, "resample", centre=True)
        >>> check_options("msr-action3d", 64, "resample", centre="yes")
        Traceback (most recent call last):
        ...
        harkit.errors.ConfigError: msr-action3d: centre='yes', expected true or false
    """
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 2):
        raise ConfigError(f"{source}: length={length!r}, expected a number of frames >= 2")
    if policy is not None:
        check_choice(source, "policy", policy, LENGTH_POLICIES)
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name}={value!r}, expected true or false")
