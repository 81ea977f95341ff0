"""The ntu source: .skeleton text files, body selection, missing-skeleton lists, splits."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.dataset import WindowedDataset
from harkit.data.sources.ntu import (
    CLASSES,
    Body,
    SampleName,
    read_missing_list,
    read_skeleton,
    select_bodies,
    split_of,
    trim_empty,
    write_skeleton,
)
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

# Kinect v2 standing pose, metres (ntu25 order: spine_base, spine_mid, neck, head, ...)
STAND = np.array([
    [0.0, 0.0, 3.0], [0.0, 0.3, 3.0], [0.0, 0.55, 3.0], [0.0, 0.7, 3.0], [-0.2, 0.45, 3.0],
    [-0.25, 0.2, 3.0], [-0.27, 0.0, 3.0], [-0.28, -0.05, 3.0], [0.2, 0.45, 3.0],
    [0.25, 0.2, 3.0], [0.27, 0.0, 3.0], [0.28, -0.05, 3.0], [-0.1, -0.05, 3.0],
    [-0.1, -0.45, 3.0], [-0.1, -0.85, 3.0], [-0.1, -0.9, 2.9], [0.1, -0.05, 3.0],
    [0.1, -0.45, 3.0], [0.1, -0.85, 3.0], [0.1, -0.9, 2.9], [0.0, 0.5, 3.0],
    [-0.29, -0.1, 3.0], [-0.26, -0.05, 3.0], [0.29, -0.1, 3.0], [0.26, -0.05, 3.0]])


def body(body_id: int, xyz: np.ndarray, seed: int = 0) -> Body:
    """A body with the given x, y, z and plausible other fields (as floats of the file's
    7-significant-digit kind)."""
    rng = np.random.default_rng(seed)
    joints = np.zeros((25, 12))
    joints[:, :3] = xyz
    joints[:, 3:5] = np.round(rng.uniform(100, 400, (25, 2)), 3)  # depth image pixels
    joints[:, 5:7] = np.round(rng.uniform(300, 1500, (25, 2)), 3)  # colour image pixels
    q = rng.normal(size=(25, 4))
    joints[:, 7:11] = np.round(q / np.linalg.norm(q, axis=1, keepdims=True), 7)
    joints[:, 11] = 2
    info = np.array([0, 1, 1, 1, 1, 0, round(rng.uniform(-0.1, 0.1), 7),
                     round(rng.uniform(-0.1, 0.1), 7), 2], dtype=np.float64)
    return Body(body_id, info, joints)


def waving(n: int, x: float = 0.0, amplitude: float = 0.2, phase: float = 0.0) -> np.ndarray:
    """``(n, 25, 3)``: a person at ``x`` waving the right arm (joints 9-11, 23, 24)."""
    seq = np.repeat((STAND + np.array([x, 0.0, 0.0]))[None], n, axis=0)
    seq[:, [9, 10, 11, 23, 24], 1] += amplitude * np.sin(0.4 * np.arange(n) + phase)[:, None]
    return np.round(seq, 7)


def assert_same(a: list[list[Body]], b: list[list[Body]]) -> None:
    assert len(a) == len(b)
    for fa, fb in zip(a, b, strict=True):
        assert [x.body_id for x in fa] == [x.body_id for x in fb]
        for x, y in zip(fa, fb, strict=True):
            np.testing.assert_array_equal(x.info, y.info)
            np.testing.assert_array_equal(x.joints, y.joints)


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = [72057594037931101, 72057594037931102, 72057594037931140]
    frames = []
    for t, n in enumerate([0, 1, 2, 3, 2, 0]):  # frames with no body, one, two and three
        bodies = [body(ids[k], rng.normal(size=(25, 3)), seed=t * 3 + k) for k in range(n)]
        for b in bodies:
            b.joints[:, :3] = rng.normal(size=(25, 3))  # full float64 precision survives
        frames.append(bodies)
    p = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(p, frames)
    back = read_skeleton(p)
    assert_same(back, frames)
    assert back[3][2].body_id == 72057594037931140  # a 64-bit tracking id, exact
    text = p.read_text().splitlines()
    assert text[:3] == ["6", "0", "1"] and len(text[3].split()) == 10 and text[4] == "25"
    assert len(text[5].split()) == 12 and text[5].split()[-1] == "2"


REAL_LAYOUT = (  # the first lines of a file exactly as the dataset writes them (CRLF)
    "2\r\n1\r\n72057594037931101 0 1 1 1 1 0 0.02764709 0.05745083 2\r\n25\r\n"
    + "".join(f"0.2181153 0.{k:02d}25972 3.785547 277.419 191.8218 1036.233 519.1677 "
              f"-0.2059419 0.05349901 0.9692109 -0.1239193 {2 if k % 5 else 1}\r\n"
              for k in range(25))
    + "0\r\n")


def test_reads_the_dataset_layout() -> None:
    frames = read_skeleton("S001C001P001R001A001.skeleton", REAL_LAYOUT.encode())
    assert [len(f) for f in frames] == [1, 0]
    (b,) = frames[0]
    assert b.body_id == 72057594037931101
    assert b.info.tolist() == [0, 1, 1, 1, 1, 0, 0.02764709, 0.05745083, 2]
    assert b.joints.shape == (25, 12)
    assert b.joints[3, :3].tolist() == [0.2181153, 0.0325972, 3.785547]
    assert b.joints[0, 11] == 1 and b.joints[1, 11] == 2 and b.joints[4, 10] == -0.1239193


def _lines() -> list[str]:
    return REAL_LAYOUT.replace("\r\n", "\n").splitlines()


def _with(line: int, text: str | None) -> bytes:
    lines = _lines()
    if text is None:
        del lines[line - 1:]
    else:
        lines[line - 1] = text
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(("data", "message", "line"), [
    (_with(1, "two"), "expected the frame count", 1),
    (_with(2, "1 2"), "expected the body count of frame 1 of 2", 2),
    (_with(3, "72057594037931101 0 1 1 1 1 0 0.02764709 2"), "body line of 10 values", 3),
    (_with(3, "7.5 0 1 1 1 1 0 0.02764709 0.05745083 2"), "bodyID is '7.5'", 3),
    (_with(4, "24"), "joint count 24, expected 25", 4),
    (_with(9, "0.2 0.1 3.7 277.4 191.8 1036.2 519.1 -0.2 0.05 0.9 2"),
     "joint line of 12 values", 9),
    (_with(12, "0.2 0.1 3.7 277.4 191.8 1036.2 519.1 -0.2 0.05 0.9 -0.12 x"),
     "trackingState is 'x'", 12),
    (_with(20, None), "joint 16 of 25 missing", 20),
    (_with(30, None), "file ends where the body count of frame 2 of 2", 30),
    ((REAL_LAYOUT + "1\r\n").encode(), "more lines after the 2 frame", 31),
])
def test_malformed_files(data: bytes, message: str, line: int) -> None:
    with pytest.raises(DataFormatError, match=message) as e:
        read_skeleton("S001C001P001R001A001.skeleton", data)
    assert e.value.path == "S001C001P001R001A001.skeleton" and e.value.line == line


def test_body_selection() -> None:
    n = 30
    actor = waving(n, amplitude=0.3)
    partner = waving(n, x=1.0, amplitude=0.05)
    table = np.round(np.stack([np.column_stack([np.linspace(-1, 1, 25) * 1.5 + 0.5 * np.sin(t),
                                                np.full(25, -0.2), np.full(25, 3.5)])
                               for t in range(n)]), 7)  # wide, and moving a lot
    flicker = waving(n, x=-1.0)  # jumps about (the most energy), seen in 3 frames only
    flicker[:, :, 0] += np.where(np.arange(n) % 2, 1.0, -1.0)[:, None]
    frames = []
    for t in range(n):
        actor_id = 11 if t < 15 else 12  # Kinect gave the actor a new id halfway
        bodies = [body(21, partner[t]), body(actor_id, actor[t]), body(31, table[t])]
        if t in (4, 5, 6):
            bodies.append(body(41, flicker[t]))
        frames.append(bodies)
    xyz, slots = select_bodies(frames)
    assert slots == [[11, 12], [21]] or slots == [[12, 11], [21]]
    assert xyz.shape == (n, 2, 25, 3) and xyz.dtype == np.float32
    np.testing.assert_allclose(xyz[:, 0], actor, atol=1e-6)
    np.testing.assert_allclose(xyz[:, 1], partner, atol=1e-6)
    one, slots1 = select_bodies(frames, bodies=1)
    assert one.shape == (n, 1, 25, 3) and sorted(slots1[0]) == [11, 12]
    # when only noise is left, it is kept rather than returning nothing
    only_table = [[body(31, table[t])] for t in range(n)]
    xyz, slots = select_bodies(only_table)
    assert slots == [[31], []] and (xyz[:, 1] == 0).all()
    np.testing.assert_allclose(xyz[:, 0], table, atol=1e-6)


def test_frames_without_bodies() -> None:
    seq = waving(6)
    frames: list[list[Body]] = [[], [], [body(5, seq[2])], [], [body(5, seq[4])], []]
    xyz, _ = select_bodies(frames, min_frames=1)
    assert xyz.shape == (6, 2, 25, 3)
    cut = trim_empty(xyz)
    assert len(cut) == 3  # frames 2-4: the empty ends go, the empty middle stays
    assert (cut[1] == 0).all() and (cut[:, 1] == 0).all()
    np.testing.assert_allclose(cut[2, 0], seq[4], atol=1e-6)
    zero = Body(9, np.zeros(9), np.zeros((25, 12)))  # an all-zero body is no body
    assert trim_empty(select_bodies([[zero], [zero]])[0]).shape == (0, 2, 25, 3)


@pytest.mark.parametrize(("name", "split", "version", "side"), [
    ("S001C001P001R001A001", "cross-subject", 60, "train"),
    ("S001C001P003R001A001", "xsub", 60, "test"),
    ("S005C002P038R002A060", "xsub", 60, "train"),
    ("S020C002P045R002A100", "xsub", 60, "test"),
    ("S020C002P045R002A100", "xsub", 120, "train"),
    ("S020C002P103R002A100", "xsub", 120, "train"),
    ("S020C002P104R002A100", "xsub", 120, "test"),
    ("S001C001P001R001A001", "cross-view", 60, "test"),
    ("S001C002P003R001A001", "xview", 60, "train"),
    ("S001C003P003R001A001", "xview", 120, "train"),
    ("S018C001P001R001A001", "cross-setup", 120, "train"),
    ("S019C002P001R001A001", "xset", 120, "test"),
])
def test_split_membership(name: str, split: str, version: int, side: str) -> None:
    sample = SampleName.parse(name + ".skeleton")
    assert sample is not None and str(sample) == name
    assert split_of(sample, split, version) == side


def test_missing_lists_official(real_data_dir: Path) -> None:
    folder = real_data_dir / "ntu"
    n60 = read_missing_list(folder / "NTU_RGBD_samples_with_missing_skeletons.txt")
    n120 = read_missing_list(folder / "NTU_RGBD120_samples_with_missing_skeletons.txt")
    for path, names in ((folder / "NTU_RGBD_samples_with_missing_skeletons.txt", n60),
                        (folder / "NTU_RGBD120_samples_with_missing_skeletons.txt", n120)):
        announced = int(path.read_text().split()[0])  # "302 of the captured samples ..."
        assert len(names) == announced
    assert (len(n60), len(n120)) == (302, 535) and n60 <= n120
    assert "S001C002P005R002A008" in n60
    assert all(SampleName.parse(n) is not None for n in n120)


# --- the source on a fixture copy of the release layout ---

SAMPLES = {  # name -> (frames, bodies)
    "S001C001P001R001A001": (40, 1),
    "S001C002P003R001A050": (36, 2),
    "S002C003P002R002A002": (30, 1),
    "S018C001P045R002A061": (25, 2),
    "S001C002P005R002A008": (20, 1),  # in the official missing-skeleton list
    "S003C001P006R001A010": (33, 1),
}
LEAD = 3  # S002C003P002R002A002 starts and ends with 3 frames without a body


def truth(name: str) -> np.ndarray:
    """``(frames, 2, 25, 3)`` the source should return for sample ``name``."""
    n, m = SAMPLES[name]
    seed = sum(map(ord, name))
    out = np.zeros((n, 2, 25, 3))
    out[:, 0] = waving(n, amplitude=0.3, phase=seed % 7)
    if m == 2:
        out[:, 1] = waving(n, x=1.0, amplitude=0.05)
    return out


def write_release(folder: Path, zipped: bool = False, with_list: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (n, m) in SAMPLES.items():
        seq = truth(name)
        frames = [[body(100 + k, seq[t, k], seed=t) for k in range(m)] for t in range(n)]
        if name == "S002C003P002R002A002":
            frames = [[]] * LEAD + frames + [[]] * LEAD
        path = folder / f"{name}.skeleton"
        write_skeleton(path, frames)
        files[name] = path
    if zipped:
        with zipfile.ZipFile(folder / "nturgbd_skeletons_s001_to_s017.zip", "w") as zf:
            for name, path in files.items():
                zf.write(path, f"nturgb+d_skeletons/{name}.skeleton")
                path.unlink()
    else:
        sub = folder / "nturgb+d_skeletons"
        sub.mkdir()
        for path in files.values():
            path.rename(sub / path.name)
    if with_list:
        (folder / "NTU_RGBD_samples_with_missing_skeletons.txt").write_text(
            "1 of the captured samples in the \"NTU RGB+D\" dataset have missing or incomplete "
            "skeleton data.\nIf you are working on skeleton-based analysis, please ignore these "
            "files in your training and testing procedures.\n\nS001C002P005R002A008\n")
    return folder


@pytest.mark.parametrize("zipped", [False, True])
def test_source_ntu60_cross_subject(tmp_path: Path, zipped: bool) -> None:
    write_release(tmp_path / "ntu", zipped=zipped)
    ds = load_dataset("ntu", data_dir=tmp_path, policy="pad", length=50)
    assert isinstance(ds, WindowedDataset) and ds.classes == CLASSES[:60]
    assert ds.skeleton is not None and ds.skeleton.layout == "ntu25" and ds.skeleton.bodies == 2
    assert ds.sampling_rate == 30.0 and ds.channels[:3] == ["b0.spine_base.x", "b0.spine_base.y",
                                                            "b0.spine_base.z"]
    train, test = ds.splits["train"], ds.splits["test"]
    # S018 is NTU 120 only; S001C002P005R002A008 is listed as missing
    assert train.subject_ids() == [1, 2] and test.subject_ids() == [3, 6]
    assert sorted(train.y.tolist()) == [0, 1] and sorted(test.y.tolist()) == [9, 49]
    assert train.X.shape == (2, 50, 2 * 25 * 3 + 1)
    for ws in (train, test):
        for x, s, a in zip(ws.X, ws.subjects, ws.y, strict=True):
            name = next(n for n in SAMPLES if f"P{s:03d}" in n and n.endswith(f"A{a + 1:03d}"))
            want = truth(name)
            n = len(want)
            xyz = x[:, :-1].reshape(50, 2, 25, 3)  # (T, 151) -> (T, bodies, joints, xyz)
            np.testing.assert_allclose(xyz[:n], want, atol=1e-6)  # empty ends cut
            assert x[:n, -1].all() and not x[n:, -1].any()
            if SAMPLES[name][1] == 1:
                assert (xyz[:, 1] == 0).all()  # the absent second body is zeros


def test_source_views_setups_and_versions(tmp_path: Path) -> None:
    write_release(tmp_path)  # files directly in the data folder
    xview = load_dataset("ntu", data_dir=tmp_path, split="xview")
    assert isinstance(xview, WindowedDataset)
    assert sorted(xview.splits["train"].subject_ids()) == [2, 3]  # cameras 2, 3
    assert xview.splits["train"].X.shape == (2, 64, 150)
    xset = load_dataset("ntu", data_dir=tmp_path, version=120, split="cross-setup")
    assert isinstance(xset, WindowedDataset) and xset.n_classes == 120
    assert xset.splits["train"].subject_ids() == [2, 45]  # setups 2 and 18
    assert xset.splits["test"].subject_ids() == [1, 3, 6]
    xsub = load_dataset("ntu", data_dir=tmp_path, version=120, bodies=1)
    assert isinstance(xsub, WindowedDataset)
    assert xsub.splits["train"].subject_ids() == [1, 2, 45]
    assert xsub.splits["train"].X.shape[1:] == (64, 75)
    with pytest.raises(ConfigError, match="cross-setup"):
        load_dataset("ntu", data_dir=tmp_path, split="xset")
    with pytest.raises(ConfigError, match="version"):
        load_dataset("ntu", data_dir=tmp_path, version=90)


def test_missing_list_option(tmp_path: Path, real_data_dir: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    write_release(tmp_path, with_list=False)
    with caplog.at_level(logging.WARNING, logger="harkit"):
        every = load_dataset("ntu", data_dir=tmp_path)
    assert "no missing-skeleton list" in caplog.text
    assert isinstance(every, WindowedDataset) and 5 in every.splits["train"].subject_ids()
    official = real_data_dir / "ntu" / "NTU_RGBD_samples_with_missing_skeletons.txt"
    ds = load_dataset("ntu", data_dir=tmp_path, missing_list=str(official))
    assert isinstance(ds, WindowedDataset) and 5 not in ds.splits["train"].subject_ids()
    none = load_dataset("ntu", data_dir=tmp_path, missing_list=[])
    assert isinstance(none, WindowedDataset) and 5 in none.splits["train"].subject_ids()


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="distributed on request"):
        load_dataset("ntu", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        load_dataset("ntu")
    folder = write_release(tmp_path / "ntu")
    bad = folder / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton"
    lines = bad.read_text().splitlines()
    lines[6] = "0.1 0.2"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="joint line of 12 values") as e:
        load_dataset("ntu", data_dir=tmp_path, use_cache=False)
    assert e.value.path == str(bad) and e.value.line == 7
