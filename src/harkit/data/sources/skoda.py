"""Skoda Mini Checkpoint (Zappi et al., EWSN 2008; Stiefmeier et al. 2008): one worker at a car
quality checkpoint, 10 manipulative gestures recorded by 3D accelerometers on both arms.

On-disk format (``skodaminicp_2015_08.zip`` from har-dataset.org, zipped or unpacked; only
these files are read)::

    SkodaMiniCP_2015_08/right_classall_clean.mat    MATLAB matrix ``right_classall_clean``
    SkodaMiniCP_2015_08/left_classall_clean.mat     MATLAB matrix ``left_classall_clean``

Each matrix has one row per sample (about 98 Hz) and 71 columns (1-based): column 1 the class
label, then for each of the arm's 10 sensors ``s = 0..9`` 7 columns: ``2+7s`` the sensor id,
``3+7s .. 5+7s`` the calibrated x, y, z acceleration, ``6+7s .. 8+7s`` the raw x, y, z
acceleration. Label codes: 32 = null class, 48 write on notepad, 49 open hood, 50 close hood,
51 check gaps on the front door, 52 open left front door, 53 close left front door, 54 close
both left door, 55 check trunk gaps, 56 open and close trunk, 57 check steering wheel (the
readme's ``label value`` list; the gesture codes are the ASCII digits '0'-'9' and 32 is ' ').

Channels: the calibrated x, y, z of the arm's 10 accelerometers (30 channels), named by their
position in the file (``right01_x`` ... ``right10_z``); the sensor ids the file carries are kept
in each recording's meta. Labels: 11 classes with ``NULL`` (code 32) as class 0.

Rate: the signal is resampled from 98 Hz to ``sampling_rate`` (30 Hz by default, as in Ordóñez
& Roggen 2016, Sensors 16(1):115, to match OPPORTUNITY) with the anti-aliased
:func:`~harkit.data.resample.resample_recording`; ``sampling_rate=None`` keeps 98 Hz.

Split: Skoda has a single subject, so the customary protocol (Ordóñez & Roggen 2016: 80 % of
the data for training, 10 % for validation, 10 % for testing) splits in time. harkit cuts the
one recording into three contiguous recordings, first 80 % ``train``, next 10 % ``val``, last
10 % ``test`` (``Recording.split``), before resampling, so no filter or window crosses a cut.
``split=None`` keeps one recording without a split. Customary window: 24 samples (0.8 s at
30 Hz), hop 12; at another rate the same durations.

Sources: the dataset readme on har-dataset.org (column layout, label codes, 98 Hz); Zappi et
al. 2008; Ordóñez & Roggen 2016 for the right arm, 30 Hz and the 80/10/10 protocol.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from harkit.data.archive import Archive
from harkit.data.recording import Recording, RecordingDataset
from harkit.data.resample import resample_recording
from harkit.data.sources import DATASETS
from harkit.data.store import locate
from harkit.data.textio import FLOAT32_MAX
from harkit.errors import ConfigError, DataFormatError

OFFICIAL_URL = "http://har-dataset.org/lib/exe/fetch.php?media=wiki:dataset:skodaminicp:skodaminicp_2015_08.zip"
NATIVE_RATE = 98.0
N_SENSORS = 10
N_COLUMNS = 1 + 7 * N_SENSORS
LABEL_CODES = (32, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57)
CLASSES = ["NULL", "write on notepad", "open hood", "close hood", "check gaps on the front door",
           "open left front door", "close left front door", "close both left door",
           "check trunk gaps", "open and close trunk", "check steering wheel"]
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
WINDOW_SECONDS, HOP_SECONDS = 0.8, 0.4  # 24 / 12 samples at 30 Hz


def channels(arm: str) -> list[str]:
    """Channel names of one arm: ``<arm><position>_<axis>`` for the 10 sensors in file order.

    Example:
        >>> channels("left")[:4]
        ['left01_x', 'left01_y', 'left01_z', 'left02_x']
    """
    return [f"{arm}{k + 1:02d}_{a}" for k in range(N_SENSORS) for a in "xyz"]


def read_matrix(path: Path, arm: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read ``<arm>_classall_clean.mat``: calibrated acceleration ``(time, 30)`` float32, class
    indices ``(time,)`` and the 10 sensor ids, after checking the layout."""
    from scipy.io import loadmat

    arc = Archive(path, "right_classall_clean.mat", root="SkodaMiniCP_2015_08")
    rel = f"{arm}_classall_clean.mat"
    name = arc.name(rel)
    var = f"{arm}_classall_clean"
    try:
        mat = loadmat(io.BytesIO(arc.read(rel)))
    except DataFormatError:
        raise
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError, ... on bad input
        raise DataFormatError(name, f"not a readable MATLAB .mat file ({type(e).__name__}: {e})"
                              ) from None
    if var not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(name, f"has no variable {var!r}; variables: {found}")
    m = np.asarray(mat[var])
    if m.ndim != 2 or m.shape[1] != N_COLUMNS or not np.issubdtype(m.dtype, np.number):
        raise DataFormatError(name, f"{var} is {m.dtype} {m.shape}, expected a numeric "
                                    f"(samples, {N_COLUMNS}) matrix")
    if len(m) == 0:
        raise DataFormatError(name, f"{var} has no rows")
    with np.errstate(invalid="ignore"):  # a float64 beyond float32's range would become inf
        bad = ~np.isfinite(m) | (np.abs(m) > FLOAT32_MAX)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataFormatError(name, f"{var} row {r + 1}, column {c + 1} is {m[r, c]}, expected a "
                                    "finite number within the 32-bit float range")
    label = m[:, 0]
    unknown = ~np.isin(label, LABEL_CODES)
    if unknown.any():
        r = int(np.flatnonzero(unknown)[0])
        raise DataFormatError(name, f"{var} row {r + 1}: label {label[r]:g} is not one of the "
                                    f"label codes {list(LABEL_CODES)}")
    ids = []
    for s in range(N_SENSORS):
        col = m[:, 1 + 7 * s]
        changed = np.flatnonzero(col != col[0])
        if len(changed):
            r = int(changed[0])
            raise DataFormatError(name, f"{var} row {r + 1}: sensor id column {2 + 7 * s} changes "
                                        f"from {col[0]:g} to {col[r]:g}; expected one sensor per "
                                        "7-column block")
        ids.append(int(col[0]))
    cal = [2 + 7 * s + a for s in range(N_SENSORS) for a in range(3)]  # 0-based calibrated xyz
    classes = np.searchsorted(np.array(LABEL_CODES), label).astype(np.int64)
    return m[:, cal].astype(np.float32), classes, ids


def time_split(rec: Recording, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
               ) -> list[Recording]:
    """Cut ``rec`` into contiguous train / val / test recordings of the given fractions.

    Example:
        >>> r = Recording(np.zeros((100, 1), np.float32), np.zeros(100, np.int64), 1, "s")
        >>> [(p.session, len(p), p.split) for p in time_split(r)]
        [('s_train', 80, 'train'), ('s_val', 10, 'val'), ('s_test', 10, 'test')]
    """
    n = len(rec)
    cuts = np.round(np.cumsum([0.0, *fractions]) * n).astype(int)
    parts = []
    for name, lo, hi in zip(("train", "val", "test"), cuts[:-1], cuts[1:], strict=True):
        parts.append(Recording(rec.signal[lo:hi], rec.labels[lo:hi], rec.subject,
                               f"{rec.session}_{name}", {**rec.meta, "first_sample": int(lo)}, name))
    return parts


@DATASETS.register(
    "skoda",
    description="Skoda Mini Checkpoint (continuous, 10 accelerometers on one arm, 98 Hz resampled "
    "to 30 Hz): 10 car-checkpoint gestures + NULL, 1 subject, 80/10/10 split in time",
    kind="wearable", continuous=True, subjects=1, classes=11,
)
def load_skoda(data_dir: str | os.PathLike[str] | None = None, arm: str = "right",
               sampling_rate: float | None = 30.0, split: str | None = "time") -> RecordingDataset:
    """Load one arm of Skoda Mini Checkpoint as continuous recordings.

    Args:
        data_dir: local mirror directory or URL (else ``HARKIT_DATA_DIR``, else the cache).
        arm: ``right`` (the customary choice) or ``left``.
        sampling_rate: target rate in Hz (anti-aliased resampling), None for the native 98 Hz.
        split: ``time`` (contiguous 80 / 10 / 10 % train / val / test) or None (one recording).

    Returns:
        a :class:`RecordingDataset` with 30 channels and 11 classes (``NULL`` first).
    """
    if arm not in ("right", "left"):
        raise ConfigError(f"skoda: arm={arm!r}, expected 'right' or 'left'")
    if split not in ("time", None):
        raise ConfigError(f"skoda: split={split!r}, expected 'time' or None")
    if sampling_rate is not None and not float(sampling_rate) > 0:
        raise ConfigError(f"skoda: sampling_rate={sampling_rate!r}, expected a positive rate in "
                          "Hz or None")
    src = locate("skoda", ["skodaminicp_2015_08.zip", "SkodaMiniCP_2015_08"], OFFICIAL_URL, data_dir)
    signal, labels, ids = read_matrix(src, arm)
    whole = Recording(signal, labels, 1, arm, {"arm": arm, "sensor_ids": ids})
    recs = time_split(whole) if split else [whole]
    rate = NATIVE_RATE if sampling_rate is None else float(sampling_rate)
    if rate != NATIVE_RATE:
        recs = [resample_recording(r, NATIVE_RATE, rate) for r in recs]
    return RecordingDataset(
        "skoda", channels(arm), list(CLASSES), rate, recs,
        window=max(1, round(WINDOW_SECONDS * rate)), hop=max(1, round(HOP_SECONDS * rate)),
        test_subjects=None, units={c: "calibrated acceleration" for c in channels(arm)},
        description=f"Skoda Mini Checkpoint, {arm} arm, {rate:g} Hz",
    )
