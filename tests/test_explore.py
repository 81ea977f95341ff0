"""harkit explore: the plots and numbers before training, on a fixed-window UCI-HAR fixture,
the continuous HAPT recordings and the MSR Action3D skeletons (padded, so of varying length)."""

from __future__ import annotations

import csv
import json
import re
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harkit.data import WindowedDataset, WindowSet, load_dataset
from harkit.data.recording import RecordingDataset
from harkit.errors import ConfigError
from harkit.explore import (
    ExploreResult,
    channel_stats,
    embed_features,
    embed_windows,
    explore,
    parse_options,
    subsample,
    window_features,
)
from tests.conftest import UCI_CLASSES, write_uci_fixture

PNGS = ["class_distribution.png", "lengths.png", "signals.png", "channel_stats.png",
        "embedding.png"]
FILES = {*PNGS, "channel_stats.csv", "embedding.csv", "summary.json"}
HAPT_TEST_SUBJECTS = [2, 4, 9, 10, 12, 13, 18, 20, 24]


def assert_png(path: Path, min_width: int = 500) -> None:
    """A real PNG, not tiny, with drawn content (many colours, not mostly blank)."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= min_width and im.height >= 300, im.size
        rgb = np.asarray(im.convert("RGB")).astype(np.uint32)
    colours = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    assert len(np.unique(colours)) > 50
    drawn = (rgb < 235).any(axis=2).mean()
    assert 0.02 < drawn < 0.95, drawn


def png_description(path: Path) -> str:
    with Image.open(path) as im:
        return str(im.info.get("Description", ""))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_outputs(result: ExploreResult) -> dict[str, Any]:
    """Every file is there, the PNGs are real figures, summary.json is the returned summary."""
    assert {p.name for p in result.files} == FILES
    assert all(p.parent == result.output and p.is_file() for p in result.files)
    assert result.files[-1].name == "summary.json"
    for name in PNGS:
        assert_png(result.output / name)
    summary = json.loads((result.output / "summary.json").read_text())
    assert summary["files"] == [p.name for p in result.files]
    assert summary["dataset"] == result.summary["dataset"]
    return dict(summary)


def check_channel_stats(path: Path, train_X: np.ndarray, channels: list[str]) -> None:
    rows = read_csv(path)
    assert [r["channel"] for r in rows] == channels
    flat = train_X.reshape(-1, train_X.shape[2]).astype(np.float64)  # (windows * time, C)
    for key, ref in (("mean", flat.mean(0)), ("std", flat.std(0)), ("min", flat.min(0)),
                     ("max", flat.max(0))):
        got = np.array([float(r[key]) for r in rows])
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12, err_msg=key)
    assert all(float(r["missing_fraction"]) == 0.0 for r in rows)


def check_counts(summary: dict[str, Any], ds: WindowedDataset) -> None:
    """Windows, subjects and class counts per split equal the dataset's own."""
    assert summary["classes"] == ds.classes and summary["channels"] == ds.channels
    assert summary["n_windows"] == sum(len(w) for w in ds.splits.values())
    assert set(summary["splits"]) == set(ds.splits)
    for name, ws in ds.splits.items():
        got = summary["splits"][name]
        assert got["n_windows"] == len(ws)
        assert got["subjects"] == ws.subject_ids()
        counts = np.bincount(ws.y, minlength=ds.n_classes)
        assert got["class_counts"] == dict(zip(ds.classes, counts.tolist(), strict=True))
    assert summary["window_len"] == ds.window_len
    assert summary["sampling_rate"] == ds.sampling_rate


def check_examples(summary: dict[str, Any], ds: WindowedDataset) -> None:
    """One example per class, from training, and each really is a window of its class."""
    examples = summary["examples"]
    present = sorted({int(c) for ws in ds.splits.values() for c in np.unique(ws.y)})
    assert [e["class"] for e in examples] == [ds.classes[c] for c in present][:12]
    for e in examples:
        ws = ds.splits[e["split"]]
        assert e["split"] == "train"
        assert ds.classes[int(ws.y[e["index"]])] == e["class"]
        assert int(ws.subjects[e["index"]]) == e["subject"]


# --- fixed windows: the UCI-HAR-format fixture --------------------------------------------------


def _uci_dir(root: Path, permute_seed: int | None = None) -> Path:
    """A data dir holding the UCI fixture; with ``permute_seed``, its labels shuffled within
    each split (same signals, same subjects)."""
    archive = write_uci_fixture(root / "uci-har")
    if permute_seed is not None:
        with zipfile.ZipFile(archive) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        rng = np.random.default_rng(permute_seed)
        for name in members:
            if re.search(r"/y_(train|test)\.txt$", name):
                labels = members[name].decode().split()
                members[name] = ("\n".join(rng.permutation(labels)) + "\n").encode()
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    return root


@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[ExploreResult, WindowedDataset, Path]]:
    data = _uci_dir(tmp_path_factory.mktemp("uci-data"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harkit-cache"))
        ds = load_dataset("uci-har", data_dir=data)
        result = explore("uci-har", data_dir=data, max_windows=100,
                         output=tmp_path_factory.mktemp("uci-out") / "explore")
    assert isinstance(ds, WindowedDataset)
    yield result, ds, data


def test_fixed_windows_files_and_summary(uci: tuple[ExploreResult, WindowedDataset, Path]
                                         ) -> None:
    result, ds, _ = uci
    summary = check_outputs(result)
    check_counts(summary, ds)
    assert summary["kind"] == "windows" and summary["continuous"] is False
    assert summary["splits"]["train"]["subjects"] == [1, 2, 3, 4, 5, 6]
    assert summary["splits"]["test"]["subjects"] == [7, 8]
    assert summary["classes"] == UCI_CLASSES and summary["n_channels"] == 9
    assert summary["window_len"] == 128 and summary["window_seconds"] == pytest.approx(2.56)
    assert "recordings" not in summary and "sequence_lengths" not in summary
    assert summary["embedding"]["method"] == "pca"
    assert summary["embedding"]["n_windows"] == 100  # 192 windows, subsampled
    check_examples(summary, ds)
    # the signal figure names every class, one row each (PNG Description field)
    rows = png_description(result.output / "signals.png").split("\n")
    assert [r.split(" (")[0] for r in rows] == UCI_CLASSES


def test_fixed_windows_channel_stats_are_training_only(
        uci: tuple[ExploreResult, WindowedDataset, Path]) -> None:
    result, ds, _ = uci
    assert result.summary["channel_stats_split"] == "train"
    check_channel_stats(result.output / "channel_stats.csv", ds.splits["train"].X, ds.channels)
    rows = read_csv(result.output / "channel_stats.csv")
    pooled = np.concatenate([ds.splits["train"].X, ds.splits["test"].X])
    assert not np.allclose([float(r["mean"]) for r in rows], pooled.mean(axis=(0, 1)))
    assert {r["unit"] for r in rows} == {"g", "rad/s"}


def test_embedding_csv_matches_dataset(uci: tuple[ExploreResult, WindowedDataset, Path]
                                       ) -> None:
    result, ds, _ = uci
    rows = read_csv(result.output / "embedding.csv")
    assert len(rows) == 100
    for r in rows:
        ws = ds.splits[r["split"]]
        i = int(r["index"])
        assert int(ws.subjects[i]) == int(r["subject"])
        assert ds.classes[int(ws.y[i])] == r["class"]
    # stratified by split and subject: 8 subjects of 24 windows each keep 12 or 13 each
    per_subject = np.bincount([int(r["subject"]) for r in rows])[1:]
    assert per_subject.min() >= 12 and per_subject.max() <= 13
    coords = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    assert coords.std(axis=0).min() > 0.1


def test_permuting_labels_leaves_the_embedding_unchanged(
        uci: tuple[ExploreResult, WindowedDataset, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: the same signals with shuffled labels give the same coordinates for the
    same windows (the labels pick neither the subsample nor the features)."""
    result, ds, _ = uci
    data = _uci_dir(tmp_path / "permuted", permute_seed=1)
    shuffled = load_dataset("uci-har", data_dir=data)
    assert isinstance(shuffled, WindowedDataset)
    np.testing.assert_array_equal(shuffled.splits["train"].X, ds.splits["train"].X)
    assert (shuffled.splits["train"].y != ds.splits["train"].y).mean() > 0.5
    monkeypatch.chdir(tmp_path)
    again = explore("uci-har", data_dir=data, max_windows=100)  # default output folder
    assert again.output == Path("explore") / "uci-har"
    assert (tmp_path / "explore" / "uci-har" / "summary.json").is_file()
    a = read_csv(result.output / "embedding.csv")
    b = read_csv(again.output / "embedding.csv")
    key = [(r["split"], r["index"], r["subject"]) for r in a]
    assert key == [(r["split"], r["index"], r["subject"]) for r in b]
    np.testing.assert_array_equal([[float(r["x"]), float(r["y"])] for r in a],
                                  [[float(r["x"]), float(r["y"])] for r in b])
    assert [r["class"] for r in a] != [r["class"] for r in b]


def test_embed_windows_ignores_labels() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    X = rng.normal(size=(200, 32, 4)) + y[:, None, None] * np.array([1.0, 0.0, -1.0, 0.5])
    subjects = np.tile(np.arange(1, 6), 40)
    splits = np.where(subjects <= 3, "train", "test")
    ws = WindowSet(X.astype(np.float32), y, subjects)
    shuffled = WindowSet(ws.X, rng.permutation(y), subjects)
    a = embed_windows(ws, splits, max_windows=60, seed=3)
    b = embed_windows(shuffled, splits, max_windows=60, seed=3)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert len(a.index) == 60 and len(np.unique(a.index)) == 60
    assert np.bincount(subjects[a.index]).tolist() == [0, 12, 12, 12, 12, 12]
    # the classes, offset in the signals, separate along the first axis
    means = [a.coords[y[a.index] == c, 0].mean() for c in range(4)]
    assert abs(means[0] - means[3]) > 2.0
    assert sum(a.explained_variance) <= 1.0 and a.explained_variance[0] > 0.3
    other = embed_windows(ws, splits, max_windows=60, seed=4)
    assert not np.array_equal(other.index, a.index)


# --- numbers ------------------------------------------------------------------------------------


def test_channel_stats_equal_numpy_with_missing_values() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(37, 20, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, :, 2] = np.nan  # a channel that is never measured
    X[5, 3, 1] = np.inf
    got = channel_stats(X, chunk=8)  # several chunks
    ref = X[:, :, :2].reshape(-1, 2).astype(np.float64)
    ref[~np.isfinite(ref)] = np.nan
    np.testing.assert_allclose(got["mean"][:2], np.nanmean(ref, 0), rtol=1e-12)
    np.testing.assert_allclose(got["std"][:2], np.nanstd(ref, 0), rtol=1e-12)
    np.testing.assert_array_equal(got["min"][:2], np.nanmin(ref, 0))
    np.testing.assert_array_equal(got["max"][:2], np.nanmax(ref, 0))
    np.testing.assert_allclose(got["missing"][:2], np.isnan(ref).mean(0))
    assert got["missing"][2] == 1.0
    assert all(np.isnan(got[k][2]) for k in ("mean", "std", "min", "max"))


def test_window_features_per_channel() -> None:
    X = np.array([[[0.0, 5.0], [2.0, np.nan], [1.0, 7.0]]])  # (1, 3, 2)
    f = window_features(X).reshape(5, 2)  # feature-major: (features, channels)
    np.testing.assert_allclose(f[:, 0], [1.0, float(np.std([0.0, 2.0, 1.0])), 0.0, 2.0, 1.5])
    np.testing.assert_allclose(f[:4, 1], [6.0, 1.0, 5.0, 7.0])
    assert np.isnan(f[4, 1])  # no two consecutive measured samples


def test_subsample_keeps_each_groups_share() -> None:
    groups = np.repeat([0, 1, 2], [100, 50, 10])
    idx = subsample(groups, 16, seed=0)
    assert np.bincount(groups[idx]).tolist() == [10, 5, 1]
    assert len(np.unique(idx)) == 16 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, subsample(groups, 16, seed=0))
    assert not np.array_equal(idx, subsample(groups, 16, seed=1))
    np.testing.assert_array_equal(subsample(groups, 500), np.arange(160))
    # one item per group (NATOPS, Penn Action: every sequence its own subject): a random
    # draw over all of them, not the first groups
    singles = subsample(np.arange(1000), 100, seed=0)
    assert len(singles) == 100 and (singles >= 500).sum() > 30 and (singles < 500).sum() > 30


def test_umap_is_called_with_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class FakeUMAP:
        def __init__(self, **kw: Any) -> None:
            seen.update(kw)

        def fit_transform(self, z: np.ndarray) -> np.ndarray:
            seen["z"] = z
            return z[:, :2] * 2.0

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    F = np.random.default_rng(0).normal(5.0, 3.0, size=(40, 6))
    coords, ratio = embed_features(F, "umap", seed=7)
    assert seen["random_state"] == 7 and seen["n_components"] == 2
    np.testing.assert_allclose(seen["z"].mean(0), 0.0, atol=1e-12)  # standardised input
    np.testing.assert_allclose(seen["z"].std(0), 1.0)
    np.testing.assert_allclose(coords, seen["z"][:, :2] * 2.0)
    assert ratio == []


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_gives_harkit_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'no-such-set'"):
        explore("no-such-set", output=tmp_path)
    with pytest.raises(ConfigError, match=r"embedding 'tsne': expected one of \['pca', 'umap'\]"):
        explore("uci-har", embedding="tsne", output=tmp_path)
    with pytest.raises(ConfigError, match="max_windows=1"):
        explore("uci-har", max_windows=1, output=tmp_path)
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ConfigError, match="pip install umap-learn"):
        explore("uci-har", embedding="umap", output=tmp_path)
    with pytest.raises(ConfigError, match="unknown option"):
        explore("hapt", data_dir=tmp_path, options={"no_such_option": 1}, output=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_parse_options() -> None:
    assert parse_options(["activities=12", "policy=pad", "centre=false"]) == {
        "activities": 12, "policy": "pad", "centre": False}
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(["activities"])


# --- continuous recordings: HAPT ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hapt(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[ExploreResult, RecordingDataset]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harkit-cache"))
        ds = load_dataset("hapt", data_dir=real_data_dir)
        result = explore("hapt", data_dir=real_data_dir, max_windows=2000,
                         output=tmp_path_factory.mktemp("hapt-out"))
    assert isinstance(ds, RecordingDataset)
    yield result, ds


def test_recordings_summary(hapt: tuple[ExploreResult, RecordingDataset]) -> None:
    result, ds = hapt
    summary = check_outputs(result)
    windows = ds.to_windows()  # the customary window and hop, split by subject first
    check_counts(summary, windows)
    assert summary["kind"] == "recordings" and summary["continuous"] is True
    assert summary["splits"]["test"]["subjects"] == HAPT_TEST_SUBJECTS
    assert summary["window_len"] == 128 and summary["hop"] == 64
    assert summary["units"]["gyro_x"] == "rad/s"
    rec = summary["recordings"]
    seconds = np.array([len(r) for r in ds.recordings]) / 50.0
    assert rec["n"] == len(ds.recordings) == 61
    assert rec["per_split"] == {
        "train": sum(r.subject not in HAPT_TEST_SUBJECTS for r in ds.recordings),
        "test": sum(r.subject in HAPT_TEST_SUBJECTS for r in ds.recordings)}
    assert rec["seconds"]["total"] == pytest.approx(seconds.sum())
    assert rec["seconds"]["min"] == pytest.approx(seconds.min())
    assert rec["seconds"]["max"] == pytest.approx(seconds.max())
    labelled = sum(int((r.labels >= 0).sum()) for r in ds.recordings) / 50.0
    assert rec["labelled_fraction"] == pytest.approx(labelled / seconds.sum())
    assert summary["embedding"]["n_windows"] == 2000
    check_examples(summary, windows)
    check_channel_stats(result.output / "channel_stats.csv", windows.splits["train"].X,
                        ds.channels)


# --- skeletons: MSR Action3D, padded to 64 frames (a valid channel gives the real lengths) --------


@pytest.fixture(scope="module")
def msr(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[ExploreResult, WindowedDataset]]:
    options = {"subset": "AS1", "policy": "pad"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harkit-cache"))
        ds = load_dataset("msr-action3d", data_dir=real_data_dir, **options)
        result = explore("msr-action3d", data_dir=real_data_dir, options=options,
                         output=tmp_path_factory.mktemp("msr-out"))
    assert isinstance(ds, WindowedDataset)
    yield result, ds


def test_skeleton_summary_and_lengths(msr: tuple[ExploreResult, WindowedDataset]) -> None:
    result, ds = msr
    summary = check_outputs(result)
    check_counts(summary, ds)
    assert summary["kind"] == "skeleton"
    assert summary["skeleton"]["layout"] == "msr20" and summary["skeleton"]["valid_channel"]
    assert summary["options"] == {"subset": "AS1", "policy": "pad"}
    assert summary["splits"]["train"]["subjects"] == [1, 3, 5, 7, 9]
    frames = {s: (w.X[:, :, -1] > 0.5).sum(1) for s, w in ds.splits.items()}
    every = np.concatenate(list(frames.values()))
    lengths = summary["sequence_lengths"]
    assert (lengths["min"], lengths["max"]) == (every.min(), every.max())
    assert lengths["median"] == np.median(every)
    assert lengths["full_length"] == int((every == 64).sum())
    assert 0 < lengths["full_length"] < len(every)  # varying lengths, some cut at 64
    assert lengths["per_split"]["test"]["max"] == frames["test"].max()
    check_examples(summary, ds)
    check_channel_stats(result.output / "channel_stats.csv", ds.splits["train"].X, ds.channels)


def test_skeleton_examples_are_drawn_as_skeletons(msr: tuple[ExploreResult, WindowedDataset]
                                                  ) -> None:
    result, ds = msr
    # plot_skeleton_rows writes one heading per row into the PNG's Description field
    headings = png_description(result.output / "signals.png").split("\n")
    assert len(headings) == ds.n_classes == 8
    assert [h.split(" (")[0] for h in headings] == ds.classes
    with Image.open(result.output / "signals.png") as im:
        assert im.height > im.width  # 8 rows of frame strips
