"""NATOPS (UEA multivariate archive; AALTD 2016 challenge) as an 8-joint 3D skeleton.

On-disk format: the UEA pair ``NATOPS_TRAIN.ts`` / ``NATOPS_TEST.ts`` (read with
:func:`~harkit.data.sources.ts.read_ts`; format in :mod:`harkit.data.sources.ts`), 180 + 180
cases of 51 time steps and 24 dimensions: x, y, z of 8 body locations in the order the file
header lists them (``#1. Hand tip left, X coordinate`` ... ``#24. Thumb right, Z
coordinate``): hand tip left, hand tip right, elbow left, elbow right, wrist left, wrist
right, thumb left, thumb right -- the joint order of layout ``natops8``. The loader checks
the header's channel names against that order.

Classes: the labels ``1.0`` .. ``6.0`` are the aircraft-handling signals the header names
(:data:`CLASSES`: I have command, all clear, not clear, spread wings, fold wings, lock
wings). The split is the UEA one. NATOPS has no subject ids in this form: like every UEA
problem, each case is its own "subject" (train cases 1..180, test cases 181..360). The
archive gives no sampling rate (``sampling_rate`` 1.0: time in steps).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import SkeletonInfo, check_options, get_layout, prepare, skeleton_dataset
from harkit.data.sources import DATASETS
from harkit.data.sources.ts import TsFile, read_ts
from harkit.data.store import configured_data_dir
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

LABELS = ["1.0", "2.0", "3.0", "4.0", "5.0", "6.0"]
CLASSES = ["I have command", "all clear", "not clear", "spread wings", "fold wings",
           "lock wings"]
LOCATIONS = ["hand_tip_left", "hand_tip_right", "elbow_left", "elbow_right", "wrist_left",
             "wrist_right", "thumb_left", "thumb_right"]
CHANNELS = [f"{loc}_{a}_coordinate" for loc in LOCATIONS for a in "xyz"]
LENGTH = 51
RATE = 1.0


def _find(data_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    location = configured_data_dir(data_dir)
    if location is None:
        raise DatasetNotFoundError("natops: point --data-dir or HARKIT_DATA_DIR at a folder "
                                   "holding uea/NATOPS/NATOPS_TRAIN.ts and NATOPS_TEST.ts")
    root = Path(location).expanduser()
    looked = []
    for base in (root / "uea" / "NATOPS", root / "NATOPS", root / "natops", root):
        train, test = base / "NATOPS_TRAIN.ts", base / "NATOPS_TEST.ts"
        looked.append(str(train))
        if train.is_file() and test.is_file():
            return train, test
    raise DatasetNotFoundError("natops: not found; looked for " + ", ".join(looked) +
                               " (each with NATOPS_TEST.ts)")


def _check(f: TsFile, path: Path) -> None:
    if f.channels != CHANNELS:
        raise DataFormatError(path, f"header channels {f.channels[:4]}...: expected the 24 "
                                    f"NATOPS coordinates in the order {CHANNELS[:4]}...")
    if f.classes != LABELS:
        raise DataFormatError(path, f"@classLabel {f.classes}, expected {LABELS}")


@DATASETS.register(
    "natops",
    description="NATOPS (UEA) as a 3D skeleton of 8 arm locations: 6 aircraft-handling "
    "gestures, 180 + 180 cases of 51 steps, UEA split, each case its own subject",
    kind="skeleton", classes=6,
)
def load_natops(data_dir: str | os.PathLike[str] | None = None, length: int = LENGTH,
                policy: str = "resample", centre: bool = False, scale: bool = False,
                align: bool = False, use_cache: bool = True) -> WindowedDataset:
    """Load NATOPS as skeleton windows ``(cases, length, 24)`` (layout ``natops8``, 3D).

    Args:
        data_dir: a folder holding ``uea/NATOPS/`` (or ``NATOPS/``, or the pair itself); else
            ``HARKIT_DATA_DIR``.
        length, policy: time steps per window (the cases have 51) and how cases get there.
        centre, scale: per-case transforms (:func:`~harkit.data.skeleton.prepare`): the
            midpoint of the elbows of the first step to the origin, body size 1 (mean
            forearm / hand length).
        align: not available (the layout has no shoulders or hips); True raises ConfigError.

    Returns:
        a skeleton :class:`WindowedDataset` with the UEA ``train`` / ``test`` splits.

    Example:
        >>> ds = load_natops("/data")                    # doctest: +SKIP
        >>> ds.splits["train"].X.shape, ds.classes[0]    # doctest: +SKIP
        ((180, 51, 24), 'I have command')
    """
    check_options("natops", length, policy, centre=centre, scale=scale, align=align)
    if align:
        raise ConfigError("natops: align=True needs shoulders or hips; layout natops8 has "
                          "only hands, wrists and elbows")
    train_path, test_path = _find(data_dir)
    lay = get_layout("natops8")
    splits = {}
    first = 0
    for split, path in (("train", train_path), ("test", test_path)):
        f = read_ts(path, use_cache)
        _check(f, path)
        # (time, 24) -> (time, 1 body, 8 joints, 3): the channels are location-major, xyz-minor
        seqs = [prepare(x.reshape(len(x), 1, lay.n_joints, 3), lay, centre, scale)
                for x in f.cases]
        subjects = np.arange(first + 1, first + len(seqs) + 1, dtype=np.int64)
        first += len(seqs)
        splits[split] = (seqs, f.labels, subjects)
    desc = (f"NATOPS skeleton (8 arm locations, 3D): {len(splits['train'][1])} train + "
            f"{len(splits['test'][1])} test cases (UEA split), {policy} to {length} steps")
    return skeleton_dataset("natops", list(CLASSES), SkeletonInfo("natops8", bodies=1, dims=3),
                            splits, length, policy, RATE, desc)
