"""harkit tune: Optuna over config fields, validation subjects only, pruning, MLflow children."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import harkit
from harkit.config import load_config
from harkit.errors import ConfigError
from harkit.tune import parse_space, tune

pytest.importorskip("optuna")

SPACE = {"train.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
         "model.width": {"type": "int", "low": 4, "high": 8, "step": 4}}


@pytest.fixture
def base(tiny_cfg: list[str]) -> list[str]:
    return [*tiny_cfg, "train.epochs=4", "train.refit=true"]


@pytest.mark.slow
def test_search_writes_a_config_that_trains(base: list[str], tmp_path: Path) -> None:
    r = tune(overrides=base, space=SPACE, n_trials=8, progress=False)
    rows = list(csv.DictReader((r.tune_dir / "trials.csv").open()))
    assert len(rows) == len(r.trials) == 8
    assert {"COMPLETE", "PRUNED"} >= {row["state"] for row in rows}
    assert any(row["state"] == "PRUNED" for row in rows)  # the median pruner stopped some
    complete = [row for row in rows if row["state"] == "COMPLETE"]
    best = max(complete, key=lambda row: float(row["val_macro_f1"]))
    assert r.best_value == pytest.approx(float(best["val_macro_f1"]))
    assert r.best_run.name == f"trial{int(best['number']):03d}"
    for row in rows:  # values inside the space; ints stay ints
        assert 1e-4 <= float(row["param.train.lr"]) <= 3e-2
        assert row["param.model.width"] in ("4", "8")
    # trials never touch the test split and never refit
    for d in r.tune_dir.glob("trial*"):
        assert not (d / "metrics.json").exists() and not (d / "test_predictions.npz").exists()
        assert not (d / "checkpoints" / "refit_last.pt").exists()
    # each trial's score is its selected epoch's validation macro F1, from its own run
    val = json.loads((r.best_run / "metrics_val.json").read_text())
    assert val["macro_f1"] == pytest.approx(r.best_value)
    # best.yaml: the base config with the best values (refit as in the base), ready to train
    cfg = load_config(r.best_config)
    assert cfg.train.lr == pytest.approx(r.best_params["train.lr"])
    assert cfg.model.params["width"] == r.best_params["model.width"]
    assert cfg.train.refit and cfg.name is None and cfg.train.epochs == 4
    assert Path(cfg.data.data_dir or "").is_absolute()
    assert (r.tune_dir / "plots" / "trials.png").stat().st_size > 5000
    final = harkit.train(r.best_config, overrides=[f"run_root={tmp_path / 'final'}"],
                         progress=False)
    assert final.finished and final.test is not None
    # a finished search resumed runs no more trials
    again = tune(resume=r.tune_dir, progress=False)
    assert len(again.trials) == 8 and again.best_params == r.best_params


@pytest.mark.slow
def test_trials_nest_under_the_search_in_mlflow(base: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("HARKIT_TRACKING", "1")
    uri = f"sqlite:///{tmp_path / 'tune.db'}"
    r = tune(overrides=[*base, f"tracking.uri={uri}", "tracking.log_model=false"],
             space={"train.lr": SPACE["train.lr"]}, n_trials=3, progress=False)
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("harkit").experiment_id])
    parent = [x for x in runs if x.data.tags.get("harkit.kind") == "tune"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId")
                == parent[0].info.run_id]
    assert sorted(x.info.run_name for x in children) == ["trial000", "trial001", "trial002"]
    for c in children:
        assert "test_accuracy" not in c.data.metrics  # trials never see the test split
    assert parent[0].data.metrics["best_val_macro_f1"] == pytest.approx(r.best_value)
    assert float(parent[0].data.tags["best.train.lr"]) == pytest.approx(
        r.best_params["train.lr"])


def test_space_errors_name_the_key(base: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"train\.lr: low"):
        parse_space({"train.lr": {"type": "float", "low": 1.0, "high": 0.1}})
    with pytest.raises(ConfigError, match="log scale needs low > 0"):
        parse_space({"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}})
    with pytest.raises(ConfigError, match="unknown field"):
        parse_space({"train.lr": {"type": "float", "low": 0.1, "high": 1, "scale": 2}})
    with pytest.raises(ConfigError, match="choices must be a non-empty list"):
        parse_space({"train.batch_size": {"choices": []}})
    with pytest.raises(ConfigError, match=r"train\.nope"):
        tune(overrides=base, space={"train.nope": {"choices": [1, 2]}}, n_trials=1,
             progress=False)
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        tune(overrides=base, space={"train.epochs": {"choices": ["many"]}}, n_trials=1,
             progress=False)


def test_cli(base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harkit.cli import main

    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n")
    sets = [a for o in base for a in ("--set", o)]
    assert main(["tune", *sets, "--space", str(space), "--trials", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 trials" in out and "train it: harkit train --config" in out
    space.write_text("train.lr: {type: float, low: 1.0e-3}\n")
    assert main(["tune", *sets, "--space", str(space), "--trials", "2"]) == 2
    assert "missing high" in capsys.readouterr().err
