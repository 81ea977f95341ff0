"""Skeleton plots: a strip of frames (PNG) and an animated GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harkit.data.skeleton import SkeletonInfo, sequences_to_windows, unflatten
from harkit.viz import animate_skeleton, plot_skeleton_frames, plot_skeleton_rows


def _seq(t: int, bodies: int, joints: int, dims: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 1, (1, bodies, joints, dims))
    wave = np.sin(np.linspace(0, 3, t))[:, None, None, None]
    return pose + 0.3 * wave


@pytest.mark.parametrize(("layout", "bodies", "dims", "names"), [
    ("coco18", 1, 2, None), ("coco18", 1, 3, ("x", "y", "c")), ("ntu25", 2, 3, None)])
def test_frames_strip_is_written(tmp_path: Path, layout: str, bodies: int, dims: int,
                                 names: tuple[str, ...] | None) -> None:
    joints = SkeletonInfo(layout).n_joints
    seq = _seq(30, bodies, joints, dims)
    seq[3, 0, 4] = 0  # a missed joint is skipped, not drawn at the origin
    path = plot_skeleton_frames(seq, layout, tmp_path / "f" / "strip.png", title="wave",
                                pred="clap", dim_names=names)
    assert path.exists() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 3 * im.height  # a strip of frames


def test_gif_has_one_frame_per_sequence_frame(tmp_path: Path) -> None:
    seq = _seq(12, 2, 25, 3)
    path = animate_skeleton(seq, "ntu25", tmp_path / "a.gif", pred="hugging", fps=5)
    assert path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 12
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_padded_frames_are_not_drawn(tmp_path: Path) -> None:
    info = SkeletonInfo("natops8", dims=3, valid_channel=True)
    w = sequences_to_windows([_seq(7, 1, 8, 3)], 10, "pad")  # (1, 10, 24 + 1)
    seq, valid = unflatten(w[0], info), w[0, :, -1]
    path = animate_skeleton(seq, "natops8", tmp_path / "v.gif", valid=valid)
    with Image.open(path) as im:
        assert im.n_frames == 7
    plot_skeleton_frames(seq, "natops8", tmp_path / "v.png", valid=valid, n_frames=20)


def test_bad_input_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="18 joints"):
        plot_skeleton_frames(np.zeros((4, 1, 17, 2)), "coco18", tmp_path / "x.png")
    with pytest.raises(ValueError, match="x and y"):
        plot_skeleton_frames(np.ones((4, 1, 18, 2)), "coco18", tmp_path / "x.png",
                             dim_names=("u", "v"))


def test_report_draws_the_first_window_of_each_class(tmp_path: Path) -> None:
    from harkit.viz.skeleton import example_windows, plot_skeleton_report

    info = SkeletonInfo("natops8", dims=3, valid_channel=True)
    lengths = [9, 12, 20, 15, 40, 7, 30, 11]
    windows = sequences_to_windows([_seq(n, 1, 8, 3) for n in lengths], 40, "pad")
    y_true = np.array([2, 0, 2, 1, 0, 3, 4, 5])
    y_pred = np.array([2, 1, 2, 1, 0, 3, 4, 5])
    assert example_windows(y_true, max_classes=3) == [1, 3, 0]
    classes = [f"c{i}" for i in range(6)]
    png, gif = plot_skeleton_report(windows, y_true, y_pred, info, classes, tmp_path,
                                    max_classes=3, gif_frames=10)
    assert (png.name, gif.name) == ("skeleton_examples.png", "skeleton_example.gif")
    with Image.open(png) as im:
        assert im.text["Description"].splitlines() == [
            "test window 1, true: c0 | predicted: c1", "test window 3, true: c1 | predicted: c1",
            "test window 0, true: c2 | predicted: c2"]
        assert im.height > 3 * im.width / 6  # three rows of six frames
    with Image.open(gif) as im:  # window 1: 12 valid frames, 10 of them drawn
        assert im.n_frames == 10
    with pytest.raises(ValueError, match="max_frames=0"):
        animate_skeleton(unflatten(windows[0], info), "natops8", tmp_path / "x.gif",
                         max_frames=0)
    with pytest.raises(ValueError, match="a title for each"):
        plot_skeleton_rows([unflatten(windows[0], info)], "natops8", tmp_path / "x.png", [])
