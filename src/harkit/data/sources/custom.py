"""``csv``: your own recordings, a folder of CSV (or Parquet) files with one row per sample.

On-disk format (any folder, searched recursively; ``.csv``, ``.csv.gz``, ``.tsv``,
``.parquet``)::

    my_logs/
      subject01_morning.csv
      subject01_evening.csv
      subject02.csv
      ...

    timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,label
    0.00,0.98,-0.11,0.05,0.01,-0.02,0.00,walking
    0.02,1.02,-0.09,0.07,0.03,-0.01,0.01,walking
    ...

- **channels**: every numeric column other than the time, label, subject and session columns
  (or the ``channels`` option, in that order). Every file must have them.
- **label**: the ``label`` column (option ``label_column``), text or numbers. Empty cells and
  the values in ``unlabeled`` (default ``""``, ``"unlabeled"``, ``"unknown"``) are unlabelled
  samples: they never become a class and windows made mostly of them are dropped. A class
  named ``NULL`` (or ``null``, ``none``, ``other``) is a real class, reported separately.
- **subject**: the ``subject`` column (option ``subject_column``) if present, else a number in
  the file name matched by ``subject_pattern`` (default: ``subject01``, ``user_3``,
  ``participant-7``, ``s12``, or a file name that is just a number). Text subject ids are
  numbered 1, 2, ... in sorted order.
- **time**: a ``timestamp`` / ``time`` / ``t`` column (option ``time_column``) in seconds, or
  date-times. It gives the sampling rate (median interval) unless ``sampling_rate`` is set;
  irregular sampling (phone logs) is interpolated onto a uniform grid; a recording is split
  where the clock jumps by more than ``max_gap`` seconds (default: 5 sample intervals), so no
  window spans a gap. Without a time column, set ``sampling_rate``.
- Each file (or each run of one subject inside a file, between gaps) is one recording;
  missing channel values inside a recording are interpolated linearly.

Test split: ``test_subjects`` if given, else a reproducible 20% of the subjects (at least one);
``harkit cv`` gives the leave-one-subject-out view. Window: 2 s with 50% overlap unless
``data.window`` / ``data.hop`` say otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import resolve_classes
from harkit.data.gaps import fill_gaps
from harkit.data.recording import UNLABELED, Recording, RecordingDataset
from harkit.data.sources import DATASETS
from harkit.data.splits import default_test_subjects, subject_numbers
from harkit.data.textio import FLOAT32_MAX
from harkit.data.windowing import interp_columns
from harkit.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet")
TIME_COLUMNS = ("timestamp", "time", "t", "time_s", "seconds")
DEFAULT_SUBJECT_PATTERN = r"(?:subject|user|participant|person|s)[_\- ]?0*(\d+)|^0*(\d+)$"
DEFAULT_UNLABELED = ("", "unlabeled", "unlabelled", "unknown")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES)
                   and not p.name.startswith("."))
    if not files:
        raise DataFormatError(root, f"no {', '.join(SUFFIXES)} files in this folder")
    return files


def _read(path: Path) -> Any:
    import pandas as pd

    try:
        if path.name.lower().endswith(".parquet"):
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ConfigError(f"{path}: reading Parquet needs pyarrow (pip install "
                                  "pyarrow)") from None
        sep = "\t" if path.name.lower().endswith(".tsv") else ","
        return pd.read_csv(path, sep=sep, skipinitialspace=True, keep_default_na=False,
                           na_values=[""], low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        m = re.search(r"line (\d+)", msg)
        raise DataFormatError(path, f"cannot read as a table: {msg}",
                              int(m.group(1)) if m else None) from None


def _numeric(path: Path, frame: Any, column: str, header_lines: int = 1) -> np.ndarray:
    """A column as float64; a non-numeric cell is an error naming its line and value."""
    import pandas as pd

    col = frame[column]
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(path, f"column {column!r}: {col.iloc[i]!r} is not a number",
                              i + 1 + header_lines)
    out = values.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN (an empty cell) is a gap, filled later
        big = np.isinf(out) | (np.abs(out) > FLOAT32_MAX)
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise DataFormatError(path, f"column {column!r}: {col.iloc[i]!r} is not a finite number "
                                    "within the 32-bit float range", i + 1 + header_lines)
    return out


def _times(path: Path, frame: Any, column: str) -> np.ndarray:
    """Seconds from the time column (numbers in seconds, or date-times)."""
    import pandas as pd

    col = frame[column]
    if pd.api.types.is_numeric_dtype(col):
        t = _numeric(path, frame, column)
    else:
        with warnings.catch_warnings():  # "could not infer format": bad cells are reported below
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(col, errors="coerce")
        bad = parsed.isna() & col.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(path, f"column {column!r}: {col.iloc[i]!r} is neither seconds "
                                        "nor a date-time", i + 2)
        t = (parsed - parsed.iloc[0]).dt.total_seconds().to_numpy(dtype=np.float64)
    if np.isnan(t).any():
        i = int(np.flatnonzero(np.isnan(t))[0])
        raise DataFormatError(path, f"column {column!r}: empty time value", i + 2)
    back = np.flatnonzero(np.diff(t) <= 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataFormatError(path, f"column {column!r}: time {float(t[i])!r} does not increase "
                                    f"(previous {float(t[i - 1])!r}); sort the rows or split the file", i + 2)
    return t


def _mostly_numeric(col: Any) -> bool:
    """A channel column: numbers, with at most a few stray non-numeric cells (those are then
    reported with their line instead of silently dropping the whole column)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        return True
    present = col.dropna()
    if len(present) == 0:
        return True
    parsed = pd.to_numeric(present, errors="coerce")
    return bool(parsed.notna().mean() >= 0.9)


def _text(v: Any) -> str:
    """A cell as text: empty for missing, ``3`` for ``3.0``."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _regrid(t: np.ndarray, x: np.ndarray, lab: np.ndarray, rate: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Signal and labels on a uniform grid at ``rate`` over ``t``'s span (linear / nearest)."""
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * rate + 1e-9)) + 1) / rate
    sig = interp_columns(grid, t, x)
    nearest = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
    left_closer = (grid - t[nearest - 1]) <= (t[nearest] - grid)
    nearest = np.where(left_closer, nearest - 1, nearest)
    return sig, lab[nearest]


@DATASETS.register(
    "csv",
    description="your own recordings: a folder of CSV / Parquet files, one row per sample "
    "(time, channels, label; subject from a column or the file name)",
    kind="wearable", continuous=True,
)
def load_csv(data_dir: str | os.PathLike[str] | None = None, label_column: str = "label",
             subject_column: str = "subject", subject_pattern: str = DEFAULT_SUBJECT_PATTERN,
             time_column: str | None = None, session_column: str | None = None,
             channels: list[str] | None = None, sampling_rate: float | None = None,
             classes: list[str] | None = None, unlabeled: list[str] | None = None,
             test_subjects: list[int] | None = None, max_gap: float | None = None,
             units: dict[str, str] | None = None) -> RecordingDataset:
    """Load a folder of CSV / Parquet recordings (format: see the module docstring).

    Args:
        data_dir: the folder (or a single file); required.
        label_column, subject_column, time_column, session_column: column names
            (time: auto-detected among ``timestamp``, ``time``, ``t``; session: optional
            recording id inside a file).
        subject_pattern: regex whose first matching group in the file name is the subject id,
            used when there is no subject column.
        channels: channel columns to use, in this order (default: every other numeric column).
        sampling_rate: Hz; required without a time column, else inferred (and, if given,
            every recording is interpolated / resampled to it).
        classes: class names in the order to use (default: sorted); others are an error.
        unlabeled: label values meaning "no label".
        test_subjects: subjects of the test split (default: a reproducible 20%).
        max_gap: seconds of missing time that split a recording (default 5 intervals).
        units: optional unit per channel, for documentation and augmentations.

    Example:
        >>> ds = load_csv("my_logs/")                       # doctest: +SKIP
        >>> ds.subject_ids(), ds.classes, ds.sampling_rate  # doctest: +SKIP
    """

    if data_dir is None:
        raise ConfigError("dataset 'csv' reads your own files: give the folder with --data-dir "
                          "(or data.data_dir)")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataFormatError(root, "no such folder")
    nulls = {str(v).strip().lower() for v in (unlabeled if unlabeled is not None
                                               else DEFAULT_UNLABELED)}
    try:
        pattern = re.compile(subject_pattern, re.IGNORECASE)
    except re.error as e:
        raise ConfigError(f"data.options.subject_pattern {subject_pattern!r}: {e}") from None

    tables = []  # (path, frame, time column or None, subject per row)
    chan_names: list[str] | None = None
    for path in _files(root):
        frame = _read(path)
        frame.columns = [str(c).strip() for c in frame.columns]
        if label_column not in frame.columns:
            raise DataFormatError(path, f"no label column {label_column!r}; columns are "
                                        f"{list(frame.columns)} (set data.options.label_column)")
        if len(frame) == 0:
            log.warning("%s: no rows, skipped", path)
            continue
        tcol = time_column or next((c for c in frame.columns if c.lower() in TIME_COLUMNS), None)
        if time_column is not None and time_column not in frame.columns:
            raise DataFormatError(path, f"no time column {time_column!r}; columns are "
                                        f"{list(frame.columns)}")
        if subject_column in frame.columns:
            subj = np.array([_text(v) for v in frame[subject_column].to_numpy()], dtype=object)
            if (subj == "").any():
                i = int(np.flatnonzero(subj == "")[0])
                raise DataFormatError(path, f"column {subject_column!r}: empty subject", i + 2)
        else:
            stem = path.name.split(".")[0]
            m = pattern.search(stem)
            if m is None:
                raise DataFormatError(path, f"no subject: the file has no {subject_column!r} "
                                            "column and its name has no subject number (name "
                                            "files like subject01.csv, or set "
                                            "data.options.subject_column / subject_pattern)")
            subj = np.full(len(frame), next(g for g in m.groups() if g is not None) if m.groups()
                           else m.group(0), dtype=object)
        reserved = {label_column, subject_column, tcol, session_column}
        if channels is not None:
            missing = [c for c in channels if c not in frame.columns]
            if missing:
                raise DataFormatError(path, f"missing channel column(s) {missing}; columns are "
                                            f"{list(frame.columns)}")
            names = list(channels)
        else:
            names = [c for c in frame.columns if c not in reserved and _mostly_numeric(frame[c])]
        if chan_names is None:
            chan_names = names
            if not names:
                used = sorted(c for c in reserved if c)
                raise DataFormatError(path, f"no numeric channel columns besides {used}; "
                                            f"columns are {list(frame.columns)}")
        elif names != chan_names:
            raise DataFormatError(path, f"channels {names} differ from {chan_names} in the "
                                        "first file (set data.options.channels to choose them)")
        tables.append((path, frame, tcol, subj))
    if not tables or chan_names is None:
        raise DataFormatError(root, "every file is empty")

    # Subjects: numbers stay numbers; text ids are numbered in sorted order.
    raw_ids = sorted({str(s) for _, _, _, subj in tables for s in subj})
    subject_of = subject_numbers(raw_ids)
    if not all(s.isdecimal() for s in raw_ids):
        log.info("csv: text subject ids numbered %s", subject_of)

    # Labels: classes sorted (or as given); unlabelled values excluded.
    label_text = _text
    found = sorted({t for _, f, _, _ in tables for t in map(label_text, f[label_column].unique())
                    if t.lower() not in nulls})
    class_names = resolve_classes(found, classes, root, f"column {label_column!r}")
    index = {c: i for i, c in enumerate(class_names)}

    recordings: list[Recording] = []
    rates: list[tuple[Path, float]] = []
    for path, frame, tcol, subj in tables:
        x = np.stack([_numeric(path, frame, c) for c in chan_names], axis=1)
        lab = np.array([index.get(t, UNLABELED) if t.lower() not in nulls else UNLABELED
                        for t in map(label_text, frame[label_column].to_numpy())], dtype=np.int64)
        sess = (frame[session_column].astype(str).to_numpy() if session_column
                and session_column in frame.columns else np.full(len(frame), "", dtype=object))
        # one piece per (subject, session) run of consecutive rows
        key = np.array([f"{s}\x00{q}" for s, q in zip(subj, sess, strict=True)], dtype=object)
        cuts = np.flatnonzero(key[1:] != key[:-1]) + 1
        t_all = _times(path, frame, tcol) if tcol else None
        for part, (a, b) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, len(frame)], strict=True)):
            t = None if t_all is None else t_all[a:b]
            if t is not None and len(t) > 1:
                file_rate = 1.0 / float(np.median(np.diff(t)))
                rates.append((path, file_rate))
            pieces = [(a, b)]
            if t is not None and len(t) > 1:
                rate_here = sampling_rate or 1.0 / float(np.median(np.diff(t)))
                gap = max_gap if max_gap is not None else 5.0 / rate_here
                jumps = np.flatnonzero(np.diff(t) > gap) + 1
                if len(jumps):
                    log.info("%s: split at %d time gap(s) longer than %.3g s", path, len(jumps), gap)
                pieces = [(a + p, a + q) for p, q in zip(np.r_[0, jumps], np.r_[jumps, b - a],
                                                         strict=True)]
            for k, (p, q) in enumerate(pieces):
                filled = int(np.isnan(x[p:q]).sum())
                sig, _ = fill_gaps(x[p:q])
                if filled:
                    log.warning("%s: %d empty channel value(s) interpolated", path, filled)
                name = path.name.split(".")[0]
                if len(cuts):
                    name += f"_part{part + 1}"
                if len(pieces) > 1:
                    name += f"_seg{k + 1}"
                recordings.append(Recording(
                    sig.astype(np.float32), lab[p:q].copy(), subject_of[str(subj[p])], name,
                    {"file": str(path), "first_row": int(p) + 2,
                     "time": None if t_all is None else t_all[p:q]}))

    if sampling_rate is None:
        if not rates:
            raise ConfigError("csv: no time column to infer the sampling rate from; add a "
                              "timestamp column (seconds) or set data.options.sampling_rate")
        rate = float(f"{np.median([r for _, r in rates]):.6g}")  # 50.000000001 -> 50
        off = [(p, r) for p, r in rates if abs(r - rate) > 0.02 * rate]
        if off:
            raise DataFormatError(off[0][0], f"sampled at {off[0][1]:.3g} Hz while most files are "
                                             f"at {rate:.3g} Hz; set data.options.sampling_rate "
                                             "to resample everything to one rate")
    else:
        rate = float(sampling_rate)
    for i, rec in enumerate(recordings):
        t = rec.meta.pop("time")
        if t is not None and len(t) > 1:
            dt = np.diff(t)
            native = 1.0 / float(np.median(dt))
            irregular = float(np.max(np.abs(dt - 1.0 / native))) > 0.01 / native
            if irregular or abs(native - rate) > 1e-6 * rate:
                from harkit.data.resample import resample_signal

                # regrid at the native rate first, then anti-aliased resampling if needed
                sig, lab = _regrid(t, rec.signal.astype(np.float64), rec.labels, native)
                if abs(native - rate) > 1e-6 * rate:
                    new = resample_signal(sig, native, rate)
                    idx = np.clip(np.rint(np.arange(len(new)) * native / rate).astype(np.int64),
                                  0, len(lab) - 1)
                    sig, lab = new, lab[idx]
                recordings[i] = Recording(sig.astype(np.float32), lab, rec.subject, rec.session,
                                          rec.meta)
    subjects = sorted({r.subject for r in recordings})
    if test_subjects is None:
        test_subjects = default_test_subjects(subjects, "csv", "see data.options.subject_column")
    window = max(1, round(2.0 * rate))
    return RecordingDataset(
        "csv", list(chan_names), class_names, rate, recordings, window=window,
        hop=max(1, window // 2), test_subjects=list(test_subjects),
        units=dict(units or {}),
        description=f"{len(recordings)} recordings from {root}",
    )
