"""MSR Action3D (Li, Zhang & Liu, CVPR Workshops 2010), the Kinect v1 3D skeletons.

On-disk format (a folder; only these files are read)::

    skeletons/aAA_sSS_eEE_skeleton3D.txt
        one file per action AA (01..20), subject SS (01..10) and execution EE (01..03); 20
        lines per frame, one per joint in the order of layout ``msr20`` (left shoulder,
        right shoulder, neck, spine, left hip, right hip, hip centre, left elbow, ..., head),
        each "x y z c": real-world coordinates in metres (y up, z the distance from the
        camera) and c, the tracker's confidence (0..1; not used). 15 frames per second.
    files_used_in_cvpr12_paper.txt
        the names ``aAA_sSS_eEE`` of the sequences of the usual protocol, one a line

The release holds 567 sequences of 13 to 936 frames. What the real files look like, and what
this loader does about it:

- Frames where every joint is exactly 0 are frames the tracker lost (bending and picking up
  lose the body for a second or more; 19 sequences have such frames). Lost frames at the
  start and end of a sequence are cut off; lost frames between tracked ones are linearly
  interpolated from the nearest tracked frames. No file has single missing joints.
- ``a13_s09_e02`` is all zeros (a known defect of the release): a sequence with no tracked
  frame is skipped with a logged warning.
- ``files_used_in_cvpr12_paper.txt`` lists 557 sequences here (described elsewhere as 556);
  it leaves out the defective sequence and 9 others with tracking trouble.

The dataset-defined split is the usual cross-subject protocol: subjects 1 3 5 7 9 train,
2 4 6 8 10 test, on all 20 actions or on one of the subsets ``AS1``, ``AS2``, ``AS3``
(:data:`SUBSETS`), whose classes are numbered in the order of their action numbers.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import (
    SkeletonInfo,
    check_options,
    interpolate_joints,
    prepare,
    skeleton_dataset,
)
from harkit.data.sources import DATASETS
from harkit.data.store import cached_parse, locate_local
from harkit.data.textio import decode, parse_numeric_table
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

HOME_URL = "https://sites.google.com/view/wanqingli/data-sets/msr-action3d"
SKELETONS = "skeletons"
PAPER_LIST = "files_used_in_cvpr12_paper.txt"
CLASSES = ["high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch",
           "high throw", "draw x", "draw tick", "draw circle", "hand clap", "two hand wave",
           "side boxing", "bend", "forward kick", "side kick", "jogging", "tennis swing",
           "tennis serve", "golf swing", "pick up and throw"]
SUBSETS = {"AS1": (2, 3, 5, 6, 10, 13, 18, 20), "AS2": (1, 4, 7, 8, 9, 11, 12, 14),
           "AS3": (6, 14, 15, 16, 17, 18, 19, 20)}
TRAIN_SUBJECTS = (1, 3, 5, 7, 9)
TEST_SUBJECTS = (2, 4, 6, 8, 10)
FILE_SETS = ("all", "cvpr12")
RATE = 15.0
JOINTS = 20
CACHE_VERSION = 1
_FILE = re.compile(r"^a(\d\d)_s(\d\d)_e(\d\d)_skeleton3D\.txt$")


@dataclass
class MsrSequence:
    """One parsed sequence.

    Attributes:
        name: ``aAA_sSS_eEE``.
        action, subject, execution: from the file name (1-based).
        joints: float32 ``(time, 20, 3)`` in metres, lost frames handled (module docstring).
        cut, filled: lost frames cut from the ends and interpolated inside.
    """

    name: str
    action: int
    subject: int
    execution: int
    joints: np.ndarray
    cut: int = 0
    filled: int = 0


@dataclass
class MsrParse:
    """Every sequence of the release plus the names of the all-zero ones (skipped)."""

    sequences: list[MsrSequence]
    skipped: list[str] = field(default_factory=list)


def repair_lost_frames(joints: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """Cut lost (all-zero) frames off the ends of ``(time, joints, 3)`` and interpolate the
    inner ones linearly in time.

    Returns:
        ``(joints, cut, filled)``, or None when no frame was tracked.

    Example:
        >>> j = np.zeros((5, 1, 3)); j[1, 0] = 1.0; j[3, 0] = 3.0
        >>> out, cut, filled = repair_lost_frames(j)
        >>> out[:, 0, 0].tolist(), cut, filled
        ([1.0, 2.0, 3.0], 2, 1)
    """
    tracked = (joints != 0).any(axis=(1, 2))
    idx = np.flatnonzero(tracked)
    if len(idx) == 0:
        return None
    first, last = int(idx[0]), int(idx[-1])
    out = joints[first:last + 1].copy()
    ok = tracked[first:last + 1]
    filled = int((~ok).sum())
    if filled:
        # (time, joints, 3) as one body (time, 1, joints, 3); a lost frame loses every joint
        valid = np.broadcast_to(ok[:, None, None], (len(out), 1, out.shape[1]))
        out = interpolate_joints(out[:, None], valid)[:, 0]
    return out, len(joints) - len(out), filled


def parse_file(data: bytes, name: str) -> np.ndarray:
    """One skeleton file's ``(frames, 20, 4)`` values (x, y, z, c).

    Raises:
        DataFormatError: a line without 4 numbers, or a last frame with fewer than 20 rows
            (naming the file and the first line of that frame).
    """
    table = parse_numeric_table(data, name, 4, np.float32)
    if len(table) % JOINTS:
        start = len(table) // JOINTS * JOINTS
        raise DataFormatError(name, f"{len(table)} rows, not a multiple of {JOINTS} (one row "
                                    f"per joint per frame): the frame starting here has only "
                                    f"{len(table) - start} rows", start + 1)
    return table.reshape(-1, JOINTS, 4)


def parse_folder(folder: Path) -> MsrParse:
    """Parse every ``aAA_sSS_eEE_skeleton3D.txt`` of ``folder`` (no caching)."""
    found = sorted(p for p in folder.iterdir() if _FILE.match(p.name))
    if not found:
        raise DataFormatError(folder, "no aAA_sSS_eEE_skeleton3D.txt files found")
    out = MsrParse([])
    for path in found:
        m = _FILE.match(path.name)
        assert m is not None
        action, subject, execution = (int(g) for g in m.groups())
        if not 1 <= action <= len(CLASSES):
            raise DataFormatError(path, f"action {action} outside 1..{len(CLASSES)}")
        name = path.name[: -len("_skeleton3D.txt")]
        frames = parse_file(path.read_bytes(), str(path))
        repaired = repair_lost_frames(frames[:, :, :3])  # drop the confidence column
        if repaired is None:
            out.skipped.append(name)
            continue
        joints, cut, filled = repaired
        out.sequences.append(MsrSequence(name, action, subject, execution,
                                         joints.astype(np.float32), cut, filled))
    return out


def _save(p: MsrParse, f: Any) -> None:
    s = p.sequences
    np.savez(f, joints=np.concatenate([q.joints for q in s]),
             lengths=np.array([len(q.joints) for q in s]), names=np.array([q.name for q in s]),
             ids=np.array([[q.action, q.subject, q.execution, q.cut, q.filled] for q in s]),
             skipped=np.array(p.skipped, dtype=str))


def _load(path: Path) -> MsrParse:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}  # each z[k] access re-reads the member: read once
    bounds = np.concatenate([[0], np.cumsum(a["lengths"])])
    seqs = [MsrSequence(str(n), int(ids[0]), int(ids[1]), int(ids[2]), a["joints"][s:e],
                        int(ids[3]), int(ids[4]))
            for n, ids, s, e in zip(a["names"], a["ids"], bounds[:-1], bounds[1:], strict=True)]
    return MsrParse(seqs, [str(n) for n in a["skipped"]])


def _paper_list(path: Path) -> set[str]:
    if not path.is_file():
        raise DatasetNotFoundError(f"msr-action3d: files='cvpr12' needs {path}")
    names = set()
    for i, line in enumerate(decode(path.read_bytes(), str(path)).splitlines(), 1):
        name = line.strip()
        if name and not re.fullmatch(r"a\d\d_s\d\d_e\d\d", name):
            raise DataFormatError(path, f"{name[:40]!r} is not a sequence name aAA_sSS_eEE", i)
        if name:
            names.add(name)
    return names


@DATASETS.register(
    "msr-action3d",
    description="MSR Action3D Kinect v1 skeletons (20 joints, 3D, 15 fps): 10 subjects, 20 "
    "actions or the subsets AS1-AS3, cross-subject test subjects 2 4 6 8 10",
    kind="skeleton", subjects=10, classes=20,
)
def load_msr_action3d(data_dir: str | os.PathLike[str] | None = None, subset: str = "all",
                      files: str = "all", length: int = 64, policy: str = "resample",
                      centre: bool = True, scale: bool = True, align: bool = False,
                      use_cache: bool = True) -> WindowedDataset:
    """Load MSR Action3D as one window per sequence, ``(n, length, 60)`` (layout ``msr20``).

    Args:
        data_dir: a folder holding ``msr-action3d/skeletons/`` (or ``skeletons/``); else
            ``HARKIT_DATA_DIR``. The dataset is not downloaded automatically.
        subset: ``all`` (20 actions) or ``AS1`` / ``AS2`` / ``AS3`` (8 actions each, classes
            renumbered 0..7 in the order of their action numbers).
        files: ``all`` (566 usable sequences) or ``cvpr12`` (those listed in
            ``files_used_in_cvpr12_paper.txt``).
        length, policy: frames per window and how sequences get there (``resample`` or
            ``pad``; see :func:`~harkit.data.skeleton.sequences_to_windows`).
        centre, scale, align: per-sequence transforms (:func:`~harkit.data.skeleton.prepare`):
            hip centre of the first frame to the origin, body size 1, shoulders along x.

    Returns:
        a skeleton :class:`WindowedDataset` with ``train`` (subjects 1 3 5 7 9) and ``test``
        (2 4 6 8 10) splits and the subject of every sequence.

    Example:
        >>> ds = load_msr_action3d("/data", subset="AS1")   # doctest: +SKIP
        >>> ds.splits["train"].X.shape, ds.n_classes        # doctest: +SKIP
        ((..., 64, 60), 8)
    """
    if subset != "all" and subset not in SUBSETS:
        raise ConfigError(f"msr-action3d: subset={subset!r}, expected 'all' or one of "
                          f"{sorted(SUBSETS)}")
    if files not in FILE_SETS:
        raise ConfigError(f"msr-action3d: files={files!r}, expected one of {FILE_SETS}")
    check_options("msr-action3d", length, policy, centre=centre, scale=scale, align=align)
    src = locate_local("msr-action3d", SKELETONS, HOME_URL, "is distributed by its authors",
                       data_dir)
    parsed = cached_parse("msr-action3d", CACHE_VERSION, src, parse_folder, _save, _load,
                          use_cache)
    for name in parsed.skipped:
        log.warning("msr-action3d: sequence %s skipped: every frame is all zeros", name)
    seqs = parsed.sequences
    if files == "cvpr12":
        keep = _paper_list(src.parent / PAPER_LIST)
        seqs = [s for s in seqs if s.name in keep]
    actions = SUBSETS.get(subset, tuple(range(1, len(CLASSES) + 1)))
    label = {a: i for i, a in enumerate(actions)}
    seqs = [s for s in seqs if s.action in label]
    splits: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}
    for split, subjects in (("train", TRAIN_SUBJECTS), ("test", TEST_SUBJECTS)):
        part = [s for s in seqs if s.subject in subjects]
        splits[split] = (
            [prepare(s.joints[:, None], "msr20", centre, scale, align) for s in part],
            np.array([label[s.action] for s in part], np.int64),
            np.array([s.subject for s in part], np.int64))
    cut = sum(s.cut > 0 or s.filled > 0 for s in seqs)
    desc = (f"MSR Action3D skeletons, {subset} ({len(actions)} actions), {files} files: "
            f"{len(splits['train'][1])} train (subjects 1 3 5 7 9) + {len(splits['test'][1])} "
            f"test (2 4 6 8 10) sequences; {len(parsed.skipped)} all-zero sequence(s) skipped "
            f"({', '.join(parsed.skipped) or 'none'}); {cut} with lost frames cut or "
            f"interpolated; {policy} to {length} frames")
    return skeleton_dataset("msr-action3d", [CLASSES[a - 1] for a in actions],
                            SkeletonInfo("msr20", bodies=1, dims=3), splits, length, policy,
                            RATE, desc)
