"""The csv source: a user's own folder of recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harkit.cli import main
from harkit.data import load_dataset
from harkit.data.recording import UNLABELED, RecordingDataset
from harkit.errors import ConfigError, DataFormatError

ACTIVITIES = ["walking", "sitting", "running"]


def write_logs(root: Path, n_subjects: int = 5, rate: float = 50.0, seconds: float = 24.0,
               jitter: float = 0.0, seed: int = 0) -> Path:
    """Per-subject CSV files: 3 activities of 8 s each, with 1 s unlabelled between them."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    for s in range(1, n_subjects + 1):
        t = np.arange(n) / rate + (rng.uniform(-jitter, jitter, n) / rate if jitter else 0.0)
        seg = (np.arange(n) * 3) // n  # 0, 1, 2 in thirds
        freq = np.array([2.0, 0.0, 4.0])[seg]
        x = np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(n)
        y = np.array([0.0, 1.0, 0.0])[seg] + 0.05 * rng.standard_normal(n)
        z = 0.3 * seg + 0.05 * rng.standard_normal(n)
        labels = np.array(ACTIVITIES, dtype=object)[seg]
        labels[(np.arange(n) % (n // 3)) < int(rate)] = ""  # first second of each: unlabelled
        lines = ["timestamp,acc_x,acc_y,acc_z,label"]
        lines += [f"{a:.4f},{b:.5f},{c:.5f},{d:.5f},{lab}"
                  for a, b, c, d, lab in zip(t, x, y, z, labels, strict=True)]
        (root / f"subject{s:02d}.csv").write_text("\n".join(lines) + "\n")
    return root


def test_folder_of_csv_files(tmp_path: Path) -> None:
    ds = load_dataset("csv", data_dir=write_logs(tmp_path / "logs"))
    assert isinstance(ds, RecordingDataset)
    assert ds.channels == ["acc_x", "acc_y", "acc_z"] and ds.classes == sorted(ACTIVITIES)
    assert ds.sampling_rate == pytest.approx(50.0) and ds.subject_ids() == [1, 2, 3, 4, 5]
    assert ds.window == 100 and ds.hop == 50  # 2 s, 50% overlap
    assert ds.test_subjects and len(ds.test_subjects) == 1  # 20% of 5 subjects
    r = ds.recordings[0]
    assert r.session == "subject01" and len(r) == 1200
    assert (r.labels[:50] == UNLABELED).all() and (r.labels[50:400] == 2).all()  # walking
    w = ds.to_windows()
    assert not set(w.splits["train"].subject_ids()) & set(w.splits["test"].subject_ids())


def test_irregular_timestamps_are_regridded(tmp_path: Path) -> None:
    ds = load_dataset("csv", data_dir=write_logs(tmp_path / "logs", n_subjects=2, jitter=0.3))
    assert isinstance(ds, RecordingDataset)
    r = ds.recordings[0]
    assert ds.sampling_rate == pytest.approx(50.0, rel=0.01)
    # the 2 Hz walking tone survives interpolation onto the uniform grid
    t = np.arange(len(r)) / ds.sampling_rate
    walk = slice(60, 390)
    ref = np.sin(2 * np.pi * 2.0 * (t[walk] + r.meta.get("t0", 0.0)))
    assert np.corrcoef(r.signal[walk, 0], ref)[0, 1] > 0.95


def test_subject_column_text_ids_gaps_and_resampling(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    rows = ["time,user,gx,gy,activity"]
    for user, offset in (("alice", 0.0), ("bob", 100.0)):
        for i in range(400):
            t = offset + i / 100.0 + (5.0 if i >= 200 else 0.0)  # a 5 s hole in the middle
            rows.append(f"{t:.2f},{user},{np.sin(i / 10):.4f},{i % 7},{'stand' if i < 300 else 'sit'}")
    (root / "all.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset("csv", data_dir=root, subject_column="user", label_column="activity",
                      sampling_rate=50.0, test_subjects=[2])
    assert isinstance(ds, RecordingDataset)
    assert ds.subject_ids() == [1, 2] and ds.classes == ["sit", "stand"]
    assert [r.session for r in ds.recordings] == ["all_part1_seg1", "all_part1_seg2",
                                                  "all_part2_seg1", "all_part2_seg2"]
    assert ds.sampling_rate == 50.0 and len(ds.recordings[0]) == 100  # 2 s at 50 Hz
    assert ds.channels == ["gx", "gy"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("\n0.1000,", "\n0.1000,abc", 1), r"subject01\.csv, line 7: column "
                                                          r"'acc_x': 'abc\S*' is not a number"),
    (lambda s: s.replace("timestamp,acc_x,acc_y,acc_z,label", "timestamp,acc_x,acc_y,acc_z,act"),
     "no label column 'label'"),
    (lambda s: s.replace("\n0.1000,", "\n0.0000,", 1), "line 7: column 'timestamp': time 0.0 "
                                                       "does not increase"),
])
def test_errors_name_file_line_and_column(tmp_path: Path, edit: object, message: str) -> None:
    root = write_logs(tmp_path / "logs", n_subjects=2)
    p = root / "subject01.csv"
    p.write_text(edit(p.read_text()))  # type: ignore[operator]
    with pytest.raises(DataFormatError, match=message):
        load_dataset("csv", data_dir=root)


def test_configuration_errors(tmp_path: Path) -> None:
    root = write_logs(tmp_path / "logs", n_subjects=2)
    (root / "morning.csv").write_text((root / "subject01.csv").read_text())
    with pytest.raises(DataFormatError, match=r"morning\.csv: no subject"):
        load_dataset("csv", data_dir=root)
    (root / "morning.csv").unlink()
    with pytest.raises(ConfigError, match="give the folder with --data-dir"):
        load_dataset("csv")
    with pytest.raises(ConfigError, match=r"labels \['walking'\] occur"):
        load_dataset("csv", data_dir=root, classes=["sitting", "running"])


def test_files_at_different_rates_need_a_target_rate(tmp_path: Path) -> None:
    a = write_logs(tmp_path / "mixed", n_subjects=3)
    b = write_logs(tmp_path / "slow", n_subjects=1, rate=25.0)
    (a / "subject09.csv").write_text((b / "subject01.csv").read_text())
    with pytest.raises(DataFormatError, match=r"subject09\.csv: sampled at 25 Hz while most "
                                              "files are at 50 Hz"):
        load_dataset("csv", data_dir=a)
    ds = load_dataset("csv", data_dir=a, sampling_rate=50.0)
    assert isinstance(ds, RecordingDataset)
    assert [len(r) for r in ds.recordings] == [1200, 1200, 1200, 1200]  # 24 s each at 50 Hz


def test_without_time_column_the_rate_is_required(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    for s in (1, 2):
        (root / f"user_{s}.csv").write_text("ax,label\n" + "".join(
            f"{i % 5},{'a' if i < 50 else 'b'}\n" for i in range(100)))
    with pytest.raises(ConfigError, match=r"set data\.options\.sampling_rate"):
        load_dataset("csv", data_dir=root)
    ds = load_dataset("csv", data_dir=root, sampling_rate=20)
    assert isinstance(ds, RecordingDataset)
    assert ds.sampling_rate == 20.0 and ds.subject_ids() == [1, 2] and ds.window == 40


def test_parquet_files(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    src = write_logs(tmp_path / "logs", n_subjects=2)
    out = tmp_path / "pq"
    out.mkdir()
    for p in src.glob("*.csv"):
        pd.read_csv(p, keep_default_na=False).to_parquet(out / (p.stem + ".parquet"))
    a, b = load_dataset("csv", data_dir=src), load_dataset("csv", data_dir=out)
    assert isinstance(a, RecordingDataset) and isinstance(b, RecordingDataset)
    np.testing.assert_allclose(a.recordings[1].signal, b.recordings[1].signal)
    np.testing.assert_array_equal(a.recordings[1].labels, b.recordings[1].labels)


def test_train_and_cv_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = write_logs(tmp_path / "my_logs", n_subjects=4)
    common = ["--data-dir", str(logs), "--run-root", str(tmp_path / "runs"), "--set",
              "model.width=8", "--set", "model.hidden=16", "--set", "data.n_val_subjects=1",
              "--set", "train.num_threads=1", "--no-progress"]
    assert main(["train", "--dataset", "csv", "--epochs", "6", "--name", "mine", *common]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and (tmp_path / "runs" / "mine" / "metrics.json").exists()
    assert main(["cv", "--dataset", "csv", "--epochs", "2", "--set", "train.refit=false",
                 "--name", "mine-cv", *common]) == 0
    assert "loso: 4 folds" in capsys.readouterr().out
