"""PAMAP2 Physical Activity Monitoring (Reiss & Stricker, ISWC 2012; UCI dataset 231): 9
subjects with 3 IMUs (hand, chest, ankle) and a heart-rate monitor, 18 activities.

On-disk format (``PAMAP2_Dataset.zip``, zipped, wrapped in UCI's download zip, or unpacked;
only these files are read)::

    PAMAP2_Dataset/Protocol/subject1{01-09}.dat    the protocol session of each subject
    PAMAP2_Dataset/Optional/subject1{01,05,06,08,09}.dat    optional activities (optional=True)

Each ``.dat`` file holds one sample per line, 100 Hz, 54 space-separated columns (1-based):
1 timestamp (s); 2 activityID; 3 heart rate (bpm, about 9 Hz: ``NaN`` on the lines between
readings); 4-20 IMU hand; 21-37 IMU chest; 38-54 IMU ankle. Each IMU block of 17 columns:
1 temperature (°C); 2-4 3D acceleration (m/s², ±16 g); 5-7 3D acceleration (m/s², ±6 g,
saturates); 8-10 3D gyroscope (rad/s); 11-13 3D magnetometer (µT); 14-17 orientation (invalid
in this data collection). Sensor drop-outs are ``NaN``.

Activity IDs (readme II.2): 1 lying, 2 sitting, 3 standing, 4 walking, 5 running, 6 cycling,
7 Nordic walking, 9 watching TV, 10 computer work, 11 car driving, 12 ascending stairs,
13 descending stairs, 16 vacuum cleaning, 17 ironing, 18 folding laundry, 19 house cleaning,
20 playing soccer, 24 rope jumping, 0 other (transient activities, to be discarded according
to the readme). ``activities="protocol"`` keeps the 12 protocol activities (1-7, 12, 13, 16,
17, 24; the others become unlabelled), ``"all"`` all 18. Activity 0 is :data:`UNLABELED`
(``transient="unlabeled"``) or a real class ``NULL`` at index 0 (``transient="null"``).

Channels: the ±16 g acceleration, gyroscope and magnetometer of the 3 IMUs (27 channels,
``hand_acc_x`` ... ``ankle_mag_z``), with ``heart_rate`` first when ``heart_rate=True``. Gaps:
IMU ``NaN`` are interpolated linearly per channel (nearest value at the ends); heart rate is
carried forward from the last reading (the first reading fills the start), which uses no
future information. A channel without any value in a session becomes 0 (warning). A session
is cut into parts where its timestamps jump by more than 1 s or go backwards.

Rate: 100 Hz, or ``sampling_rate`` Hz (anti-aliased :func:`resample_recording`; 33.3 Hz is
common, e.g. Hammerla et al. 2016). Window: 5.12 s with 50 % overlap (512 / 256 samples at
100 Hz). Test split: subject 106, as in Hammerla et al. (IJCAI 2016), who validate on subject
105; leave-one-subject-out over 101-108 is the more reliable protocol (subject 109 performed
few activities).

Sources: the dataset readme (``readme.pdf``, sections II.1 and II.2) and the UCI page.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.archive import Archive
from harkit.data.gaps import fill_gaps
from harkit.data.recording import UNLABELED, Recording, RecordingDataset
from harkit.data.resample import resample_recording
from harkit.data.sources import DATASETS
from harkit.data.sources.opportunity import parse_gappy_table, row_line
from harkit.data.store import cached_parse, locate
from harkit.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip"
NATIVE_RATE = 100.0
N_COLUMNS = 54
CACHE_VERSION = 1
MAX_GAP_S = 1.0
TEST_SUBJECTS = [106]
ACTIVITIES = {1: "lying", 2: "sitting", 3: "standing", 4: "walking", 5: "running", 6: "cycling",
              7: "Nordic walking", 9: "watching TV", 10: "computer work", 11: "car driving",
              12: "ascending stairs", 13: "descending stairs", 16: "vacuum cleaning",
              17: "ironing", 18: "folding laundry", 19: "house cleaning", 20: "playing soccer",
              24: "rope jumping"}
PROTOCOL_ACTIVITIES = (1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24)
IMUS = ("hand", "chest", "ankle")
_FILE = re.compile(r"(Protocol|Optional)/subject(1\d\d)\.dat$")


def _imu_columns() -> tuple[list[str], list[int], dict[str, str]]:
    """Names, 0-based columns and units of the 27 IMU channels (acc ±16 g, gyro, mag)."""
    names, cols, units = [], [], {}
    for k, imu in enumerate(IMUS):
        base = 3 + 17 * k  # 0-based column of the block's temperature
        for sensor, offset, unit in (("acc", 1, "m/s^2"), ("gyro", 7, "rad/s"), ("mag", 10, "uT")):
            for a, axis in enumerate("xyz"):
                names.append(f"{imu}_{sensor}_{axis}")
                cols.append(base + offset + a)
                units[names[-1]] = unit
    return names, cols, units


IMU_CHANNELS, IMU_COLUMNS, IMU_UNITS = _imu_columns()
HR_COLUMN = 2  # 0-based


@dataclass
class _Session:
    subject: int
    kind: str  # protocol | optional
    time: np.ndarray  # (time,) seconds
    activity: np.ndarray  # (time,) activity IDs
    raw: np.ndarray  # (time, 28) float32: heart rate, then the 27 IMU channels; NaN kept


def _archive(path: Path) -> Archive:
    return Archive(path, "Protocol/subject101.dat", root="PAMAP2_Dataset",
                   inner_zip="PAMAP2_Dataset.zip")


def _parse_file(arc: Archive, rel: str, subject: int, kind: str) -> _Session:
    data = arc.read(rel)
    name = arc.name(rel)
    table = parse_gappy_table(data, name, N_COLUMNS)
    for col, what in ((0, "timestamp"), (1, "activityID")):
        nan = np.isnan(table[:, col])
        if nan.any():
            raise DataFormatError(name, f"{what} (column {col + 1}) is NaN",
                                  row_line(data, int(np.flatnonzero(nan)[0])))
    act = table[:, 1]
    bad = ~np.isin(act, [0, *ACTIVITIES])
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataFormatError(name, f"activityID {act[r]:g} is not one of the readme's IDs "
                                    f"{[0, *ACTIVITIES]}", row_line(data, r))
    raw = table[:, [HR_COLUMN, *IMU_COLUMNS]].astype(np.float32)
    return _Session(subject, kind, table[:, 0], act.astype(np.int16), raw)


def parse_archive(path: Path) -> list[_Session]:
    """Parse and verify every ``Protocol`` and ``Optional`` session of a PAMAP2 copy."""
    arc = _archive(path)
    sessions = []
    for folder in ("Protocol", "Optional"):
        for rel in arc.list(folder):
            m = _FILE.search(rel)
            if m:
                sessions.append(_parse_file(arc, rel, int(m.group(2)), m.group(1).lower()))
    return sessions


def _save(sessions: list[_Session], f: Any) -> None:
    np.savez(f, time=np.concatenate([s.time for s in sessions]),
             activity=np.concatenate([s.activity for s in sessions]),
             raw=np.concatenate([s.raw for s in sessions]),
             lengths=np.array([len(s.time) for s in sessions]),
             subjects=np.array([s.subject for s in sessions]),
             kinds=np.array([s.kind for s in sessions]))


def _load_cached(path: Path) -> list[_Session]:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}
    b = np.concatenate([[0], np.cumsum(a["lengths"])])
    return [_Session(int(s), str(k), a["time"][lo:hi], a["activity"][lo:hi], a["raw"][lo:hi])
            for lo, hi, s, k in zip(b[:-1], b[1:], a["subjects"], a["kinds"], strict=True)]


def forward_fill(x: np.ndarray) -> np.ndarray:
    """Carry the last non-NaN value forward; values before the first one take the first one.

    Example:
        >>> forward_fill(np.array([np.nan, 70.0, np.nan, np.nan, 72.0, np.nan])).tolist()
        [70.0, 70.0, 70.0, 70.0, 72.0, 72.0]
    """
    valid = ~np.isnan(x)
    if not valid.any():
        return np.zeros_like(x)
    idx = np.where(valid, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    idx[: int(np.argmax(valid))] = int(np.argmax(valid))
    return x[idx]


def _segments(time: np.ndarray) -> list[tuple[int, int]]:
    """Half-open sample ranges between timestamp jumps (> MAX_GAP_S or backwards)."""
    dt = np.diff(time)
    cuts = np.flatnonzero((dt > MAX_GAP_S) | (dt <= 0)) + 1
    bounds = [0, *cuts.tolist(), len(time)]
    return list(itertools.pairwise(bounds))


@DATASETS.register(
    "pamap2",
    description="PAMAP2 (continuous, 100 Hz, 3 IMUs: acc/gyro/mag [+ heart rate]): 12 protocol "
    "activities (activities=all: 18), 9 subjects, transient activity unlabelled or NULL",
    kind="wearable", continuous=True, subjects=9, classes=12,
)
def load_pamap2(data_dir: str | os.PathLike[str] | None = None, activities: str = "protocol",
                transient: str = "unlabeled", heart_rate: bool = False, optional: bool = False,
                sampling_rate: float | None = None, use_cache: bool = True) -> RecordingDataset:
    """Load PAMAP2 as one continuous recording per session (cut at timestamp jumps).

    Args:
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
        activities: ``protocol`` (12 classes) or ``all`` (18 classes).
        transient: activity 0 as ``unlabeled`` or as a ``null`` class (``NULL``, index 0).
        heart_rate: add the forward-filled heart rate as the first channel.
        optional: also load the ``Optional`` sessions (subjects 101, 105, 106, 108, 109).
        sampling_rate: resample to this rate in Hz (anti-aliased); None keeps 100 Hz.
        use_cache: keep the parsed arrays in the harkit cache.
    """
    if activities not in ("protocol", "all"):
        raise ConfigError(f"pamap2: activities={activities!r}, expected 'protocol' or 'all'")
    if transient not in ("unlabeled", "null"):
        raise ConfigError(f"pamap2: transient={transient!r}, expected 'unlabeled' or 'null'")
    if sampling_rate is not None and not float(sampling_rate) > 0:
        raise ConfigError(f"pamap2: sampling_rate={sampling_rate!r}, expected a positive rate "
                          "in Hz or None")
    src = locate("pamap2", ["PAMAP2_Dataset.zip", "PAMAP2_Dataset", "Protocol"], OFFICIAL_URL,
                 data_dir)
    if src.name == "Protocol" and src.is_dir():
        src = src.parent
    sessions = cached_parse("pamap2", CACHE_VERSION, src, parse_archive, _save, _load_cached,
                            use_cache)
    ids = PROTOCOL_ACTIVITIES if activities == "protocol" else tuple(ACTIVITIES)
    classes = [ACTIVITIES[i] for i in ids]
    lookup = np.full(max(ACTIVITIES) + 1, UNLABELED, dtype=np.int64)
    lookup[list(ids)] = np.arange(len(ids))
    if transient == "null":
        classes = ["NULL", *classes]
        lookup[lookup >= 0] += 1
        lookup[0] = 0
    channels = (["heart_rate"] if heart_rate else []) + IMU_CHANNELS
    units = {**({"heart_rate": "bpm"} if heart_rate else {}), **IMU_UNITS}
    rate = NATIVE_RATE if sampling_rate is None else float(sampling_rate)
    recs = []
    for s in sessions:
        if s.kind == "optional" and not optional:
            continue
        base = f"subject{s.subject}" + ("_optional" if s.kind == "optional" else "")
        for part, (lo, hi) in enumerate(_segments(s.time), 1):
            session = base if part == 1 else f"{base}_part{part}"
            imu, dead = fill_gaps(s.raw[lo:hi, 1:])
            dead_names = [IMU_CHANNELS[c] for c in dead]
            cols = [imu]
            if heart_rate:
                hr = s.raw[lo:hi, 0]
                if np.isnan(hr).all():
                    dead_names.insert(0, "heart_rate")
                cols.insert(0, forward_fill(hr)[:, None])
            if dead_names:
                log.warning("pamap2 %s: channel(s) %s have no value in this session; set to 0",
                            session, dead_names)
            rec = Recording(np.concatenate(cols, axis=1), lookup[s.activity[lo:hi]], s.subject,
                            session, {"kind": s.kind, "start_s": float(s.time[lo])})
            if rate != NATIVE_RATE:
                rec = resample_recording(rec, NATIVE_RATE, rate)
            recs.append(rec)
    return RecordingDataset(
        "pamap2", channels, classes, rate, recs, window=max(1, round(5.12 * rate)),
        hop=max(1, round(2.56 * rate)), test_subjects=list(TEST_SUBJECTS), units=units,
        description=f"PAMAP2, {len(classes)} classes, {rate:g} Hz",
    )
