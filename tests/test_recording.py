"""Windowing of continuous recordings: per recording, with label policies and drop rules."""

from __future__ import annotations

import numpy as np
import pytest

from harkit.data.recording import UNLABELED, Recording, window_labels, window_recordings
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
