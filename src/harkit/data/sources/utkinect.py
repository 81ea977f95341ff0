"""UTKinect-Action3D (Xia, Chen & Aggarwal, CVPR Workshops 2012), the Kinect v1 3D skeletons.

On-disk format (a folder ``joints/``; only these files are read)::

    joints_sSS_eEE.txt
        one continuous recording per subject SS (01..10) and execution EE (01, 02); one row per
        tracked skeleton: the frame id, then 20 joints x (x, y, z) in metres (61 numbers) in
        the Kinect SDK v1 order of layout ``kinect20`` (hip centre, spine, shoulder centre,
        head, left shoulder / elbow / wrist / hand, right ..., left hip / knee / ankle / foot,
        right ...)
    actionLabel.txt, actionLabel_modified.txt
        per recording a line ``sSS_eEE`` followed by one line ``action: first last`` per
        action (walk, sitDown, standUp, pickUp, carry, throw, push, pull, waveHands,
        clapHands), ``first`` and ``last`` being frame ids (inclusive) or ``NaN``

What the real files look like, and what this loader does about it:

- Frame ids number the camera's frames (taken as 30 per second, the Kinect's frame rate),
  but a row is written only when a skeleton was tracked: consecutive rows are mostly 2 to 8
  ids apart, and a few gaps last 2 to 10 s. About 3 % of the rows repeat the previous row's
  frame id with slightly different joints (a second skeleton record of the same frame, not a
  second person); rows sharing a frame id are averaged. Each recording is then linearly
  interpolated, in frame-id time, onto a uniform grid of ``rate`` Hz (15 Hz: every 2nd frame
  id), so that windows and segment lengths measure time, not rows. The long gaps lie outside
  every labelled segment.
- Label segments are ranges of frame ids, not row numbers: a segment is every grid point
  whose frame id lies in ``first..last``.
- The carry segment of ``s10_e02`` is ``NaN NaN`` in both label files: it is skipped, so
  there are 199 segments. ``actionLabel_modified.txt``, a later corrected copy, fixes seven
  ranges of ``actionLabel.txt`` (e.g. push of ``s03_e01`` at ``2556 3622``, which swallows
  the throw segment, becomes ``3556 3622``); it is used by default (``labels="corrected"``).
  Consecutive segments may share their boundary frame id (and a few original ranges
  overlap more); in continuous mode such frames belong to the segment that starts later.

Modes: ``segments`` (default) makes each labelled segment one sequence of one class, for
whole-action classification; ``continuous`` returns the 20 recordings with a label per grid
sample (:data:`~harkit.data.recording.UNLABELED` between segments) for continuous
recognition through the usual windowing. Both split by subject: by default odd subjects
train and even subjects test (``test_subjects``).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harkit.data.dataset import WindowedDataset
from harkit.data.recording import UNLABELED, Recording, RecordingDataset
from harkit.data.skeleton import (
    SkeletonInfo,
    check_choice,
    check_options,
    prepare,
    skeleton_dataset,
)
from harkit.data.sources import DATASETS
from harkit.data.splits import split_sequences
from harkit.data.store import locate_local
from harkit.data.textio import decode, parse_numeric_table, plain_int
from harkit.data.windowing import interp_columns
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

HOME_URL = "https://cvrc.ece.utexas.edu/KinectDatasets/HOJ3D.html"
ACTIONS = ["walk", "sitDown", "standUp", "pickUp", "carry", "throw", "push", "pull",
           "waveHands", "clapHands"]
CLASSES = ["walk", "sit down", "stand up", "pick up", "carry", "throw", "push", "pull",
           "wave hands", "clap hands"]
LABEL_FILES = {"corrected": "actionLabel_modified.txt", "original": "actionLabel.txt"}
MODES = ("segments", "continuous")
FRAME_RATE = 30.0  # frame ids per second
RATE = 15.0
TEST_SUBJECTS = (2, 4, 6, 8, 10)
SUBJECTS = tuple(range(1, 11))
WINDOW_S, HOP_S = 2.0, 0.5  # continuous mode: most actions last 2-6 s
_FILE = re.compile(r"^joints_s(\d\d)_e(\d\d)\.txt$")
_SESSION = re.compile(r"^s(\d\d)_e(\d\d)$")
_SEGMENT = re.compile(r"^(\w+)\s*:\s*(\S+)\s+(\S+)$")


@dataclass
class Segment:
    """One labelled action of a recording: class index and inclusive frame-id range."""

    label: int
    first: int
    last: int


def parse_labels(text: str, name: str) -> tuple[dict[str, list[Segment]], list[str]]:
    """Parse an ``actionLabel`` file.

    Returns:
        ``(segments, skipped)``: per session (``sSS_eEE``) its segments in file order, and
        ``session:action`` for each segment given as NaN.

    Raises:
        DataFormatError: naming ``name`` and the line (an unknown action, a segment before any
            session line, a range that is not two frame ids ``first <= last``).

    Example:
        >>> segs, skipped = parse_labels("s01_e01\\nwalk: 10 20\\ncarry: NaN NaN\\n", "l.txt")
        >>> segs["s01_e01"], skipped
        ([Segment(label=0, first=10, last=20)], ['s01_e01:carry'])
    """
    segments: dict[str, list[Segment]] = {}
    skipped: list[str] = []
    session: str | None = None
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if _SESSION.match(line):
            session = line
            if session in segments:
                raise DataFormatError(name, f"session {session} listed twice", i)
            segments[session] = []
            continue
        m = _SEGMENT.match(line)
        if m is None:
            raise DataFormatError(name, f"{line[:40]!r}: expected a session sSS_eEE or "
                                        "'action: first last'", i)
        if session is None:
            raise DataFormatError(name, "a segment before the first sSS_eEE line", i)
        action, a, b = m.groups()
        if action not in ACTIONS:
            raise DataFormatError(name, f"unknown action {action!r}; expected one of {ACTIONS}",
                                  i)
        if a.lower() == "nan" or b.lower() == "nan":
            skipped.append(f"{session}:{action}")
            continue
        first, last = plain_int(a), plain_int(b)
        if first is None or last is None or first > last:
            raise DataFormatError(name, f"range {a[:20]} {b[:20]}: expected two frame ids, first "
                                        "<= last", i)
        segments[session].append(Segment(ACTIONS.index(action), first, last))
    if not segments:
        raise DataFormatError(name, "no sSS_eEE session lines")
    return segments, skipped


def parse_joints(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """One recording's rows: sorted distinct frame ids ``(n,)``, joints ``(n, 20, 3)``
    (rows sharing a frame id averaged) and the number of rows merged away.

    Raises:
        DataFormatError: a row without 61 numbers, a frame id that is not a non-negative
            integer or that is smaller than the previous row's (naming the line).
    """
    table = parse_numeric_table(data, name, 61, np.float64)
    ids = table[:, 0]
    bad = np.flatnonzero((ids < 0) | (ids != np.round(ids)))
    if len(bad):
        raise DataFormatError(name, f"frame id {ids[bad[0]]} is not a non-negative integer",
                              int(bad[0]) + 1)
    back = np.flatnonzero(np.diff(ids) < 0)
    if len(back):
        raise DataFormatError(name, f"frame id {int(ids[back[0] + 1])} after "
                                    f"{int(ids[back[0]])}: frame ids must not decrease",
                              int(back[0]) + 2)
    uniq, inverse, counts = np.unique(ids.astype(np.int64), return_inverse=True,
                                      return_counts=True)
    sums = np.zeros((len(uniq), 60))
    np.add.at(sums, inverse, table[:, 1:])
    joints = (sums / counts[:, None]).reshape(-1, 20, 3)
    return uniq, joints, len(ids) - len(uniq)


def to_grid(ids: np.ndarray, joints: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate rows at frame ``ids`` onto frame ids ``ids[0] + k * step``.

    Returns:
        ``(grid_ids (m,), joints (m, 20, 3))`` (float32 joints).

    Example:
        >>> j = np.zeros((2, 20, 3)); j[1] = 4.0
        >>> g, x = to_grid(np.array([10, 18]), j, 2.0)
        >>> g.tolist(), x[:, 0, 0].tolist()
        ([10.0, 12.0, 14.0, 16.0, 18.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    """
    n = int(np.floor((ids[-1] - ids[0]) / step + 1e-9)) + 1
    grid = ids[0] + step * np.arange(n)
    flat = joints.reshape(len(ids), -1)
    return grid, interp_columns(grid, ids, flat).reshape(n, *joints.shape[1:]).astype(np.float32)


@dataclass
class _Recording:
    session: str
    subject: int
    grid: np.ndarray
    joints: np.ndarray
    merged: int


def _read(folder: Path, step: float) -> list[_Recording]:
    found = sorted(p for p in folder.iterdir() if _FILE.match(p.name))
    if not found:
        raise DataFormatError(folder, "no joints_sSS_eEE.txt files found")
    out = []
    for path in found:
        m = _FILE.match(path.name)
        assert m is not None
        ids, joints, merged = parse_joints(path.read_bytes(), str(path))
        if len(ids) < 2:
            raise DataFormatError(path, f"{len(ids)} distinct frame id(s), expected a recording")
        grid, x = to_grid(ids.astype(np.float64), joints, step)
        out.append(_Recording(f"s{m.group(1)}_e{m.group(2)}", int(m.group(1)), grid, x, merged))
    return out


def _check_subjects(test_subjects: list[int] | tuple[int, ...]) -> list[int]:
    try:
        test = sorted({int(s) for s in test_subjects})
        ok = all(int(s) == s for s in test_subjects)
    except (TypeError, ValueError):
        ok = False
    if not ok or not test or not set(test) < set(SUBJECTS):
        raise ConfigError(f"utkinect: test_subjects={test_subjects!r}, expected some but not "
                          f"all of the subjects {list(SUBJECTS)}")
    return test


@DATASETS.register(
    "utkinect",
    description="UTKinect-Action3D Kinect v1 skeletons (20 joints, 3D): 10 subjects x 2 "
    "continuous recordings of 10 actions; segments (199) or continuous, test subjects even",
    kind="skeleton", continuous=True, subjects=10, classes=10,
)
def load_utkinect(data_dir: str | os.PathLike[str] | None = None, mode: str = "segments",
                  labels: str = "corrected", test_subjects: list[int] | None = None,
                  rate: float = RATE, length: int = 64, policy: str = "resample",
                  centre: bool = True, scale: bool = True, align: bool = False
                  ) -> WindowedDataset | RecordingDataset:
    """Load UTKinect-Action3D (layout ``kinect20``).

    Args:
        data_dir: a folder holding ``utkinect/joints/`` (or ``joints/``); else
            ``HARKIT_DATA_DIR``. The dataset is not downloaded automatically.
        mode: ``segments`` (each labelled action one window, ``(n, length, 60)``) or
            ``continuous`` (the recordings, labelled per sample, to be windowed).
        labels: ``corrected`` (``actionLabel_modified.txt``) or ``original``
            (``actionLabel.txt``).
        test_subjects: subjects of the test split (default 2 4 6 8 10).
        rate: the uniform grid, in Hz, the recordings are interpolated onto.
        length, policy: segments mode: frames per window and how segments get there
            (``resample`` or ``pad``, see :func:`~harkit.data.skeleton.sequences_to_windows`).
        centre, scale, align: per-sequence transforms (:func:`~harkit.data.skeleton.prepare`)
            of each segment (segments) or each whole recording (continuous).

    Returns:
        segments: a skeleton :class:`WindowedDataset` with ``train`` / ``test`` splits;
        continuous: a :class:`RecordingDataset` of 20 recordings, 60 channels
        ``b0.hip_centre.x ...``, windows of 2 s every 0.5 s.

    Example:
        >>> ds = load_utkinect("/data")                      # doctest: +SKIP
        >>> len(ds.splits["train"]) + len(ds.splits["test"])  # doctest: +SKIP
        199
    """
    check_choice("utkinect", "mode", mode, MODES)
    check_choice("utkinect", "labels", labels, sorted(LABEL_FILES))
    if isinstance(rate, bool) or not (isinstance(rate, (int, float))
                                      and 1.0 <= rate <= FRAME_RATE):
        raise ConfigError(f"utkinect: rate={rate!r}, expected a grid rate in Hz (1..30)")
    check_options("utkinect", length, policy, centre=centre, scale=scale, align=align)
    test = _check_subjects(TEST_SUBJECTS if test_subjects is None else test_subjects)
    folder = locate_local("utkinect", "joints", HOME_URL, "is distributed by its authors",
                          data_dir)
    label_path = folder / LABEL_FILES[labels]
    if not label_path.is_file():
        raise DatasetNotFoundError(f"utkinect: labels={labels!r} needs {label_path}")
    segments, nan = parse_labels(decode(label_path.read_bytes(), str(label_path)),
                                  str(label_path))
    recs = _read(folder, FRAME_RATE / float(rate))
    missing = sorted({r.session for r in recs} - set(segments))
    if missing:
        raise DataFormatError(label_path, f"no segments for recording(s) {missing}")
    for s in nan:
        log.info("utkinect: segment %s skipped: its frame range is NaN in %s", s,
                 label_path.name)
    info = SkeletonInfo("kinect20", bodies=1, dims=3)
    where = f"test subjects {' '.join(map(str, test))}"
    if mode == "continuous":
        out = []
        for r in recs:
            y = np.full(len(r.grid), UNLABELED, np.int64)
            for seg in sorted(segments[r.session], key=lambda s: s.first):
                y[(r.grid >= seg.first) & (r.grid <= seg.last)] = seg.label
            x = prepare(r.joints[:, None], "kinect20", centre, scale, align)
            out.append(Recording(x.reshape(len(x), -1), y, r.subject, r.session,
                                 {"merged_rows": r.merged, "first_frame_id": float(r.grid[0])}))
        return RecordingDataset(
            "utkinect", info.channel_names(), list(CLASSES), float(rate), out,
            window=max(2, round(WINDOW_S * rate)), hop=max(1, round(HOP_S * rate)),
            test_subjects=test,
            description=f"UTKinect-Action3D continuous skeleton recordings at {rate:g} Hz, "
                        f"{labels} labels, {where}", skeleton=info)
    seqs: list[np.ndarray] = []
    ys: list[int] = []
    subjects: list[int] = []
    for r in recs:
        for seg in segments[r.session]:
            sel = (r.grid >= seg.first) & (r.grid <= seg.last)
            if sel.sum() < 2:
                raise DataFormatError(label_path, f"{r.session} segment {ACTIONS[seg.label]} "
                                                  f"{seg.first}..{seg.last} holds fewer than 2 "
                                                  f"frames of joints_{r.session}.txt")
            seqs.append(prepare(r.joints[sel][:, None], "kinect20", centre, scale, align))
            ys.append(seg.label)
            subjects.append(r.subject)
    subject_ids = np.array(subjects, np.int64)
    splits = split_sequences(seqs, np.array(ys, np.int64), subject_ids,
                             np.isin(subject_ids, test))
    n = sum(len(s[1]) for s in splits.values())
    desc = (f"UTKinect-Action3D skeleton segments ({labels} labels): {n} segments "
            f"({len(nan)} with a NaN range skipped), {len(splits['train'][1])} train / "
            f"{len(splits['test'][1])} test, {where}; {rate:g} Hz grid, {policy} to {length} "
            "frames")
    return skeleton_dataset("utkinect", list(CLASSES), info, splits, length, policy,
                            float(rate), desc)
