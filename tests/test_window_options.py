"""Window length / hop in seconds or samples, overlap, resampling, and subject resplits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harkit.api import _load
from harkit.config import ExperimentConfig, apply_overrides
from harkit.data.resample import resample_signal
from harkit.errors import ConfigError
from tests.test_hapt import write_hapt_fixture


def _cfg(data_dir: Path, *overrides: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(), [f"data.data_dir={data_dir}", *overrides])


@pytest.fixture
def hapt_dir(tmp_path: Path) -> Path:
    write_hapt_fixture(tmp_path / "hapt")
    return tmp_path


@pytest.mark.parametrize(("overrides", "window", "hop"), [
    ([], 128, 64),  # the dataset's customary window
    (["data.window=2s"], 100, 50),  # keeps the dataset's 50 % overlap
    (["data.window=1.28s", "data.hop=320ms"], 64, 16),
    (["data.window=100", "data.overlap=0.75"], 100, 25),
    (["data.window=2s", "data.sampling_rate=25"], 50, 25),
    (["data.sampling_rate=25"], 64, 32),  # the customary window keeps its 2.56 s
])
def test_window_in_seconds_or_samples(hapt_dir: Path, overrides: list[str], window: int,
                                      hop: int) -> None:
    ds = _load(_cfg(hapt_dir, "data.dataset=hapt", "data.test_subjects=[4]", *overrides))
    assert ds.window_len == window and ds.hop == hop
    assert ds.sampling_rate == (25.0 if any("sampling_rate" in o for o in overrides) else 50.0)


@pytest.mark.parametrize(("override", "message"), [
    ("data.window=2 seconds", "neither a sample count"),
    ("data.window=0.001s", "at least one sample"),
    ("data.overlap=1.0", "fraction in"),
])
def test_bad_window_settings_name_the_field(hapt_dir: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(_cfg(hapt_dir, "data.dataset=hapt", "data.test_subjects=[4]", override))
    with pytest.raises(ConfigError, match="not both"):
        _load(_cfg(hapt_dir, "data.dataset=hapt", "data.hop=10", "data.overlap=0.5"))


def test_resampling_is_anti_aliased() -> None:
    rate = 100.0
    t = np.arange(2000) / rate
    slow = np.sin(2 * np.pi * 2.0 * t)  # 2 Hz: kept at 30 Hz
    fast = np.sin(2 * np.pi * 40.0 * t)  # 40 Hz: above the new Nyquist (15 Hz), must vanish
    out = resample_signal(np.stack([slow + fast], 1), rate, 30.0)[:, 0]
    t30 = np.arange(len(out)) / 30.0
    inner = slice(30, -30)
    assert len(out) == 600
    # naive decimation would alias the 40 Hz tone to 10 Hz with full amplitude
    assert np.abs(out[inner] - np.sin(2 * np.pi * 2.0 * t30[inner])).max() < 0.05


def test_resampled_labels_follow_time(hapt_dir: Path) -> None:
    from harkit.data import load_dataset
    from harkit.data.recording import RecordingDataset

    ds = load_dataset("hapt", data_dir=hapt_dir, activities=12)
    assert isinstance(ds, RecordingDataset)
    half = ds.resample(25.0)
    r0, r1 = ds.recordings[0], half.recordings[0]
    assert len(r1) == 300 and r1.signal.shape[1] == 6
    # sample j at 25 Hz is at original sample 2j
    np.testing.assert_array_equal(r1.labels, r0.labels[::2])


def test_pre_windowed_dataset_resplit_by_subject(uci_fixture_dir: Path) -> None:
    base = _load(_cfg(uci_fixture_dir))
    assert base.splits["test"].subject_ids() == [7, 8]
    ds = _load(_cfg(uci_fixture_dir, "data.test_subjects=[1, 8]"))
    assert ds.splits["test"].subject_ids() == [1, 8]
    assert set(ds.splits["train"].subject_ids()) == {2, 3, 4, 5, 6, 7}
    n = sum(len(w) for w in base.splits.values())
    assert len(ds.splits["train"]) + len(ds.splits["test"]) == n
    with pytest.raises(ConfigError, match="fixed windows"):
        _load(_cfg(uci_fixture_dir, "data.window=2s"))
    with pytest.raises(ConfigError, match=r"\[99\] are not subjects"):
        _load(_cfg(uci_fixture_dir, "data.test_subjects=[99]"))


def test_minmax_normaliser_round_trips_through_the_checkpoint_state() -> None:
    from harkit.data.transforms import MinMaxScaler, make_normalizer, normalizer_from_state

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 16, 3)).astype(np.float32) * [1.0, 5.0, 0.1] + [0.0, 3.0, -1.0]
    mm = make_normalizer("minmax").fit(X)
    Z = mm.transform(X)
    assert isinstance(mm, MinMaxScaler)
    np.testing.assert_allclose(Z.reshape(-1, 3).min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(Z.reshape(-1, 3).max(0), 1.0, atol=1e-6)
    again = normalizer_from_state(mm.state_dict())
    assert isinstance(again, MinMaxScaler) and mm.state_dict()["kind"] == "minmax"
    np.testing.assert_array_equal(again.transform(X), Z)
