"""Windowing, subject-wise splits, train-only normalisation, and an intact time axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.api import PreparedData, prepare_data
from harkit.config import ExperimentConfig, apply_overrides
from harkit.data import WindowSet
from harkit.data.splits import choose_val_subjects, leave_one_subject_out, subject_holdout
from harkit.data.transforms import Standardizer
from harkit.data.windowing import sliding_windows, window_starts
from harkit.errors import ConfigError


def test_sliding_windows_keep_time_order() -> None:
    ramp = np.arange(1000, dtype=np.float32)
    signal = np.stack([ramp, -ramp, ramp * 10], axis=1)  # (time, 3)
    w = sliding_windows(signal, 128, 64)
    starts = window_starts(len(signal), 128, 64)
    assert w.shape == (len(starts), 128, 3) == (14, 128, 3)
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(w[i, :, 0], np.arange(s, s + 128))
        np.testing.assert_array_equal(w[i, :, 1], -np.arange(s, s + 128))
        np.testing.assert_array_equal(w[i, :, 2], 10 * np.arange(s, s + 128))
    assert sliding_windows(signal[:100], 128, 64).shape == (0, 128, 3)
    with pytest.raises(ValueError):
        sliding_windows(ramp, 128, 64)


def _ws(subjects: list[int], per: int = 3) -> WindowSet:
    s = np.repeat(subjects, per)
    return WindowSet(np.zeros((len(s), 4, 2), np.float32), np.zeros(len(s), np.int64), s)


def test_subject_holdout_never_shares_subjects() -> None:
    ws = _ws([1, 3, 5, 6, 7, 8])
    val_ids = choose_val_subjects(ws.subject_ids(), 2, seed=3)
    train, val = subject_holdout(ws, val_ids)
    assert set(val.subject_ids()) == set(val_ids)
    assert not set(train.subject_ids()) & set(val.subject_ids())
    assert len(train) + len(val) == len(ws)
    assert choose_val_subjects(ws.subject_ids(), 2, seed=3) == val_ids
    with pytest.raises(ConfigError, match="not among the training subjects"):
        subject_holdout(ws, [2])
    with pytest.raises(ConfigError):
        choose_val_subjects(ws.subject_ids(), 6, seed=0)
    folds = list(leave_one_subject_out(ws))
    assert [f[0] for f in folds] == [1, 3, 5, 6, 7, 8]
    assert all(f[2].subject_ids() == [f[0]] and f[0] not in f[1].subject_ids() for f in folds)


def _prepared(fixture_dir: Path, *extra: str) -> PreparedData:
    cfg = apply_overrides(ExperimentConfig(), [f"data.data_dir={fixture_dir}",
                                               "data.n_val_subjects=2", *extra])
    return prepare_data(cfg)


def test_validation_from_training_subjects_and_train_only_normalisation(
        uci_fixture_dir: Path) -> None:
    from harkit.data import load_dataset

    data = _prepared(uci_fixture_dir)
    raw = load_dataset("uci-har", data_dir=uci_fixture_dir)
    test_subjects = set(raw.splits["test"].subject_ids())
    assert not set(data.val_subjects) & test_subjects
    assert set(data.val_subjects) <= set(raw.splits["train"].subject_ids())
    assert not set(data.train.subject_ids()) & set(data.val_subjects)
    # statistics come from the training part only, not validation or test windows
    train_mask = ~np.isin(raw.splits["train"].subjects, data.val_subjects)
    expected = Standardizer().fit(raw.splits["train"].X[train_mask])
    assert isinstance(data.normalizer, Standardizer)
    np.testing.assert_allclose(data.normalizer.mean, expected.mean, rtol=1e-6)  # type: ignore[arg-type]
    everything = Standardizer().fit(np.concatenate([raw.splits["train"].X, raw.splits["test"].X]))
    assert not np.allclose(data.normalizer.mean, everything.mean)  # type: ignore[arg-type]
    pre = data.preprocessing()
    assert pre["channels"][0] == "body_acc_x" and pre["classes"][-1] == "LAYING"
    assert pre["normalizer"]["kind"] == "standard" and len(pre["normalizer"]["mean"]) == 9


def test_named_val_subjects_and_channel_subset(uci_fixture_dir: Path) -> None:
    data = _prepared(uci_fixture_dir, "data.val_subjects=[1, 2]",
                     "data.channels=[total_acc_z, body_acc_x]")
    assert data.val_subjects == [1, 2] and data.val.subject_ids() == [1, 2]
    assert data.dataset.channels == ["total_acc_z", "body_acc_x"]
    assert data.train.X.shape[-1] == 2
    with pytest.raises(ConfigError, match="unknown channel"):
        _prepared(uci_fixture_dir, "data.channels=[nope]")


class _Probe(torch.nn.Module):
    """Records the windows the Trainer feeds to the model."""

    n_classes = 6

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 6)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.lin(x[:, -1, :1])


def test_time_axis_is_never_scrambled_through_the_pipeline() -> None:
    """Windows built from a ramp come out of normalisation and batching in time order."""
    from harkit.config import TrainConfig
    from harkit.training import Trainer

    n, t, c = 40, 128, 9
    ramp = np.arange(t, dtype=np.float32)[None, :, None] + 1000 * np.arange(n)[:, None, None]
    X = np.repeat(ramp, c, axis=2) * (1 + np.arange(c, dtype=np.float32))  # (N, T, C)
    norm = Standardizer().fit(X)
    Xn = norm.transform(X)
    probe = _Probe()
    cfg = TrainConfig(epochs=1, batch_size=16, scheduler="none")
    cfg.augment.scale = cfg.augment.jitter = cfg.augment.rotate_deg = 0.0
    y = torch.zeros(n, dtype=torch.int64)
    Trainer(probe, cfg, (torch.from_numpy(Xn), y), (torch.from_numpy(Xn[:4]), y[:4])).fit(
        progress=False)
    seen = torch.cat(probe.seen)
    assert seen.shape == (n, t, c)
    assert bool((seen.diff(dim=1) > 0).all()), "a window's samples are out of time order"
    # each batch row is exactly one original window (no mixing across windows or channels)
    back = seen.numpy() * norm.std + norm.mean
    starts = np.round(back[:, 0, 0]).astype(int)
    for row, s in zip(back, starts, strict=True):
        np.testing.assert_allclose(row[:, 0], X[s // 1000, :, 0], rtol=1e-4)
