"""Ensembles of runs: averaged probabilities, channel reordering, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import harkit
from harkit.cli import main
from harkit.errors import ConfigError
from harkit.inference import EnsemblePredictor, Predictor
from tests.conftest import UCI_CHANNELS, fixture_windows


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from tests.conftest import write_uci_fixture

    root = tmp_path_factory.mktemp("ens")
    write_uci_fixture(root / "data" / "uci-har")
    common = [f"data.data_dir={root / 'data'}", f"run_root={root / 'runs'}",
              "data.n_val_subjects=2", "train.epochs=2", "model.width=4", "model.hidden=8",
              "train.num_threads=1", "train.refit=false"]
    a = harkit.train(overrides=[*common, "train.seed=0", "name=a"], progress=False)
    # the second member sees its channels in reverse order
    b = harkit.train(overrides=[*common, "train.seed=1", "name=b",
                                f"data.channels={list(reversed(UCI_CHANNELS))}"], progress=False)
    return [a.run_dir, b.run_dir]


def test_ensemble_averages_member_probabilities(two_runs: list[Path]) -> None:
    X = fixture_windows(seed=5)["test"][0]
    a, b = Predictor.from_run(two_runs[0]), Predictor.from_run(two_runs[1])
    pa = a.predict_proba(X)
    pb = b.predict_proba(X[:, :, ::-1])  # b takes the reversed channel order
    ens = EnsemblePredictor([a, b])
    np.testing.assert_allclose(ens.predict_proba(X), (pa + pb) / 2, rtol=1e-5, atol=1e-6)
    weighted = EnsemblePredictor([a, b], weights=[3, 1])
    np.testing.assert_allclose(weighted.predict_proba(X), 0.75 * pa + 0.25 * pb, rtol=1e-5,
                               atol=1e-6)
    assert ens.predict(X).shape == (len(X),)
    with pytest.raises(ConfigError, match="weights"):
        EnsemblePredictor([a, b], weights=[1.0])


def test_ensemble_geometric_mean(two_runs: list[Path]) -> None:
    X = fixture_windows(seed=5)["test"][0]
    a, b = Predictor.from_run(two_runs[0]), Predictor.from_run(two_runs[1])
    pa, pb = a.predict_proba(X).astype(np.float64), b.predict_proba(X[:, :, ::-1])
    geo = EnsemblePredictor([a, b], weights=[3, 1], combine="geometric").predict_proba(X)
    want = pa ** 0.75 * pb.astype(np.float64) ** 0.25
    np.testing.assert_allclose(geo, want / want.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(geo.sum(1), 1.0, rtol=1e-5)
    # a member with flat probabilities leaves the other's classes unchanged
    flat = EnsemblePredictor([a, a], combine="geometric")
    flat.members[1] = _Flat(a)
    assert (flat.predict(X) == a.predict(X)).all()
    with pytest.raises(ConfigError, match="combine"):
        EnsemblePredictor([a, b], combine="median")


class _Flat:
    """A member whose probabilities are uniform."""

    def __init__(self, like: Predictor) -> None:
        self.n = len(like.classes)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), self.n), 1.0 / self.n, dtype=np.float32)


def test_ensemble_cli(two_runs: list[Path], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, two_runs), "--output", str(out)]) == 0
    assert "ensemble of 2" in capsys.readouterr().out
    report = harkit.evaluation.metrics.EvalReport.load(out / "metrics.json")
    assert report.n_windows == 2 * 24 and (out / "confusion_matrix.png").exists()
    assert main(["ensemble", *map(str, two_runs), "--combine", "geometric"]) == 0
    assert "geometric mean" in capsys.readouterr().out
    assert main(["ensemble", str(two_runs[0])]) == 2


def test_members_with_their_own_data_settings(real_data_dir: Path, tmp_path: Path) -> None:
    """An ensemble of runs that read the same sequences at different lengths: each member is
    scored on the split as it was trained to read it, and the probabilities are combined."""
    from harkit.api import _load

    common = ["data.dataset=natops", f"data.data_dir={real_data_dir}", "model.name=pose-lstm",
              "model.hidden=8", "model.layers=1", "train.epochs=2", "train.num_threads=1",
              "data.n_val_subjects=0", f"run_root={tmp_path}"]
    runs = [harkit.train(overrides=[*common, f"data.options.length={n}", f"name=len{n}"],
                         progress=False, evaluate_test=False).run_dir for n in (51, 24)]
    probs, y = [], None
    for run in runs:
        cfg = harkit.runs.RunDir(run).config()
        test = _load(cfg).splits["test"]
        assert test.X.shape[1] == cfg.data.options["length"]
        probs.append(Predictor.from_run(run).predict_proba(test.X))
        assert y is None or (test.y == y).all()
        y = test.y
    assert y is not None
    for combine, p in (("mean", (probs[0] + probs[1]) / 2),
                       ("geometric", np.sqrt(probs[0] * probs[1]))):
        report = harkit.api.evaluate_ensemble(runs, combine=combine)
        assert report.n_windows == len(y) == 180
        assert report.accuracy == pytest.approx((p.argmax(1) == y).mean())
    # one window shape for a stream or a service: such an ensemble refuses a single array
    ens = EnsemblePredictor.from_runs(runs, same_windows=False)
    with pytest.raises(ConfigError, match="predict_proba_views"):
        ens.predict_proba(np.zeros((2, 51, 24), dtype=np.float32))
    with pytest.raises(ConfigError, match="one per member"):
        ens.predict_proba_views([np.zeros((2, 51, 24), dtype=np.float32)])
    with pytest.raises(ConfigError, match="different numbers of windows"):
        ens.predict_proba_views([np.zeros((2, 51, 24), dtype=np.float32),
                                 np.zeros((3, 24, 24), dtype=np.float32)])
    with pytest.raises(ConfigError, match="takes windows of 24"):
        EnsemblePredictor.from_runs(runs)


def test_members_whose_windows_differ_are_refused(tmp_path: Path) -> None:
    from tests.test_hapt import write_hapt_fixture

    write_hapt_fixture(tmp_path / "data" / "hapt")
    common = ["data.dataset=hapt", f"data.data_dir={tmp_path / 'data'}", "data.test_subjects=[4]",
              "data.n_val_subjects=0", "model.width=4", "model.hidden=8", "train.epochs=1",
              "train.num_threads=1", f"run_root={tmp_path / 'runs'}"]
    runs = [harkit.train(overrides=[*common, f"data.window={w}", f"name=w{w}"], progress=False,
                         evaluate_test=False).run_dir for w in (64, 128)]
    with pytest.raises(ConfigError, match=f"{runs[1]}: its data settings .* window 128"):
        harkit.api.evaluate_ensemble(runs)
