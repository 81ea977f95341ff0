"""The opportunity source: runs in the official OpportunityUCIDataset layout."""

from __future__ import annotations

import functools
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

import harkit
from harkit.data import load_dataset
from harkit.data.recording import RecordingDataset
from harkit.data.sources.opportunity import (
    BODY_WORN,
    CHANNELS,
    GESTURE_CODES,
    SELECTED_COLUMNS,
    parse_archive,
)
from harkit.errors import ConfigError, DataFormatError

GESTURES = ["Open Door 1", "Open Door 2", "Close Door 1", "Close Door 2", "Open Fridge",
            "Close Fridge", "Open Dishwasher", "Close Dishwasher", "Open Drawer 1", "Close Drawer 1",
            "Open Drawer 2", "Close Drawer 2", "Open Drawer 3", "Close Drawer 3", "Clean Table",
            "Drink from Cup", "Toggle Switch"]
RUNS = ("Drill", "ADL1", "ADL2", "ADL3", "ADL4", "ADL5")
N = 120  # samples per run


def _column_names() -> str:
    """column_names.txt: all 250 columns, CRLF line ends as in the archive."""
    lines = ["Data columns:", "Column: 1 MILLISEC"]
    for col, name in BODY_WORN.items():
        field = name.rsplit(" ", 1)[1]
        unit = ("value = round(original_value), unit = milli g" if field.startswith("acc")
                else "value = round(original_value * 1000), unit = unknown")
        lines.append(f"Column: {col} {name}; {unit}")
    objects = [f"Accelerometer {o} {f}" for o in ("CUP", "SALAMI", "WATER", "CHEESE", "BREAD",
                                                   "KNIFE1", "MILK", "SPOON", "SUGAR", "KNIFE2",
                                                   "PLATE", "GLASS")
               for f in ("accX", "accY", "accZ", "gyroX", "gyroY")]
    objects += [f"REED SWITCH S{i}" for i in range(1, 14)]
    objects += [f"Accelerometer {o} acc{a}" for o in ("DOOR1", "LAZYCHAIR", "DOOR2", "DISHWASHER",
                                                       "UPPERDRAWER", "LOWERDRAWER", "MIDDLEDRAWER",
                                                       "FRIDGE") for a in "XYZ"]
    objects += [f"LOCATION TAG{t} {a}" for t in range(1, 5) for a in "XYZ"]
    assert len(objects) == 109
    lines += [f"Column: {135 + i} {n}; value = round(original_value), unit = milli g"
              for i, n in enumerate(objects)]
    lines.append("Label columns: ")
    for i, n in enumerate(["Locomotion", "HL_Activity", "LL_Left_Arm", "LL_Left_Arm_Object",
                           "LL_Right_Arm", "LL_Right_Arm_Object", "ML_Both_Arms"]):
        lines.append(f"Column: {244 + i} {n}")
    return "\r\n".join(lines) + "\r\n"


def _legend() -> str:
    rows = ["Unique index   -   Track name   -   Label name", ""]
    rows += [f"{c}   -   Locomotion   -   {n}" for c, n in ((1, "Stand"), (2, "Walk"), (4, "Sit"),
                                                            (5, "Lie"))]
    rows += ["101   -   HL_Activity   -   Relaxing", "201   -   LL_Left_Arm   -   unlock",
             "301   -   LL_Left_Arm_Object   -   Bottle"]
    for c, n in zip(GESTURE_CODES, GESTURES, strict=True):
        sep = "\t -   " if c == 406517 else "   -   "  # the file mixes tabs and spaces
        rows.append(f"{c}{sep}ML_Both_Arms   -   {n}")
    return "\n".join(rows) + "\n"


def _run_table(subject: int, run_index: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 250) values of one run: integer sensor readings, labels in columns 244-250."""
    t = np.zeros((N, 250))
    t[:, 0] = np.round(np.arange(N) * 1000 / 30) + 1000 * run_index
    t[:, 1:243] = rng.integers(-1000, 1000, size=(N, 242))
    # gestures: NULL, then two gestures (class-dependent offset on every channel), then NULL
    g1, g2 = GESTURE_CODES[(2 * run_index) % 17], GESTURE_CODES[(2 * run_index + 1) % 17]
    t[30:60, 249], t[60:90, 249] = g1, g2
    t[30:60, 1:134] += 3000
    t[60:90, 1:134] -= 3000
    t[:60, 243], t[60:, 243] = 1, 2  # locomotion: Stand, then Walk
    t[:, 244] = 101
    t[40:50, 245] = 201
    return t


def _format(table: np.ndarray) -> str:
    return "".join(" ".join("NaN" if np.isnan(v) else str(int(v)) for v in row) + "\n"
                   for row in table)


@functools.lru_cache(maxsize=1)
def _fixture_files() -> dict[str, str]:
    """The fixture's files (generated once per test session; do not mutate)."""
    rng = np.random.default_rng(0)
    files = {"dataset/column_names.txt": _column_names(), "dataset/label_legend.txt": _legend(),
             "README": "fixture\n"}
    for s in (1, 2, 3, 4):
        for k, run in enumerate(RUNS):
            t = _run_table(s, k, rng)
            if (s, run) == (1, "ADL1"):
                t[0:3, 1] = np.nan  # leading gap
                t[10:13, 1] = np.nan  # interior gap
                t[-2:, 1] = np.nan  # trailing gap
                t[:, 200] = np.nan  # an object sensor (not selected) may be NaN throughout
            if (s, run) == (2, "Drill"):
                t[:, 4] = np.nan  # column 5, Accelerometer HIP accX
            files[f"dataset/S{s}-{run}.dat"] = _format(t)
    return files


def write_opportunity_fixture(root: Path, layout: str = "zip") -> Path:
    """A tiny copy in the official layout (all 24 runs, 120 samples each).

    ``layout``: ``zip`` (OpportunityUCIDataset.zip), ``wrapped`` (UCI's download zip holding
    that zip, saved under the same name as a cached download would be) or ``dir``.
    S1-ADL1 has NaN gaps in its first channel; S2-Drill loses HIP accX for the whole run.
    """
    files = _fixture_files()
    root.mkdir(parents=True, exist_ok=True)
    if layout == "dir":
        for rel, text in files.items():
            p = root / "OpportunityUCIDataset" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return root / "OpportunityUCIDataset"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, text in files.items():
            zf.writestr(f"OpportunityUCIDataset/{rel}", text)
    path = root / "OpportunityUCIDataset.zip"
    if layout == "wrapped":
        with zipfile.ZipFile(path, "w") as outer:
            outer.writestr("OpportunityUCIDataset.zip", buf.getvalue())
    else:
        path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def opp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("opp-data")
    write_opportunity_fixture(d / "opportunity")
    return d


def _by_session(ds: RecordingDataset) -> dict:
    return {r.session: r for r in ds.recordings}


def test_channels_are_the_113_body_worn_columns() -> None:
    assert len(SELECTED_COLUMNS) == 113 == len(CHANNELS)
    # Ordóñez & Roggen: columns 2-46, 51-59, 64-72, 77-85, 90-98, 103-134 (1-based)
    want = [*range(2, 47), *range(51, 60), *range(64, 73), *range(77, 86), *range(90, 99),
            *range(103, 135)]
    assert want == SELECTED_COLUMNS
    assert CHANNELS[0] == "acc_RKN^_accX" and CHANNELS[36] == "imu_BACK_accX"
    assert CHANNELS[-1] == "imu_R-SHOE_Compass" and not any("Quaternion" in c for c in CHANNELS)


@pytest.mark.parametrize("layout", ["zip", "wrapped", "dir"])
def test_runs_labels_and_ordonez_split(tmp_path: Path, layout: str) -> None:
    write_opportunity_fixture(tmp_path / "opportunity", layout)
    ds = load_dataset("opportunity", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    assert ds.sampling_rate == 30.0 and (ds.window, ds.hop) == (24, 12)
    assert ds.classes == ["NULL", *GESTURES] and len(ds.channels) == 113
    assert ds.units["acc_RKN^_accX"] == "milli g" and ds.units["imu_L-SHOE_EuX"] == "degrees"
    recs = _by_session(ds)
    assert len(recs) == 18 and ds.subject_ids() == [1, 2, 3]
    r = recs["S1-Drill"]  # run index 0: gestures 0 and 1 of the legend
    assert r.signal.shape == (N, 113) and r.signal.dtype == np.float32
    assert (r.labels[:30] == 0).all() and (r.labels[30:60] == 1).all()
    assert (r.labels[60:90] == 2).all() and (r.labels[90:] == 0).all()
    splits = {s: r.split for s, r in recs.items()}
    assert all(splits[f"S1-{run}"] == "train" for run in RUNS)
    for s in (2, 3):
        assert [splits[f"S{s}-{run}"] for run in RUNS] == ["train", "train", "train", "val",
                                                            "test", "test"]


def test_gaps_interpolated_and_dead_channel_zeroed(opp_dir: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with zipfile.ZipFile(opp_dir / "opportunity" / "OpportunityUCIDataset.zip") as zf:
        text = zf.read("OpportunityUCIDataset/dataset/S1-ADL1.dat").decode()
    raw = np.array([[float(v) for v in line.split()] for line in text.splitlines()])
    with caplog.at_level(logging.WARNING, logger="harkit"):
        ds = load_dataset("opportunity", data_dir=opp_dir)
    assert isinstance(ds, RecordingDataset)
    x = _by_session(ds)["S1-ADL1"].signal[:, 0]
    col = raw[:, 1]
    assert x[0] == x[1] == x[2] == col[3]  # leading gap: nearest value
    assert np.allclose(x[10:13], col[9] + (col[13] - col[9]) * np.array([1, 2, 3]) / 4)
    assert x[-1] == x[-2] == col[-3]  # trailing gap
    assert np.isfinite(np.stack([r.signal for r in ds.recordings if len(r)]).astype(float)).all()
    dead = _by_session(ds)["S2-Drill"]
    assert (dead.signal[:, 3] == 0).all() and dead.meta["nan_channels"] == 1
    assert "S2-Drill" in caplog.text and "acc_HIP_accX" in caplog.text


def test_locomotion_task(opp_dir: Path) -> None:
    ds = load_dataset("opportunity", data_dir=opp_dir, task="locomotion")
    assert isinstance(ds, RecordingDataset)
    assert ds.classes == ["NULL", "Stand", "Walk", "Sit", "Lie"]
    r = _by_session(ds)["S3-ADL2"]
    assert (r.labels[:60] == 1).all() and (r.labels[60:] == 2).all()


def test_windows_follow_the_dataset_split(opp_dir: Path) -> None:
    ds = load_dataset("opportunity", data_dir=opp_dir)
    assert isinstance(ds, RecordingDataset)
    w = ds.to_windows()
    assert set(w.splits) == {"train", "val", "test"}
    assert w.splits["train"].X.shape[1:] == (24, 113)
    assert w.splits["test"].subject_ids() == [2, 3] and w.splits["val"].subject_ids() == [2, 3]
    # S1 (6 runs) + S2, S3 (Drill, ADL1, ADL2): 12 train runs of 120 samples, 9 windows each
    assert len(w.splits["train"]) == 12 * 9 and len(w.splits["test"]) == 4 * 9
    assert set(np.unique(w.splits["train"].y).tolist()) >= {0, 1, 2}


def test_subject_4_without_the_dataset_split(opp_dir: Path) -> None:
    ds = load_dataset("opportunity", data_dir=opp_dir, subjects=[1, 2, 3, 4], split=None)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.recordings) == 24 and all(r.split is None for r in ds.recordings)
    w = ds.to_windows(test_subjects=[4])
    assert w.splits["test"].subject_ids() == [4] and "val" not in w.splits
    with pytest.raises(ConfigError, match="subject 4 is not part"):
        load_dataset("opportunity", data_dir=opp_dir, subjects=[1, 4])
    with pytest.raises(ConfigError, match="task="):
        load_dataset("opportunity", data_dir=opp_dir, task="activities")
    with pytest.raises(ConfigError, match="subjects="):
        load_dataset("opportunity", data_dir=opp_dir, subjects=[5])


def _edit_line(path: Path, line_no: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = new + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda ln: ln.rsplit(" ", 1)[0], "expected 250 numbers, found 249"),
    (lambda ln: "x " + ln.split(" ", 1)[1], "value 1 is 'x', expected a number or NaN"),
    (lambda ln: ln.rsplit(" ", 1)[0] + " 999", "ML_Both_Arms label 999 is not a code"),
    (lambda ln: " ".join([*ln.split()[:243], "3", *ln.split()[244:]]), "Locomotion label 3 is"),
    (lambda ln: ln.replace(ln.split()[5], "inf", 1), "expected a finite number or NaN"),
])
def test_malformed_run_names_file_and_line(tmp_path: Path, mutate, message: str) -> None:
    root = write_opportunity_fixture(tmp_path / "opportunity", "dir")
    p = root / "dataset" / "S2-ADL3.dat"
    text = p.read_text()
    p.write_text("\n" + text)  # a leading blank line: line numbers are not row numbers
    _edit_line(p, 8, mutate(text.splitlines()[6]))
    with pytest.raises(DataFormatError) as e:
        parse_archive(root.parent)
    assert "S2-ADL3.dat, line 8" in str(e.value) and message in str(e.value)


def test_wrong_column_names_and_legend(tmp_path: Path) -> None:
    root = write_opportunity_fixture(tmp_path / "opportunity", "dir")
    names = root / "dataset" / "column_names.txt"
    names.write_text(names.read_text().replace("Column: 38 InertialMeasurementUnit BACK accX",
                                               "Column: 38 InertialMeasurementUnit BACK gyroX"))
    with pytest.raises(DataFormatError, match=r"column_names\.txt, line 39: column 38 is"):
        parse_archive(root)
    names.write_text(_column_names())
    legend = root / "dataset" / "label_legend.txt"
    legend.write_text(legend.read_text().replace("408512   -   ML_Both_Arms   -   Clean Table\n", ""))
    with pytest.raises(DataFormatError, match=r"track ML_Both_Arms lacks label codes \[408512\]"):
        parse_archive(root)
    (root / "dataset" / "S4-ADL5.dat").unlink()
    legend.write_text(_legend())
    with pytest.raises(DataFormatError, match=r"S4-ADL5\.dat: file missing"):
        parse_archive(root)


def test_training_on_fixture(opp_dir: Path, tmp_path: Path) -> None:
    r = harkit.train(overrides=[
        "data.dataset=opportunity", f"data.data_dir={opp_dir}", "train.epochs=2",
        "model.width=4", "model.hidden=8", "train.num_threads=1",
        f"run_root={tmp_path / 'runs'}"], progress=False)
    assert r.test is not None and r.test.classes == ["NULL", *GESTURES]
    assert r.val is not None  # the dataset's own validation runs (ADL3 of subjects 2, 3)


def test_real_opportunity(real_data_dir: Path) -> None:
    if not (real_data_dir / "opportunity").exists():
        pytest.skip("no opportunity copy in the real-data directory")
    ds = load_dataset("opportunity", data_dir=real_data_dir)
    assert isinstance(ds, RecordingDataset)
    assert len(ds.recordings) == 18 and len(ds.classes) == 18 and len(ds.channels) == 113
    w = ds.to_windows()
    assert w.splits["train"].X.shape[1:] == (24, 113)
    assert set(np.unique(w.splits["test"].y).tolist()) == set(range(18))
