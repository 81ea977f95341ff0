"""Skeleton sources on the real datasets (msr-action3d, utkinect, penn-action, natops), their
option checks, and their format errors on small files written here in the release formats."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.dataset import WindowedDataset
from harkit.data.recording import UNLABELED, RecordingDataset, window_recordings
from harkit.data.skeleton import get_layout, unflatten
from harkit.data.sources import DATASETS
from harkit.data.sources.msr_action3d import CLASSES, SUBSETS, repair_lost_frames
from harkit.data.sources.penn_action import interpolate_occluded
from harkit.data.sources.utkinect import ACTIONS, parse_joints, parse_labels
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

SOURCES = {"msr-action3d": "msr20", "utkinect": "kinect20", "penn-action": "penn13",
           "natops": "natops8"}


def windowed(ds: object) -> WindowedDataset:
    assert isinstance(ds, WindowedDataset)
    return ds


def check_skeleton_splits(ds: WindowedDataset, layout: str) -> None:
    """Shared checks: skeleton info, shapes, labels, finite values, subject-disjoint splits."""
    assert set(ds.splits) == {"train", "test"}
    assert ds.skeleton is not None and ds.skeleton.layout == layout
    assert ds.channels == ds.skeleton.channel_names()
    tr, te = ds.splits["train"], ds.splits["test"]
    for ws in (tr, te):
        assert ws.X.dtype == np.float32 and ws.X.shape[2] == ds.n_channels
        assert np.isfinite(ws.X).all()
        assert ws.y.min() >= 0 and ws.y.max() < ds.n_classes
        assert unflatten(ws.X, ds.skeleton).shape[2:] == (
            1, get_layout(layout).n_joints, ds.skeleton.dims)
    assert not set(tr.subject_ids()) & set(te.subject_ids())


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_registered_as_skeleton_sources(name: str) -> None:
    entry = DATASETS.get(name)
    assert entry.tags["kind"] == "skeleton" and entry.description


# --- msr-action3d ---------------------------------------------------------------------------

def msr_file_counts(real_data_dir: Path) -> dict[tuple[int, int], int]:
    """Files per (action, subject) of the release, from the file names alone."""
    counts: dict[tuple[int, int], int] = {}
    for p in (real_data_dir / "msr-action3d" / "skeletons").iterdir():
        m = re.match(r"a(\d\d)_s(\d\d)_e\d\d_skeleton3D\.txt$", p.name)
        if m:
            key = (int(m.group(1)), int(m.group(2)))
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_msr_action3d_cross_subject(real_data_dir: Path, caplog: pytest.LogCaptureFixture
                                    ) -> None:
    with caplog.at_level(logging.WARNING, logger="harkit.data.sources.msr_action3d"):
        ds = windowed(load_dataset("msr-action3d", data_dir=real_data_dir))
    assert "a13_s09_e02" in caplog.text and "a13_s09_e02" in ds.description
    check_skeleton_splits(ds, "msr20")
    tr, te = ds.splits["train"], ds.splits["test"]
    assert (len(tr), len(te)) == (291, 275)  # 567 files minus the all-zero a13_s09_e02
    assert tr.subject_ids() == [1, 3, 5, 7, 9] and te.subject_ids() == [2, 4, 6, 8, 10]
    assert tr.X.shape[1:] == (64, 60) and ds.n_classes == 20 and ds.sampling_rate == 15.0
    counts = msr_file_counts(real_data_dir)
    counts[(13, 9)] -= 1  # the skipped sequence
    for split, ws in (("train", tr), ("test", te)):
        subjects = (1, 3, 5, 7, 9) if split == "train" else (2, 4, 6, 8, 10)
        expected = [sum(counts.get((a, s), 0) for s in subjects) for a in range(1, 21)]
        assert np.bincount(ws.y, minlength=20).tolist() == expected
    # centred on the hip centre of the first frame (kept exactly by resampling), body size 1
    sk = unflatten(tr.X, ds.skeleton)
    assert np.abs(sk[:, 0, 0, get_layout("msr20").index("hip_centre")]).max() < 1e-5


def test_msr_action3d_subsets_and_paper_files(real_data_dir: Path) -> None:
    counts = msr_file_counts(real_data_dir)
    counts[(13, 9)] -= 1
    for subset, actions in SUBSETS.items():
        ds = windowed(load_dataset("msr-action3d", data_dir=real_data_dir, subset=subset,
                                   length=16))
        assert ds.classes == [CLASSES[a - 1] for a in actions]
        n = len(ds.splits["train"]) + len(ds.splits["test"])
        assert n == sum(v for (a, _), v in counts.items() if a in actions)
        assert sorted(np.unique(ds.splits["test"].y).tolist()) == list(range(8))
    paper = windowed(load_dataset("msr-action3d", data_dir=real_data_dir, files="cvpr12",
                                  policy="pad", length=32))
    # the list holds 557 names, none of them the all-zero sequence
    assert len(paper.splits["train"]) + len(paper.splits["test"]) == 557
    assert paper.channels[-1] == "valid" and paper.skeleton is not None
    assert paper.skeleton.valid_channel


def test_msr_action3d_options_are_checked() -> None:
    for kw, match in [({"subset": "AS4"}, "subset"), ({"files": "cvpr"}, "files"),
                      ({"length": 0}, "length"), ({"policy": "crop"}, "policy"),
                      ({"centre": "yes"}, "centre"), ({"scale": 1}, "scale")]:
        with pytest.raises(ConfigError, match=match):
            load_dataset("msr-action3d", data_dir="/nonexistent", **kw)
    with pytest.raises(ConfigError, match="unknown option"):
        load_dataset("msr-action3d", data_dir="/nonexistent", mode="continuous")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("msr-action3d")


def write_msr(folder: Path, name: str, frames: np.ndarray, extra_rows: int = 0) -> None:
    """An MSR skeleton file: 20 rows "x y z c" per frame (plus ``extra_rows`` stray rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"{x:.6f} {y:.6f} {z:.6f} 1.000000" for x, y, z in frames.reshape(-1, 3)]
    rows += ["0.1 0.2 0.3 1.0"] * extra_rows
    (folder / f"{name}_skeleton3D.txt").write_text("\n".join(rows) + "\n")


def test_msr_action3d_format_errors_and_lost_frames(tmp_path: Path) -> None:
    skel = tmp_path / "msr-action3d" / "skeletons"
    rng = np.random.default_rng(0)
    for s in (1, 2):
        write_msr(skel, f"a01_s0{s}_e01", rng.normal(size=(5, 20, 3)))
    lost = rng.normal(size=(6, 20, 3))
    lost[0] = lost[2] = lost[5] = 0.0  # lost at both ends and inside
    write_msr(skel, "a02_s01_e01", lost)
    write_msr(skel, "a02_s02_e01", np.zeros((3, 20, 3)))  # all zeros: skipped
    ds = windowed(load_dataset("msr-action3d", data_dir=tmp_path, length=8, centre=False,
                               scale=False, policy="pad"))
    assert (len(ds.splits["train"]), len(ds.splits["test"])) == (2, 1)
    assert "a02_s02_e01" in ds.description
    sk = unflatten(ds.splits["train"].X, ds.skeleton)
    # a02_s01_e01: frames 1..4 kept, frame 2 interpolated, then padded from frame 5 on
    assert ds.splits["train"].X[1, :, -1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert np.allclose(sk[1, :4, 0], np.stack([lost[1], (lost[1] + lost[3]) / 2, lost[3],
                                               lost[4]]), atol=1e-5)
    write_msr(skel, "a03_s01_e01", rng.normal(size=(2, 20, 3)), extra_rows=7)
    with pytest.raises(DataFormatError, match=r"a03_s01_e01_skeleton3D\.txt, line 41: 47 rows"):
        load_dataset("msr-action3d", data_dir=tmp_path, use_cache=False)
    out = repair_lost_frames(np.zeros((4, 20, 3)))
    assert out is None


# --- utkinect --------------------------------------------------------------------------------

def test_utkinect_segments(real_data_dir: Path) -> None:
    ds = windowed(load_dataset("utkinect", data_dir=real_data_dir))
    check_skeleton_splits(ds, "kinect20")
    tr, te = ds.splits["train"], ds.splits["test"]
    assert (len(tr), len(te)) == (100, 99)  # 20 recordings x 10 actions, one NaN carry
    assert tr.subject_ids() == [1, 3, 5, 7, 9] and te.subject_ids() == [2, 4, 6, 8, 10]
    assert np.bincount(tr.y).tolist() == [10] * 10
    assert np.bincount(te.y).tolist() == [10, 10, 10, 10, 9, 10, 10, 10, 10, 10]  # carry
    assert tr.X.shape[1:] == (64, 60)
    other = windowed(load_dataset("utkinect", data_dir=real_data_dir, labels="original",
                                  test_subjects=[1, 2, 3], length=20, align=True))
    assert other.splits["test"].subject_ids() == [1, 2, 3]
    assert len(other.splits["train"]) + len(other.splits["test"]) == 199


def test_utkinect_continuous_labels_follow_frame_ids(real_data_dir: Path) -> None:
    rd = load_dataset("utkinect", data_dir=real_data_dir, mode="continuous", rate=15.0)
    assert isinstance(rd, RecordingDataset)
    assert len(rd.recordings) == 20 and rd.subject_ids() == list(range(1, 11))
    assert len(rd.channels) == 60 and rd.channels[0] == "b0.hip_centre.x"
    assert rd.test_subjects == [2, 4, 6, 8, 10]
    labels = (real_data_dir / "utkinect" / "joints" / "actionLabel_modified.txt").read_text()
    segments, _ = parse_labels(labels, "actionLabel_modified.txt")
    for rec in rd.recordings[:4]:
        grid = rec.meta["first_frame_id"] + 2.0 * np.arange(len(rec))  # 15 Hz: every 2nd id
        expected = np.full(len(rec), UNLABELED)
        for seg in sorted(segments[rec.session], key=lambda s: s.first):
            expected[(grid >= seg.first) & (grid <= seg.last)] = seg.label
        assert np.array_equal(rec.labels, expected)
        assert set(np.unique(rec.labels).tolist()) == {UNLABELED, *range(10)}
    ws = rd.to_windows()
    assert ws.splits["train"].X.shape[1:] == (rd.window, 60)
    assert not set(ws.splits["train"].subject_ids()) & set(ws.splits["test"].subject_ids())


def test_utkinect_continuous_windows_are_skeletons(real_data_dir: Path, tmp_path: Path) -> None:
    import harkit
    from harkit.inference import Predictor

    rd = load_dataset("utkinect", data_dir=real_data_dir, mode="continuous")
    assert isinstance(rd, RecordingDataset) and rd.skeleton is not None
    ws = rd.to_windows()
    assert ws.skeleton == rd.skeleton and ws.skeleton.layout == "kinect20"
    assert ws.channels == ws.skeleton.channel_names()
    # a window unflattens to its recording's frames: (N, T, 60) -> (N, T, 1, 20, 3)
    train = rd.split_recordings()["train"]
    _, rec, starts = window_recordings(train, rd.window, rd.hop, len(rd.classes))
    signal = train[rec[5]].signal[starts[5]:starts[5] + rd.window]
    np.testing.assert_array_equal(unflatten(ws.splits["train"].X[5], ws.skeleton),
                                  unflatten(signal, ws.skeleton))
    # so a graph model trains on continuous windows with the kinect20 bones
    r = harkit.train(overrides=[
        "data.dataset=utkinect", f"data.data_dir={real_data_dir}", "data.options.mode=continuous",
        "model.name=stgcn", "model.variant=tiny", "train.epochs=1", "train.refit=false",
        "train.num_threads=1", f"run_root={tmp_path}"], progress=False)
    assert r.finished and r.test is not None
    config = Predictor.from_run(r.run_dir).model.get_config()
    assert config["skeleton"]["layout"]["name"] == "kinect20"
    assert len(config["skeleton"]["layout"]["edges"]) == 19


def test_utkinect_options_and_format_errors(tmp_path: Path) -> None:
    for kw, match in [({"mode": "stream"}, "mode"), ({"labels": "fixed"}, "labels"),
                      ({"test_subjects": [11]}, "test_subjects"),
                      ({"test_subjects": list(range(1, 11))}, "test_subjects"),
                      ({"rate": 0}, "rate"), ({"align": None}, "align")]:
        with pytest.raises(ConfigError, match=match):
            load_dataset("utkinect", data_dir="/nonexistent", **kw)
    with pytest.raises(DataFormatError, match=r"l\.txt, line 3: unknown action 'jump'"):
        parse_labels("s01_e01\nwalk: 1 5\njump: 6 9\n", "l.txt")
    with pytest.raises(DataFormatError, match="line 1: a segment before"):
        parse_labels("walk: 1 5\n", "l.txt")
    with pytest.raises(DataFormatError, match="line 2: range 9 5"):
        parse_labels("s01_e01\nwalk: 9 5\n", "l.txt")
    row = " ".join(["0.5"] * 60)
    ids, joints, merged = parse_joints(f"4 {row}\n4 {row}\n8 {row}\n".encode(), "j.txt")
    assert ids.tolist() == [4, 8] and joints.shape == (2, 20, 3) and merged == 1
    with pytest.raises(DataFormatError, match=r"j\.txt, line 2: frame id 2 after 4"):
        parse_joints(f"4 {row}\n2 {row}\n".encode(), "j.txt")
    with pytest.raises(DataFormatError, match=r"j\.txt, line 1: expected 61 numbers"):
        parse_joints(b"4 0.5 0.5\n", "j.txt")
    # a folder in the release layout with a label file that misses a recording
    joints_dir = tmp_path / "utkinect" / "joints"
    joints_dir.mkdir(parents=True)
    (joints_dir / "joints_s01_e01.txt").write_text(f"2 {row}\n6 {row}\n")
    (joints_dir / "actionLabel_modified.txt").write_text("s02_e01\nwalk: 2 6\n")
    with pytest.raises(DataFormatError, match=r"no segments for recording\(s\) \['s01_e01'\]"):
        load_dataset("utkinect", data_dir=tmp_path)
    assert ACTIONS[0] == "walk"


# --- penn-action -----------------------------------------------------------------------------

def test_penn_action_official_split(real_data_dir: Path) -> None:
    ds = windowed(load_dataset("penn-action", data_dir=real_data_dir))
    check_skeleton_splits(ds, "penn13")
    tr, te = ds.splits["train"], ds.splits["test"]
    assert (len(tr), len(te)) == (1258, 1068)
    assert ds.n_classes == 15 and len(np.unique(te.y)) == 15
    assert ds.skeleton is not None and ds.skeleton.dim_names == ("x", "y", "visibility")
    assert tr.X.shape[1:] == (64, 39)
    # every clip is its own subject
    assert len(tr.subject_ids()) == 1258 and len(te.subject_ids()) == 1068
    assert min(tr.subject_ids() + te.subject_ids()) >= 1
    sk = unflatten(tr.X, ds.skeleton)
    vis = sk[..., 2]
    assert vis.min() >= 0.0 and vis.max() <= 1.0 and 0.6 < vis.mean() < 0.9
    # bbox normalisation: within the clip's box (occluded guesses may stray a little)
    assert np.percentile(np.abs(sk[..., :2]), 99.9) <= 0.51
    assert np.abs(sk[..., :2]).max() < 3.0


def test_penn_action_visibility_modes(real_data_dir: Path) -> None:
    ds = windowed(load_dataset("penn-action", data_dir=real_data_dir, visibility="interpolate",
                               normalise="image", centre=True, scale=True, length=16))
    assert ds.skeleton is not None and ds.skeleton.dims == 2 and ds.n_channels == 26
    assert len(ds.splits["train"]) == 1258
    keep = windowed(load_dataset("penn-action", data_dir=real_data_dir, visibility="keep",
                                 normalise="none", length=16, policy="pad"))
    assert keep.n_channels == 27 and keep.channels[-1] == "valid"
    assert keep.splits["train"].X[..., :-1].max() > 100  # pixels


def test_penn_action_options_are_checked() -> None:
    for kw, match in [({"visibility": "mask"}, "visibility"), ({"normalise": "box"},
                      "normalise"), ({"align": True}, "2D"), ({"length": 1}, "length")]:
        with pytest.raises(ConfigError, match=match):
            load_dataset("penn-action", data_dir="/nonexistent", **kw)


def test_interpolate_occluded_keeps_never_visible_joints() -> None:
    xy = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    vis = np.array([[True, False], [False, False], [True, False]])
    out = interpolate_occluded(xy, vis)
    assert out[1, 0].tolist() == [4.0, 5.0] and np.array_equal(out[:, 1], xy[:, 1])


# --- natops ----------------------------------------------------------------------------------

def test_natops_as_a_skeleton(real_data_dir: Path) -> None:
    ds = windowed(load_dataset("natops", data_dir=real_data_dir))
    check_skeleton_splits(ds, "natops8")
    tr, te = ds.splits["train"], ds.splits["test"]
    assert (len(tr), len(te)) == (180, 180) and tr.X.shape[1:] == (51, 24)
    assert np.bincount(tr.y).tolist() == [30] * 6 and np.bincount(te.y).tolist() == [30] * 6
    assert ds.classes[0] == "I have command"
    raw = windowed(load_dataset("ts", data_dir=real_data_dir, problem="NATOPS"))
    # the same numbers, channel "hand_tip_left_x_coordinate" becoming b0.l_hand_tip.x, ...
    assert np.array_equal(raw.splits["test"].X, te.X) and np.array_equal(raw.splits["test"].y,
                                                                        te.y)
    assert raw.channels[3] == "hand_tip_right_x_coordinate" and ds.channels[3] == "b0.r_hand_tip.x"
    centred = windowed(load_dataset("natops", data_dir=real_data_dir, centre=True, length=20))
    assert centred.splits["train"].X.shape == (180, 20, 24)
    with pytest.raises(ConfigError, match="natops8"):
        load_dataset("natops", data_dir=real_data_dir, align=True)
    with pytest.raises(DatasetNotFoundError, match="NATOPS_TRAIN"):
        load_dataset("natops", data_dir=real_data_dir / "uci-har")


def test_window_options_are_refused_for_utkinect_segments(real_data_dir: Path) -> None:
    from harkit.api import _load
    from harkit.config import ExperimentConfig, apply_overrides
    from harkit.errors import ConfigError

    cfg = apply_overrides(ExperimentConfig(), ["data.dataset=utkinect",
                                               f"data.data_dir={real_data_dir}",
                                               "data.window=16"])
    with pytest.raises(ConfigError, match=r"data\.window.*fixed windows"):
        _load(cfg)
