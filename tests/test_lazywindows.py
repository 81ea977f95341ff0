"""Lazily gathered windows (WindowView), the window cache, and data.window_cache in the API."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import harkit
from harkit.api import prepare_data, prepare_refit_data
from harkit.config import ExperimentConfig, TrainConfig, apply_overrides
from harkit.data import lazywindows
from harkit.data.lazywindows import (
    LazyWindowSet,
    WindowCache,
    WindowView,
    fit_normalizer,
    lazy_recording_windows,
    window_cache_dir,
)
from harkit.data.recording import Recording, RecordingDataset
from harkit.data.transforms import MinMaxScaler, Standardizer
from harkit.errors import ConfigError, DataFormatError
from harkit.models import create_model
from harkit.training.trainer import Trainer, predict_logits

from .test_csv_source import write_logs

CLASSES = ["a", "b", "c"]


def _dataset(n_ch: int = 3, seed: int = 0, n_per_subject: int = 2, length: int = 400,
             window: int = 32, hop: int = 16) -> RecordingDataset:
    """Five subjects, each a few recordings of labelled segments with unlabelled gaps."""
    rng = np.random.default_rng(seed)
    recs = []
    for subject in range(1, 6):
        for r in range(n_per_subject):
            n = length + 37 * r + 11 * subject  # lengths that are no multiple of the hop
            labels = np.repeat(rng.integers(0, 3, n // 50 + 1), 50)[:n]
            labels[rng.random(n) < 0.05] = -1
            signal = (rng.standard_normal((n, n_ch)) * (1 + np.arange(n_ch))
                      + labels[:, None] + 5.0).astype(np.float32)
            recs.append(Recording(signal, labels.astype(np.int64), subject, f"s{subject}r{r}"))
    return RecordingDataset("synthetic", [f"ch{i}" for i in range(n_ch)], CLASSES, 50.0, recs,
                            window, hop, test_subjects=[5])


def test_views_gather_the_windows_of_explicit_windowing() -> None:
    ds = _dataset()
    eager = ds.to_windows(label_policy="centre", min_labeled=0.8)
    lazy = lazy_recording_windows(ds, "memory", label_policy="centre", min_labeled=0.8)
    assert set(lazy.splits) == set(eager.splits) == {"train", "test"}
    for split, ws in eager.splits.items():
        lw = lazy.splits[split]
        assert isinstance(lw, LazyWindowSet)
        view = lw.view
        assert view.shape == ws.X.shape and len(view) == len(ws) == len(lw)
        np.testing.assert_array_equal(lw.y, ws.y)
        np.testing.assert_array_equal(lw.subjects, ws.subjects)
        np.testing.assert_array_equal(lw.X, ws.X)
        X = torch.from_numpy(ws.X)
        idx = torch.randperm(len(ws), generator=torch.Generator().manual_seed(0))[:17]
        assert view[idx].dtype == torch.float32 and view[idx].is_contiguous()
        for key in (idx, idx.numpy(), slice(3, 20), slice(None, None, 7), slice(-5, None),
                    torch.tensor([], dtype=torch.int64), X[:, 0, 0] > X[:, 0, 0].median()):
            assert torch.equal(view[key], X[key]), key  # type: ignore[index]
        assert torch.equal(view[4], X[4]) and torch.equal(view[-1], X[-1])
        with pytest.raises(IndexError):
            view[len(ws)]
    assert lazy.window_len == eager.window_len and lazy.hop == eager.hop


def test_channels_and_the_time_axis_survive() -> None:
    ramp = np.arange(300, dtype=np.float32)
    recs = [Recording(np.stack([ramp, -ramp, 10 * ramp], 1), np.zeros(300, np.int64), s,
                      f"r{s}") for s in (1, 2)]
    ds = RecordingDataset("ramp", ["x", "y", "z"], ["only", "other"], 50.0, recs, 64, 20,
                          test_subjects=[2])
    view = lazy_recording_windows(ds, "memory", channels=["z", "x"]).splits["train"]
    assert isinstance(view, LazyWindowSet)
    w = view.view[torch.tensor([2])][0]  # (T, C): window 2 starts at sample 40
    np.testing.assert_array_equal(w[:, 0].numpy(), 10 * np.arange(40, 104))
    np.testing.assert_array_equal(w[:, 1].numpy(), np.arange(40, 104))
    with pytest.raises(ConfigError, match=r"unknown channel\(s\) \['w'\]"):
        lazy_recording_windows(ds, "memory", channels=["w"])
    with pytest.raises(ConfigError, match=r"data\.window_cache='disk'"):
        lazy_recording_windows(ds, "disk")


@pytest.mark.parametrize("n_ch", [1, 4])
def test_normaliser_fitted_on_a_view_equals_the_materialised_fit(
        n_ch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset(n_ch=n_ch, window=40, hop=3)  # heavy overlap: samples counted many times
    monkeypatch.setattr(lazywindows, "_CHUNK_VALUES", 40 * n_ch * 37)  # odd-sized chunks
    view = lazy_recording_windows(ds, "memory").splits["train"]
    assert isinstance(view, LazyWindowSet)
    X = ds.to_windows(40, 3).splits["train"].X
    for kind in (Standardizer, MinMaxScaler):
        eager = kind().fit(X)
        lazy = fit_normalizer(kind(), view.view)
        assert isinstance(lazy, kind) and lazy.mean is not None and lazy.std is not None
        if n_ch > 1 or kind is MinMaxScaler:  # numpy sums a single column pairwise
            np.testing.assert_array_equal(lazy.mean, eager.mean)
            np.testing.assert_array_equal(lazy.std, eager.std)
        np.testing.assert_allclose(lazy.mean, eager.mean, rtol=1e-6)
        np.testing.assert_allclose(lazy.std, eager.std, rtol=1e-6)
        normed = view.normalized(eager).view
        np.testing.assert_array_equal(normed[torch.arange(len(X))].numpy(),
                                      eager.transform(X))


def _train(X: torch.Tensor | WindowView, y: torch.Tensor, Xv: torch.Tensor | WindowView,
           yv: torch.Tensor) -> Trainer:
    torch.manual_seed(0)
    model = create_model("harcnn", n_channels=3, n_classes=3, window_len=32, variant="tiny")
    cfg = TrainConfig(epochs=2, batch_size=16, seed=3, num_threads=1)
    from harkit.data.augment import Augmenter

    aug = Augmenter(cfg.augment, None, None, [(0, 1, 2)], None)
    trainer = Trainer(model, cfg, (X, y), (Xv, yv), augment=aug)  # type: ignore[arg-type]
    trainer.fit(progress=False)
    return trainer


def test_training_on_a_view_is_bit_identical(tmp_path: Path) -> None:
    ds = _dataset()
    eager = ds.to_windows()
    norm = Standardizer().fit(eager.splits["train"].X)
    tensors = {k: (torch.from_numpy(norm.transform(ws.X)), torch.from_numpy(ws.y))
               for k, ws in eager.splits.items()}
    ref = _train(*tensors["train"], *tensors["test"])
    for mode in ("memory", "mmap"):
        lazy = lazy_recording_windows(ds, mode, directory=tmp_path)
        views = {}
        for k, lw in lazy.splits.items():
            assert isinstance(lw, LazyWindowSet)
            views[k] = lw.view.normalized(norm)
        assert views["train"].memory_mapped == (mode == "mmap")
        got = _train(views["train"], tensors["train"][1], views["test"], tensors["test"][1])
        for (name, a), b in zip(ref.model.state_dict().items(),
                                got.model.state_dict().values(), strict=True):
            assert torch.equal(a, b), (mode, name)
        assert got.history == [{**h, "seconds": g["seconds"]}
                               for h, g in zip(ref.history, got.history, strict=True)]
        assert torch.equal(predict_logits(got.model, views["test"], batch_size=7),
                           predict_logits(ref.model, tensors["test"][0], batch_size=7))


def test_mmap_view_never_materialises_overlapping_windows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hop 1: the windows are T times the samples; a view and a training epoch stay O(S*C)."""
    monkeypatch.setattr(lazywindows, "_CHUNK_VALUES", 1 << 15)  # the normaliser's chunks
    ds = _dataset(n_ch=3, n_per_subject=1, length=3000, window=128, hop=1)
    lazy = lazy_recording_windows(ds, "mmap", directory=tmp_path)
    lw = lazy.splits["train"]
    assert isinstance(lw, LazyWindowSet)
    view = lw.view
    n, t, c = view.shape
    windowed = n * t * c * 4
    raw = sum(len(r) for r in ds.recordings) * c * 4
    assert view.memory_mapped and windowed > 50 * raw
    assert view.nbytes < windowed / 20  # samples + three int64 per window
    norm = fit_normalizer(Standardizer(), view)
    model = create_model("harcnn", n_channels=c, n_classes=3, window_len=t, variant="tiny")
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=256, num_threads=1),
                      (view.normalized(norm), torch.from_numpy(view.y)),  # type: ignore[arg-type]
                      None)
    trainer.steps_per_epoch = 4  # a few batches drawn from anywhere in the file
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        trainer.fit(progress=False)
        fit_normalizer(Standardizer(), view)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert trainer.epoch == 1
    assert peak < windowed / 10, (peak, windowed)


def _cache_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


def test_an_interrupted_cache_write_is_never_trusted(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset()
    cache = WindowCache(tmp_path / "entry")

    def failing() -> Iterator[np.ndarray]:
        yield ds.recordings[0].signal
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.write(failing(), {}, (10_000, 3), "k", {"window": 32})
    assert _cache_files(tmp_path) == []  # no data, no temporary file, no header

    # a crash after the samples and index but before the header: not trusted, rebuilt
    def no_header(path: object, text: str) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(lazywindows, "atomic_write_text", no_header)
    with pytest.raises(RuntimeError, match="killed"):
        lazy_recording_windows(ds, "mmap", directory=tmp_path)
    assert not any(n.endswith(".json") for n in _cache_files(tmp_path))
    monkeypatch.undo()
    with open(next(tmp_path.glob("*.f32")), "r+b") as f:  # the untrusted data is garbage
        f.write(b"\xff" * 64)
    lazy = lazy_recording_windows(ds, "mmap", directory=tmp_path)
    eager = ds.to_windows()
    lw = lazy.splits["train"]
    assert isinstance(lw, LazyWindowSet) and lw.view.memory_mapped
    np.testing.assert_array_equal(lw.X, eager.splits["train"].X)
    assert [n.rsplit(".", 1)[-1] for n in _cache_files(tmp_path)] == ["f32", "npz", "json"]


def test_the_cache_is_keyed_by_source_and_windowing(tmp_path: Path) -> None:
    ds = _dataset()
    lazy_recording_windows(ds, "mmap", directory=tmp_path)
    lazy_recording_windows(ds, "mmap", directory=tmp_path)  # reused
    assert len(list(tmp_path.glob("*.json"))) == 1
    again = lazy_recording_windows(ds, "mmap", hop=8, directory=tmp_path)  # rebuilt
    assert len(list(tmp_path.glob("*.json"))) == 2
    lw = again.splits["train"]
    assert isinstance(lw, LazyWindowSet)
    np.testing.assert_array_equal(lw.X, ds.to_windows(hop=8).splits["train"].X)
    lazy_recording_windows(ds, "mmap", min_purity=1.0, directory=tmp_path)
    ds.recordings[3].signal[5, 1] += 1.0  # a changed source
    lazy_recording_windows(ds, "mmap", directory=tmp_path)
    headers = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert len(headers) == 4 and len({h["key"] for h in headers}) == 4
    h = next(h for h in headers if h["params"]["hop"] == 8)
    assert h["dtype"] == "float32" and h["shape"] == [sum(len(r) for r in ds.recordings), 3]


def test_a_damaged_cache_is_an_error_naming_the_file(tmp_path: Path) -> None:
    ds = _dataset()
    lazy_recording_windows(ds, "mmap", directory=tmp_path)
    data = next(tmp_path.glob("*.f32"))
    header = next(tmp_path.glob("*.json"))
    blob = data.read_bytes()
    data.write_bytes(blob[:-12])  # truncated
    with pytest.raises(DataFormatError, match=rf"{data.name}: window cache is truncated"):
        lazy_recording_windows(ds, "mmap", directory=tmp_path)
    data.write_bytes(blob[:100] + bytes(4) + blob[104:])  # same size, other content
    with pytest.raises(DataFormatError, match=rf"{data.name}: window cache is damaged"):
        lazy_recording_windows(ds, "mmap", directory=tmp_path)
    data.write_bytes(blob)
    header.write_text(header.read_text()[:40])
    with pytest.raises(DataFormatError, match=rf"{header.name}: damaged window cache header"):
        lazy_recording_windows(ds, "mmap", directory=tmp_path)


# -- the API: data.window_cache -----------------------------------------------------------------

@pytest.fixture
def csv_cfg(tmp_path: Path) -> list[str]:
    root = write_logs(tmp_path / "logs", n_subjects=5, seconds=12.0)
    return ["data.dataset=csv", f"data.data_dir={root}", "data.test_subjects=[5]",
            "data.n_val_subjects=1", "data.window=64", "data.hop=8",
            f"run_root={tmp_path / 'runs'}", "train.epochs=2", "train.batch_size=32",
            "model.width=4", "model.hidden=8", "train.num_threads=1"]


def test_prepare_data_with_a_window_cache_equals_materialised(csv_cfg: list[str]) -> None:
    eager = prepare_data(apply_overrides(ExperimentConfig(), csv_cfg))
    for mode in ("memory", "mmap"):
        cfg = apply_overrides(ExperimentConfig(), [*csv_cfg, f"data.window_cache={mode}"])
        lazy = prepare_data(cfg)
        assert lazy.normalizer.state_dict() == eager.normalizer.state_dict()
        assert lazy.preprocessing() == eager.preprocessing()
        assert lazy.test is not None and eager.test is not None
        for a, b in ((lazy.train, eager.train), (lazy.val, eager.val), (lazy.test, eager.test)):
            assert isinstance(a, LazyWindowSet)
            assert a.view.memory_mapped == (mode == "mmap")
            np.testing.assert_array_equal(a.view[torch.arange(len(b))].numpy(), b.X)
            np.testing.assert_array_equal(a.y, b.y)
        refit = prepare_refit_data(cfg, dataset=lazy.dataset)
        assert isinstance(refit.train, LazyWindowSet)
        np.testing.assert_array_equal(refit.train.X, prepare_refit_data(
            apply_overrides(ExperimentConfig(), csv_cfg)).train.X)
    assert any(window_cache_dir().glob("csv-*.json"))  # beside the parsed-data cache
    with pytest.raises(ConfigError, match=r"data\.window_cache='ram'"):
        prepare_data(apply_overrides(ExperimentConfig(), [*csv_cfg, "data.window_cache=ram"]))


def test_train_from_the_memmap_gives_the_same_run(csv_cfg: list[str]) -> None:
    csv_cfg = [*csv_cfg, "train.refit=false"]  # the refit data path is tested above
    eager = harkit.train(overrides=[*csv_cfg, "name=eager"], progress=False)
    lazy = harkit.train(overrides=[*csv_cfg, "name=mmap", "data.window_cache=mmap"],
                        progress=False)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in eager.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in lazy.history] == strip
    assert eager.test is not None and lazy.test is not None
    assert lazy.test.accuracy == eager.test.accuracy and lazy.test.macro_f1 == eager.test.macro_f1


def test_fixed_window_datasets_too(tiny_cfg: list[str]) -> None:
    eager = prepare_data(apply_overrides(ExperimentConfig(), tiny_cfg))
    lazy = prepare_data(apply_overrides(ExperimentConfig(), [*tiny_cfg,
                                                             "data.window_cache=mmap"]))
    assert isinstance(lazy.train, LazyWindowSet) and lazy.train.view.memory_mapped
    assert lazy.normalizer.state_dict() == eager.normalizer.state_dict()
    np.testing.assert_array_equal(lazy.train.X, eager.train.X)
    np.testing.assert_array_equal(lazy.val.subjects, eager.val.subjects)


def test_random_kernel_models_fit_on_the_whole_training_tensor(tiny_cfg: list[str]) -> None:
    """minirocket's fit_init needs every training window at once: it gets them materialised."""
    cfg = [*(o for o in tiny_cfg if not o.startswith("model.")), "model.name=minirocket",
           "model.num_features=336", "model.max_dilations=4", "train.refit=false"]
    eager = harkit.train(overrides=[*cfg, "name=eager"], progress=False)
    lazy = harkit.train(overrides=[*cfg, "name=lazy", "data.window_cache=memory"],
                        progress=False)
    assert eager.test is not None and lazy.test is not None
    assert lazy.test.accuracy == eager.test.accuracy and lazy.history[0]["val_f1"] == \
        eager.history[0]["val_f1"]
