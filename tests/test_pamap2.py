"""The pamap2 source: .dat sessions in the official PAMAP2_Dataset layout."""

from __future__ import annotations

import functools
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.recording import UNLABELED, RecordingDataset
from harkit.data.sources.pamap2 import parse_archive
from harkit.errors import ConfigError, DataFormatError

N = 900  # 9 s at 100 Hz per session
PROTOCOL = ["lying", "sitting", "standing", "walking", "running", "cycling", "Nordic walking",
            "ascending stairs", "descending stairs", "vacuum cleaning", "ironing", "rope jumping"]


def _session(subject: int, optional: bool, rng: np.random.Generator) -> np.ndarray:
    """(N, 54): transient 0 | lying (1) | 0 | walking (4) | 0, or for an optional session
    watching TV (9) | folding laundry (18). HR every 11th line, NaN in between."""
    t = np.zeros((N, 54))
    t[:, 0] = 5.0 + np.arange(N) / 100.0
    if optional:
        t[:450, 1], t[450:, 1] = 9, 18
    else:
        t[100:400, 1], t[450:800, 1] = 1, 4
    t[:, 2] = np.nan
    t[5::11, 2] = 80 + subject % 10 + np.arange(len(t[5::11, 2]))  # first reading on line 6
    for k in range(3):
        b = 3 + 17 * k
        t[:, b] = 30 + k + rng.normal(0, 0.1, N)  # temperature
        t[:, b + 1 : b + 4] = rng.normal(0, 1, (N, 3)) + np.array([9.8, 0, 0])  # acc ±16 g
        t[:, b + 4 : b + 7] = t[:, b + 1 : b + 4] + rng.normal(0, 0.05, (N, 3))  # acc ±6 g
        t[:, b + 7 : b + 10] = rng.normal(0, 0.5, (N, 3))  # gyro
        t[:, b + 10 : b + 13] = rng.normal(0, 20, (N, 3))  # magnetometer
        t[:, b + 13 : b + 17] = np.nan  # orientation: invalid
    t[300:303, 3:20] = np.nan  # the hand IMU drops 3 samples
    return t


def _format(t: np.ndarray) -> str:
    def num(v: float) -> str:
        return "NaN" if np.isnan(v) else f"{v:.6g}"

    return "".join(f"{row[0]:.2f} {int(row[1])} " + " ".join(num(v) for v in row[2:]) + "\n"
                   for row in t)


@functools.lru_cache(maxsize=1)
def _fixture_files() -> dict[str, str]:
    """The fixture's files (generated once per test session; do not mutate)."""
    rng = np.random.default_rng(0)
    files = {"readme.pdf": "fixture\n", "DataCollectionProtocol.pdf": "fixture\n"}
    for s in range(101, 110):
        t = _session(s, False, rng)
        if s == 109:
            t[450:, 0] += 30.0
        files[f"Protocol/subject{s}.dat"] = _format(t)
        if s in (101, 105, 106, 108, 109):
            files[f"Optional/subject{s}.dat"] = _format(_session(s, True, rng))
    return files


def write_pamap2_fixture(root: Path, zipped: bool = True) -> Path:
    """A tiny copy in the official layout: Protocol/subject101-109.dat, Optional/ for 101,
    105, 106, 108, 109. Subject 109's protocol session pauses for 30 s after line 450."""
    files = _fixture_files()
    root.mkdir(parents=True, exist_ok=True)
    if zipped:
        path = root / "PAMAP2_Dataset.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, text in files.items():
                zf.writestr(f"PAMAP2_Dataset/{rel}", text)
        return path
    for rel, text in files.items():
        p = root / "PAMAP2_Dataset" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "PAMAP2_Dataset"


@pytest.fixture(scope="module")
def pamap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pamap2-data")
    write_pamap2_fixture(d / "pamap2")
    return d


def _sessions(ds: RecordingDataset) -> dict:
    return {r.session: r for r in ds.recordings}


@pytest.mark.parametrize("zipped", [True, False])
def test_channels_labels_and_subjects(tmp_path: Path, zipped: bool) -> None:
    write_pamap2_fixture(tmp_path / "pamap2", zipped)
    ds = load_dataset("pamap2", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    assert ds.sampling_rate == 100.0 and (ds.window, ds.hop) == (512, 256)
    assert ds.classes == PROTOCOL and len(ds.channels) == 27
    assert ds.channels[:3] == ["hand_acc_x", "hand_acc_y", "hand_acc_z"]
    assert ds.channels[-1] == "ankle_mag_z" and ds.units["chest_gyro_x"] == "rad/s"
    assert ds.subject_ids() == list(range(101, 110)) and ds.test_subjects == [106]
    r = _sessions(ds)["subject101"]
    assert r.signal.shape == (N, 27)
    assert (r.labels[:100] == UNLABELED).all() and (r.labels[100:400] == 0).all()
    assert (r.labels[400:450] == UNLABELED).all() and (r.labels[450:800] == 3).all()
    # the file's ±16 g accelerometer of the chest is columns 22-24
    assert np.isclose(r.signal[0, 9], 9.8, atol=5) and abs(r.signal[:, 9].mean() - 9.8) < 0.2


def test_gaps_heart_rate_and_pauses(pamap_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with zipfile.ZipFile(pamap_dir / "pamap2" / "PAMAP2_Dataset.zip") as zf:
        text = zf.read("PAMAP2_Dataset/Protocol/subject102.dat").decode()
    raw = np.array([[float(v) for v in ln.split()] for ln in text.splitlines()])
    ds = load_dataset("pamap2", data_dir=pamap_dir, heart_rate=True)
    assert isinstance(ds, RecordingDataset)
    assert ds.channels[0] == "heart_rate" and ds.units["heart_rate"] == "bpm"
    r = _sessions(ds)["subject102"]
    hr = r.signal[:, 0]
    assert (hr[:6] == raw[5, 2]).all()  # before the first reading: the first reading
    assert (hr[5:16] == raw[5, 2]).all() and hr[16] == raw[16, 2]  # carried forward
    acc = r.signal[:, 1]  # hand_acc_x: 3 dropped samples, linearly interpolated
    assert np.allclose(acc[300:303], raw[299, 4] + (raw[303, 4] - raw[299, 4]) * np.arange(1, 4) / 4,
                       atol=1e-4)
    assert np.isfinite(r.signal).all()
    # subject 109 pauses for 30 s: two recordings
    parts = [s for s in _sessions(ds) if s.startswith("subject109")]
    assert parts == ["subject109", "subject109_part2"]
    assert len(_sessions(ds)["subject109"]) == 450 and "no value" not in caplog.text


def test_null_class_all_activities_and_optional(pamap_dir: Path) -> None:
    ds = load_dataset("pamap2", data_dir=pamap_dir, activities="all", transient="null",
                      optional=True)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.classes) == 19 and ds.classes[0] == "NULL"
    opt = _sessions(ds)["subject105_optional"]
    assert ds.classes[opt.labels[0]] == "watching TV" and ds.classes[opt.labels[-1]] == "folding laundry"
    r = _sessions(ds)["subject101"]
    assert (r.labels[:100] == 0).all() and ds.classes[r.labels[200]] == "lying"
    assert len([s for s in _sessions(ds) if s.endswith("_optional")]) == 5
    with pytest.raises(ConfigError, match="transient="):
        load_dataset("pamap2", data_dir=pamap_dir, transient="drop")


def test_resampled_windows_after_subject_split(pamap_dir: Path) -> None:
    ds = load_dataset("pamap2", data_dir=pamap_dir, sampling_rate=100 / 3)
    assert isinstance(ds, RecordingDataset)
    assert abs(ds.sampling_rate - 33.333) < 0.01 and (ds.window, ds.hop) == (171, 85)
    r = _sessions(ds)["subject101"]
    assert len(r) == 300 and r.meta["resampled_from_hz"] == 100.0
    assert (r.labels[40:130] == 0).all() and (r.labels[155:265] == 3).all()
    w = ds.to_windows(window=60, hop=30)
    assert w.splits["test"].subject_ids() == [106] and 106 not in w.splits["train"].subject_ids()
    assert w.splits["train"].X.shape[1:] == (60, 27)
    assert set(np.unique(w.splits["train"].y).tolist()) == {0, 3}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f[:53], "expected 54 numbers, found 53"),
    (lambda f: [f[0], "8", *f[2:]], "activityID 8 is not one of the readme's IDs"),
    (lambda f: [f[0], "NaN", *f[2:]], "activityID (column 2) is NaN"),
    (lambda f: [*f[:10], "abc", *f[11:]], "value 11 is 'abc'"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, edit, message: str) -> None:
    root = write_pamap2_fixture(tmp_path / "pamap2", zipped=False)
    p = root / "Protocol" / "subject104.dat"
    lines = p.read_text().splitlines()
    lines[41] = " ".join(edit(lines[41].split()))
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as e:
        parse_archive(root)
    assert "subject104.dat, line 42" in str(e.value) and message in str(e.value)


def test_dead_channel_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_pamap2_fixture(tmp_path / "pamap2", zipped=False)
    p = root / "Protocol" / "subject107.dat"
    rows = [ln.split() for ln in p.read_text().splitlines()]
    for f in rows:
        f[2] = "NaN"  # no heart-rate reading at all
    p.write_text("".join(" ".join(f) + "\n" for f in rows))
    with caplog.at_level(logging.WARNING, logger="harkit"):
        ds = load_dataset("pamap2", data_dir=tmp_path, heart_rate=True)
    assert isinstance(ds, RecordingDataset)
    assert (_sessions(ds)["subject107"].signal[:, 0] == 0).all()
    assert "subject107" in caplog.text and "heart_rate" in caplog.text


def test_real_pamap2(real_data_dir: Path) -> None:
    if not (real_data_dir / "pamap2").exists():
        pytest.skip("no pamap2 copy in the real-data directory")
    ds = load_dataset("pamap2", data_dir=real_data_dir)
    assert isinstance(ds, RecordingDataset)
    assert ds.subject_ids() == list(range(101, 110)) and len(ds.channels) == 27
    assert all(np.isfinite(r.signal).all() for r in ds.recordings)
    labels = np.concatenate([r.labels for r in ds.recordings])
    assert sorted(np.unique(labels[labels >= 0]).tolist()) == list(range(12))
