"""The skoda source: the MATLAB matrices of the official SkodaMiniCP_2015_08 archive."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from harkit.data import load_dataset
from harkit.data.recording import RecordingDataset
from harkit.data.sources.skoda import CLASSES, read_matrix
from harkit.errors import ConfigError, DataFormatError

RIGHT_IDS = [1, 2, 14, 16, 18, 21, 22, 24, 27, 29]
LEFT_IDS = [3, 17, 19, 20, 23, 25, 26, 28, 30, 31]
N = 98 * 20  # 20 s at 98 Hz
CODES = [32, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57]


def skoda_matrix(ids: list[int], seed: int = 0) -> np.ndarray:
    """(N, 71): label, then per sensor id, calibrated xyz, raw xyz. Calibrated channel 0 is a
    1 Hz sine; each class shifts every calibrated channel by 100 * class."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / 98.0
    seg = (np.arange(N) // 98) % 11  # one class per second, cycling through all 11
    m = np.zeros((N, 71))
    m[:, 0] = np.array(CODES)[seg]
    for s, sid in enumerate(ids):
        m[:, 1 + 7 * s] = sid
        m[:, 2 + 7 * s : 5 + 7 * s] = rng.normal(0, 5, (N, 3)) + 100 * seg[:, None]
        m[:, 5 + 7 * s : 8 + 7 * s] = np.round(rng.normal(512, 20, (N, 3)))  # raw ADC counts
    m[:, 2] = 1000 * np.sin(2 * np.pi * t)
    return m


def _mat_bytes(name: str, m: np.ndarray) -> bytes:
    buf = io.BytesIO()
    savemat(buf, {name: m})
    return buf.getvalue()


def write_skoda_fixture(root: Path, zipped: bool = True,
                        right: np.ndarray | None = None) -> Path:
    """The official archive layout: SkodaMiniCP_2015_08/{right,left}_classall_clean.mat."""
    files = {
        "right_classall_clean.mat": _mat_bytes("right_classall_clean",
                                               skoda_matrix(RIGHT_IDS) if right is None else right),
        "left_classall_clean.mat": _mat_bytes("left_classall_clean", skoda_matrix(LEFT_IDS, 1)),
        "readme.txt": b"fixture\n",
    }
    root.mkdir(parents=True, exist_ok=True)
    if zipped:
        path = root / "skodaminicp_2015_08.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, data in files.items():
                zf.writestr(f"SkodaMiniCP_2015_08/{rel}", data)
        return path
    for rel, data in files.items():
        (root / "SkodaMiniCP_2015_08").mkdir(exist_ok=True)
        (root / "SkodaMiniCP_2015_08" / rel).write_bytes(data)
    return root / "SkodaMiniCP_2015_08"


@pytest.mark.parametrize("zipped", [True, False])
def test_native_rate_channels_labels_split(tmp_path: Path, zipped: bool) -> None:
    write_skoda_fixture(tmp_path / "skoda", zipped)
    ds = load_dataset("skoda", data_dir=tmp_path, sampling_rate=None)
    assert isinstance(ds, RecordingDataset)
    assert ds.sampling_rate == 98.0 and (ds.window, ds.hop) == (78, 39)
    assert ds.classes == CLASSES and ds.classes[0] == "NULL" and len(ds.classes) == 11
    assert ds.channels[:3] == ["right01_x", "right01_y", "right01_z"] and len(ds.channels) == 30
    assert [(r.session, r.split, len(r)) for r in ds.recordings] == [
        ("right_train", "train", 1568), ("right_val", "val", 196), ("right_test", "test", 196)]
    m = skoda_matrix(RIGHT_IDS)
    x = np.concatenate([r.signal for r in ds.recordings])
    y = np.concatenate([r.labels for r in ds.recordings])
    cal = [2 + 7 * s + a for s in range(10) for a in range(3)]
    assert np.allclose(x, m[:, cal], atol=1e-3)  # calibrated, not raw, columns
    assert (y == np.searchsorted(CODES, m[:, 0])).all()
    assert ds.recordings[0].meta["sensor_ids"] == RIGHT_IDS
    assert ds.subject_ids() == [1]


def test_resampled_to_30hz(tmp_path: Path) -> None:
    write_skoda_fixture(tmp_path / "skoda")
    ds = load_dataset("skoda", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    assert ds.sampling_rate == 30.0 and (ds.window, ds.hop) == (24, 12)
    train = ds.recordings[0]
    assert len(train) == 480 and [len(r) for r in ds.recordings[1:]] == [60, 60]
    t = np.arange(len(train)) / 30.0
    inner = slice(10, -10)  # away from the filter's edge effects
    assert np.abs(train.signal[inner, 0] - 1000 * np.sin(2 * np.pi * t[inner])).max() < 20
    # labels come from the nearest original sample: class k during second k (mod 11)
    assert (train.labels == (np.arange(480) // 30) % 11).mean() > 0.97
    w = ds.to_windows()
    assert set(w.splits) == {"train", "val", "test"} and w.splits["train"].X.shape[1:] == (24, 30)


def test_left_arm_and_no_split(tmp_path: Path) -> None:
    write_skoda_fixture(tmp_path / "skoda")
    ds = load_dataset("skoda", data_dir=tmp_path, arm="left", split=None, sampling_rate=49)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.recordings) == 1 and ds.recordings[0].split is None
    assert ds.channels[0] == "left01_x" and ds.recordings[0].meta["sensor_ids"] == LEFT_IDS
    assert len(ds.recordings[0]) == N // 2 and ds.window == 39
    with pytest.raises(ConfigError, match="arm="):
        load_dataset("skoda", data_dir=tmp_path, arm="both")


def _broken(edit) -> np.ndarray:
    m = skoda_matrix(RIGHT_IDS)
    edit(m)
    return m


@pytest.mark.parametrize(("matrix", "message"), [
    (_broken(lambda m: m.__setitem__((4, 0), 33)), "row 5: label 33 is not one of the label codes"),
    (_broken(lambda m: m.__setitem__((7, 15), 99)),
     "row 8: sensor id column 16 changes from 14 to 99"),
    (_broken(lambda m: m.__setitem__((2, 9), np.nan)), "row 3, column 10 is nan"),
    (skoda_matrix(RIGHT_IDS)[:, :64], "expected a numeric (samples, 71) matrix"),
])
def test_malformed_matrix_names_file_and_row(tmp_path: Path, matrix: np.ndarray,
                                             message: str) -> None:
    path = write_skoda_fixture(tmp_path / "skoda", right=matrix)
    with pytest.raises(DataFormatError) as e:
        read_matrix(path, "right")
    assert "right_classall_clean.mat" in str(e.value) and message in str(e.value)


def test_not_a_mat_file_or_wrong_variable(tmp_path: Path) -> None:
    root = write_skoda_fixture(tmp_path / "skoda", zipped=False)
    (root / "right_classall_clean.mat").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataFormatError, match=r"not a readable MATLAB \.mat file"):
        read_matrix(root, "right")
    (root / "right_classall_clean.mat").write_bytes(_mat_bytes("classall", skoda_matrix(RIGHT_IDS)))
    with pytest.raises(DataFormatError, match=r"has no variable 'right_classall_clean'; "
                                              r"variables: \['classall'\]"):
        read_matrix(root, "right")


def test_real_skoda(real_data_dir: Path) -> None:
    if not (real_data_dir / "skoda").exists():
        pytest.skip("no skoda copy in the real-data directory")
    ds = load_dataset("skoda", data_dir=real_data_dir)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.channels) == 30 and [r.split for r in ds.recordings] == ["train", "val", "test"]
    labels = np.concatenate([r.labels for r in ds.recordings])
    assert sorted(np.unique(labels).tolist()) == list(range(11))
