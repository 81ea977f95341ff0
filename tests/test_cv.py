"""Subject-wise cross-validation: folds, per-fold / per-subject tables, resume, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from harkit.cli import main
from harkit.cv import cross_validate, make_folds
from harkit.errors import ConfigError
from harkit.evaluation.metrics import evaluate_predictions
from harkit.runs import RunDir


def test_make_folds_partitions_subjects() -> None:
    subjects = [5, 1, 9, 3, 7, 2, 8]
    folds = make_folds(subjects, "kfold", k=3, seed=1)
    flat = [s for f in folds for s in f]  # type: ignore[union-attr]
    assert sorted(flat) == sorted(subjects) and len(folds) == 3
    assert sorted(len(f) for f in folds) == [2, 2, 3]  # type: ignore[arg-type]
    assert make_folds(subjects, "kfold", k=3, seed=1) == folds  # seeded
    assert make_folds(subjects, "loso") == [[s] for s in sorted(subjects)]
    assert make_folds(subjects, "holdout") == [None]
    with pytest.raises(ConfigError, match="folds"):
        make_folds(subjects, "kfold", k=8)
    with pytest.raises(ConfigError, match="protocol"):
        make_folds(subjects, "random-windows")


def test_null_class_and_per_subject_scores() -> None:
    classes = ["NULL", "open", "close"]
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([1, 0, 1, 1, 2, 0])
    r = evaluate_predictions(y, p, classes, subjects=np.array([1, 1, 1, 2, 2, 2]))
    assert r.null_class == "NULL"
    assert r.accuracy_without_null == pytest.approx(3 / 4)
    assert r.macro_f1_without_null == pytest.approx(np.mean([0.8, 2 / 3]))
    assert r.per_subject["1"]["n_windows"] == 3 and r.per_subject["1"]["accuracy"] == 2 / 3
    assert r.per_subject["2"]["accuracy"] == 2 / 3
    assert evaluate_predictions(y, p, ["a", "b", "c"]).macro_f1_without_null is None


def test_kfold_cv_on_fixture(tiny_cfg: list[str], tmp_path: Path) -> None:
    overrides = [*tiny_cfg, "train.epochs=1", "train.refit=false", "data.n_val_subjects=1",
                 "name=cv"]
    r = cross_validate(overrides=overrides, protocol="kfold", folds=3, progress=False)
    assert r.cv_dir == tmp_path / "runs" / "cv" and len(r.folds) == 3
    held = sorted(s["subject"] for s in r.subjects)
    assert held == list(range(1, 9))  # every subject tested exactly once
    for i, fold in enumerate(r.folds, 1):
        run = RunDir.open(r.cv_dir / f"fold{i:02d}")
        cfg = run.config()
        test = [int(s) for s in fold["test_subjects"].split()]
        assert cfg.data.test_subjects == test
        # validation subjects come from the fold's training subjects, never its test subjects
        assert cfg.data.val_subjects and not set(cfg.data.val_subjects) & set(test)
    accs = [f["accuracy"] for f in r.folds]
    assert r.summary["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert r.summary["accuracy"]["std"] == pytest.approx(np.std(accs))
    assert r.pooled.n_windows == sum(f["n_windows"] for f in r.folds) == 8 * 24
    with open(r.cv_dir / "folds.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    with open(r.cv_dir / "subjects.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    assert (r.cv_dir / "plots" / "folds.png").stat().st_size > 1000
    assert json.loads((r.cv_dir / "cv.json").read_text())["status"] == "finished"

    # Resume: an interrupted fold continues, finished folds are not retrained.
    fold1 = r.cv_dir / "fold01" / "metrics.json"
    before = fold1.stat().st_mtime_ns
    (r.cv_dir / "fold03" / "run.json").write_text(json.dumps({"status": "running"}))
    r2 = cross_validate(resume=r.cv_dir, progress=False)
    assert fold1.stat().st_mtime_ns == before
    assert [f["accuracy"] for f in r2.folds][:2] == accs[:2]


def test_cv_refuses_fixed_test_subjects(tiny_cfg: list[str]) -> None:
    with pytest.raises(ConfigError, match="test_subjects"):
        cross_validate(overrides=[*tiny_cfg, "data.test_subjects=[1]"], progress=False)


def test_cli_loso_subset(tiny_cfg: list[str], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    sets = [a for o in [*tiny_cfg, "train.epochs=1", "train.refit=false"] for a in ("--set", o)]
    assert main(["cv", "--protocol", "loso", "--subjects", "2,7", "--name", "loso", *sets]) == 0
    out = capsys.readouterr().out
    assert "loso: 2 folds" in out and "mean +/- std over folds: accuracy" in out
    rows = list(csv.DictReader((tmp_path / "runs" / "loso" / "folds.csv").read_text().splitlines()))
    assert [r["test_subjects"] for r in rows] == ["2", "7"]
    assert main(["cv", "--subjects", "x", *sets]) == 2


def test_absent_classes_do_not_count_as_zero_f1() -> None:
    # a leave-one-subject-out fold where this subject never performed class "c"
    r = evaluate_predictions(np.array([0, 0, 1]), np.array([0, 0, 1]), ["a", "b", "c"])
    assert r.macro_f1 == 1.0 and r.per_class["c"]["support"] == 0
    # ... but a class that is predicted without occurring is an error and counts
    r = evaluate_predictions(np.array([0, 0, 1]), np.array([0, 2, 1]), ["a", "b", "c"])
    assert r.macro_f1 == pytest.approx(np.mean([2 / 3, 1.0, 0.0]))
