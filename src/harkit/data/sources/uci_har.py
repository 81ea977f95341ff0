"""UCI HAR smartphone dataset (Anguita et al., ESANN 2013), raw inertial signals.

On-disk format (the official archive ``UCI HAR Dataset.zip``, zipped or unpacked)::

    UCI HAR Dataset/activity_labels.txt          "<id> <NAME>" per line, ids 1..6
    UCI HAR Dataset/{train,test}/y_{split}.txt   one activity id per window
    UCI HAR Dataset/{train,test}/subject_{split}.txt   one subject id (1..30) per window
    UCI HAR Dataset/{train,test}/Inertial Signals/{signal}_{axis}_{split}.txt
        one window per line: 128 samples (2.56 s at 50 Hz), windows overlap by 50 %

The 9 signals are body_acc (g, gravity removed), body_gyro (rad/s) and total_acc (g).
The 561-feature files are not used: harkit learns from the raw signals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from harkit.data.archive import Archive
from harkit.data.dataset import WindowedDataset, WindowSet
from harkit.data.sources import DATASETS
from harkit.data.store import cached_parse, locate
from harkit.data.textio import decode, parse_numeric_table, plain_int
from harkit.errors import DataFormatError

ROOT = "UCI HAR Dataset"
OFFICIAL_URL = (
    "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"
)
SIGNALS = ("body_acc", "body_gyro", "total_acc")
CHANNELS = [f"{s}_{a}" for s in SIGNALS for a in "xyz"]
UNITS = {c: ("rad/s" if c.startswith("body_gyro") else "g") for c in CHANNELS}
WINDOW = 128
SAMPLING_RATE = 50.0
HOP = 64
CACHE_VERSION = 1
DESCRIPTION = "UCI HAR smartphone (waist), 30 subjects, 6 activities, 9 raw channels"


def _archive(path: Path) -> Archive:
    return Archive(path, "activity_labels.txt", root=ROOT, inner_zip=f"{ROOT}.zip")


def _read_labels(arc: Archive) -> list[str]:
    rel = "activity_labels.txt"
    classes: dict[int, str] = {}
    for i, line in enumerate(decode(arc.read(rel), arc.name(rel)).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        key = plain_int(parts[0]) if len(parts) == 2 else None
        if key is None:
            raise DataFormatError(arc.name(rel), f"expected '<id> <NAME>', found {line[:80]!r}",
                                  i)
        classes[key] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)) or not classes:
        raise DataFormatError(arc.name(rel), f"expected ids 1..N, found {sorted(classes)}")
    return [classes[i] for i in range(1, len(classes) + 1)]


def _read_split(arc: Archive, split: str, n_classes: int) -> WindowSet:
    y_rel, s_rel = f"{split}/y_{split}.txt", f"{split}/subject_{split}.txt"
    y = parse_numeric_table(arc.read(y_rel), arc.name(y_rel), 1, np.int64)[:, 0]
    subjects = parse_numeric_table(arc.read(s_rel), arc.name(s_rel), 1, np.int64)[:, 0]
    if len(subjects) != len(y):
        raise DataFormatError(
            arc.name(s_rel), f"has {len(subjects)} rows, expected {len(y)} (one per row of {y_rel})"
        )
    bad = np.flatnonzero((y < 1) | (y > n_classes))
    if len(bad):
        raise DataFormatError(
            arc.name(y_rel), f"activity id {y[bad[0]]} outside 1..{n_classes}", int(bad[0]) + 1
        )
    X = np.empty((len(y), WINDOW, len(CHANNELS)), dtype=np.float32)
    for c, ch in enumerate(CHANNELS):
        rel = f"{split}/Inertial Signals/{ch}_{split}.txt"
        arr = parse_numeric_table(arc.read(rel), arc.name(rel), WINDOW)
        if len(arr) != len(y):
            raise DataFormatError(
                arc.name(rel), f"has {len(arr)} windows, expected {len(y)} (one per row of {y_rel})"
            )
        X[:, :, c] = arr  # rows are windows, columns are time: (N, T) into channel c
    return WindowSet(X, y - 1, subjects)


def parse_archive(path: Path) -> WindowedDataset:
    """Parse and verify an official ``UCI HAR Dataset`` archive or folder (no caching)."""
    arc = _archive(path)
    classes = _read_labels(arc)
    splits = {s: _read_split(arc, s, len(classes)) for s in ("train", "test")}
    overlap = set(splits["train"].subject_ids()) & set(splits["test"].subject_ids())
    if overlap:
        raise DataFormatError(arc.name("test/subject_test.txt"),
                              f"subjects {sorted(overlap)} appear in both train and test")
    return WindowedDataset(
        name="uci-har", channels=list(CHANNELS), classes=classes, sampling_rate=SAMPLING_RATE,
        hop=HOP, splits=splits, units=dict(UNITS), description=DESCRIPTION,
    )


def _from_npz(path: Path) -> WindowedDataset:
    with np.load(path) as z:
        classes = [str(c) for c in z["classes"]]
        splits = {s: WindowSet(z[f"{s}_X"], z[f"{s}_y"], z[f"{s}_s"]) for s in ("train", "test")}
    return WindowedDataset(
        "uci-har", list(CHANNELS), classes, SAMPLING_RATE, HOP, splits, dict(UNITS),
        DESCRIPTION,
    )


def _to_npz(ds: WindowedDataset, f: IO[Any]) -> None:
    arrays = {}
    for split, ws in ds.splits.items():
        arrays[f"{split}_X"], arrays[f"{split}_y"], arrays[f"{split}_s"] = ws.X, ws.y, ws.subjects
    arrays["classes"] = np.array(ds.classes)
    np.savez(f, **arrays)  # type: ignore[arg-type]


@DATASETS.register(
    "uci-har",
    description="UCI HAR smartphone: 9 raw inertial channels, 128-sample windows at 50 Hz, "
    "6 activities, 30 subjects, official train/test split",
    kind="wearable", subjects=30, classes=6,
)
def load_uci_har(data_dir: str | os.PathLike[str] | None = None,
                 use_cache: bool = True) -> WindowedDataset:
    """Load UCI HAR as windows ``(N, 128, 9)`` with its official train/test split.

    Parsed arrays are cached (``HARKIT_CACHE_DIR``), keyed by the source's path, size and
    modification time, so the text is parsed once.
    """
    src = locate("uci-har", [f"{ROOT}.zip", ROOT], OFFICIAL_URL, data_dir)
    return cached_parse("uci-har", CACHE_VERSION, src, parse_archive, _to_npz, _from_npz,
                        use_cache)
