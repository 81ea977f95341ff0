"""The uci-har source: real archive, official layout fixtures, malformed files, mirrors."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.sources.uci_har import parse_archive
from harkit.errors import DataFormatError, DatasetNotFoundError

from .conftest import UCI_CHANNELS, UCI_CLASSES, fixture_windows, write_uci_fixture


def test_real_archive(real_data_dir: Path) -> None:
    ds = load_dataset("uci-har", data_dir=real_data_dir)
    tr, te = ds.splits["train"], ds.splits["test"]
    assert tr.X.shape == (7352, 128, 9) and te.X.shape == (2947, 128, 9)
    assert ds.channels == UCI_CHANNELS and ds.classes == UCI_CLASSES
    assert te.subject_ids() == [2, 4, 9, 10, 12, 13, 18, 20, 24]
    assert len(tr.subject_ids()) == 21 and not set(tr.subject_ids()) & set(te.subject_ids())
    assert np.bincount(tr.y).tolist() == [1226, 1073, 986, 1286, 1374, 1407]
    assert ds.sampling_rate == 50.0 and ds.hop == 64
    # total_acc carries gravity (|g| ~ 1), body_acc has it removed (mean ~ 0)
    assert abs(np.linalg.norm(tr.X[:, :, 6:9].mean((0, 1)))) > 0.8
    assert np.abs(tr.X[:, :, 0:3].mean((0, 1))).max() < 0.05
    # consecutive windows of one activity overlap by 64 samples (time axis intact)
    assert np.allclose(tr.X[0, 64:], tr.X[1, :64], atol=1e-6)


def test_real_archive_cache_roundtrip(real_data_dir: Path) -> None:
    a = load_dataset("uci-har", data_dir=real_data_dir)
    b = load_dataset("uci-har", data_dir=real_data_dir)  # second load from the parsed cache
    np.testing.assert_array_equal(a.splits["test"].X, b.splits["test"].X)
    np.testing.assert_array_equal(a.splits["train"].subjects, b.splits["train"].subjects)


@pytest.mark.parametrize("zipped", [True, False])
def test_fixture_layout_zipped_and_unpacked(tmp_path: Path, zipped: bool) -> None:
    write_uci_fixture(tmp_path / "uci-har", zipped=zipped)
    ds = load_dataset("uci-har", data_dir=tmp_path)
    expected = fixture_windows()
    for split in ("train", "test"):
        X, y, s = expected[split]
        np.testing.assert_allclose(ds.splits[split].X, X, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(ds.splits[split].y, y - 1)
        np.testing.assert_array_equal(ds.splits[split].subjects, s)


def test_nested_official_zip(tmp_path: Path) -> None:
    """The UCI site serves the original archive inside another zip."""
    inner = write_uci_fixture(tmp_path / "inner")
    outer = tmp_path / "mirror" / "uci-har" / "UCI HAR Dataset.zip"
    outer.parent.mkdir(parents=True)
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "UCI HAR Dataset.zip")
    ds = load_dataset("uci-har", data_dir=tmp_path / "mirror")
    assert ds.splits["train"].X.shape[1:] == (128, 9)


def test_mirror_url_downloads_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_uci_fixture(tmp_path / "mirror" / "uci-har")
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(cache))
    ds = load_dataset("uci-har", data_dir=(tmp_path / "mirror").as_uri())
    assert (cache / "uci-har" / "UCI HAR Dataset.zip").is_file()
    assert not list((cache / "uci-har").glob("*.tmp"))
    assert len(ds.splits["test"]) == 2 * 24


def test_missing_dataset_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="looked for"):
        load_dataset("uci-har", data_dir=tmp_path)


def test_unreachable_download_is_a_clear_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="cannot download uci-har"):
        load_dataset("uci-har", data_dir="file:///nonexistent/mirror")
    assert not list((tmp_path / "cache").rglob("*.zip"))


def _unpacked(tmp_path: Path) -> Path:
    write_uci_fixture(tmp_path / "uci-har", zipped=False)
    return tmp_path / "uci-har" / "UCI HAR Dataset"


def _edit_line(path: Path, line: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = new
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("rel", "line", "content", "message"),
    [
        ("train/Inertial Signals/body_gyro_y_train.txt", 5, "1.0 2.0 3.0\n",
         "line 5: expected 128 numbers, found 3 values"),
        ("test/Inertial Signals/total_acc_x_test.txt", 7, " ".join(["1.0"] * 127) + " abc\n",
         "line 7: value 128 is 'abc', expected a number"),
        ("train/Inertial Signals/body_acc_x_train.txt", 2, " ".join(["nan"] * 128) + "\n",
         "line 2: value 1 is nan, expected a finite number"),
        ("train/y_train.txt", 3, "9\n", "line 3: activity id 9 outside 1..6"),
        ("train/subject_train.txt", 4, "4.5\n", "line 4: value 1 is 4.5, expected an integer"),
        ("activity_labels.txt", 2, "two WALKING_UPSTAIRS\n", "line 2: expected '<id> <NAME>'"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, rel: str, line: int, content: str,
                                            message: str) -> None:
    root = _unpacked(tmp_path)
    _edit_line(root / rel, line, content)
    with pytest.raises(DataFormatError) as e:
        parse_archive(root.parent)
    assert rel.split("/")[-1] in str(e.value)
    assert message in str(e.value)


def test_missing_file_and_row_mismatch(tmp_path: Path) -> None:
    root = _unpacked(tmp_path)
    (root / "test" / "Inertial Signals" / "body_acc_z_test.txt").unlink()
    with pytest.raises(DataFormatError, match=r"body_acc_z_test.txt: file missing"):
        parse_archive(root.parent)
    shutil.rmtree(tmp_path / "uci-har")
    root = _unpacked(tmp_path)
    p = root / "train" / "Inertial Signals" / "total_acc_z_train.txt"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:-2]))
    with pytest.raises(DataFormatError, match=r"has 142 windows, expected 144"):
        parse_archive(root.parent)


def test_truncated_zip_and_binary_file(tmp_path: Path) -> None:
    z = write_uci_fixture(tmp_path / "uci-har")
    z.write_bytes(z.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match="not a valid zip archive"):
        parse_archive(z)
    root = _unpacked(tmp_path / "b")
    (root / "train" / "y_train.txt").write_bytes(b"1\n2\n\xff\xfe\n")
    with pytest.raises(DataFormatError, match=r"y_train.txt, line 3: not UTF-8"):
        parse_archive(root.parent)


def test_failed_load_writes_nothing_to_cache(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(cache))
    root = _unpacked(tmp_path)
    _edit_line(root / "train" / "y_train.txt", 1, "x\n")
    with pytest.raises(DataFormatError):
        load_dataset("uci-har", data_dir=tmp_path)
    assert not cache.exists() or not any(cache.rglob("*.npz"))


def test_bad_download_is_removed_from_cache(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A mirror that serves something that is not the archive leaves no poisoned cache entry."""
    mirror = tmp_path / "mirror" / "uci-har"
    mirror.mkdir(parents=True)
    (mirror / "UCI HAR Dataset.zip").write_text("<html>not found</html>")
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(cache))
    with pytest.raises(DataFormatError, match="cached download was removed"):
        load_dataset("uci-har", data_dir=(tmp_path / "mirror").as_uri())
    assert not (cache / "uci-har" / "UCI HAR Dataset.zip").exists()
