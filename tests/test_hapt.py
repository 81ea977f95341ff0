"""The hapt source: continuous recordings in the official RawData layout."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import harkit
from harkit.data import load_dataset
from harkit.data.recording import UNLABELED, RecordingDataset
from harkit.data.sources.hapt import parse_archive
from harkit.errors import ConfigError, DataFormatError

CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
           "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE",
           "LIE_TO_STAND"]


def write_hapt_fixture(root: Path, zipped: bool = True, n_users: int = 4) -> Path:
    """A tiny copy in the official layout: 2 experiments per user, 600 samples each."""
    rng = np.random.default_rng(0)
    files = {"activity_labels.txt": "".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES))}
    labels = []
    exp = 1
    for user in range(1, n_users + 1):
        for _ in range(2):
            n = 600
            acc = rng.standard_normal((n, 3)) * 0.1 + [1.0, 0.0, 0.0]
            gyro = rng.standard_normal((n, 3)) * 0.05
            name = f"exp{exp:02d}_user{user:02d}.txt"
            files[f"RawData/acc_{name}"] = "".join(" ".join(f"{v:.15g}" for v in r) + "\n"
                                                   for r in acc)
            files[f"RawData/gyro_{name}"] = "".join(" ".join(f"{v:.15g}" for v in r) + "\n"
                                                    for r in gyro)
            # activity 1 on 51..250, transition 7 on 251..300, activity 4 on 301..560
            labels += [f"{exp} {user} 1 51 250", f"{exp} {user} 7 251 300",
                       f"{exp} {user} 4 301 560"]
            exp += 1
    files["RawData/labels.txt"] = "\n".join(labels) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    if zipped:
        path = root / "HAPT Data Set.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, text in files.items():
                zf.writestr(rel, text)
        return path
    for rel, text in files.items():
        (root / "HAPT Data Set" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "HAPT Data Set" / rel).write_text(text)
    return root / "HAPT Data Set"


@pytest.mark.parametrize("zipped", [True, False])
def test_fixture_recordings_and_labels(tmp_path: Path, zipped: bool) -> None:
    write_hapt_fixture(tmp_path / "hapt", zipped=zipped)
    ds = load_dataset("hapt", data_dir=tmp_path, activities=12)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.recordings) == 8 and ds.subject_ids() == [1, 2, 3, 4]
    r = ds.recordings[0]
    assert r.signal.shape == (600, 6) and r.session == "exp01_user01"
    assert (r.labels[:50] == UNLABELED).all() and (r.labels[50:250] == 0).all()
    assert (r.labels[250:300] == 6).all() and (r.labels[300:560] == 3).all()
    assert (r.labels[560:] == UNLABELED).all()
    six = load_dataset("hapt", data_dir=tmp_path)
    assert isinstance(six, RecordingDataset)
    assert len(six.classes) == 6 and (six.recordings[0].labels[250:300] == UNLABELED).all()


def test_windows_after_subject_split(tmp_path: Path) -> None:
    write_hapt_fixture(tmp_path / "hapt")
    ds = load_dataset("hapt", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    w = ds.to_windows(window=100, hop=50, test_subjects=[4])
    assert w.splits["test"].subject_ids() == [4] and 4 not in w.splits["train"].subject_ids()
    assert w.splits["train"].X.shape[1:] == (100, 6)
    with pytest.raises(ConfigError, match="not subjects of hapt"):
        ds.to_windows(test_subjects=[99])


@pytest.mark.parametrize(("line", "message"), [
    ("1 1 13 1 10", "activity 13 outside 1..12"),
    ("1 1 1 500 700", "sample range 500..700 outside"),
    ("9 9 1 1 10", "experiment 9 of user 9 has no signal files"),
    ("1 1 1 x 10", "value 4 is 'x'"),
])
def test_malformed_labels_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    root = write_hapt_fixture(tmp_path / "hapt", zipped=False)
    p = root / "RawData" / "labels.txt"
    p.write_text(p.read_text() + line + "\n")
    with pytest.raises(DataFormatError) as e:
        parse_archive(root)
    assert "labels.txt, line 25" in str(e.value) and message in str(e.value)


def test_acc_gyro_length_mismatch(tmp_path: Path) -> None:
    root = write_hapt_fixture(tmp_path / "hapt", zipped=False)
    p = root / "RawData" / "gyro_exp03_user02.txt"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:-5]))
    with pytest.raises(DataFormatError, match=r"gyro_exp03_user02\.txt: has 595 samples"):
        parse_archive(root)


def test_training_on_fixture(tmp_path: Path) -> None:
    write_hapt_fixture(tmp_path / "hapt", n_users=5)
    r = harkit.train(overrides=[
        "data.dataset=hapt", f"data.data_dir={tmp_path}", "data.test_subjects=[5]",
        "data.n_val_subjects=1", "data.window=100", "data.hop=50", "train.epochs=2",
        "model.width=4", "model.hidden=8", f"run_root={tmp_path / 'runs'}"], progress=False)
    assert r.test is not None and r.test.classes == CLASSES[:6]
    pre = harkit.Predictor.from_run(r.run_dir)
    assert pre.window_len == 100 and pre.hop == 50 and pre.channels[0] == "acc_x"
    with pytest.raises(ConfigError, match="fixed windows"):
        harkit.train(overrides=["data.window=64", f"run_root={tmp_path / 'runs'}"],
                     progress=False)


def test_real_hapt(real_data_dir: Path) -> None:
    ds = load_dataset("hapt", data_dir=real_data_dir, activities=12)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.recordings) == 61 and len(ds.subject_ids()) == 30 and len(ds.classes) == 12
    assert ds.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    labels = np.concatenate([r.labels for r in ds.recordings])
    assert 0.2 < float(np.mean(labels == UNLABELED)) < 0.35  # unlabelled gaps exist
    assert sorted(np.unique(labels[labels >= 0]).tolist()) == list(range(12))
    w = ds.to_windows()
    assert w.splits["test"].subject_ids() == [2, 4, 9, 10, 12, 13, 18, 20, 24]
    assert w.splits["train"].X.shape[1:] == (128, 6)
