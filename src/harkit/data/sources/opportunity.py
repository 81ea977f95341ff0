"""OPPORTUNITY Activity Recognition (Roggen et al., INSS 2010; UCI dataset 226): body-worn,
object and ambient sensors while 4 subjects perform morning activities in a kitchen.

On-disk format (``OpportunityUCIDataset.zip``, zipped, wrapped in UCI's download zip, or
unpacked; only these files are read)::

    OpportunityUCIDataset/dataset/S{1-4}-ADL{1-5}.dat   one recording ("run") per file, one
    OpportunityUCIDataset/dataset/S{1-4}-Drill.dat      sample per line: 250 space-separated
                                                        numbers, "NaN" where a sensor
                                                        dropped out; 30 Hz
    OpportunityUCIDataset/dataset/column_names.txt      "Column: <n> <name>[; value = ...,
                                                        unit = ...]" per column (checked
                                                        when present)
    OpportunityUCIDataset/dataset/label_legend.txt      "<code>   -   <track>   -   <label>"

Columns (1-based, as in ``column_names.txt``): 1 ``MILLISEC`` timestamp; 2-37 the 12 body-worn
3D accelerometers (milli g); 38-102 the 5 Xsens IMUs BACK, RUA, RLA, LUA, LLA (13 columns
each: acc xyz, gyro xyz, magnetic xyz, quaternion 1-4); 103-134 the two sensor shoes
L-SHOE, R-SHOE (16 columns each: Eu xyz, Nav_A xyz, Body_A xyz, AngVelBodyFrame xyz,
AngVelNavFrame xyz, Compass); 135-243 object, reed-switch and location sensors; 244
Locomotion; 245 HL_Activity; 246-249 the low-level arm tracks; 250 ML_Both_Arms (the
mid-level gestures).

Channels: the 113 body-worn channels of Ordóñez & Roggen 2016 (DeepConvLSTM, Sensors 16(1):115,
the OPPORTUNITY challenge subset): columns 2-46, 51-59, 64-72, 77-85, 90-98 and 103-134, i.e.
every body-worn column except the IMU quaternions (and nothing from the objects or the
environment). Their published preprocessing selects the same columns (``features_delete`` in
the authors' ``preprocess_data.py``).

Labels (``label_legend.txt``): ``task="gestures"`` uses column 250, the 17 ML_Both_Arms
gestures (codes 406516 ... 405506) plus ``NULL`` (code 0) as class 0; ``task="locomotion"``
uses column 244: ``NULL`` (0), Stand (1), Walk (2), Sit (4), Lie (5). NULL is a real class.

Gaps: ``NaN`` is linearly interpolated per channel within each run; leading / trailing gaps
take the nearest valid value; a channel that is ``NaN`` for a whole run becomes 0 (logged
as a warning).

Split (``split="ordonez"``, Ordóñez & Roggen 2016, Section 4): train = every run of subject 1
and Drill, ADL1, ADL2 of subjects 2 and 3; val = ADL3 of subjects 2 and 3; test = ADL4, ADL5 of
subjects 2 and 3. Subject 4 is not part of that protocol: it is loaded with ``subjects=(1, 2, 3,
4)`` and ``split=None`` (every recording unassigned), for subject-wise protocols such as
leave-one-subject-out via ``data.test_subjects``. Customary window: 24 samples (0.8 s), hop 12.

Sources: UCI ML repository page of the dataset and the ``column_names.txt`` /
``label_legend.txt`` files shipped in the archive; Ordóñez & Roggen 2016 for the channel
selection and the split.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.archive import Archive
from harkit.data.gaps import fill_gaps
from harkit.data.recording import Recording, RecordingDataset
from harkit.data.sources import DATASETS
from harkit.data.store import cached_parse, locate
from harkit.data.textio import check_range, decode
from harkit.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://archive.ics.uci.edu/static/public/226/opportunity+activity+recognition.zip"
SAMPLING_RATE = 30.0
N_COLUMNS = 250
RUNS = ("Drill", "ADL1", "ADL2", "ADL3", "ADL4", "ADL5")
SUBJECTS = (1, 2, 3, 4)
CACHE_VERSION = 1
LOCOMOTION_COLUMN = 244  # 1-based, as in column_names.txt
GESTURE_COLUMN = 250

_ACC_PLACES = ("RKN^", "HIP", "LUA^", "RUA_", "LH", "BACK", "RKN_", "RWR", "RUA^", "LUA_", "LWR", "RH")
_IMUS = ("BACK", "RUA", "RLA", "LUA", "LLA")
_IMU_FIELDS = ("accX", "accY", "accZ", "gyroX", "gyroY", "gyroZ", "magneticX", "magneticY",
               "magneticZ", "Quaternion1", "Quaternion2", "Quaternion3", "Quaternion4")
_SHOE_FIELDS = ("EuX", "EuY", "EuZ", "Nav_Ax", "Nav_Ay", "Nav_Az", "Body_Ax", "Body_Ay", "Body_Az",
                "AngVelBodyFrameX", "AngVelBodyFrameY", "AngVelBodyFrameZ", "AngVelNavFrameX",
                "AngVelNavFrameY", "AngVelNavFrameZ", "Compass")


def _body_worn_columns() -> dict[int, str]:
    """1-based column -> name in column_names.txt, for columns 2-134 (the body-worn sensors)."""
    names = [f"Accelerometer {p} acc{a}" for p in _ACC_PLACES for a in "XYZ"]
    names += [f"InertialMeasurementUnit {s} {f}" for s in _IMUS for f in _IMU_FIELDS]
    names += [f"InertialMeasurementUnit {s} {f}" for s in ("L-SHOE", "R-SHOE") for f in _SHOE_FIELDS]
    return {i + 2: n for i, n in enumerate(names)}


BODY_WORN = _body_worn_columns()
# Ordóñez & Roggen 2016: every body-worn column except the IMU quaternions -> 113 channels.
SELECTED_COLUMNS = [c for c, n in BODY_WORN.items() if "Quaternion" not in n]


def _channel_name(column_name: str) -> str:
    kind, place, field = column_name.split(" ", 2)
    prefix = "acc" if kind == "Accelerometer" else "imu"
    return f"{prefix}_{place}_{field}"


def _unit(column_name: str) -> str:
    field = column_name.rsplit(" ", 1)[1]
    if field.startswith(("acc", "Nav_A", "Body_A")):
        return "milli g"
    if field.startswith(("Eu", "Compass")):
        return "degrees"
    if field.startswith("AngVel"):
        return "mm/s"  # sic: the unit column_names.txt gives for the shoes' angular velocity
    return "unknown (x1000)"  # IMU gyro / magnetic: round(value * 1000), unit "unknown"


CHANNELS = [_channel_name(BODY_WORN[c]) for c in SELECTED_COLUMNS]
UNITS = {_channel_name(BODY_WORN[c]): _unit(BODY_WORN[c]) for c in SELECTED_COLUMNS}

# label_legend.txt, in legend order; names are read from the legend itself.
GESTURE_CODES = (406516, 406517, 404516, 404517, 406520, 404520, 406505, 404505, 406519, 404519,
                 406511, 404511, 406508, 404508, 408512, 407521, 405506)
LOCOMOTION_CODES = (1, 2, 4, 5)

_LEGEND_LINE = re.compile(r"^\s*(\d+)\s+-\s+(\S+)\s+-\s+(.*?)\s*$")
_COLUMN_LINE = re.compile(r"^\s*Column:\s*(\d+)\s+([^;]*?)\s*(;.*)?$")


# ---------------------------------------------------------------------------------------------
# Shared helpers for space-separated tables with NaN gaps (also used by the PAMAP2 source).

def _data_line_numbers(text: str) -> list[int]:
    """1-based line number of each non-empty line (the rows a table parser sees)."""
    return [i for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_gappy_table(data: bytes, name: str, n_cols: int) -> np.ndarray:
    """Parse whitespace-separated numbers where ``NaN`` marks a missing value.

    Every non-empty line must hold exactly ``n_cols`` numbers; ``NaN`` is allowed, infinities
    are not. Errors name ``name``, the 1-based line and what was expected.

    Returns:
        float64 ``(rows, n_cols)``.

    Example:
        >>> parse_gappy_table(b"1 NaN\\n3 4\\n", "t.dat", 2).tolist()
        [[1.0, nan], [3.0, 4.0]]
    """
    text = decode(data, name)
    if not text.strip():
        raise DataFormatError(name, f"file is empty; expected rows of {n_cols} numbers")
    arr: np.ndarray | None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        arr = None
    if arr is None or arr.shape[1] != n_cols:  # slow path: find the first offending line
        for i, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_cols:
                raise DataFormatError(name, f"expected {n_cols} numbers, found {len(fields)}", i)
            for j, tok in enumerate(fields, 1):
                try:
                    float(tok)
                except ValueError:
                    raise DataFormatError(name, f"value {j} is {tok[:40]!r}, expected a number "
                                                "or NaN", i) from None
        raise DataFormatError(name, "could not parse numbers")  # pragma: no cover
    inf = np.isinf(arr)
    if inf.any():
        r, c = np.argwhere(inf)[0]
        raise DataFormatError(name, f"value {c + 1} is {arr[r, c]}, expected a finite number or "
                                    "NaN", _data_line_numbers(text)[r])
    check_range(arr, name, lambda r: _data_line_numbers(text)[r])
    return arr


def row_line(data: bytes, row: int) -> int:
    """1-based line number of the 0-based data row ``row`` (blank lines are not rows)."""
    return _data_line_numbers(data.decode("utf-8", "replace"))[row]


# ---------------------------------------------------------------------------------------------

@dataclass
class _Run:
    subject: int
    run: str
    signal: np.ndarray  # (time, 113) float32, gaps filled
    locomotion: np.ndarray  # raw codes
    gestures: np.ndarray  # raw codes
    dead: list[int]  # channels that were NaN for the whole run


def _read_legend(arc: Archive) -> tuple[list[str], list[str]]:
    rel = "dataset/label_legend.txt"
    tracks: dict[str, dict[int, str]] = {}
    for i, line in enumerate(decode(arc.read(rel), arc.name(rel)).splitlines(), 1):
        if not line.strip() or not line.strip()[0].isdigit():
            continue  # header "Unique index - Track name - Label name", blank lines
        m = _LEGEND_LINE.match(line)
        if not m:
            raise DataFormatError(arc.name(rel), f"expected '<code>   -   <track>   -   <label>', "
                                                 f"found {line.strip()[:80]!r}", i)
        tracks.setdefault(m.group(2), {})[int(m.group(1))] = m.group(3)
    out = []
    for track, codes in (("ML_Both_Arms", GESTURE_CODES), ("Locomotion", LOCOMOTION_CODES)):
        have = tracks.get(track, {})
        missing = [c for c in codes if c not in have]
        if missing:
            raise DataFormatError(arc.name(rel), f"track {track} lacks label codes {missing}")
        out.append([have[c] for c in codes])
    return out[0], out[1]


def _check_column_names(arc: Archive) -> None:
    """If column_names.txt is present, the selected columns must carry the expected names."""
    rel = "dataset/column_names.txt"
    try:
        data = arc.read(rel)
    except DataFormatError:
        return  # optional: the layout is also checked by the column count of every run
    seen: dict[int, tuple[str, int]] = {}
    for i, line in enumerate(decode(data, arc.name(rel)).splitlines(), 1):
        m = _COLUMN_LINE.match(line)
        if m:
            seen[int(m.group(1))] = (" ".join(m.group(2).split()), i)
    for col in [*BODY_WORN, LOCOMOTION_COLUMN, GESTURE_COLUMN]:
        want = BODY_WORN.get(col) or ("Locomotion" if col == LOCOMOTION_COLUMN else "ML_Both_Arms")
        if col not in seen:
            raise DataFormatError(arc.name(rel), f"no 'Column: {col}' line (expected {want!r})")
        name, line_no = seen[col]
        if name != want:
            raise DataFormatError(arc.name(rel), f"column {col} is {name!r}, expected {want!r}; "
                                                 "not the OPPORTUNITY UCI layout", line_no)


def _check_codes(codes: np.ndarray, allowed: Sequence[int], what: str, name: str,
                 data: bytes) -> None:
    bad = ~np.isin(codes, [0, *allowed])
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataFormatError(name, f"{what} label {codes[r]:g} is not a code of "
                                    "label_legend.txt", row_line(data, r))


def _parse_run(arc: Archive, subject: int, run: str) -> _Run:
    rel = f"dataset/S{subject}-{run}.dat"
    data = arc.read(rel)
    name = arc.name(rel)
    table = parse_gappy_table(data, name, N_COLUMNS)
    labels = {}
    for col, what, allowed in ((LOCOMOTION_COLUMN, "Locomotion", LOCOMOTION_CODES),
                               (GESTURE_COLUMN, "ML_Both_Arms", GESTURE_CODES)):
        raw = table[:, col - 1]
        if np.isnan(raw).any():
            raise DataFormatError(name, f"{what} label (column {col}) is NaN",
                                  row_line(data, int(np.flatnonzero(np.isnan(raw))[0])))
        _check_codes(raw, allowed, what, name, data)
        labels[what] = raw.astype(np.int64)
    signal, dead = fill_gaps(table[:, [c - 1 for c in SELECTED_COLUMNS]])
    return _Run(subject, run, signal, labels["Locomotion"], labels["ML_Both_Arms"], dead)


@dataclass
class _Parsed:
    gesture_names: list[str]
    locomotion_names: list[str]
    runs: list[_Run]


def _archive(path: Path) -> Archive:
    return Archive(path, "dataset/label_legend.txt", root="OpportunityUCIDataset",
                   inner_zip="OpportunityUCIDataset.zip")


def parse_archive(path: Path) -> _Parsed:
    """Parse and verify an OPPORTUNITY copy: all 24 runs, 113 gap-filled channels each."""
    arc = _archive(path)
    gestures, locomotion = _read_legend(arc)
    _check_column_names(arc)
    runs = [_parse_run(arc, s, r) for s in SUBJECTS for r in RUNS]
    return _Parsed(gestures, locomotion, runs)


def _save(parsed: _Parsed, f: Any) -> None:
    runs = parsed.runs
    dead = np.zeros((len(runs), len(CHANNELS)), dtype=bool)
    for i, r in enumerate(runs):
        dead[i, r.dead] = True
    np.savez(f, gesture_names=np.array(parsed.gesture_names),
             locomotion_names=np.array(parsed.locomotion_names),
             signal=np.concatenate([r.signal for r in runs]),
             locomotion=np.concatenate([r.locomotion for r in runs]),
             gestures=np.concatenate([r.gestures for r in runs]),
             lengths=np.array([len(r.signal) for r in runs]),
             subjects=np.array([r.subject for r in runs]), runs=np.array([r.run for r in runs]),
             dead=dead)


def _load_cached(path: Path) -> _Parsed:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}
    bounds = np.concatenate([[0], np.cumsum(a["lengths"])])
    runs = [_Run(int(s), str(r), a["signal"][lo:hi], a["locomotion"][lo:hi], a["gestures"][lo:hi],
                 np.flatnonzero(d).tolist())
            for lo, hi, s, r, d in zip(bounds[:-1], bounds[1:], a["subjects"], a["runs"], a["dead"],
                                       strict=True)]
    return _Parsed([str(n) for n in a["gesture_names"]], [str(n) for n in a["locomotion_names"]],
                   runs)


def ordonez_split(subject: int, run: str) -> str | None:
    """The split of run ``S<subject>-<run>`` in the protocol of Ordóñez & Roggen 2016.

    Example:
        >>> ordonez_split(1, "ADL5"), ordonez_split(2, "ADL3"), ordonez_split(3, "ADL4")
        ('train', 'val', 'test')
    """
    if subject == 1:
        return "train"
    if subject in (2, 3):
        return {"ADL3": "val", "ADL4": "test", "ADL5": "test"}.get(run, "train")
    return None


@DATASETS.register(
    "opportunity",
    description="OPPORTUNITY (continuous, 30 Hz, 113 body-worn channels): 18 gestures incl. NULL "
    "(task=gestures) or 5 locomotion modes incl. NULL (task=locomotion); Ordóñez & Roggen split",
    kind="wearable", continuous=True, subjects=4, classes=18,
)
def load_opportunity(data_dir: str | os.PathLike[str] | None = None, task: str = "gestures",
                     subjects: Sequence[int] = (1, 2, 3), split: str | None = "ordonez",
                     use_cache: bool = True) -> RecordingDataset:
    """Load OPPORTUNITY as one continuous recording per run (``S<subject>-<run>``).

    Args:
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
        task: ``gestures`` (17 mid-level gestures + NULL) or ``locomotion`` (4 modes + NULL).
        subjects: subjects to load, among 1-4.
        split: ``ordonez`` (dataset-defined train / val / test runs; subjects 1-3 only) or None
            (no dataset-defined split: give ``data.test_subjects``).
        use_cache: keep the parsed arrays in the harkit cache.

    Returns:
        a :class:`RecordingDataset` with 113 channels at 30 Hz, window 24 / hop 12.
    """
    if task not in ("gestures", "locomotion"):
        raise ConfigError(f"opportunity: task={task!r}, expected 'gestures' or 'locomotion'")
    chosen = sorted({int(s) for s in subjects})
    if not chosen or any(s not in SUBJECTS for s in chosen):
        raise ConfigError(f"opportunity: subjects={list(subjects)!r}, expected some of {SUBJECTS}")
    if split not in ("ordonez", None):
        raise ConfigError(f"opportunity: split={split!r}, expected 'ordonez' or None")
    if split == "ordonez" and 4 in chosen:
        raise ConfigError("opportunity: subject 4 is not part of the Ordóñez & Roggen split; load "
                          "it with split=None and choose data.test_subjects")
    src = locate("opportunity", ["OpportunityUCIDataset.zip", "OpportunityUCIDataset", "dataset"],
                 OFFICIAL_URL, data_dir)
    if src.name == "dataset" and src.is_dir():
        src = src.parent
    parsed = cached_parse("opportunity", CACHE_VERSION, src, parse_archive, _save, _load_cached,
                          use_cache)
    codes: tuple[int, ...]
    if task == "gestures":
        codes, names = GESTURE_CODES, parsed.gesture_names
    else:
        codes, names = LOCOMOTION_CODES, parsed.locomotion_names
    keys = np.array([0, *sorted(codes)])  # raw code -> class index (codes were validated)
    classes = np.array([0] + [codes.index(int(k)) + 1 for k in keys[1:]], dtype=np.int64)
    recs = []
    for r in parsed.runs:
        if r.subject not in chosen:
            continue
        session = f"S{r.subject}-{r.run}"
        if r.dead:
            log.warning("opportunity %s: channel(s) %s are NaN for the whole run; set to 0",
                        session, [CHANNELS[c] for c in r.dead])
        raw = r.gestures if task == "gestures" else r.locomotion
        labels = classes[np.searchsorted(keys, raw)]
        recs.append(Recording(r.signal, labels, r.subject, session,
                              {"run": r.run, "file": f"{session}.dat", "nan_channels": len(r.dead)},
                              ordonez_split(r.subject, r.run) if split else None))
    return RecordingDataset(
        "opportunity", list(CHANNELS), ["NULL", *names], SAMPLING_RATE, recs, window=24, hop=12,
        test_subjects=None, units=dict(UNITS),
        description=f"OPPORTUNITY {task}, 113 body-worn channels, subjects {chosen}",
    )
