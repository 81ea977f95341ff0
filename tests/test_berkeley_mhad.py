"""The berkeley-mhad source: per-sensor timestamps aligned onto one grid, in the release layout."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.recording import RecordingDataset
from harkit.data.sources.berkeley_mhad import (
    CHANNELS,
    CLASSES,
    align_streams,
    clean_times,
    parse_archive,
)
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

T_BASE = 1309539264.0
# Per sensor: first-sample offset (s) and sample rate (Hz) -- unequal on purpose, as in the
# release, where the host stamps each sensor's samples on arrival.
OFFSETS = [0.0, 0.05, 0.11, 0.02, 0.30, 0.07]
RATES = [31.0, 29.0, 31.03, 45.0, 30.0, 31.5]
DURATION = 3.0


def truth(h: int, action: int, t: np.ndarray) -> np.ndarray:
    """The known signal of sensor ``h`` (1..6) at ``t`` seconds into the trial: ``(n, 3)`` g."""
    return np.stack([0.5 * np.sin(2 * np.pi * 0.7 * t + h), 0.3 * np.cos(2 * np.pi * 0.4 * t),
                     np.full_like(t, -1.0 + 0.1 * action + 0.01 * h)], axis=1)


def sensor_times(h: int, trial: int) -> np.ndarray:
    """Seconds into the trial of sensor ``h``'s samples (with arrival jitter and a burst)."""
    rng = np.random.default_rng(100 * trial + h)
    n = int(DURATION * RATES[h - 1])
    t = OFFSETS[h - 1] + np.arange(n) / RATES[h - 1]
    t[1:-1] += rng.uniform(-0.004, 0.004, n - 2)  # jitter, smaller than half a sample step
    if h == 3:  # a burst of buffered samples arriving 10 us apart, as some h03 files show
        t[20:30] = t[20] + np.arange(10) * 1e-5
    return t


def sensor_file(h: int, action: int, trial: int, trailing_space: bool = False) -> str:
    t = sensor_times(h, trial)
    v = truth(h, action, t)
    end = " \n" if trailing_space else "\n"
    return "".join(f"{a:.6f} {b:.6f} {c:.6f} {T_BASE + 100 * trial + s:.6f}{end}"
                   for (a, b, c), s in zip(v, t, strict=True))


def write_mhad_fixture(root: Path, zipped: bool = True, subjects: tuple[int, ...] = (1, 2, 8, 9),
                       actions: tuple[int, ...] = (1, 6), reps: tuple[int, ...] = (1, 2)) -> Path:
    """A small copy in the release layout (folders, names, six-decimal numbers; h03 of
    subject 2 ends its lines with a space, as h03_s10 and h04_s06 do in the release)."""
    files: dict[str, str] = {}
    trial = 0
    for s in subjects:
        for a in actions:
            for r in reps:
                name = f"s{s:02d}_a{a:02d}_r{r:02d}"
                for h in range(1, 7):
                    files[f"Accelerometer/Shimmer{h:02d}/acc_h{h:02d}_{name}.txt"] = sensor_file(
                        h, a, trial, trailing_space=(h == 3 and s == 2))
                frames = T_BASE + 100 * trial + np.arange(0, DURATION, 1 / 22)
                files[f"Time_stamps/time_stamps_img_{name}.txt"] = "".join(
                    f"{i} {f:.6f}\n" for i, f in enumerate(frames))
                trial += 1
    root.mkdir(parents=True, exist_ok=True)
    if zipped:
        path = root / "BerkeleyMHAD_Accelerometer.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for d in ["Accelerometer/", *(f"Accelerometer/Shimmer{h:02d}/" for h in range(1, 7)),
                      "Time_stamps/"]:
                zf.writestr(d, "")
            for rel, text in files.items():
                zf.writestr(rel, text)
        return path
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_clean_times_clamps_and_merges() -> None:
    t = np.array([0.0, 0.1, 0.1, 0.05, 0.3])
    v = np.array([[0.0], [1.0], [3.0], [5.0], [7.0]])
    tt, vv, back, merged = clean_times(t, v)
    assert tt.tolist() == [0.0, 0.1, 0.3] and vv[:, 0].tolist() == [0.0, 3.0, 7.0]
    assert (back, merged) == (1, 2)
    assert np.all(np.diff(tt) > 0)


def test_align_streams_known_signal() -> None:
    f = lambda t: np.sin(2 * np.pi * 0.5 * t)[:, None]  # noqa: E731
    a_t = 0.2 + np.arange(200) / 31.0  # 31 Hz from 0.2 s
    b_t = np.sort(np.random.default_rng(0).uniform(0.0, 6.0, 250))  # irregular from ~0 s
    sig, t0 = align_streams([(a_t, 2 * f(a_t)), (b_t, f(b_t))], 30.0)
    assert t0 == pytest.approx(0.2)
    n = int(np.floor((min(a_t[-1], b_t[-1]) - 0.2) * 30 + 1e-6)) + 1
    assert sig.shape == (n, 2)
    grid = 0.2 + np.arange(n) / 30.0
    assert np.abs(sig[:, 0] - 2 * f(grid)[:, 0]).max() < 5e-3
    # linear interpolation's error bound, max gap^2 / 8 * max|f''|, for the irregular stream
    bound = float(np.diff(b_t).max()) ** 2 / 8 * (2 * np.pi * 0.5) ** 2
    assert np.abs(sig[:, 1] - f(grid)[:, 0]).max() <= bound
    with pytest.raises(ValueError, match="share"):
        align_streams([(np.array([0.0, 1.0]), np.ones((2, 1))),
                       (np.array([2.0, 3.0]), np.ones((2, 1)))], 30.0)


@pytest.mark.parametrize("zipped", [True, False])
def test_fixture_trials(tmp_path: Path, zipped: bool) -> None:
    write_mhad_fixture(tmp_path / "berkeley-mhad", zipped=zipped)
    ds = load_dataset("berkeley-mhad", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    assert ds.channels == CHANNELS and len(CHANNELS) == 18 and ds.classes == CLASSES
    assert ds.sampling_rate == 30.0 and (ds.window, ds.hop) == (45, 15)
    assert len(ds.recordings) == 16 and ds.subject_ids() == [1, 2, 8, 9]
    r = ds.recordings[2]
    assert r.session == "s01_a06_r01" and r.subject == 1
    assert r.meta["action"] == 6 and r.meta["repetition"] == 1
    assert (r.labels == 5).all() and r.signal.dtype == np.float32
    assert ds.test_subjects == [8, 9, 10, 11, 12]  # the usual protocol: subjects 1-7 train
    w = ds.to_windows(test_subjects=[8, 9])  # the fixture has only two of them
    assert w.splits["train"].subject_ids() == [1, 2] and w.splits["test"].subject_ids() == [8, 9]
    assert w.splits["train"].X.shape[1:] == (45, 18)


def test_alignment_onto_common_grid(tmp_path: Path) -> None:
    """Sensors with different offsets, rates, jitter and a burst: every channel equals its
    known signal at the common grid's times."""
    recs = parse_archive(write_mhad_fixture(tmp_path, subjects=(2,), actions=(6,), reps=(1,)))
    (r,) = recs
    starts = [OFFSETS[h] + 0.0 for h in range(6)]  # first samples carry no jitter
    ends = [sensor_times(h, 0)[-1] for h in range(1, 7)]
    assert r.meta["t0"] == pytest.approx(T_BASE + max(starts), abs=1e-6)
    n = int(np.floor((min(ends) - max(starts)) * 30 + 1e-6)) + 1
    assert r.signal.shape == (n, 18)
    grid = max(starts) + np.arange(n) / 30.0
    expected = np.concatenate([truth(h, 6, grid) for h in range(1, 7)], axis=1)
    # Linear interpolation is exact up to max gap^2 / 8 * max|f''| per channel (h03's burst
    # leaves a 0.3 s gap after it), plus the files' six-decimal rounding.
    curvature = np.array([0.5 * (2 * np.pi * 0.7) ** 2, 0.3 * (2 * np.pi * 0.4) ** 2, 0.0])
    gaps = np.array([np.diff(sensor_times(h, 0)).max() for h in range(1, 7)])
    bound = (np.repeat(gaps, 3) ** 2 / 8 * np.tile(curvature, 6)) + 1e-5
    assert (np.abs(r.signal - expected).max(axis=0) <= bound).all()
    assert np.abs(r.signal - expected)[:, :6].max() < 3e-3  # the wrists: no burst
    # The check is sensitive: a grid 0.1 s off (e.g. ignoring h05's 0.3 s late start) fails it.
    shifted = np.concatenate([truth(h, 6, grid - 0.1) for h in range(1, 7)], axis=1)
    assert np.abs(r.signal - shifted).max() > 0.1
    assert r.meta["start_offsets_s"][4] == pytest.approx(0.0, abs=1e-6)
    assert r.meta["start_offsets_s"][0] == pytest.approx(-0.30, abs=1e-6)
    assert r.meta["sensor_rates_hz"][3] == pytest.approx(45.0, rel=0.02)


def test_rate_option(tmp_path: Path) -> None:
    write_mhad_fixture(tmp_path / "berkeley-mhad", subjects=(1, 8), actions=(1,), reps=(1,))
    ds = load_dataset("berkeley-mhad", data_dir=tmp_path, rate=60.0)
    base = load_dataset("berkeley-mhad", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset) and isinstance(base, RecordingDataset)
    assert ds.sampling_rate == 60.0 and (ds.window, ds.hop) == (90, 30)
    assert abs(len(ds.recordings[0]) - 2 * len(base.recordings[0])) <= 2


def test_corrupt_samples_duplicates_and_backward_steps(tmp_path: Path) -> None:
    root = write_mhad_fixture(tmp_path, zipped=False, subjects=(1,), actions=(1,), reps=(1,))
    p = root / "Accelerometer/Shimmer02/acc_h02_s01_a01_r01.txt"
    lines = p.read_text().splitlines(keepends=True)
    ax, t = lines[10].split()[0], lines[10].split()[3]
    lines[10] = f"{ax} 26.498047 -2.000000 {t}\n"  # a bit error, as 16 real samples show
    t40 = lines[40].split()[3]
    lines[41] = " ".join([*lines[41].split()[:3], t40]) + "\n"  # an exact repeat
    back = f"{float(t40) - 0.001:.6f}"
    lines[51] = " ".join([*lines[51].split()[:3], back]) + "\n"  # a step backwards
    p.write_text("".join(lines))
    (r,) = parse_archive(root)
    assert r.meta["dropped_samples"] == 1
    assert r.meta["merged_samples"] == 2 and r.meta["clamped_timestamps"] == 1
    assert np.abs(r.signal[:, 3:6]).max() <= 2.0  # h02 channels: the corrupt row is gone


def test_trial_with_missing_sensor_is_skipped(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    root = write_mhad_fixture(tmp_path, zipped=False)
    (root / "Accelerometer/Shimmer04/acc_h04_s09_a06_r02.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="harkit"):
        recs = parse_archive(root)
    assert len(recs) == 15 and "s09_a06_r02" not in {r.session for r in recs}
    assert "s09_a06_r02 skipped: no file for accelerometer(s) h04" in caplog.text


@pytest.mark.parametrize(("bad", "message"), [
    ("0.1 x 0.3 1309539264.5", "value 2 is 'x'"),
    ("0.1 0.2 0.3", "expected 4 numbers, found 3 values"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    root = write_mhad_fixture(tmp_path, zipped=False, subjects=(1,), actions=(1,), reps=(1,))
    p = root / "Accelerometer/Shimmer03/acc_h03_s01_a01_r01.txt"
    lines = p.read_text().splitlines(keepends=True)
    lines[4] = bad + "\n"
    p.write_text("".join(lines))
    with pytest.raises(DataFormatError) as e:
        parse_archive(root)
    assert "acc_h03_s01_a01_r01.txt, line 5" in str(e.value) and message in str(e.value)


def test_malformed_line_in_zip(tmp_path: Path) -> None:
    path = write_mhad_fixture(tmp_path, subjects=(1,), actions=(1,), reps=(1,))
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    rel = "Accelerometer/Shimmer05/acc_h05_s01_a01_r01.txt"
    files[rel] = files[rel].replace(b"\n", b"\n0.1 0.2 nan 1309539264.9\n", 1)
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    with pytest.raises(DataFormatError, match=r"\.zip:Accelerometer/Shimmer05/acc_h05_s01_a01_"
                                              r"r01\.txt, line 2: value 3 is nan"):
        parse_archive(path)


def test_no_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="distributed on request"):
        load_dataset("berkeley-mhad")


@pytest.fixture(scope="module")
def real(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[RecordingDataset]:
    """The real release, parsed once into the session's private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harkit-cache"))
        ds = load_dataset("berkeley-mhad", data_dir=real_data_dir)
    assert isinstance(ds, RecordingDataset)
    yield ds


def test_real_counts(real: RecordingDataset) -> None:
    ds = real
    assert len(ds.recordings) == 658 and ds.subject_ids() == list(range(1, 13))
    assert ds.sampling_rate == 30.0 and len(ds.channels) == 18
    assert all(r.signal.shape[1] == 18 for r in ds.recordings)
    labels = {int(r.labels[0]) for r in ds.recordings}
    assert labels == set(range(11)) and len(ds.classes) == 11
    trials = {(r.subject, r.meta["action"], r.meta["repetition"]) for r in ds.recordings}
    every = {(s, a, k) for s in range(1, 13) for a in range(1, 12) for k in range(1, 6)}
    assert every - trials == {(2, 7, 5), (4, 8, 5)}  # missing from the release
    # What the module docstring reports about the real data.
    assert sum(r.meta["dropped_samples"] for r in ds.recordings) == 16
    offsets = np.array([r.meta["start_offsets_s"] for r in ds.recordings])
    assert 0.02 < float(np.median(-offsets.min(axis=1))) < 0.05
    rates = np.array([r.meta["sensor_rates_hz"] for r in ds.recordings])
    assert 30.5 < float(np.median(rates)) < 31.5
    assert min(len(r) for r in ds.recordings) >= 30  # every trial is at least 1 s


def test_real_windows_are_subject_disjoint(real: RecordingDataset) -> None:
    w = real.to_windows()
    train, test = w.splits["train"], w.splits["test"]
    assert train.subject_ids() == [1, 2, 3, 4, 5, 6, 7]
    assert test.subject_ids() == [8, 9, 10, 11, 12]
    assert train.X.shape[1:] == (45, 18) and len(train) > 4000 and len(test) > 3000
    assert sorted(np.unique(test.y).tolist()) == list(range(11))
    assert np.isfinite(train.X).all() and np.abs(train.X).max() <= 2.0


def test_whole_trials_as_one_window_each(tmp_path: Path) -> None:
    write_mhad_fixture(tmp_path / "berkeley-mhad")
    base = load_dataset("berkeley-mhad", data_dir=tmp_path)
    ds = load_dataset("berkeley-mhad", data_dir=tmp_path, trial_length=32)
    assert isinstance(ds, RecordingDataset) and isinstance(base, RecordingDataset)
    assert ds.window == ds.hop == 32 and len(ds.recordings) == len(base.recordings)
    for a, b in zip(base.recordings, ds.recordings, strict=True):
        assert b.signal.shape == (32, 18) and (b.labels == a.labels[0]).all()
        # first and last samples are the trial's own, the middle is interpolated in time
        np.testing.assert_allclose(b.signal[[0, -1]], a.signal[[0, -1]], rtol=1e-6)
    w = ds.to_windows(test_subjects=[8, 9])
    assert len(w.splits["train"]) + len(w.splits["test"]) == len(ds.recordings)
    with pytest.raises(ConfigError, match="trial_length"):
        load_dataset("berkeley-mhad", data_dir=tmp_path, trial_length=2)
