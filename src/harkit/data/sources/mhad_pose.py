"""``mhad-pose``: the public OpenPose keypoint release of Berkeley MHAD (Eiffert, "RNN for
Human Activity Recognition - 2D Pose Input", 2018).

On-disk format (the release's ``HAR_pose_activities/database`` folder; file names in any
letter case, e.g. ``x_train.txt``)::

    X_train.txt  X_test.txt    one video frame per line: 36 comma-separated numbers,
                               x, y of the 18 OpenPose COCO joints (nose, neck, right
                               shoulder, ... in the ``coco18`` order), in pixels; an
                               undetected joint is 0, 0
    Y_train.txt  Y_test.txt    one line per block: the action, 1..6

Consecutive ``n_steps``-line blocks of an X file are one sequence (32 frames, about 1.5 s at
the cameras' 22 Hz, in the release); the i-th line of the Y file labels the i-th block. The
six actions are Berkeley MHAD's actions 1, 2, 4, 5, 6, 7: JUMPING, JUMPING_JACKS, BOXING,
WAVING_2HANDS, WAVING_1HAND, CLAPPING_HANDS. The poses come from 12 subjects x 6 actions x 5
repetitions x 4 camera views (1438 videos; the first detected person of each frame was
kept); consecutive blocks of one video overlap by 26 of their 32 frames, and the shipped
train / test files were separated by repetition before the blocks were cut.
Source: the release's README (github.com/stuarteiffert/RNN-for-Human-Activity-Recognition-
using-2D-Pose-Input, README.md and data/HAR_pose_activities/database/README.md).

The release has no subject ids. Optional sidecar files (one integer per line, one line per
block, in the order of the Y file) add them, in ``block_info_dir`` (default: next to the X
files)::

    subject_train.txt  subject_test.txt          subject 1..12 of each block
    repetition_train.txt  repetition_test.txt    repetition 1..5 of each block

Split (option ``split``):

- ``subject`` (the default ``auto`` when subject files exist): train and test files pooled,
  ``test_subjects`` (default: those of 8-12 present, the usual Berkeley MHAD protocol) held
  out; a subject's repetitions are all on one side.
- ``repetition`` (needs repetition files): ``test_repetitions`` (default [5]) held out.
- ``shipped`` (``auto`` without subject files): the release's own X_train / X_test, which keep
  each repetition on one side but are not subject-wise.

Window subjects are the subject ids when known. Without them they are "videos": runs of
consecutive blocks of one label where each block repeats the previous one's last frames
(found by comparing the numbers), so a validation split carved by ``data.n_val_subjects``,
``data.test_subjects`` or ``harkit cv`` holds out whole videos and never a block overlapping
a training block; it is then not a subject-wise evaluation.

Each block becomes a ``(n_steps, 1, 18, 3)`` sequence in layout ``coco18`` with values x, y,
confidence (1 where the release has the joint, 0 where it has 0, 0), so models see the same
three values as from the ``openpose`` source. Missing joints are interpolated over the
block's frames (``fill="interpolate"``) or left 0 (``fill="zero"``); coordinates are
normalised per block as in :mod:`harkit.data.sources.openpose` (``normalize="body"``:
centred on the mean neck and divided by the median torso length; ``"image"`` with
``image_size``, the Berkeley MHAD cameras' 640 x 480; or ``"none"``).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import SkeletonInfo, check_choice, joint_mask, skeleton_dataset
from harkit.data.sources import DATASETS
from harkit.data.sources.openpose import DIM_NAMES, FILL_POLICIES, NORMALIZATIONS, finish_keypoints
from harkit.data.splits import split_sequences
from harkit.data.store import cached_parse, configured_data_dir
from harkit.data.textio import parse_numeric_table, text_lines
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

HOME_URL = "https://github.com/stuarteiffert/RNN-for-Human-Activity-Recognition-using-2D-Pose-Input"
CLASSES = ["JUMPING", "JUMPING_JACKS", "BOXING", "WAVING_2HANDS", "WAVING_1HAND",
           "CLAPPING_HANDS"]
MHAD_ACTIONS = (1, 2, 4, 5, 6, 7)
"""The Berkeley MHAD action number of each class."""
N_JOINTS = 18
N_VALUES = 2 * N_JOINTS
N_STEPS = 32
RATE = 22.0
TEST_SUBJECTS = [8, 9, 10, 11, 12]
TEST_REPETITIONS = [5]
SPLITS = ("auto", "subject", "repetition", "shipped")
PARTS = ("train", "test")
CACHE_VERSION = 1
_FOLDERS = ("", "database", "HAR_pose_activities/database", "HAR_pose_activities/databse")


def parse_rows(data: bytes, name: str, n_values: int = N_VALUES) -> np.ndarray:
    """Lines of ``n_values`` comma-separated numbers -> float32 ``(lines, n_values)``.

    Raises:
        DataFormatError: naming the first line with another count, a non-number, or an
            empty line before the end.

    Example:
        >>> parse_rows(b"1,2.5\\n3,4\\n", "X_test.txt", 2).tolist()
        [[1.0, 2.5], [3.0, 4.0]]
    """
    _, lines = text_lines(data, name, f"lines of {n_values} comma-separated numbers")
    for i, line in enumerate(lines, 1):
        if line.count(",") != n_values - 1:
            found = "an empty line" if not line.strip() else f"{line.count(',') + 1} values"
            raise DataFormatError(name, f"expected {n_values} comma-separated numbers "
                                        f"(x, y of {n_values // 2} joints), found {found}", i)
    import pandas as pd

    body = "\n".join(lines)
    try:  # pandas' C parser: fast and light on the release's 26 million values
        table = pd.read_csv(io.StringIO(body), header=None, dtype=np.float32, na_filter=False,
                            engine="c").to_numpy()
        if table.shape == (len(lines), n_values) and np.isfinite(table).all():
            return table
    except ValueError:
        pass
    # the line-level diagnosis of what pandas refused
    return parse_numeric_table(body.replace(",", " ").encode(), name, n_values, np.float32)


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` in any letter case."""
    exact = folder / name
    if exact.is_file():
        return exact
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.lower() == name.lower() and p.is_file():
                return p
    return None


def find_release(root: Path) -> Path:
    """The folder holding ``X_train.txt`` (or ``x_train.txt``) under ``root``.

    Raises:
        DatasetNotFoundError: naming every folder looked at.
    """
    looked = []
    for base in (root / "mhad-pose", root):
        for sub in _FOLDERS:
            d = base / sub if sub else base
            looked.append(str(d))
            if _find_file(d, "X_train.txt") is not None:
                return d
    raise DatasetNotFoundError(
        f"mhad-pose: no X_train.txt in {', '.join(looked)}; download the release's "
        f"HAR_pose_activities/database folder ({HOME_URL}) and point --data-dir at it")


def read_release(folder: Path) -> dict[str, np.ndarray]:
    """The raw rows and labels of the four release files: ``X_train`` / ``X_test`` float32
    ``(lines, 36)``, ``Y_train`` / ``Y_test`` int64 ``(blocks,)`` (1-based, as in the files)."""
    out: dict[str, np.ndarray] = {}
    for part in PARTS:
        for kind in ("X", "Y"):
            p = _find_file(folder, f"{kind}_{part}.txt")
            if p is None:
                raise DataFormatError(folder / f"{kind}_{part}.txt", "file missing")
            if kind == "X":
                out[f"X_{part}"] = parse_rows(p.read_bytes(), str(p))
            else:
                out[f"Y_{part}"] = parse_numeric_table(p.read_bytes(), str(p), 1, np.int64)[:, 0]
            out[f"{kind}_{part}_path"] = np.array(str(p))
    return out


def to_blocks(rows: np.ndarray, labels: np.ndarray, n_steps: int, x_name: str, y_name: str
              ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(lines, 36)`` and 1-based labels -> blocks ``(n, n_steps, 18, 2)`` and 0-based
    labels ``(n,)``, checking that the files agree.

    Example:
        >>> blocks, y = to_blocks(np.zeros((64, 36), np.float32), np.array([3, 1]), 32, "X", "Y")
        >>> blocks.shape, y.tolist()
        ((2, 32, 18, 2), [2, 0])
    """
    n_lines = len(rows)
    if n_lines % n_steps:
        raise DataFormatError(x_name, f"{n_lines} lines are not whole blocks of n_steps="
                                      f"{n_steps}: the last block, from this line, has "
                                      f"{n_lines % n_steps} (set data.options.n_steps?)",
                              n_lines - n_lines % n_steps + 1)
    n = n_lines // n_steps
    if len(labels) != n:
        raise DataFormatError(y_name, f"{len(labels)} labels for the {n} blocks of {n_steps} "
                                      f"lines in {Path(x_name).name}", min(len(labels), n) + 1)
    bad = np.flatnonzero((labels < 1) | (labels > len(CLASSES)))
    if len(bad):
        raise DataFormatError(y_name, f"label {labels[bad[0]]} outside 1..{len(CLASSES)}",
                              int(bad[0]) + 1)
    # (lines, 36) -> (blocks, n_steps, 18 joints, x/y)
    return rows.reshape(n, n_steps, N_JOINTS, 2), (labels - 1).astype(np.int64)


def overlap_runs(blocks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Run number (0, 1, ...) of each block: a block continues the run of the block before
    when both have one label and it starts with the earlier block's last frames (any shift
    of 1..n_steps - 1 frames, not all zero).

    Example:
        >>> frames = np.arange(40.0).reshape(40, 1, 1)
        >>> blocks = np.stack([frames[0:8], frames[6:14], frames[30:38]])
        >>> overlap_runs(blocks, np.array([0, 0, 0])).tolist()
        [0, 0, 1]
    """
    n = len(blocks)
    flat = blocks.reshape(n, blocks.shape[1], -1)  # (blocks, T, J, 2) -> (blocks, T, J * 2)
    steps = flat.shape[1]
    run = np.zeros(n, np.int64)
    for i in range(1, n):
        joined = False
        if labels[i] == labels[i - 1]:
            starts = np.flatnonzero((flat[i - 1, 1:] == flat[i, 0]).all(axis=1)) + 1
            for s in starts.tolist():
                shared = flat[i, : steps - s]
                if shared.any() and np.array_equal(flat[i - 1, s:], shared):
                    joined = True
                    break
        run[i] = run[i - 1] + (0 if joined else 1)
    return run


def _read_sidecar(folder: Path, kind: str, part: str, n_blocks: int) -> np.ndarray | None:
    p = _find_file(folder, f"{kind}_{part}.txt")
    if p is None:
        return None
    values = parse_numeric_table(p.read_bytes(), str(p), 1, np.int64)[:, 0]
    if len(values) != n_blocks:
        raise DataFormatError(p, f"{len(values)} lines for the {n_blocks} blocks of the "
                                 f"{part} files (one {kind} per block)",
                              min(len(values), n_blocks) + 1)
    return values


def _save(parsed: dict[str, np.ndarray], f: Any) -> None:
    arrays: dict[str, Any] = dict(parsed)
    np.savez(f, **arrays)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _check_ids(name: str, ids: Sequence[int], present: np.ndarray) -> list[int]:
    chosen = sorted({int(v) for v in ids})
    have = sorted({int(v) for v in np.unique(present)})
    unknown = sorted(set(chosen) - set(have))
    if unknown:
        raise ConfigError(f"mhad-pose: {name} {unknown} are not among {have}")
    if set(chosen) >= set(have):
        raise ConfigError(f"mhad-pose: {name} {chosen} would leave nothing to train on")
    return chosen


@DATASETS.register(
    "mhad-pose",
    description="Berkeley MHAD OpenPose keypoint release (COCO-18 2D, 32-frame blocks, 22 Hz): "
    "6 actions, 12 subjects; subject-wise with subject sidecar files, else the shipped split",
    kind="skeleton", classes=6,
)
def load_mhad_pose(data_dir: str | os.PathLike[str] | None = None, n_steps: int = N_STEPS,
                   split: str = "auto", test_subjects: list[int] | None = None,
                   test_repetitions: list[int] | None = None,
                   block_info_dir: str | None = None, fill: str = "interpolate",
                   normalize: str = "body", image_size: list[float] | None = None,
                   use_cache: bool = True) -> WindowedDataset:
    """Load the Berkeley MHAD OpenPose release as one ``n_steps``-frame sequence per block.

    Args:
        data_dir: the folder with X_train.txt ... (or a parent of ``HAR_pose_activities``);
            else ``HARKIT_DATA_DIR``. There is no automatic download.
        n_steps: lines per block (32 in the release).
        split: ``auto``, ``subject``, ``repetition`` or ``shipped`` (module docstring).
        test_subjects: held-out subjects of the ``subject`` split (default 8-12).
        test_repetitions: held-out repetitions of the ``repetition`` split (default [5]).
        block_info_dir: folder of the subject / repetition sidecar files (default: the data
            folder).
        fill, normalize, image_size: see :func:`~harkit.data.sources.openpose.finish_keypoints`.
        use_cache: keep the parsed files in the harkit cache.

    Returns:
        a :class:`~harkit.data.dataset.WindowedDataset` of windows ``(blocks, n_steps, 54)``
        (coco18 x, y, confidence) with its ``skeleton`` info.

    Example:
        >>> ds = load_mhad_pose("HAR_pose_activities/database")       # doctest: +SKIP
        >>> ds.splits["train"].X.shape                                 # doctest: +SKIP
        (22625, 32, 54)
    """
    if not (isinstance(n_steps, int) and n_steps >= 2):
        raise ConfigError(f"mhad-pose: n_steps={n_steps!r}, expected an integer >= 2")
    for opt, value, choices in (("split", split, SPLITS), ("fill", fill, FILL_POLICIES),
                                ("normalize", normalize, NORMALIZATIONS)):
        check_choice("mhad-pose", opt, value, choices)
    location = configured_data_dir(data_dir)
    if location is None:  # never the cache: it is for downloads, and this is no download
        raise DatasetNotFoundError(f"mhad-pose is not downloaded automatically: get the "
                                   f"release's database folder ({HOME_URL}) and point "
                                   "--data-dir or HARKIT_DATA_DIR at it")
    folder = find_release(Path(location).expanduser())
    raw = cached_parse("mhad-pose", CACHE_VERSION, folder, read_release, _save, _load, use_cache)
    info_dir = Path(block_info_dir).expanduser() if block_info_dir else folder
    if block_info_dir and not info_dir.is_dir():
        raise ConfigError(f"mhad-pose: block_info_dir {info_dir} is not a folder")
    parts: dict[str, dict[str, Any]] = {}
    for part in PARTS:
        blocks, y = to_blocks(raw[f"X_{part}"], raw[f"Y_{part}"], n_steps,
                              str(raw[f"X_{part}_path"]), str(raw[f"Y_{part}_path"]))
        parts[part] = {"blocks": blocks, "y": y,
                       "subject": _read_sidecar(info_dir, "subject", part, len(y)),
                       "repetition": _read_sidecar(info_dir, "repetition", part, len(y))}
    has_subjects = all(parts[p]["subject"] is not None for p in PARTS)
    has_reps = all(parts[p]["repetition"] is not None for p in PARTS)
    if split == "auto":
        split = "subject" if has_subjects else "shipped"
    if split == "subject" and not has_subjects:
        raise ConfigError(f"mhad-pose: split='subject' needs subject_train.txt and "
                          f"subject_test.txt (one subject per block) in {info_dir}")
    if split == "repetition" and not has_reps:
        raise ConfigError(f"mhad-pose: split='repetition' needs repetition_train.txt and "
                          f"repetition_test.txt (one repetition per block) in {info_dir}")
    if has_subjects:
        ids = [parts[p]["subject"] for p in PARTS]
    else:  # videos: runs of overlapping blocks, numbered on from the train file's
        runs = [overlap_runs(parts[p]["blocks"], parts[p]["y"]) + 1 for p in PARTS]
        ids = [runs[0], runs[1] + int(runs[0].max(initial=0))]
    blocks = np.concatenate([parts[p]["blocks"] for p in PARTS])
    y = np.concatenate([parts[p]["y"] for p in PARTS])
    subjects = np.concatenate(ids).astype(np.int64)
    if split == "shipped":
        is_test = np.arange(len(y)) >= len(parts["train"]["y"])
        how = "the release's shipped train / test files (repetition-wise, not subject-wise)"
    elif split == "subject":
        default = [v for v in TEST_SUBJECTS if v in set(subjects.tolist())]
        test = _check_ids("test_subjects", test_subjects or default or TEST_SUBJECTS, subjects)
        is_test = np.isin(subjects, test)
        how = f"test subjects {test}"
    else:
        reps = np.concatenate([parts[p]["repetition"] for p in PARTS])
        test = _check_ids("test_repetitions", test_repetitions or TEST_REPETITIONS, reps)
        is_test = np.isin(reps, test)
        how = f"test repetitions {test}"
    # (blocks, T, 18, 2) -> (blocks, T, 1 body, 18, x/y/confidence)
    valid = joint_mask(blocks)  # (blocks, T, 18): an undetected joint is 0, 0
    kp = np.concatenate([blocks, valid[..., None].astype(np.float32)], axis=-1)[:, :, None]
    seqs, _, _ = finish_keypoints(kp, valid[:, :, None], "coco18", fill, normalize,
                                  image_size)
    splits = split_sequences(list(seqs), y, subjects, is_test)
    log.info("mhad-pose: %d blocks; split: %s", len(y), how)
    info = SkeletonInfo("coco18", bodies=1, dims=3, dim_names=DIM_NAMES)
    return skeleton_dataset("mhad-pose", list(CLASSES), info, splits, n_steps, "resample", RATE,
                            f"Berkeley MHAD OpenPose keypoints, {n_steps}-frame blocks; split: "
                            f"{how}")
