"""Windowing of continuous recordings: per recording, with label policies and drop rules."""

from __future__ import annotations

import numpy as np
import pytest

from harkit.data.recording import (
    UNLABELED,
    Recording,
    RecordingDataset,
    window_labels,
    window_recordings,
)
from harkit.data.skeleton import SkeletonInfo, unflatten
from harkit.errors import ConfigError


def _rec(labels: list[int], subject: int = 1, session: str = "r") -> Recording:
    n = len(labels)
    t = np.arange(n, dtype=np.float32)
    return Recording(np.stack([t, -t], 1), np.array(labels), subject, session)


def test_windows_never_cross_recordings_and_keep_time_order() -> None:
    a, b = _rec([0] * 10, 1, "a"), _rec([1] * 7, 2, "b")
    ws, rec_idx, starts = window_recordings([a, b], window=4, hop=2, n_classes=2)
    assert rec_idx.tolist() == [0, 0, 0, 0, 1, 1]
    assert starts.tolist() == [0, 2, 4, 6, 0, 2]
    for x, s in zip(ws.X, starts, strict=True):
        np.testing.assert_array_equal(x[:, 0], np.arange(s, s + 4))  # from its own recording
    assert ws.subjects.tolist() == [1, 1, 1, 1, 2, 2]
    assert ws.y.tolist() == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize(("policy", "expected"), [("majority", [0, 1]), ("last", [1, 1]),
                                                  ("centre", [0, 1])])
def test_label_policies(policy: str, expected: list[int]) -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    y, frac, purity = window_labels(labels, np.array([0, 4]), 4, policy, 2)
    assert y.tolist() == expected and frac.tolist() == [1.0, 1.0]
    assert purity.tolist() == [0.75, 1.0]


def test_drop_rules_for_unlabelled_and_mixed_windows() -> None:
    labels = [0] * 4 + [UNLABELED] * 3 + [1] + [0, 0, 1, 1]
    rec = _rec(labels)
    ws, _, starts = window_recordings([rec], 4, 4, 2, min_labeled=0.5)
    assert starts.tolist() == [0, 8] and ws.y.tolist() == [0, 0]  # 4..8 is 3/4 unlabelled
    _, _, starts = window_recordings([rec], 4, 4, 2, min_labeled=0.0, min_purity=1.0)
    assert starts.tolist() == [0, 4]  # window 8..12 mixes classes; 4..8 has 1 labelled sample
    with pytest.raises(ConfigError):
        window_labels(np.zeros(4, int), np.array([0]), 4, "first", 2)
    empty, _, _ = window_recordings([_rec([UNLABELED] * 8)], 4, 4, 2)
    assert empty.X.shape == (0, 4, 2)


def _skeleton_recordings() -> tuple[list[Recording], SkeletonInfo]:
    """Two subjects' continuous natops8 skeletons (8 joints x 3 = 24 channels); channel c of
    frame t holds 100 * t + c, so a window shows where its frames came from."""
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    recs = []
    for subject in (1, 2):
        t = np.arange(40, dtype=np.float32)[:, None]
        signal = 100 * t + np.arange(info.n_channels, dtype=np.float32)
        recs.append(Recording(signal, np.repeat([0, 1], 20), subject, f"s{subject}"))
    return recs, info


def test_skeleton_info_carries_into_windows_and_through_resampling() -> None:
    recs, info = _skeleton_recordings()
    rd = RecordingDataset("skel", info.channel_names(), ["up", "down"], 20.0, recs, window=10,
                          hop=5, test_subjects=[2], skeleton=info)
    ws = rd.to_windows()
    assert ws.skeleton == info and ws.channels == info.channel_names()
    # (N, 10, 24) -> (N, 10, 1 body, 8 joints, 3): frame t of a window is one recorded frame
    frames = unflatten(ws.splits["train"].X, info)
    assert frames.shape[1:] == (10, 1, 8, 3)
    np.testing.assert_array_equal(frames[0, 3, 0, 2], [306.0, 307.0, 308.0])
    slower = rd.resample(10.0)
    assert slower.skeleton == info and slower.to_windows().skeleton == info
    sensor = RecordingDataset("plain", info.channel_names(), ["up", "down"], 20.0, recs, 10,
                              5, [2])
    assert sensor.to_windows().skeleton is None
    with pytest.raises(ValueError, match="not those of the skeleton"):
        RecordingDataset("skel", ["a", "b"], ["up", "down"], 20.0, recs, 10, 5, [2],
                         skeleton=info)
