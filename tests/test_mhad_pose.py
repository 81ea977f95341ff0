"""The mhad-pose source: the Berkeley MHAD OpenPose release's X / Y text files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import get_layout
from harkit.data.sources.mhad_pose import CLASSES, overlap_runs, parse_rows, to_blocks
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

STEPS, STRIDE, VIDEO_FRAMES = 32, 6, 50  # 26 of 32 frames overlap, as in the release
# COCO-18 standing pose in pixels (nose, neck, r_shoulder, ...)
POSE = np.array([[100, 40], [100, 70], [80, 70], [70, 100], [65, 130], [120, 70], [130, 100],
                 [135, 130], [90, 140], [90, 180], [90, 220], [110, 140], [110, 180],
                 [110, 220], [95, 35], [105, 35], [90, 38], [110, 38]], dtype=np.float64)
R_WRIST = 4


@dataclass
class Release:
    """What the fixture wrote: per part, the true frames of each block and its ids."""

    root: Path
    blocks: dict[str, list[np.ndarray]] = field(default_factory=dict)  # (32, 18, 2), 0 = missing
    labels: dict[str, list[int]] = field(default_factory=dict)  # 1-based
    subject: dict[str, list[int]] = field(default_factory=dict)
    repetition: dict[str, list[int]] = field(default_factory=dict)
    video: dict[str, list[int]] = field(default_factory=dict)


def video(subject: int, action: int, rep: int) -> np.ndarray:
    """``(frames, 18, 2)``: an action-specific movement of the arms; the subject's place in
    the image; the ears undetected (0, 0) in some frames, the right wrist in one."""
    t = np.arange(VIDEO_FRAMES)[:, None]
    frames = np.repeat(POSE[None] + [20.0 * subject, 3.0 * rep], VIDEO_FRAMES, axis=0)
    frames[:, [3, 4, 6, 7], 1] += (10 * action * np.sin(0.3 * t + action))
    frames[:, :, 1] += 2.0 * (action == 1) * np.abs(np.sin(0.2 * t))  # jumping
    frames[(t[:, 0] + subject) % 7 == 0, 16:] = 0.0
    frames[20, R_WRIST] = 0.0
    return frames


def fmt(v: float) -> str:
    """As the release writes numbers: OpenPose's 3 decimals, an undetected 0 as ``0``."""
    return "0" if v == 0 else f"{round(float(v), 3)}"


def write_release(root: Path, subjects: tuple[int, ...] = (1, 2, 8, 9),
                  reps: dict[str, tuple[int, ...]] | None = None, sidecars: bool = False,
                  lower: bool = False) -> Release:
    """The release layout: X_{train,test}.txt (36 values a line), Y_{train,test}.txt (one
    1-based label a block), train and test separated by repetition."""
    reps = reps or {"train": (1, 2), "test": (5,)}
    rel = Release(root)
    root.mkdir(parents=True, exist_ok=True)
    vid = 0
    for part, part_reps in reps.items():
        lines, ys, subj, rep_ids, vids, blocks = [], [], [], [], [], []
        for s in subjects:
            for a in range(1, 7):
                for r in part_reps:
                    frames = video(s, a, r)
                    vid += 1
                    for start in range(0, VIDEO_FRAMES - STEPS + 1, STRIDE):
                        block = frames[start:start + STEPS]
                        lines += [",".join(fmt(v) for v in f.ravel()) for f in block]
                        ys.append(a)
                        subj.append(s)
                        rep_ids.append(r)
                        vids.append(vid)
                        blocks.append(np.round(block, 3))
        x, y = ("x", "y") if lower else ("X", "Y")
        (root / f"{x}_{part}.txt").write_text("\n".join(lines) + "\n")
        (root / f"{y}_{part}.txt").write_text("".join(f"{v}\n" for v in ys))
        if sidecars:
            (root / f"subject_{part}.txt").write_text("".join(f"{v}\n" for v in subj))
            (root / f"repetition_{part}.txt").write_text("".join(f"{v}\n" for v in rep_ids))
        rel.blocks[part], rel.labels[part], rel.subject[part] = blocks, ys, subj
        rel.repetition[part], rel.video[part] = rep_ids, vids
    return rel


def test_shipped_split_and_exact_values(tmp_path: Path) -> None:
    rel = write_release(tmp_path / "database")
    ds = load_dataset("mhad-pose", data_dir=tmp_path, normalize="none", fill="zero")
    assert isinstance(ds, WindowedDataset) and ds.classes == CLASSES
    assert ds.sampling_rate == 22.0 and ds.skeleton is not None
    assert ds.skeleton.layout == "coco18" and ds.skeleton.dim_names == ("x", "y", "confidence")
    per_video = (VIDEO_FRAMES - STEPS) // STRIDE + 1
    train, test = ds.splits["train"], ds.splits["test"]
    assert train.X.shape == (4 * 6 * 2 * per_video, STEPS, 54) and len(test) == 4 * 6 * per_video
    assert train.y.tolist() == [v - 1 for v in rel.labels["train"]]
    for part, ws in ds.splits.items():
        for i in (0, 5, len(ws) - 1):
            xyz = ws.X[i].reshape(STEPS, 18, 3)  # (T, 54) -> (T, joints, x/y/confidence)
            truth = rel.blocks[part][i]
            np.testing.assert_allclose(xyz[..., :2], truth, atol=1e-3)
            assert ((xyz[..., 2] == 1) == (truth != 0).any(axis=-1)).all()
    # no subject ids: the window subjects are the videos, found from the overlapping blocks
    for part, ws in ds.splits.items():
        ids, vids = ws.subjects, np.array(rel.video[part])
        assert len(np.unique(ids)) == len(np.unique(vids))
        for v in np.unique(vids):
            assert len(np.unique(ids[vids == v])) == 1
    assert not set(train.subject_ids()) & set(test.subject_ids())


def test_missing_joints_interpolated_and_body_normalised(tmp_path: Path) -> None:
    rel = write_release(tmp_path, subjects=(1, 2), reps={"train": (1,), "test": (2,)})
    raw = load_dataset("mhad-pose", data_dir=tmp_path, normalize="none")
    assert isinstance(raw, WindowedDataset)
    xyz = raw.splits["train"].X[0].reshape(STEPS, 18, 3)
    truth = rel.blocks["train"][0]
    assert truth[20, R_WRIST].tolist() == [0.0, 0.0] and xyz[20, R_WRIST, 2] == 0.0
    np.testing.assert_allclose(xyz[20, R_WRIST, :2], (truth[19, R_WRIST] + truth[21, R_WRIST]) / 2,
                               atol=1e-3)
    ds = load_dataset("mhad-pose", data_dir=tmp_path)  # default: body-normalised
    assert isinstance(ds, WindowedDataset)
    lay = get_layout("coco18")
    neck, hips = lay.index("neck"), [lay.index("r_hip"), lay.index("l_hip")]
    for ws in ds.splits.values():
        b = ws.X.reshape(len(ws), STEPS, 18, 3)
        np.testing.assert_allclose(b[:, :, neck, :2].mean(axis=1), 0.0, atol=1e-5)
        torso = np.linalg.norm(b[:, :, hips, :2].mean(axis=2) - b[:, :, neck, :2], axis=-1)
        np.testing.assert_allclose(np.median(torso, axis=1), 1.0, atol=1e-5)


def test_subject_and_repetition_splits_from_sidecars(tmp_path: Path) -> None:
    write_release(tmp_path, sidecars=True, lower=True)  # x_train.txt, as the README spells it
    ds = load_dataset("mhad-pose", data_dir=tmp_path)
    assert isinstance(ds, WindowedDataset)
    assert ds.splits["train"].subject_ids() == [1, 2] and ds.splits["test"].subject_ids() == [8, 9]
    assert "test subjects [8, 9]" in ds.description
    other = load_dataset("mhad-pose", data_dir=tmp_path, test_subjects=[2])
    assert isinstance(other, WindowedDataset)
    assert other.splits["test"].subject_ids() == [2]
    by_rep = load_dataset("mhad-pose", data_dir=tmp_path, split="repetition")
    assert isinstance(by_rep, WindowedDataset)
    per_video = (VIDEO_FRAMES - STEPS) // STRIDE + 1
    assert len(by_rep.splits["test"]) == 4 * 6 * per_video  # repetition 5 of every subject
    assert by_rep.splits["test"].subject_ids() == [1, 2, 8, 9]
    shipped = load_dataset("mhad-pose", data_dir=tmp_path, split="shipped")
    assert isinstance(shipped, WindowedDataset)
    assert len(shipped.splits["test"]) == len(by_rep.splits["test"])
    with pytest.raises(ConfigError, match="test_subjects"):
        load_dataset("mhad-pose", data_dir=tmp_path, test_subjects=[4])


def test_split_options_need_their_files(tmp_path: Path) -> None:
    write_release(tmp_path)
    with pytest.raises(ConfigError, match=r"subject_train\.txt"):
        load_dataset("mhad-pose", data_dir=tmp_path, split="subject")
    with pytest.raises(ConfigError, match=r"repetition_train\.txt"):
        load_dataset("mhad-pose", data_dir=tmp_path, split="repetition")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("mhad-pose", data_dir=tmp_path, split="random")


def _corrupt(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("file", "line", "text", "message"), [
    ("X_train.txt", 40, ",".join(["1.5"] * 35),
     r"expected 36 comma-separated numbers \(x, y of 18 joints\), found 35 values"),
    ("X_train.txt", 41, ",".join(["1.5"] * 35 + ["abc"]), "value 36 is 'abc'"),
    ("X_test.txt", 7, "", "found an empty line"),
    ("Y_train.txt", 3, "7", "label 7 outside 1..6"),
    ("Y_test.txt", 2, "one", "value 1 is 'one'"),
])
def test_malformed_lines(tmp_path: Path, file: str, line: int, text: str, message: str) -> None:
    write_release(tmp_path, subjects=(1,), reps={"train": (1,), "test": (2,)})
    _corrupt(tmp_path / file, line, text)
    with pytest.raises(DataFormatError, match=message) as e:
        load_dataset("mhad-pose", data_dir=tmp_path, use_cache=False)
    assert e.value.path == str(tmp_path / file) and e.value.line == line


def test_block_count_mismatches(tmp_path: Path) -> None:
    write_release(tmp_path, subjects=(1,), reps={"train": (1,), "test": (2,)}, sidecars=True)
    y = tmp_path / "Y_test.txt"
    n_blocks = len(y.read_text().splitlines())
    y.write_text(y.read_text() + "3\n")
    with pytest.raises(DataFormatError, match=f"{n_blocks + 1} labels for the {n_blocks} blocks") as e:
        load_dataset("mhad-pose", data_dir=tmp_path, use_cache=False)
    assert e.value.path == str(y) and e.value.line == n_blocks + 1
    with pytest.raises(DataFormatError, match="labels for the") as e:  # blocks of 16 lines
        load_dataset("mhad-pose", data_dir=tmp_path, n_steps=16, use_cache=False)
    x = tmp_path / "X_train.txt"
    x.write_text(x.read_text() + ",".join(["0"] * 36) + "\n")  # one line too many
    with pytest.raises(DataFormatError, match="not whole blocks of n_steps=32") as e:
        load_dataset("mhad-pose", data_dir=tmp_path, use_cache=False)
    assert e.value.path == str(x) and e.value.line == len(x.read_text().splitlines())


def test_sidecar_count_mismatch(tmp_path: Path) -> None:
    write_release(tmp_path, subjects=(1, 2), reps={"train": (1,), "test": (2,)}, sidecars=True)
    side = tmp_path / "subject_test.txt"
    side.write_text("\n".join(side.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=r"lines for the \d+ blocks of the test files") as e:
        load_dataset("mhad-pose", data_dir=tmp_path)
    assert e.value.path == str(side)


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"X_train\.txt"):
        load_dataset("mhad-pose", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        load_dataset("mhad-pose")


def test_helpers() -> None:
    assert parse_rows(b"0,1.5\n2,3\n\n", "x", 2).tolist() == [[0.0, 1.5], [2.0, 3.0]]
    with pytest.raises(DataFormatError, match="expected a finite number"):
        parse_rows(b"0,1\nnan,2\n", "x", 2)
    blocks, y = to_blocks(np.arange(4 * 36, dtype=np.float32).reshape(4, 36), np.array([6, 1]),
                          2, "X", "Y")
    assert blocks.shape == (2, 2, 18, 2) and y.tolist() == [5, 0]
    assert blocks[1, 0, 0].tolist() == [72.0, 73.0] and blocks[0, 1, 17].tolist() == [70.0, 71.0]
    # runs: overlap by any shift joins; a label change or all-zero overlap does not
    frames = np.arange(1.0, 41.0).reshape(40, 1, 1)
    zeros = np.zeros((8, 1, 1))
    b = np.stack([frames[0:8], frames[3:11], frames[3:11], frames[20:28], zeros, zeros])
    assert overlap_runs(b, np.array([1, 1, 2, 2, 2, 2])).tolist() == [0, 0, 1, 2, 3, 4]
