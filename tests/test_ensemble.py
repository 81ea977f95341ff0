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
