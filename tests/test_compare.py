"""Listing runs (local and MLflow) and comparing runs: scores, per-class deltas, curves, tables."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from sklearn.metrics import f1_score

import harkit
from harkit.compare import compare_runs, comparison_tables, list_runs, runs_table
from harkit.cv import cross_validate
from harkit.errors import CheckpointError, ConfigError, HarkitError
from harkit.evaluation.metrics import EvalReport, evaluate_predictions
from harkit.io import atomic_write_text
from harkit.runs import RunDir
from tests.conftest import write_uci_fixture

CREATED = {"a": "2024-01-01T10:00:00", "b": "2024-01-02T10:00:00",
           "stopped": "2024-01-03T10:00:00", "cv": "2024-01-04T10:00:00"}


@pytest.fixture(scope="module")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real tiny runs on the fixture data: two finished runs, a stopped one, a 2-fold cv."""
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        mp.delenv("HARKIT_DATA_DIR", raising=False)
        # module fixtures run before conftest's autouse one: keep the tracker off here too
        mp.setenv("HARKIT_TRACKING", "0")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        write_uci_fixture(root / "data" / "uci-har")
        common = [f"data.data_dir={root / 'data'}", f"run_root={root / 'runs'}",
                  "data.n_val_subjects=2", "train.batch_size=32", "model.hidden=8",
                  "train.num_threads=1"]
        harkit.train(overrides=[*common, "name=a", "train.epochs=3", "model.width=4"],
                     progress=False)
        harkit.train(overrides=[*common, "name=b", "model.name=gru", "train.epochs=2",
                                "train.refit=false"], progress=False)
        harkit.train(overrides=[*common, "name=stopped", "train.epochs=3", "model.width=4"],
                     progress=False, stop_after=1)
        cross_validate(overrides=[*common, "name=cv", "train.epochs=1", "train.refit=false",
                                  "data.n_val_subjects=1", "model.width=4"],
                       protocol="kfold", folds=2, progress=False)
    runs = root / "runs"
    # fixed creation times, so "newest first" is testable within one second
    for name in ("a", "b", "stopped"):
        RunDir(runs / name).update_info(created=CREATED[name])
    meta = json.loads((runs / "cv" / "cv.json").read_text())
    meta["created"] = CREATED["cv"]
    atomic_write_text(runs / "cv" / "cv.json", json.dumps(meta))
    # a run being created right now (hidden) is not listed
    partial = runs / ".c.partial-123"
    partial.mkdir()
    (partial / "config.yaml").write_text((runs / "a" / "config.yaml").read_text())
    return runs


def _render(table: object) -> str:
    console = Console(record=True, width=250)
    console.print(table)
    return console.export_text()


def _folds_csv(cv_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((cv_dir / "folds.csv").read_text().splitlines()))


# ---------------------------------------------------------------------------------------------
# list_runs
# ---------------------------------------------------------------------------------------------


def test_list_runs_reads_every_run_and_cv_newest_first(run_root: Path) -> None:
    rows = list_runs(run_root)
    assert [r.name for r in rows] == ["cv", "stopped", "b", "a"]  # no folds, no partial run
    by = {r.name: r for r in rows}

    a = by["a"]
    test = EvalReport.load(run_root / "a" / "metrics.json")
    val = EvalReport.load(run_root / "a" / "metrics_val.json")
    info = RunDir(run_root / "a").info()
    assert (a.kind, a.source, a.status, a.dataset, a.model) == (
        "run", "local", "finished", "uci-har", "harcnn")
    assert a.path == run_root / "a" and a.created == CREATED["a"]
    assert a.test_accuracy == test.accuracy and a.test_macro_f1 == test.macro_f1
    assert a.val_macro_f1 == val.macro_f1
    assert (a.epochs, a.best_epoch) == (3, info["best_epoch"])
    assert a.train_seconds == info["train_seconds"] and a.test_accuracy_std is None
    assert by["b"].model == "gru" and by["b"].epochs == 2

    stopped = by["stopped"]
    assert stopped.status == "stopped" and stopped.epochs == 1
    assert stopped.test_accuracy is None and stopped.test_macro_f1 is None
    assert stopped.val_macro_f1 is not None  # the selected checkpoint's validation score

    cv = by["cv"]
    folds = _folds_csv(run_root / "cv")
    f1 = [float(f["macro_f1"]) for f in folds]
    acc = [float(f["accuracy"]) for f in folds]
    assert (cv.kind, cv.n_folds, cv.status, cv.model) == ("cv", 2, "finished", "harcnn")
    assert cv.test_macro_f1 == pytest.approx(np.mean(f1))
    assert cv.test_macro_f1_std == pytest.approx(np.std(f1))
    assert cv.test_accuracy == pytest.approx(np.mean(acc))
    assert cv.test_accuracy_std == pytest.approx(np.std(acc))
    fold_infos = [RunDir(run_root / "cv" / f"fold0{i}").info() for i in (1, 2)]
    assert cv.train_seconds == pytest.approx(sum(i["train_seconds"] for i in fold_infos))
    assert cv.epochs is None

    text = _render(runs_table(rows))
    assert "cv (2 folds)" in text and f"{cv.test_macro_f1:.4f} ± {cv.test_macro_f1_std:.4f}" in text
    assert f"{a.test_macro_f1:.4f}" in text and "3 (" in text
    assert "source" not in text  # no MLflow rows: no source column


def test_list_runs_running_cv_uses_finished_folds(run_root: Path, tmp_path: Path) -> None:
    """A cross-validation still running has no summary.json: folds.csv gives the scores."""
    import shutil

    cv = tmp_path / "runs" / "cv"
    shutil.copytree(run_root / "cv", cv)
    (cv / "summary.json").unlink()
    folds = _folds_csv(cv)[:1]
    with (cv / "folds.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(folds[0]))
        w.writeheader()
        w.writerows(folds)
    (row,) = list_runs(tmp_path / "runs")
    assert row.test_macro_f1 == pytest.approx(float(folds[0]["macro_f1"]))
    assert row.test_macro_f1_std == 0.0 and row.n_folds == 2


def test_list_runs_missing_root_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        list_runs(tmp_path / "nowhere")


def test_list_runs_merges_mlflow_runs(run_root: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("harkit")
    other = client.create_experiment("elsewhere")

    def log(name: str, start: str, tags: dict[str, str], metrics: dict[str, float],
            params: dict[str, str] | None = None, experiment: str = exp) -> str:
        ms = int(time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S")) * 1000)
        run = client.create_run(experiment, start_time=ms, tags=tags, run_name=name)
        rid = run.info.run_id
        for k, v in metrics.items():
            client.log_metric(rid, k, v)
        for k, v in (params or {}).items():
            client.log_param(rid, k, v)
        client.set_terminated(rid)
        return rid

    # the tracker's run of local run "a": merged, the local files win
    a_id = log("a", CREATED["a"], {"harkit.run_dir": str((run_root / "a").resolve()),
                                   "harkit.dataset": "uci-har", "harkit.model": "harcnn",
                                   "harkit.status": "finished"},
               {"test_accuracy": 0.99, "test_macro_f1": 0.99, "val_macro_f1": 0.99,
                "train_seconds": 1.0})
    # the local cv's own run (merged into the cv row) and one of its folds (part of it)
    cv_id = log("cv", CREATED["cv"], {"harkit.run_dir": str(run_root / "cv"),
                                      "harkit.kind": "cv"}, {"macro_f1_mean": 0.99})
    log("fold01", CREATED["cv"], {"harkit.run_dir": str(run_root / "cv" / "fold01"),
                                  "mlflow.parentRunId": cv_id}, {"test_accuracy": 0.5})
    # a cross-validation made elsewhere: one row, its folds nested under it
    far_cv = log("far-cv", "2024-01-05T10:00:00",
                 {"harkit.run_dir": "/cluster/runs/far-cv", "harkit.kind": "cv",
                  "harkit.dataset": "hapt", "harkit.model": "harcnn"},
                 {"accuracy_mean": 0.9, "accuracy_std": 0.05, "macro_f1_mean": 0.8,
                  "macro_f1_std": 0.1}, {"cv.folds": "30"})
    for i in (1, 2):
        log(f"fold0{i}", "2024-01-05T10:00:00",
            {"harkit.run_dir": f"/cluster/runs/far-cv/fold0{i}", "mlflow.parentRunId": far_cv},
            {"test_accuracy": 0.9})
    # a run made on another machine
    remote = log("remote", "2024-02-01T10:00:00",
                 {"harkit.run_dir": "/cluster/runs/remote", "harkit.dataset": "pamap2",
                  "harkit.model": "deepconvlstm", "harkit.status": "finished"},
                 {"test_accuracy": 0.91, "test_macro_f1": 0.87, "val_macro_f1": 0.85,
                  "train_seconds": 3600.0})
    # an older run without harkit tags: dataset and model come from the logged config
    log("untagged", "2023-06-01T10:00:00", {}, {"test_macro_f1": 0.5},
        {"data.dataset": "wisdm", "model.name": "gru"})
    log("not-listed", "2024-03-01T10:00:00", {}, {}, experiment=other)
    # a hyperparameter study: its trials are runs, its own parent run is not a row
    study = log("study", "2023-05-01T10:00:00", {"harkit.kind": "tune"}, {})
    log("trial000", "2023-05-01T10:00:00", {"mlflow.parentRunId": study},
        {"test_macro_f1": 0.4})

    local = {r.name: r for r in list_runs(run_root)}
    rows = list_runs(run_root, tracking_uri=uri)
    assert [r.name for r in rows] == ["remote", "far-cv", "cv", "stopped", "b", "a",
                                      "untagged", "trial000"]
    by = {r.name: r for r in rows}
    a = by["a"]
    assert a.source == "local" and a.mlflow_run_id == a_id
    assert a.test_accuracy == local["a"].test_accuracy != 0.99
    assert a.val_macro_f1 == local["a"].val_macro_f1
    assert by["cv"].mlflow_run_id == cv_id and by["cv"].source == "local"
    assert by["cv"].test_macro_f1 == local["cv"].test_macro_f1 != 0.99
    far = by["far-cv"]
    assert (far.kind, far.source, far.n_folds, far.dataset) == ("cv", "mlflow", 30, "hapt")
    assert (far.test_accuracy, far.test_accuracy_std, far.test_macro_f1,
            far.test_macro_f1_std) == (0.9, 0.05, 0.8, 0.1)

    r = by["remote"]
    assert (r.source, r.kind, r.dataset, r.model, r.status) == (
        "mlflow", "run", "pamap2", "deepconvlstm", "finished")
    assert r.path == Path("/cluster/runs/remote") and r.mlflow_run_id == remote
    assert (r.test_accuracy, r.test_macro_f1, r.val_macro_f1, r.train_seconds) == (
        0.91, 0.87, 0.85, 3600.0)
    assert r.created == "2024-02-01T10:00:00" and r.epochs is None
    u = by["untagged"]
    assert (u.dataset, u.model, u.status, u.path) == ("wisdm", "gru", "finished", None)

    text = _render(runs_table(rows))
    assert "local + mlflow" in text and "1.0 h" in text and "pamap2" in text
    assert "cv (30 folds)" in text and "0.8000 ± 0.1000" in text

    # MLflow alone (no local run root)
    only = list_runs(tmp_path / "no-runs-here", tracking_uri=uri)
    assert sorted(x.name for x in only) == ["a", "cv", "far-cv", "remote", "trial000",
                                            "untagged"]
    assert all(x.source == "mlflow" for x in only)
    with pytest.raises(ConfigError, match=r"'nope' not found.*elsewhere.*harkit"):
        list_runs(run_root, tracking_uri=uri, experiment="nope")
    with pytest.raises(HarkitError, match="MLflow tracking URI 'bogus://x'"):
        list_runs(run_root, tracking_uri="bogus://x")


def test_list_runs_without_mlflow_says_how_to_install(run_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(HarkitError, match="pip install mlflow"):
        list_runs(run_root, tracking_uri="sqlite:///unused.db")
    assert len(list_runs(run_root)) == 4  # local listing never imports mlflow


# ---------------------------------------------------------------------------------------------
# compare_runs on real runs
# ---------------------------------------------------------------------------------------------


def test_compare_real_runs_and_cv(run_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    cmp = compare_runs([run_root / "a", run_root / "b", run_root / "cv"], output=out)
    a_test = EvalReport.load(run_root / "a" / "metrics.json")
    b_test = EvalReport.load(run_root / "b" / "metrics.json")
    a_info, b_info = RunDir(run_root / "a").info(), RunDir(run_root / "b").info()

    assert [r.label for r in cmp.runs] == ["a", "b", "cv"]
    assert [r.kind for r in cmp.runs] == ["run", "run", "cv"]
    assert cmp.metrics == ["accuracy", "macro_f1", "weighted_f1", "val_macro_f1", "epochs",
                           "best_epoch", "train_seconds", "n_parameters"]  # no NULL class
    summary = json.loads((run_root / "cv" / "summary.json").read_text())
    assert cmp.values("macro_f1") == [a_test.macro_f1, b_test.macro_f1,
                                      summary["macro_f1"]["mean"]]
    assert cmp.runs[2].std["macro_f1"] == summary["macro_f1"]["std"]
    assert cmp.deltas("accuracy") == [0.0, b_test.accuracy - a_test.accuracy,
                                      summary["accuracy"]["mean"] - a_test.accuracy]
    assert cmp.values("weighted_f1")[:2] == [a_test.weighted_f1, b_test.weighted_f1]
    assert cmp.values("epochs") == [3, 2, 1] and cmp.values("n_parameters")[:2] == [
        a_info["n_parameters"], b_info["n_parameters"]]
    assert cmp.values("train_seconds")[1] == b_info["train_seconds"]

    # per-class F1: same classes everywhere; the cv's pooled over all its test windows
    assert cmp.classes == a_test.classes == cmp.shared_classes and cmp.missing_classes == {}
    for c in cmp.classes:
        a_f1, b_f1 = a_test.per_class[c]["f1"], b_test.per_class[c]["f1"]
        assert cmp.class_f1(c)[:2] == [a_f1, b_f1]
        assert cmp.class_f1(c)[2] == summary["pooled"]["per_class"][c]["f1"]
        assert cmp.class_deltas(c)[1] == pytest.approx(b_f1 - a_f1)
    assert cmp.config_diff["model.name"] == ["harcnn", "gru", "harcnn"]
    assert cmp.config_diff["cv.protocol"] == [None, None, "kfold"]
    assert "name" not in cmp.config_diff and "run_root" not in cmp.config_diff
    assert any("cv is a cross-validation" in n for n in cmp.notes)

    # learning curves: each run's history; the cv's is the mean over its folds
    a_hist = RunDir(run_root / "a").read_history()
    assert [h["val_f1"] for h in cmp.runs[0].history] == [h["val_f1"] for h in a_hist]
    folds = [RunDir(run_root / "cv" / f"fold0{i}").read_history()[0] for i in (1, 2)]
    assert cmp.runs[2].history[0]["val_loss"] == pytest.approx(
        np.mean([f["val_loss"] for f in folds]))
    assert cmp.plot_path == out / "learning_curves.png"
    assert cmp.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["reference"] == "a" and saved["plot"] == str(cmp.plot_path)
    assert saved["metrics"]["macro_f1"]["deltas"] == cmp.deltas("macro_f1")
    assert saved["runs"][2]["n_folds"] == 2

    scores, per_class, config = comparison_tables(cmp)
    assert scores.row_count == len(cmp.metrics) and per_class.row_count == 6
    text = _render(scores)
    d = b_test.macro_f1 - a_test.macro_f1
    assert f"{b_test.macro_f1:.4f} ({d:+.4f})" in text
    assert f"{summary['macro_f1']['mean']:.4f} ± {summary['macro_f1']['std']:.4f}" in text
    assert "model.name" in _render(config)


def test_compare_output_png_path_and_default(run_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cmp = compare_runs([run_root / "a", run_root / "stopped"], output=tmp_path / "ab.png")
    assert cmp.plot_path == tmp_path / "ab.png" and cmp.plot_path.is_file()
    assert cmp.json_path == tmp_path / "ab.json" and cmp.json_path.is_file()
    assert cmp.values("accuracy")[1] is None and cmp.deltas("accuracy")[1] is None
    assert any("stopped: no test metrics" in n and "--resume" in n for n in cmp.notes)
    monkeypatch.chdir(tmp_path)
    cmp = compare_runs([str(run_root / "a"), str(run_root / "a")])
    assert [r.label for r in cmp.runs] == ["a", "a (2)"] and cmp.deltas("macro_f1")[1] == 0.0
    assert (tmp_path / "compare" / "learning_curves.png").is_file()
    assert (tmp_path / "compare" / "comparison.json").is_file()


def test_compare_rejects_what_is_not_a_run(run_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs([run_root / "a"], output=tmp_path)
    missing = tmp_path / "no-such-run"
    with pytest.raises(CheckpointError, match=str(missing)):
        compare_runs([run_root / "a", missing], output=tmp_path)
    with pytest.raises(CheckpointError, match=r"plots.*not a harkit run.*no config\.yaml"):
        compare_runs([run_root / "a", run_root / "a" / "plots"], output=tmp_path)
    with pytest.raises(CheckpointError, match="holds runs"):
        compare_runs([run_root, run_root / "a"], output=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written on bad input


# ---------------------------------------------------------------------------------------------
# compare_runs across datasets and class sets (run directories written from known predictions)
# ---------------------------------------------------------------------------------------------


def _fake_run(root: Path, name: str, dataset: str, classes: list[str], y_true: np.ndarray,
              y_pred: np.ndarray) -> Path:
    """A finished run directory with the files compare reads, scored by evaluate_predictions."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"dataset": dataset}, "model": {"name": "gru"}, "name": name}))
    (d / "run.json").write_text(json.dumps(
        {"status": "finished", "created": "2024-05-01T00:00:00", "dataset": dataset,
         "model": "gru", "epochs": 10, "best_epoch": 7, "train_seconds": 12.5,
         "n_parameters": 1000, "best_val_macro_f1": 0.5}))
    evaluate_predictions(y_true, y_pred, classes).save(d / "metrics.json")
    return d


def test_compare_different_class_sets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    yx, px = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    yy, py = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    x = _fake_run(tmp_path / "runs", "x", "wisdm", ["walk", "run", "sit"], yx, px)
    y = _fake_run(tmp_path / "runs", "y", "opportunity", ["NULL", "walk", "run"], yy, py)
    cmp = compare_runs([x, y], output=tmp_path / "out")

    assert cmp.classes == ["walk", "run", "sit", "NULL"]
    assert cmp.shared_classes == ["walk", "run"]
    assert cmp.missing_classes == {"x": ["NULL"], "y": ["sit"]}
    # classes matched by name, not by index; checked against scikit-learn
    walk_x = f1_score(yx == 0, px == 0)
    walk_y = f1_score(yy == 1, py == 1)
    assert cmp.class_f1("walk") == [pytest.approx(walk_x), pytest.approx(walk_y)]
    assert cmp.class_deltas("walk")[1] == pytest.approx(walk_y - walk_x)
    assert cmp.class_f1("sit")[1] is None and cmp.class_deltas("sit") == [0.0, None]
    assert cmp.class_deltas("NULL") == [None, None]
    # the without-NULL score appears because one run has a NULL class
    assert "macro_f1_without_null" in cmp.metrics
    assert cmp.values("macro_f1_without_null")[0] is None
    assert cmp.values("val_macro_f1") == [0.5, 0.5] and cmp.values("best_epoch") == [7, 7]
    assert any("different datasets" in n and "wisdm" in n and "opportunity" in n
               for n in cmp.notes)
    assert any("y has no class sit" in n for n in cmp.notes)
    assert cmp.plot_path is None and any("no learning curves" in n for n in cmp.notes)
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())[
        "missing_classes"] == {"x": ["NULL"], "y": ["sit"]}

    scores, per_class, config = comparison_tables(cmp)
    assert cmp.config_diff == {"data.dataset": ["wisdm", "opportunity"]}
    assert "opportunity" in _render(config)
    text = _render(per_class)
    assert "missing" in text and "y lacks: sit" in text and "x lacks: NULL" in text
    assert "different datasets" in _render(scores)

    rows = list_runs(tmp_path / "runs")
    assert [r.name for r in rows] == ["y", "x"]  # same time: by name, descending
    assert rows[0].test_macro_f1 == cmp.values("macro_f1")[1]
    assert list_runs(x)[0].name == "x"  # the run root may itself be a run
