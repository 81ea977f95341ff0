"""HAPT: Smartphone-Based Recognition of Human Activities and Postural Transitions
(Reyes-Ortiz et al., Neurocomputing 2016), the continuous recordings UCI HAR was cut from.

On-disk format (``HAPT Data Set.zip``, zipped or unpacked; only these files are read)::

    activity_labels.txt                 "<id> <NAME>" per line, ids 1..12 (6 activities, then
                                        6 postural transitions)
    RawData/acc_expEE_userUU.txt        one sample per line: "ax ay az" in g, 50 Hz
    RawData/gyro_expEE_userUU.txt       one sample per line: "gx gy gz" in rad/s, 50 Hz
    RawData/labels.txt                  "experiment user activity first last" per line:
                                        1-based, inclusive sample ranges; samples outside
                                        every range are unlabelled

Each experiment is one recording (61 experiments, 30 users). The test split uses the same
9 subjects as UCI HAR's official split.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.archive import Archive
from harkit.data.recording import UNLABELED, Recording, RecordingDataset
from harkit.data.sources import DATASETS
from harkit.data.store import cached_parse, locate
from harkit.data.textio import decode, parse_numeric_table, plain_int
from harkit.errors import ConfigError, DataFormatError

OFFICIAL_URL = ("https://archive.ics.uci.edu/static/public/341/"
                "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip")
CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
UNITS = {c: ("g" if c.startswith("acc") else "rad/s") for c in CHANNELS}
SAMPLING_RATE = 50.0
TEST_SUBJECTS = [2, 4, 9, 10, 12, 13, 18, 20, 24]
CACHE_VERSION = 1
_FILE = re.compile(r"RawData/acc_exp(\d+)_user(\d+)\.txt$")


def _read_classes(arc: Archive) -> list[str]:
    rel = "activity_labels.txt"
    classes: dict[int, str] = {}
    for i, line in enumerate(decode(arc.read(rel), arc.name(rel)).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        key = plain_int(parts[0]) if len(parts) == 2 else None
        if key is None:
            raise DataFormatError(arc.name(rel), f"expected '<id> <NAME>', found {line[:80]!r}",
                                  i)
        classes[key] = parts[1]
    if sorted(classes) != list(range(1, 13)):
        raise DataFormatError(arc.name(rel), f"expected activity ids 1..12, found {sorted(classes)}")
    return [classes[i] for i in range(1, 13)]


def parse_archive(path: Path) -> tuple[list[str], list[Recording]]:
    """Parse and verify a HAPT copy: 12 class names and one recording per experiment
    (labels over all 12 classes, :data:`UNLABELED` outside the annotated ranges)."""
    arc = Archive(path, "RawData/labels.txt", inner_zip="HAPT Data Set.zip")
    classes = _read_classes(arc)
    recordings: dict[tuple[int, int], Recording] = {}
    for rel in arc.list("RawData"):
        m = _FILE.search(rel)
        if not m:
            continue
        exp, user = int(m.group(1)), int(m.group(2))
        acc = parse_numeric_table(arc.read(rel), arc.name(rel), 3)
        g_rel = f"RawData/gyro_exp{m.group(1)}_user{m.group(2)}.txt"
        gyro = parse_numeric_table(arc.read(g_rel), arc.name(g_rel), 3)
        if len(acc) != len(gyro):
            raise DataFormatError(arc.name(g_rel), f"has {len(gyro)} samples, the accelerometer "
                                                   f"file {rel} has {len(acc)}")
        signal = np.concatenate([acc, gyro], axis=1)  # (time, 6): acc xyz then gyro xyz
        recordings[(exp, user)] = Recording(
            signal, np.full(len(signal), UNLABELED, dtype=np.int64), user,
            f"exp{exp:02d}_user{user:02d}", {"experiment": exp})
    if not recordings:
        raise DataFormatError(arc.name("RawData"), "no acc_expEE_userUU.txt files found")
    rel = "RawData/labels.txt"
    table = parse_numeric_table(arc.read(rel), arc.name(rel), 5, np.int64)
    for line, (exp, user, act, first, last) in enumerate(table.tolist(), 1):
        rec = recordings.get((exp, user))
        if rec is None:
            raise DataFormatError(arc.name(rel), f"experiment {exp} of user {user} has no "
                                                 "signal files", line)
        if not 1 <= act <= len(classes):
            raise DataFormatError(arc.name(rel), f"activity {act} outside 1..{len(classes)}", line)
        if not 1 <= first <= last <= len(rec):
            raise DataFormatError(arc.name(rel), f"sample range {first}..{last} outside the "
                                                 f"recording's 1..{len(rec)}", line)
        rec.labels[first - 1 : last] = act - 1  # 1-based inclusive -> 0-based slice
    return classes, [recordings[k] for k in sorted(recordings)]


def _save(parsed: tuple[list[str], list[Recording]], f: Any) -> None:
    classes, recs = parsed
    np.savez(f, classes=np.array(classes), signal=np.concatenate([r.signal for r in recs]),
             labels=np.concatenate([r.labels for r in recs]),
             lengths=np.array([len(r) for r in recs]), subjects=np.array([r.subject for r in recs]),
             experiments=np.array([r.meta["experiment"] for r in recs]))


def _load_cached(path: Path) -> tuple[list[str], list[Recording]]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}  # each z[k] access re-reads the member: read once
    bounds = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    signal, labels = arrays["signal"], arrays["labels"]
    recs = [
        Recording(signal[a:b], labels[a:b].copy(), int(u), f"exp{int(e):02d}_user{int(u):02d}",
                  {"experiment": int(e)})
        for a, b, u, e in zip(bounds[:-1], bounds[1:], arrays["subjects"], arrays["experiments"],
                              strict=True)
    ]
    return [str(c) for c in arrays["classes"]], recs


@DATASETS.register(
    "hapt",
    description="HAPT smartphone recordings (continuous, 50 Hz, acc + gyro): 30 users, 6 "
    "activities (activities=6) or 12 incl. postural transitions (activities=12), unlabelled gaps",
    kind="wearable", continuous=True, subjects=30, classes=12,
)
def load_hapt(data_dir: str | os.PathLike[str] | None = None, activities: int = 6,
              use_cache: bool = True) -> RecordingDataset:
    """Load HAPT as 61 continuous recordings (one per experiment).

    Args:
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
        activities: 6 (the basic activities; transitions become unlabelled) or 12.
    """
    if activities not in (6, 12):
        raise ConfigError(f"hapt: activities={activities!r}, expected 6 or 12")
    src = locate("hapt", ["HAPT Data Set.zip", "HAPT Data Set", "RawData"], OFFICIAL_URL, data_dir)
    if src.name == "RawData":
        src = src.parent
    classes, recs = cached_parse("hapt", CACHE_VERSION, src, parse_archive, _save,
                                 _load_cached, use_cache)
    if activities == 6:
        for r in recs:
            r.labels[r.labels >= 6] = UNLABELED
        classes = classes[:6]
    return RecordingDataset(
        "hapt", list(CHANNELS), classes, SAMPLING_RATE, recs, window=128, hop=64,
        test_subjects=list(TEST_SUBJECTS), units=dict(UNITS),
        description=f"HAPT continuous smartphone recordings, {activities} classes",
    )
