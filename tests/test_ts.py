"""The ts source: UEA / UCR ``.ts`` files, equal and unequal length, with real problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import harkit
from harkit.data import WindowedDataset, load_dataset
from harkit.data.sources.ts import MASK_CHANNEL, parse_ts
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

EQUAL_TRAIN = """\
#A made-up problem in the archive's layout.
#The dimensions are
#1. Wrist, X acceleration
#2. Wrist, Y acceleration
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength true
@seriesLength 4
@classLabel true walk run sit
@data
1.0,2.0,3.0,4.0:0.5,0.5,0.5,0.5:run
#a comment between cases
-1,?,-3,-4:1e-1,2E-1,?,?:walk

0.0,0.0,0.0,0.0:7,8,9,10:sit
"""

EQUAL_TEST = """\
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 4
@classLabel true walk run sit
@data
4,3,2,1:1,1,1,1:sit
2,2,2,2:3,3,3,3:walk
"""

UNEQUAL_TRAIN = """\
@problemName Wiggle
@timeStamps false
@missing false
@univariate true
@equalLength false
@classLabel true 1 2
@data
1,2,3:1
5,6,7,8,9,10:2
4,5,NaN,NaN:1
"""

UNEQUAL_TEST = """\
@problemName Wiggle
@univariate true
@equalLength false
@classLabel true 1 2
@data
1,2,3,4,5:2
"""


def write_pair(folder: Path, problem: str, train: str, test: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{problem}_TRAIN.ts").write_text(train)
    (folder / f"{problem}_TEST.ts").write_text(test)
    return folder


def test_equal_length_fixture(tmp_path: Path) -> None:
    write_pair(tmp_path / "uea" / "Toy", "Toy", EQUAL_TRAIN, EQUAL_TEST)
    ds = load_dataset("ts", data_dir=tmp_path, problem="Toy")
    assert isinstance(ds, WindowedDataset)
    assert ds.classes == ["walk", "run", "sit"]  # the order of @classLabel
    assert ds.channels == ["wrist_x_acceleration", "wrist_y_acceleration"]  # the #1. #2. list
    assert ds.sampling_rate == 1.0 and ds.window_len == 4 and ds.hop == 4
    tr, te = ds.splits["train"], ds.splits["test"]
    assert tr.X.shape == (3, 4, 2) and te.X.shape == (2, 4, 2)
    assert tr.y.tolist() == [1, 0, 2] and te.y.tolist() == [2, 0]
    assert tr.X[0, :, 0].tolist() == [1, 2, 3, 4]  # (case, time, dimension)
    assert tr.X[0, :, 1].tolist() == [0.5] * 4
    # missing values: interpolated inside, the last value carried to the end
    np.testing.assert_allclose(tr.X[1, :, 0], [-1, -2, -3, -4])
    np.testing.assert_allclose(tr.X[1, :, 1], [0.1, 0.2, 0.2, 0.2])
    assert tr.subjects.tolist() == [1, 2, 3] and te.subjects.tolist() == [4, 5]  # one per case


def test_folder_holding_the_pair_and_explicit_paths(tmp_path: Path) -> None:
    folder = write_pair(tmp_path / "Toy", "Toy", EQUAL_TRAIN, EQUAL_TEST)
    a = load_dataset("ts", data_dir=folder)  # the only pair in the folder
    b = load_dataset("ts", data_dir=tmp_path, problem="Toy")  # <dir>/<problem>/
    c = load_dataset("ts", train=str(folder / "Toy_TRAIN.ts"), test=str(folder / "Toy_TEST.ts"),
                     channel_names=["x", "y"], sampling_rate=10.0)
    assert isinstance(a, WindowedDataset)
    for ds in (b, c):
        assert isinstance(ds, WindowedDataset)
        np.testing.assert_array_equal(ds.splits["train"].X, a.splits["train"].X)
    assert isinstance(c, WindowedDataset) and c.channels == ["x", "y"] and c.sampling_rate == 10.0
    with pytest.raises(DatasetNotFoundError, match="problem 'Nope' not found"):
        load_dataset("ts", data_dir=tmp_path, problem="Nope")
    with pytest.raises(ConfigError, match="give data_dir"):
        load_dataset("ts", problem="Toy")
    with pytest.raises(ConfigError, match="channel_names needs 2"):
        load_dataset("ts", data_dir=folder, channel_names=["x"])


def test_unequal_length_pad_and_resample(tmp_path: Path) -> None:
    write_pair(tmp_path, "Wiggle", UNEQUAL_TRAIN, UNEQUAL_TEST)
    pad = load_dataset("ts", data_dir=tmp_path, problem="Wiggle")
    assert isinstance(pad, WindowedDataset)
    assert pad.channels == ["dim_0", MASK_CHANNEL] and pad.window_len == 6  # the longest case
    X = pad.splits["train"].X
    assert X[0, :, 0].tolist() == [1, 2, 3, 3, 3, 3] and X[0, :, 1].tolist() == [1, 1, 1, 0, 0, 0]
    assert X[1, :, 1].tolist() == [1] * 6
    # In an @equalLength false file, trailing NaNs are padding: the case has 2 values.
    assert X[2, :, 0].tolist() == [4, 5, 5, 5, 5, 5] and X[2, :, 1].sum() == 2
    assert pad.splits["test"].X[0, :, 1].tolist() == [1, 1, 1, 1, 1, 0]

    res = load_dataset("ts", data_dir=tmp_path, problem="Wiggle", length="resample")
    assert isinstance(res, WindowedDataset) and res.channels == ["dim_0"]
    np.testing.assert_allclose(res.splits["train"].X[0, :, 0], np.linspace(1, 3, 6))
    np.testing.assert_allclose(res.splits["train"].X[2, :, 0], np.linspace(4, 5, 6))

    cut = load_dataset("ts", data_dir=tmp_path, problem="Wiggle", series_length=4)
    assert isinstance(cut, WindowedDataset) and cut.window_len == 4
    assert cut.splits["train"].X[1, :, 0].tolist() == [5, 6, 7, 8]
    with pytest.raises(ConfigError, match="length='crop'"):
        load_dataset("ts", data_dir=tmp_path, problem="Wiggle", length="crop")


@pytest.mark.parametrize(("line", "number", "message"), [
    ("1,2,3,4:run", 14, "case has 1 dimensions, expected 2"),
    ("1,2,3,4:1,2,3,4:jump", 14, "class label 'jump' is not one of @classLabel"),
    ("1,2,x,4:1,2,3,4:run", 14, "dimension 1, value 3 is 'x', expected a number or ?"),
    ("1,2,3,4:1,2,3:run", 14, "dimensions have different lengths [4, 3]"),
    ("1,2,3:1,2,3:run", 14, "case has 3 values per dimension, expected 4 (@seriesLength)"),
    ("1,2,inf,4:1,2,3,4:run", 14, "dimension 1, value 3 is infinite"),
])
def test_malformed_case_names_file_and_line(line: str, number: int, message: str) -> None:
    head = EQUAL_TRAIN.split("@data\n")[0] + "@data\n"
    with pytest.raises(DataFormatError) as e:
        parse_ts((head + line + "\n").encode(), "Toy_TRAIN.ts")
    assert f"Toy_TRAIN.ts, line {number}: " in str(e.value) and message in str(e.value)


@pytest.mark.parametrize(("header", "message"), [
    ("@timeStamps true", "@timeStamps true (time-stamped values) is not supported"),
    ("@classLabel false", "@classLabel false"),
    ("@dimensions two", "@dimensions 'two': expected a positive integer"),
    ("@equalLength maybe", "expected true or false"),
])
def test_unsupported_or_bad_header(header: str, message: str) -> None:
    text = f"@problemName P\n{header}\n@classLabel true a\n@data\n1,2:a\n"
    with pytest.raises(DataFormatError) as e:
        parse_ts(text.encode(), "P_TRAIN.ts")
    assert "P_TRAIN.ts, line 2: " in str(e.value) and message in str(e.value)


def test_train_test_disagree(tmp_path: Path) -> None:
    write_pair(tmp_path, "Toy", EQUAL_TRAIN, EQUAL_TEST.replace("walk run sit", "run walk sit"))
    with pytest.raises(ConfigError, match="must be the same, in the same order"):
        load_dataset("ts", data_dir=tmp_path, problem="Toy")


def test_bad_number_in_a_file_names_path_and_line(tmp_path: Path) -> None:
    write_pair(tmp_path, "Toy", EQUAL_TRAIN, EQUAL_TEST.replace("2,2,2,2:", "2,2,2,2x:"))
    with pytest.raises(DataFormatError, match=r"Toy_TEST\.ts, line 11: dimension 1, value 4 "
                                              r"is '2x'"):
        load_dataset("ts", data_dir=tmp_path, problem="Toy")


def test_real_basic_motions(real_data_dir: Path) -> None:
    ds = load_dataset("ts", data_dir=real_data_dir, problem="BasicMotions")
    assert isinstance(ds, WindowedDataset)
    assert ds.classes == ["Standing", "Running", "Walking", "Badminton"]
    assert ds.channels == [f"dim_{k}" for k in range(6)]
    tr, te = ds.splits["train"], ds.splits["test"]
    assert tr.X.shape == (40, 100, 6) and te.X.shape == (40, 100, 6)
    assert np.bincount(tr.y).tolist() == [10] * 4 and np.bincount(te.y).tolist() == [10] * 4
    assert not set(tr.subject_ids()) & set(te.subject_ids())
    assert np.isfinite(tr.X).all() and np.isfinite(te.X).all()
    assert tr.X[:, :, :3].std() > 0.5  # not a constant or mangled axis


def test_real_natops(real_data_dir: Path) -> None:
    ds = load_dataset("ts", data_dir=real_data_dir / "uea" / "NATOPS")
    assert isinstance(ds, WindowedDataset)
    assert ds.classes == ["1.0", "2.0", "3.0", "4.0", "5.0", "6.0"]
    assert len(ds.channels) == 24 and ds.channels[0] == "hand_tip_left_x_coordinate"
    assert ds.channels[23] == "thumb_right_z_coordinate"
    assert ds.splits["train"].X.shape == (180, 51, 24) and ds.splits["test"].X.shape == (180, 51, 24)
    assert np.bincount(ds.splits["test"].y).tolist() == [30] * 6


def test_training_on_basic_motions(real_data_dir: Path, tmp_path: Path) -> None:
    """The default harcnn learns BasicMotions: 100 % test accuracy on 5 of 5 seeds with this
    recipe; 0.95 leaves room for platform differences."""
    r = harkit.train(overrides=[
        "data.dataset=ts", "data.options={problem: BasicMotions}", f"data.data_dir={real_data_dir}",
        "train.epochs=10", "train.batch_size=8", "data.n_val_subjects=8", "train.num_threads=1",
        f"run_root={tmp_path / 'runs'}"], progress=False)
    assert r.test is not None and r.test.classes == ["Standing", "Running", "Walking", "Badminton"]
    assert r.test.accuracy >= 0.95
