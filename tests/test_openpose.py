"""The openpose source: per-frame OpenPose JSON, tracking, masking, labels CSV, real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import BODY25_TO_COCO18, get_layout, unflatten
from harkit.data.sources.openpose import (
    find_clips,
    read_keypoints_file,
    read_labels_csv,
    read_openpose_clip,
    track_people,
)
from harkit.errors import ConfigError, DataFormatError

# A BODY_25 pose (pixels): the main actor A is 200 px tall; B is a small bystander.
_BASE = np.array([
    [100, 40], [100, 70], [80, 70], [70, 100], [65, 130], [120, 70], [130, 100], [135, 130],
    [100, 140], [90, 140], [90, 180], [90, 220], [110, 140], [110, 180], [110, 220],
    [95, 35], [105, 35], [90, 38], [110, 38], [115, 235], [118, 234], [108, 228], [85, 235],
    [82, 234], [92, 228]], dtype=np.float64)
FRAMES = [0, 1, 2, 4, 5]  # frame 3 is skipped, as OpenPose does for unreadable frames
R_WRIST, L_ELBOW = 4, 6  # BODY_25 indices (the same in COCO-18)


def pose_a(n: int) -> np.ndarray:
    """A's true positions at frame ``n``: walking right 2 px per frame (linear, so linear
    interpolation over a gap recovers the truth exactly)."""
    return _BASE + np.array([2.0 * n, 0.0])


def pose_b(n: int) -> np.ndarray:
    """B: half A's size, 150 px to the right, standing still."""
    return (_BASE - [100, 40]) * 0.5 + [260, 60]


def keypoints(xy: np.ndarray, conf: np.ndarray | float = 0.9) -> list[float]:
    c = np.broadcast_to(np.asarray(conf, dtype=np.float64), (len(xy),))
    return [round(float(v), 3) for v in np.column_stack([xy, c]).ravel()]


def frame_json(people: list[list[float]]) -> str:
    """One frame in OpenPose 1.3's exact layout (compact, the unused arrays empty)."""
    return json.dumps({"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": p, "face_keypoints_2d": [],
         "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
         "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}
        for p in people]}, separators=(",", ":"))


def write_clip(folder: Path, clip: str = "walk_01", shift: float = 0.0) -> Path:
    """Two people whose order in ``people`` swaps between frames, A's right wrist undetected
    (0, 0, 0) on frame 1, A's left elbow below the confidence threshold on frame 2, B absent
    on frame 5, and frame 3 missing."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in FRAMES:
        a = pose_a(n) + np.array([shift, 0.0])
        conf = np.full(25, 0.9)
        if n == 1:
            a[R_WRIST], conf[R_WRIST] = 0.0, 0.0
        if n == 2:
            a[L_ELBOW], conf[L_ELBOW] = [400.0, 400.0], 0.05  # a wild, unconfident guess
        people = [keypoints(a, conf)]
        if n != 5:
            people.append(keypoints(pose_b(n) + np.array([shift, 0.0])))
        if n in (1, 4):
            people.reverse()
        (folder / f"{clip}_{n:012d}_keypoints.json").write_text(frame_json(people))
    return folder


def coco(xy: np.ndarray) -> np.ndarray:
    return xy[list(BODY25_TO_COCO18)]


def test_tracked_main_actor_with_gaps_interpolated(tmp_path: Path) -> None:
    frames, info = read_openpose_clip(write_clip(tmp_path / "walk_01"), normalize="none")
    assert frames.shape == (6, 1, 18, 3) and frames.dtype == np.float32
    assert info.frame_numbers.tolist() == [0, 1, 2, 3, 4, 5] and info.missing_frames == [3]
    assert info.source_layout == "body25" and info.layout == "coco18" and info.n_tracks == 2
    assert info.people.tolist() == [2, 2, 2, 0, 2, 1]
    assert info.detected[:, 0].tolist() == [True, True, True, False, True, True]
    for t in range(6):  # every frame, inserted and masked joints included, is A's true pose
        np.testing.assert_allclose(frames[t, 0, :, :2], coco(pose_a(t)), atol=1e-3)
    conf = frames[:, 0, :, 2]
    assert (conf[3] == 0).all()  # the inserted frame: nothing was detected
    assert conf[1, R_WRIST] == 0 and conf[2, L_ELBOW] == 0  # interpolated joints
    assert conf[1, L_ELBOW] == pytest.approx(0.9) and conf[2, R_WRIST] == pytest.approx(0.9)
    assert int((conf == 0).sum()) == 18 + 2


def test_gaps_left_as_zeros(tmp_path: Path) -> None:
    frames, _ = read_openpose_clip(write_clip(tmp_path / "c"), normalize="none", fill="zero")
    assert (frames[3] == 0).all()
    assert frames[1, 0, R_WRIST].tolist() == [0.0, 0.0, 0.0]
    assert frames[2, 0, L_ELBOW].tolist() == [0.0, 0.0, 0.0]  # not the wild guess
    np.testing.assert_allclose(frames[4, 0, :, :2], coco(pose_a(4)), atol=1e-3)


def test_second_body_and_body25_layout(tmp_path: Path) -> None:
    frames, info = read_openpose_clip(write_clip(tmp_path / "c"), layout="body25", bodies=2,
                                      normalize="none")
    assert frames.shape == (6, 2, 25, 3)
    assert info.detected[:, 1].tolist() == [True, True, True, False, True, False]
    for t in range(6):
        np.testing.assert_allclose(frames[t, 0, :, :2], pose_a(t), atol=1e-3)
        np.testing.assert_allclose(frames[t, 1, :, :2], pose_b(t), atol=1e-3)  # held / filled
    assert (frames[[3, 5], 1, :, 2] == 0).all() and (frames[[0, 1, 2, 4], 1, :, 2] > 0.8).all()


def test_body_normalisation(tmp_path: Path) -> None:
    frames, info = read_openpose_clip(write_clip(tmp_path / "c"))
    necks = np.array([pose_a(n)[1] for n in FRAMES])
    centre = necks.mean(axis=0)
    torso = float(np.linalg.norm(_BASE[[9, 12]].mean(axis=0) - _BASE[1]))  # neck to mid hips
    np.testing.assert_allclose(info.centre, centre, atol=1e-3)
    np.testing.assert_allclose(info.scale, [torso, torso], rtol=1e-5)
    for t in range(6):
        np.testing.assert_allclose(frames[t, 0, :, :2], (coco(pose_a(t)) - centre) / torso,
                                   atol=1e-4)
    # the same clip 300 px to the right normalises to the same numbers
    moved, _ = read_openpose_clip(write_clip(tmp_path / "m", shift=300.0))
    np.testing.assert_allclose(moved, frames, atol=1e-4)


def test_image_normalisation(tmp_path: Path) -> None:
    frames, _ = read_openpose_clip(write_clip(tmp_path / "c"), normalize="image",
                                   image_size=(640, 480))
    np.testing.assert_allclose(frames[0, 0, :, :2], coco(pose_a(0)) / [640, 480], atol=1e-5)
    with pytest.raises(ConfigError, match="image_size"):
        read_openpose_clip(tmp_path / "c", normalize="image")


def test_tracking_ignores_list_order_and_merges_fragments() -> None:
    a, b = pose_a(0), pose_b(0)
    whole = np.column_stack([a, np.full(25, 0.9)]).astype(np.float32)
    small = np.column_stack([b, np.full(25, 0.9)]).astype(np.float32)
    arm, legs = whole.copy(), whole.copy()
    arm[8:, 2] = 0  # the head, arms and shoulders ...
    legs[:8, 2] = 0  # ... and the hips and legs, detected as two "people"
    frames = [np.stack([whole, small]), np.stack([small, legs, arm]), np.stack([whole])]
    tracks, merged = track_people(frames)
    assert tracks.tolist() == [[0, 1], [1, 0], [0, -1]]
    np.testing.assert_array_equal(merged[1][1], whole)  # the arm joined the legs
    assert (merged[1][2][:, 2] == 0).all()
    assert frames[1][2][0, 2] == pytest.approx(0.9)  # the input is not modified


def test_coco18_files_and_old_key(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    for n in range(3):
        xy = coco(pose_a(n))
        (d / f"c_{n:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.0, "people": [{"pose_keypoints": keypoints(xy)}]}))
    frames, info = read_openpose_clip(d, normalize="none")
    assert info.source_layout == "coco18" and frames.shape == (3, 1, 18, 3)
    np.testing.assert_allclose(frames[2, 0, :, :2], coco(pose_a(2)), atol=1e-3)
    with pytest.raises(ConfigError, match="cannot be read as layout 'body25'"):
        read_openpose_clip(d, layout="body25")


@pytest.mark.parametrize(("text", "message", "line"), [
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "has 3 values; expected 75", None),
    ('{"people": [{"pose_keypoints_2d": [' + ",".join(["1"] * 74) + ', "x"]}]}',
     r"pose_keypoints_2d\[74\] is 'x'", None),
    ('{"version": 1.3,\n "people": [}', "not valid JSON", 2),
    ('{"version": 1.3}', "'people' list", None),
    ('{"people": [{"face_keypoints_2d": []}]}', "no 'pose_keypoints_2d'", None),
])
def test_malformed_frame_files(tmp_path: Path, text: str, message: str, line: int | None) -> None:
    p = tmp_path / "c_000000000007_keypoints.json"
    p.write_text(text)
    with pytest.raises(DataFormatError, match=message) as e:
        read_keypoints_file(p)
    assert e.value.path == str(p) and e.value.line == line


def test_mixed_models_in_one_clip(tmp_path: Path) -> None:
    d = write_clip(tmp_path / "c")
    (d / "walk_01_000000000009_keypoints.json").write_text(
        frame_json([keypoints(coco(pose_a(9)))]))
    with pytest.raises(DataFormatError, match="one clip must come from one model") as e:
        read_openpose_clip(d)
    assert e.value.path.endswith("walk_01_000000000009_keypoints.json")


def test_clip_discovery(tmp_path: Path) -> None:
    write_clip(tmp_path / "folder_clip", clip="anything")
    write_clip(tmp_path, clip="top_a")
    write_clip(tmp_path, clip="top_b")
    clips = find_clips(tmp_path)
    assert sorted(clips) == ["folder_clip", "top_a", "top_b"]
    assert all(len(v) == 5 for v in clips.values())
    write_clip(tmp_path / "folder_clip", clip="other")
    with pytest.raises(DataFormatError, match="several clips"):
        find_clips(tmp_path)


def write_dataset(root: Path, n_subjects: int = 5) -> Path:
    """Clips ``s{subject}_{action}`` as subfolders and a labels CSV (CRLF, extra column)."""
    rows = ["clip,label,subject,notes"]
    for s in range(1, n_subjects + 1):
        for k, action in enumerate(("walk", "wave")):
            name = f"s{s}_{action}"
            write_clip(root / name, clip=f"video{s}{k}", shift=10.0 * s)
            rows.append(f"{name},{action},{s},")
    (root / "labels.csv").write_text("\r\n".join(rows) + "\r\n")
    return root


def test_source(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "clips")
    ds = load_dataset("openpose", data_dir=root, length=8, test_subjects=[2, 5])
    assert isinstance(ds, WindowedDataset) and ds.classes == ["walk", "wave"]
    assert ds.skeleton is not None and ds.skeleton.layout == "coco18"
    assert ds.skeleton.dim_names == ("x", "y", "confidence") and ds.skeleton.bodies == 1
    assert ds.channels[:3] == ["b0.nose.x", "b0.nose.y", "b0.nose.confidence"]
    train, test = ds.splits["train"], ds.splits["test"]
    assert train.subject_ids() == [1, 3, 4] and test.subject_ids() == [2, 5]
    assert train.X.shape == (6, 8, 54) and sorted(train.y.tolist()) == [0, 0, 0, 1, 1, 1]
    seq, _ = read_openpose_clip(root / "s1_walk")
    from harkit.data.skeleton import sequences_to_windows

    expected = sequences_to_windows([seq], 8)[0]
    got = train.X[(train.subjects == 1) & (train.y == 0)][0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert unflatten(got, ds.skeleton).shape == (8, 1, 18, 3)
    # subject-wise protocols: the windows carry the CSV's subject ids
    assert ds.resplit([3]).splits["test"].subject_ids() == [3]
    default = load_dataset("openpose", data_dir=root, length=8, policy="pad", bodies=2)
    assert isinstance(default, WindowedDataset)
    assert len(default.splits["test"].subject_ids()) == 1  # 20% of 5 subjects
    assert default.splits["train"].X.shape[1:] == (8, 2 * 18 * 3 + 1)


@pytest.mark.parametrize(("csv_text", "message", "line"), [
    ("clip,action,subject\ns1_walk,walk,1\n", r"no column\(s\) \['label'\]", 1),
    ("clip,label,subject\ns1_walk,walk,1\ns1_wave,wave,\n", "empty subject", 3),
    ("clip,label,subject\ns1_walk,walk,1\ns1_walk,wave,1\n", "listed twice", 3),
    ("clip,label,subject\ns1_walk,walk,1\ns9_jump,wave,1\n", "'s9_jump' is not in", 3),
    ("clip,label,subject\ns1_walk,walk,1\n", "need at least 2 classes", None),
])
def test_labels_csv_errors(tmp_path: Path, csv_text: str, message: str, line: int | None) -> None:
    root = write_dataset(tmp_path / "clips", n_subjects=2)
    bad = tmp_path / "bad.csv"
    bad.write_text(csv_text)
    with pytest.raises(DataFormatError, match=message) as e:
        load_dataset("openpose", data_dir=root, labels=str(bad), use_cache=False)
    assert e.value.path == str(bad) and e.value.line == line


def test_options_checked(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "clips", n_subjects=2)
    with pytest.raises(ConfigError, match="fill"):
        load_dataset("openpose", data_dir=root, fill="spline")
    with pytest.raises(ConfigError, match="test_subjects"):
        load_dataset("openpose", data_dir=root, test_subjects=[7])
    with pytest.raises(ConfigError, match="give the folder"):
        load_dataset("openpose")
    rows = read_labels_csv(root / "labels.csv")
    assert [(r.clip, r.subject, r.line) for r in rows][:2] == [("s1_walk", "1", 2),
                                                                ("s1_wave", "1", 3)]


# --- the real OpenPose 1.3 output in ../shared/data/openpose-samples ---

def _real_clips(real_data_dir: Path) -> list[Path]:
    root = real_data_dir / "openpose-samples"
    if not root.exists():
        pytest.skip("openpose-samples not in the real data folder")
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)


def test_real_clips(real_data_dir: Path) -> None:
    clips = _real_clips(real_data_dir)
    assert len(clips) == 12
    neck = get_layout("coco18").index("neck")
    for folder in clips:
        numbers = sorted(int(p.name.split("_")[-2]) for p in folder.glob("*_keypoints.json"))
        frames, info = read_openpose_clip(folder, normalize="none", fill="zero")
        assert len(frames) == numbers[-1] - numbers[0] + 1, folder.name  # skipped ones inserted
        assert info.source_layout == "body25" and np.isfinite(frames).all()
        body = frames[:, 0]
        seen = info.detected[:, 0]
        # the actor is tracked on (almost) every frame where anybody was detected
        assert seen.sum() >= 0.95 * (info.people > 0).sum(), folder.name
        height = float(frames[..., 1].max())
        for t in np.flatnonzero(seen[:-1] & seen[1:]).tolist():
            both = (body[t, :, 2] > 0) & (body[t + 1, :, 2] > 0)
            if both.any():  # no jump to another person between consecutive frames
                step = np.linalg.norm(body[t + 1, both, :2] - body[t, both, :2], axis=1)
                assert step.mean() < 0.1 * height, (folder.name, t)
            if both[neck]:
                jump = np.linalg.norm(body[t + 1, neck, :2] - body[t, neck, :2])
                assert jump < 0.1 * height, (folder.name, t)
        filled, _ = read_openpose_clip(folder)  # default: normalised, gaps interpolated
        assert np.isfinite(filled).all() and np.abs(filled[..., :2]).max() < 20


def test_real_clips_as_dataset(real_data_dir: Path, tmp_path: Path) -> None:
    clips = _real_clips(real_data_dir)
    rows = ["clip,label,subject"] + [f"{p.name},{'ab'[i % 2]},{i // 2 + 1}"
                                     for i, p in enumerate(clips)]
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    ds = load_dataset("openpose", data_dir=clips[0].parent, labels=str(labels), length=32,
                      test_subjects=[6])
    assert isinstance(ds, WindowedDataset) and ds.classes == ["a", "b"]
    assert len(ds.splits["train"]) == 10 and ds.splits["test"].subject_ids() == [6]
    assert ds.splits["train"].X.shape[1:] == (32, 54) and np.isfinite(ds.splits["train"].X).all()
    again = load_dataset("openpose", data_dir=clips[0].parent, labels=str(labels), length=32,
                         test_subjects=[6])  # from the cache
    assert isinstance(again, WindowedDataset)
    np.testing.assert_array_equal(again.splits["test"].X, ds.splits["test"].X)
