"""WISDM Activity Prediction v1.1 (Kwapisz, Weiss & Moore, SIGKDD Explorations 2011): a
smartphone accelerometer in the front trouser pocket, 36 users, 6 activities, 20 Hz.

On-disk format (``WISDM_ar_latest.tar.gz`` from the WISDM lab, or its unpacked
``WISDM_ar_v1.1`` folder, or the raw file itself; only this file is read)::

    WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt    records "user,activity,timestamp,x,y,z;"

Fields (``WISDM_ar_v1.1_raw_about.txt``): user 1..36; activity one of Walking, Jogging,
Sitting, Standing, Upstairs, Downstairs; timestamp "generally the phone's uptime in
nanoseconds"; x, y, z acceleration as floats between -20 and 20 where 10 = 1 g = 9.81 m/s²
(gravity included). The nominal rate is 20 Hz (one sample every 50 ms).

The published file is not clean, and records are therefore parsed one by one, split on ``;``
rather than on lines: some lines hold several records, some records are split across two
lines, some end with a comma before the ``;`` (kept), some have empty or non-numeric fields,
and some have a timestamp of 0 (both skipped). Skipped records are counted and logged as one
warning (reason, count, first line). This is the default because the official file contains
such records: refusing it would make the dataset unusable. ``strict=True`` instead raises a
:class:`DataFormatError` naming the file and line of the first unusable record (for cleaned
copies); a file in which no record, or fewer than half of them, parse is rejected in every
mode with the line of the first problem.

Recordings: consecutive records of one user whose timestamps increase with steps of at most
``max_gap_s`` seconds (the tick is inferred per user from the median step: nanoseconds in the
published file); a jump, a step backwards or a new user starts a new recording. Samples are
taken as uniformly spaced at 20 Hz (no resampling). Labels: the 6 activities, no NULL class.

Split: WISDM defines none; harkit's default test subjects are users 27-36 (a subject-wise
26 / 10 split, as used e.g. by Ignatov 2018, Applied Soft Computing 62); leave-one-subject-out
is more reliable. Customary window: 200 samples (10 s, the window of Kwapisz et al.), hop 100.

Sources: the dataset readme (``WISDM_ar_v1.1_raw_about.txt``) and Kwapisz et al. 2011.
"""

from __future__ import annotations

import logging
import math
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.recording import Recording, RecordingDataset
from harkit.data.sources import DATASETS
from harkit.data.store import cached_parse, locate
from harkit.data.textio import FLOAT32_MAX, decode
from harkit.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cis.fordham.edu/wisdm/includes/datasets/latest/WISDM_ar_latest.tar.gz"
RAW_FILE = "WISDM_ar_v1.1_raw.txt"
SAMPLING_RATE = 20.0
CLASSES = ["Walking", "Jogging", "Sitting", "Standing", "Upstairs", "Downstairs"]
CHANNELS = ["acc_x", "acc_y", "acc_z"]
TEST_SUBJECTS = list(range(27, 37))
CACHE_VERSION = 1
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}


def read_raw(path: Path) -> tuple[bytes, str]:
    """Bytes of ``WISDM_ar_v1.1_raw.txt`` from the tarball, its folder or the file itself,
    and the name errors use for it."""
    if path.is_dir():
        p = path / RAW_FILE
        if not p.exists():
            raise DataFormatError(p, "file missing")
        return p.read_bytes(), str(p)
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path) as tf:
                members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(RAW_FILE)]
                if not members:
                    raise DataFormatError(path, f"archive has no {RAW_FILE}")
                f = tf.extractfile(members[0])
                if f is None:  # pragma: no cover - regular file members always have content
                    raise DataFormatError(path, f"cannot read {members[0].name}")
                return f.read(), f"{path}:{members[0].name}"
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DataFormatError(path, f"not a readable tar.gz archive ({e}; truncated "
                                        "download?)") from None
    return path.read_bytes(), str(path)


def _parse_record(text: str) -> tuple[int, int, int, float, float, float] | str:
    """One ``user,activity,timestamp,x,y,z`` record, or the reason it is unusable."""
    f = text.split(",")
    if len(f) == 7 and not f[6].strip():
        f = f[:6]  # "...,z,;": a trailing comma before the ';'
    if len(f) != 6:
        return f"expected 6 comma-separated fields, found {len(f)}"
    f = [v.strip() for v in f]
    if "" in f:
        return "empty field"
    try:
        user, ts = int(f[0]), int(f[2])
        x, y, z = float(f[3]), float(f[4]), float(f[5])
    except ValueError:
        return "field is not a number"
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
        return "field is not a number"
    if max(abs(x), abs(y), abs(z)) > FLOAT32_MAX or not (
            abs(user) < 2**31 and abs(ts) < 2**63):  # they end up float32, int64
        return "number out of range"
    act = _CLASS_INDEX.get(f[1])
    if act is None:
        return "unknown activity"
    if ts == 0:
        return "zero timestamp"
    return user, act, ts, x, y, z


@dataclass
class _Parsed:
    user: np.ndarray
    label: np.ndarray
    time: np.ndarray
    xyz: np.ndarray
    line: np.ndarray
    summary: str  # what was skipped or repaired ("" when nothing)


def parse_raw(data: bytes, name: str, strict: bool = False) -> _Parsed:
    """Parse the raw records record by record (see the module docstring for the policy).

    Example:
        >>> p = parse_raw(b"33,Jogging,49105962326000,-0.69,12.68,0.50;\\n"
        ...               b"33,Jogging,49106062271000,5.01,11.26,0.95;33,Jogging,0,1,2,3;", "r.txt")
        >>> p.time.tolist(), p.summary
        ([49105962326000, 49106062271000], 'skipped 1 of 3 records: 1 zero timestamp (first at line 2)')
    """
    text = decode(data, name)
    rows: list[tuple[int, int, int, float, float, float]] = []
    lines: list[int] = []
    skipped: dict[str, list[int]] = {}
    joined = 0
    line = 1
    for chunk in text.split(";"):
        lead = len(chunk) - len(chunk.lstrip())
        start = line + chunk.count("\n", 0, lead)
        line += chunk.count("\n")
        body = chunk.strip()
        if not body:
            continue
        records = [(body, start)]
        if "\n" in body:
            parts = body.splitlines()
            whole = "".join(p.strip() for p in parts)
            if isinstance(_parse_record(whole), tuple):
                joined += 1  # one record broken across lines
                records = [(whole, start)]
            else:  # several records, some without their ';'
                records = [(p.strip(), start + k) for k, p in enumerate(parts) if p.strip()]
        for rec, ln in records:
            parsed = _parse_record(rec)
            if isinstance(parsed, str):
                if strict:
                    raise DataFormatError(name, f"record {rec[:80]!r}: {parsed}", ln)
                skipped.setdefault(parsed, []).append(ln)
            else:
                rows.append(parsed)
                lines.append(ln)
    n_bad = sum(len(v) for v in skipped.values())
    if not rows or n_bad > len(rows):
        first = min((v[0], k) for k, v in skipped.items()) if skipped else (1, "no records")
        raise DataFormatError(name, f"{len(rows)} of {len(rows) + n_bad} records are usable "
                                    "'user,activity,timestamp,x,y,z;' records (not the WISDM raw "
                                    f"format?); first problem: {first[1]}", first[0])
    notes = []
    if skipped:
        parts_txt = ", ".join(f"{len(v)} {k} (first at line {v[0]})"
                              for k, v in sorted(skipped.items(), key=lambda kv: kv[1][0]))
        notes.append(f"skipped {n_bad} of {len(rows) + n_bad} records: {parts_txt}")
    if joined:
        notes.append(f"joined {joined} record(s) split across lines")
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return _Parsed(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64),
                   np.array([r[2] for r in rows], dtype=np.int64), arr[:, 3:].astype(np.float32),
                   np.array(lines, dtype=np.int64), "; ".join(notes))


def _save(p: _Parsed, f: Any) -> None:
    np.savez(f, user=p.user, label=p.label, time=p.time, xyz=p.xyz, line=p.line,
             summary=np.array(p.summary))


def _load_cached(path: Path) -> _Parsed:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}
    return _Parsed(a["user"], a["label"], a["time"], a["xyz"], a["line"], str(a["summary"]))


def seconds_per_tick(steps: np.ndarray) -> float:
    """The timestamp unit, a power of ten, that makes the median step closest to 50 ms.

    Example:
        >>> seconds_per_tick(np.array([50_000_000, 49_000_000])), seconds_per_tick(np.array([50]))
        (1e-09, 0.001)
    """
    pos = steps[steps > 0]
    if not len(pos):
        return 1e-9  # the readme's nanoseconds
    return float(10.0 ** round(math.log10(0.05 / float(np.median(pos)))))


def build_recordings(p: _Parsed, max_gap_s: float) -> list[Recording]:
    """Cut the record stream into recordings at user changes and timestamp jumps."""
    recs: list[Recording] = []
    user_starts = np.flatnonzero(np.diff(p.user)) + 1
    counter: dict[int, int] = {}
    for lo, hi in zip([0, *user_starts.tolist()], [*user_starts.tolist(), len(p.user)], strict=True):
        u = int(p.user[lo])
        steps = np.diff(p.time[lo:hi])
        tick = seconds_per_tick(steps)
        cuts = (np.flatnonzero((steps <= 0) | (steps * tick > max_gap_s)) + 1 + lo).tolist()
        for a, b in zip([lo, *cuts], [*cuts, hi], strict=True):
            k = counter[u] = counter.get(u, 0) + 1
            recs.append(Recording(p.xyz[a:b], p.label[a:b].copy(), u, f"user{u:02d}_{k:03d}",
                                  {"first_line": int(p.line[a]), "tick_s": tick}))
    return recs


@DATASETS.register(
    "wisdm",
    description="WISDM v1.1 (continuous, 20 Hz, phone accelerometer xyz): 6 activities, 36 users; "
    "malformed records of the published file skipped and counted",
    kind="wearable", continuous=True, subjects=36, classes=6,
)
def load_wisdm(data_dir: str | os.PathLike[str] | None = None, strict: bool = False,
               max_gap_s: float = 1.0, use_cache: bool = True) -> RecordingDataset:
    """Load WISDM v1.1 as continuous recordings (one per uninterrupted stretch of a user).

    Args:
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
        strict: raise on the first unusable record instead of skipping it.
        max_gap_s: a larger step between two timestamps starts a new recording.
        use_cache: keep the parsed arrays in the harkit cache.
    """
    if not max_gap_s > 0:
        raise ConfigError(f"wisdm: max_gap_s={max_gap_s!r}, expected a positive duration")
    src = locate("wisdm", ["WISDM_ar_latest.tar.gz", "WISDM_ar_v1.1", RAW_FILE], OFFICIAL_URL,
                 data_dir)

    def parse(path: Path) -> _Parsed:
        return parse_raw(*read_raw(path), strict=strict)

    parsed = cached_parse(f"wisdm{'-strict' if strict else ''}", CACHE_VERSION, src, parse, _save,
                          _load_cached, use_cache)
    if parsed.summary:
        log.warning("wisdm %s: %s", src.name, parsed.summary)
    recs = build_recordings(parsed, max_gap_s)
    return RecordingDataset(
        "wisdm", list(CHANNELS), list(CLASSES), SAMPLING_RATE, recs, window=200, hop=100,
        test_subjects=list(TEST_SUBJECTS), units={c: "m/s^2 (10 = 1 g)" for c in CHANNELS},
        description="WISDM v1.1 phone accelerometer, 6 activities",
    )
