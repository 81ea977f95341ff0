"""Berkeley MHAD (Ofli et al., WACV 2013), the wearable accelerometer modality.

On-disk format (``BerkeleyMHAD_Accelerometer.zip``, zipped or unpacked; only these files are
read)::

    Accelerometer/ShimmerHH/acc_hHH_sSS_aAA_rRR.txt
        one file per accelerometer HH (01..06), subject SS (01..12), action AA (01..11) and
        repetition RR (01..05); one sample per line: "ax ay az unix_time" (acceleration in g,
        six decimals; the time in seconds, six decimals, as the recording host received it;
        some files end every line with a space)
    Time_stamps/time_stamps_img_sSS_aAA_rRR.txt
        camera frame times of each trial (not needed: the accelerometer files already cover
        the same interval to within about 0.1 s)

658 of the 660 trials are in the release (``s02_a07_r05`` and ``s04_a08_r05`` are missing for
every sensor). Each trial becomes one :class:`~harkit.data.recording.Recording` with 18
channels (``h01_acc_x`` ... ``h06_acc_z``), every sample labelled with the trial's action.

Sensor placement (:data:`SENSOR_LOCATIONS`): the release has no placement file. The data
show that h01 / h02 are the wrists (they carry the arm actions; only h02 moves in "waving one
hand", done with the right hand, so h02 is the right wrist), h03 / h04 the hips (they move in
bending and sitting but not in waving) and h05 / h06 the ankles (they move only in jumping,
throwing and sitting down). Left for the odd and right for the even number of the hip and
ankle pairs follows the wrists' numbering and is not checked by the data.

What the real recordings look like, and how they are aligned (:func:`align_streams`):

- The time column is when the host received each sample over Bluetooth, not when the sensor
  took it: steps between samples are bimodal (about 22 and 45 ms), the sensor clock itself
  ticks at 31.03 Hz (median over files of the slope of time against sample number), and the
  arrival times scatter around that clock by +-60 ms (median per file of the largest
  deviation; 95th percentile 0.24 s). About 3 % of steps are under 1 ms (bursts of buffered
  samples); a few files of h03 / h04 arrive almost entirely in such bursts (up to 120 samples
  per second of arrival time). No timestamp repeats exactly or goes backwards in the release.
- The six sensors start within 35 ms of each other (median; 95th percentile 82 ms, worst
  1.2 s) and end within 36 ms (median; worst 1.6 s).
- The accelerometers saturate at +-2 g; 16 of the 920,866 samples hold impossible values
  (up to 60.7 g, bit errors) and are dropped before interpolation.

Each sensor's samples are linearly interpolated, at their recorded times, onto one uniform
grid at ``rate`` Hz (30 Hz, the dataset's nominal rate) spanning the interval every sensor
covers. Timestamps that go backwards are clamped to the previous one, and samples sharing
one timestamp are averaged. A trial where a sensor file is missing is skipped with a
warning (the real release has none: every trial has all six files or none).

The dataset-defined test split is the usual Berkeley MHAD protocol: subjects 1-7 train,
subjects 8-12 test.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.archive import ZIP_ERRORS, Archive
from harkit.data.recording import Recording, RecordingDataset
from harkit.data.sources import DATASETS
from harkit.data.store import cache_dir, cached_parse, configured_data_dir, locate
from harkit.data.textio import parse_numeric_table
from harkit.data.windowing import interp_columns, to_length
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

HOME_URL = "https://tele-immersion.citris-uc.org/berkeley_mhad"
ARCHIVE = "BerkeleyMHAD_Accelerometer.zip"
SENSORS = ("h01", "h02", "h03", "h04", "h05", "h06")
SENSOR_LOCATIONS = {"h01": "left wrist", "h02": "right wrist", "h03": "left hip",
                    "h04": "right hip", "h05": "left ankle", "h06": "right ankle"}
CHANNELS = [f"{h}_acc_{a}" for h in SENSORS for a in "xyz"]
UNITS = dict.fromkeys(CHANNELS, "g")
CLASSES = ["jumping in place", "jumping jacks", "bending", "punching", "waving two hands",
           "waving one hand", "clapping", "throwing", "sit down then stand up", "sit down",
           "stand up"]
TEST_SUBJECTS = [8, 9, 10, 11, 12]
RATE = 30.0
RANGE_G = 2.0  # the Shimmer accelerometers' full scale; larger values are corrupt samples
# 1.5 s windows (about one cycle of the repeated actions: jumps, waves, claps) every 0.5 s
# (67 % overlap). Trials last 1.2 s (stand up) to 30 s (bending): one of the 658 trials is
# shorter than a window; 2 s windows would lose 25 of them.
WINDOW, HOP = 45, 15
CACHE_VERSION = 1
_FILE = re.compile(r"acc_h(\d\d)_s(\d\d)_a(\d\d)_r(\d\d)\.txt$")


def clean_times(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Make sample times strictly increasing, keeping the samples' order.

    A timestamp smaller than an earlier one is clamped to the running maximum (the file's
    sample order is the sensor's); samples that then share a timestamp are averaged.

    Returns:
        ``(times, values, n_backward, n_merged)``.

    Example:
        >>> t, v, back, merged = clean_times(np.array([0.0, 1.0, 0.5, 2.0]),
        ...                                  np.array([[0.0], [2.0], [4.0], [6.0]]))
        >>> t.tolist(), v[:, 0].tolist(), back, merged
        ([0.0, 1.0, 2.0], [0.0, 3.0, 6.0], 1, 1)
    """
    back = int(np.sum(np.diff(t) < 0))
    if back:
        t = np.maximum.accumulate(t)
    uniq, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    if len(uniq) == len(t):
        return t, values, back, 0
    sums = np.zeros((len(uniq), values.shape[1]))
    np.add.at(sums, inverse, values)
    return uniq, sums / counts[:, None], back, len(t) - len(uniq)


def align_streams(streams: list[tuple[np.ndarray, np.ndarray]], rate: float
                  ) -> tuple[np.ndarray, float]:
    """Linearly interpolate streams with their own sample times onto one uniform grid.

    Args:
        streams: per sensor ``(times (n,), values (n, channels))``, times strictly increasing
            (see :func:`clean_times`), in seconds.
        rate: grid rate in Hz.

    Returns:
        ``(signal, t0)``: ``(time, sum of channels)`` sampled at ``t0 + k / rate`` for every
        ``k`` with the grid inside the interval all streams cover, and ``t0``, the latest
        first sample time.

    Raises:
        ValueError: the streams share less than two grid points.

    Example:
        >>> a = (np.array([0.0, 1.0, 2.0]), np.array([[0.0], [1.0], [2.0]]))
        >>> b = (np.array([0.5, 2.5]), np.array([[5.0], [7.0]]))
        >>> sig, t0 = align_streams([a, b], 2.0)
        >>> t0, sig.tolist()
        (0.5, [[0.5, 5.0], [1.0, 5.5], [1.5, 6.0], [2.0, 6.5]])
    """
    start = max(float(t[0]) for t, _ in streams)
    end = min(float(t[-1]) for t, _ in streams)
    n = int(np.floor((end - start) * rate + 1e-6)) + 1 if end >= start else 0
    if n < 2:
        raise ValueError(f"the sensors share {max(end - start, 0.0):.3f} s, less than two "
                         f"samples at {rate:g} Hz")
    grid = np.arange(n) / rate  # seconds after start: small numbers keep float64 exact
    return np.concatenate([interp_columns(grid, t - start, v) for t, v in streams], axis=1), start


def _trial_files(arc: Archive) -> dict[tuple[int, int, int], dict[str, str]]:
    """Sensor files per trial ``(subject, action, repetition)``."""
    trials: dict[tuple[int, int, int], dict[str, str]] = {}
    for h in SENSORS:
        folder = f"Accelerometer/Shimmer{h[1:]}"
        for rel in arc.list(folder):
            m = _FILE.search(rel)
            if not m:
                continue
            if m.group(1) != h[1:]:
                raise DataFormatError(arc.name(rel), f"accelerometer h{m.group(1)} file in the "
                                                     f"folder of {h}")
            key = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
            trials.setdefault(key, {})[h] = rel
    return trials


def _read_sensor(arc: Archive, rel: str) -> tuple[np.ndarray, np.ndarray, int, int, int, float]:
    """One file's clean ``(times, xyz)``, plus counts of dropped, clamped and merged samples
    and its mean sample rate."""
    table = parse_numeric_table(arc.read(rel), arc.name(rel), 4, np.float64)
    t, xyz = table[:, 3], table[:, :3]
    ok = (np.abs(xyz) <= RANGE_G).all(axis=1)
    dropped = int(len(ok) - ok.sum())
    t, xyz = t[ok], xyz[ok]
    if len(t) < 2:
        raise DataFormatError(arc.name(rel), f"fewer than 2 samples within +-{RANGE_G:g} g")
    span = float(t.max() - t[0])
    rate = (len(t) - 1) / span if span > 0 else 0.0
    t, xyz, back, merged = clean_times(t, xyz)
    return t, xyz, dropped, back, merged, rate


def _marker(path: Path) -> str:
    """A sensor file of the copy at ``path``, for :class:`Archive` to recognise it by."""
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                for n in zf.namelist():
                    if n.startswith("Accelerometer/Shimmer") and _FILE.search(n):
                        return n
        except ZIP_ERRORS:
            pass  # Archive reports the damaged archive, naming it
    return "Accelerometer/Shimmer01/acc_h01_s01_a01_r01.txt"


def parse_archive(path: Path, rate: float = RATE) -> list[Recording]:
    """Parse a Berkeley MHAD accelerometer copy into one aligned recording per trial at
    ``rate`` Hz (no caching)."""
    arc = Archive(path, _marker(path), inner_zip=ARCHIVE)
    trials = _trial_files(arc)
    if not trials:
        raise DataFormatError(arc.name("Accelerometer"), "no acc_hHH_sSS_aAA_rRR.txt files found")
    recordings = []
    for (subject, action, rep), files in sorted(trials.items()):
        session = f"s{subject:02d}_a{action:02d}_r{rep:02d}"
        missing = [h for h in SENSORS if h not in files]
        if missing:
            log.warning("berkeley-mhad: trial %s skipped: no file for accelerometer(s) %s",
                        session, ", ".join(missing))
            continue
        if not 1 <= action <= len(CLASSES):
            raise DataFormatError(arc.name(files["h01"]), f"action {action} outside "
                                                          f"1..{len(CLASSES)}")
        parts = [_read_sensor(arc, files[h]) for h in SENSORS]
        try:
            signal, t0 = align_streams([(p[0], p[1]) for p in parts], rate)
        except ValueError as e:
            raise DataFormatError(arc.name(files["h01"]), f"trial {session}: {e}") from None
        meta = {"action": action, "repetition": rep, "t0": t0,
                "start_offsets_s": [float(p[0][0] - t0) for p in parts],
                "sensor_rates_hz": [p[5] for p in parts],
                "dropped_samples": sum(p[2] for p in parts),
                "clamped_timestamps": sum(p[3] for p in parts),
                "merged_samples": sum(p[4] for p in parts)}
        recordings.append(Recording(signal.astype(np.float32),
                                    np.full(len(signal), action - 1, dtype=np.int64), subject,
                                    session, meta))
    if not recordings:
        raise DataFormatError(arc.name("Accelerometer"), "no trial has all six sensor files")
    return recordings


_META_INT = ("action", "repetition", "dropped_samples", "clamped_timestamps", "merged_samples")


def _save(recs: list[Recording], f: Any) -> None:
    arrays: dict[str, Any] = {
        "signal": np.concatenate([r.signal for r in recs]),
        "lengths": np.array([len(r) for r in recs]),
        "subjects": np.array([r.subject for r in recs]),
        "t0": np.array([r.meta["t0"] for r in recs]),
        "offsets": np.array([r.meta["start_offsets_s"] for r in recs]),
        "rates": np.array([r.meta["sensor_rates_hz"] for r in recs]),
    }
    for k in _META_INT:
        arrays[k] = np.array([r.meta[k] for r in recs])
    np.savez(f, **arrays)


def _load_cached(path: Path) -> list[Recording]:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}  # each z[k] access re-reads the member: read once
    bounds = np.concatenate([[0], np.cumsum(a["lengths"])])
    recs = []
    for i in range(len(a["lengths"])):
        meta: dict[str, Any] = {k: int(a[k][i]) for k in _META_INT}
        meta.update(t0=float(a["t0"][i]), start_offsets_s=a["offsets"][i].tolist(),
                    sensor_rates_hz=a["rates"][i].tolist())
        signal = a["signal"][bounds[i]:bounds[i + 1]]
        session = f"s{int(a['subjects'][i]):02d}_a{meta['action']:02d}_r{meta['repetition']:02d}"
        recs.append(Recording(signal, np.full(len(signal), meta["action"] - 1, dtype=np.int64),
                              int(a["subjects"][i]), session, meta))
    return recs


@DATASETS.register(
    "berkeley-mhad",
    description="Berkeley MHAD accelerometers (continuous trials, 6 x 3-axis at wrists, hips, "
    "ankles, aligned to 30 Hz): 12 subjects, 11 actions, test subjects 8-12",
    kind="wearable", continuous=True, subjects=12, classes=11,
)
def load_berkeley_mhad(data_dir: str | os.PathLike[str] | None = None, rate: float = RATE,
                       trial_length: int | None = None, use_cache: bool = True
                       ) -> RecordingDataset:
    """Load Berkeley MHAD's accelerometers as 658 trials of 18 channels on a common time grid.

    Args:
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
            The dataset is distributed on request only, so there is no automatic download.
        rate: rate in Hz of the grid every trial's six sensors are interpolated onto.
        trial_length: classify whole trials instead of windows: every trial is stretched or
            shrunk (linear interpolation in time) to this many samples and becomes exactly one
            window. Trials last 1-15 s, so the time axis is warped by the trial's duration;
            composite actions (sit down then stand up) stay whole instead of being cut into
            pieces that look like their halves.

    Returns:
        a :class:`RecordingDataset` (one recording per trial, every sample labelled with
        the trial's action) with windows of 1.5 s every 0.5 s and test subjects 8-12.

    Example:
        >>> ds = load_berkeley_mhad("/data")            # doctest: +SKIP
        >>> len(ds.recordings), ds.recordings[0].signal.shape[1]   # doctest: +SKIP
        (658, 18)
    """
    if not (isinstance(rate, (int, float)) and 1.0 <= rate <= 1000.0):
        raise ConfigError(f"berkeley-mhad: rate={rate!r}, expected a grid rate in Hz (1..1000)")
    candidates = [ARCHIVE, "BerkeleyMHAD_Accelerometer", "Accelerometer"]
    location = configured_data_dir(data_dir)
    if location is None and not any((cache_dir() / "berkeley-mhad" / c).exists()
                                    for c in candidates):
        raise DatasetNotFoundError(
            f"berkeley-mhad is distributed on request ({HOME_URL}); point --data-dir or "
            f"HARKIT_DATA_DIR at a folder holding {ARCHIVE}")
    src = locate("berkeley-mhad", candidates, HOME_URL, data_dir)
    if src.name == "Accelerometer":
        src = src.parent
    rate = float(rate)
    window = max(1, round(WINDOW * rate / RATE))
    hop = max(1, round(HOP * rate / RATE))
    recs = cached_parse(f"berkeley-mhad-{rate:g}hz", CACHE_VERSION, src,
                        partial(parse_archive, rate=rate), _save, _load_cached, use_cache)
    if trial_length is not None:
        if not (isinstance(trial_length, int) and trial_length >= 8):
            raise ConfigError(f"berkeley-mhad: trial_length={trial_length!r}, expected an "
                              "integer number of samples >= 8")
        recs = [_stretch(r, trial_length) for r in recs]
        window = hop = trial_length
    where = ", ".join(f"{h} {loc}" for h, loc in SENSOR_LOCATIONS.items())
    return RecordingDataset(
        "berkeley-mhad", list(CHANNELS), list(CLASSES), rate, recs, window=window, hop=hop,
        test_subjects=list(TEST_SUBJECTS), units=dict(UNITS),
        description=f"Berkeley MHAD accelerometers ({where}), aligned to {rate:g} Hz",
    )


def _stretch(rec: Recording, length: int) -> Recording:
    """The trial linearly interpolated to ``length`` samples over its whole duration."""
    n = len(rec)
    sig = to_length(rec.signal.astype(np.float32), length, "resample")[0]
    return Recording(sig, np.full(length, rec.labels[0], dtype=np.int64), rec.subject,
                     rec.session, {**rec.meta, "duration_samples": n})
