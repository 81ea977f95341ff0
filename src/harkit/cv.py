"""Subject-wise cross-validation: leave-one-subject-out, k-fold by subject, or the dataset split.

Every fold is an ordinary harkit run (``<cv dir>/foldNN``) whose test subjects are the fold's:
whole subjects are held out *before* windowing, validation subjects for epoch selection are
carved from the fold's training subjects only, and the normaliser is fitted on them. The cv
directory collects the per-fold and per-subject scores, their mean and standard deviation,
the pooled confusion matrix and plots::

    cv.json          protocol, folds (test subjects of each), config, status
    folds.csv        one row per fold: test subjects, windows, accuracy, macro / weighted F1
    subjects.csv     one row per test subject: windows, accuracy, macro F1
    summary.json     mean / std over folds, pooled report over all test windows
    plots/folds.png, plots/confusion_matrix.png
    foldNN/          the fold's run directory (config, checkpoints, metrics, plots)

An interrupted cross-validation continues where it stopped: finished folds are kept,
an unfinished fold resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harkit.config import ExperimentConfig
from harkit.errors import ConfigError
from harkit.evaluation.metrics import EvalReport, evaluate_predictions
from harkit.io import atomic_write_text
from harkit.tracking import Tracker, finish_group_run, start_group_run

log = logging.getLogger(__name__)

PROTOCOLS = ("loso", "kfold", "holdout")


def make_folds(subjects: list[int], protocol: str, k: int = 5, seed: int = 0) -> list[list[int] | None]:
    """Test subjects of each fold.

    ``loso``: one fold per subject. ``kfold``: ``k`` folds of subjects, shuffled with ``seed``
    and dealt round-robin (sizes differ by at most one). ``holdout``: one fold with the
    dataset-defined split (``None``).

    Example:
        >>> make_folds([3, 1, 2], "loso")
        [[1], [2], [3]]
        >>> sorted(sum(make_folds(list(range(1, 11)), "kfold", k=3), []))
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    """
    pool = sorted(set(int(s) for s in subjects))
    if protocol == "loso":
        return [[s] for s in pool]
    if protocol == "kfold":
        if not 2 <= k <= len(pool):
            raise ConfigError(f"--folds {k}: need 2 <= folds <= {len(pool)} subjects")
        order = np.random.default_rng(seed).permutation(pool)
        return [sorted(int(s) for s in order[i::k]) for i in range(k)]
    if protocol == "holdout":
        return [None]
    raise ConfigError(f"protocol {protocol!r}: expected one of {PROTOCOLS}")


def dataset_subjects(cfg: ExperimentConfig) -> list[int]:
    """Every subject of the configured dataset (all splits)."""
    from harkit.data import load_dataset
    from harkit.data.recording import RecordingDataset

    ds = load_dataset(cfg.data.dataset, data_dir=cfg.data.data_dir, **cfg.data.options)
    if isinstance(ds, RecordingDataset):
        return ds.subject_ids()
    return sorted({int(s) for ws in ds.splits.values() for s in np.unique(ws.subjects)})


@dataclass
class CVResult:
    """What :func:`cross_validate` returns."""

    cv_dir: Path
    protocol: str
    folds: list[dict[str, Any]]  # per fold: fold, test_subjects, run_dir, scores
    subjects: list[dict[str, Any]]  # per test subject: subject, fold, n_windows, scores
    summary: dict[str, Any]  # mean / std over folds and the pooled report
    pooled: EvalReport  # every test window of every fold, scored together


SCORES = ("accuracy", "macro_f1", "weighted_f1", "macro_f1_without_null", "accuracy_without_null")


def _create_cv_dir(root: Path, name: str, meta: dict[str, Any], meta_file: str = "cv.json"
                   ) -> Path:
    """Make the cv (or tune) folder atomically (temporary name, then rename), holding
    ``meta_file`` and ``plots/``; a taken name gets a ``-1``, ``-2``, ... suffix."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "plots").mkdir(parents=True)
    atomic_write_text(tmp / meta_file, json.dumps(meta, indent=2))
    for i in range(1000):
        target = root / (name if i == 0 else f"{name}-{i}")
        try:
            os.rename(tmp, target)
        except OSError:
            if target.exists():
                continue
            raise
        return target
    raise RuntimeError(f"cannot find a free name under {root}")  # pragma: no cover


def cross_validate(config: ExperimentConfig | dict[str, Any] | str | Path | None = None, *,
                   overrides: list[str] | None = None, protocol: str = "loso", folds: int = 5,
                   subjects: list[int] | None = None, resume: str | Path | None = None,
                   progress: bool = True, command: list[str] | None = None) -> CVResult:
    """Cross-validate a model over subjects; each fold is a full harkit run.

    Args:
        config, overrides: as for :func:`harkit.train`.
        protocol: ``loso`` (leave one subject out), ``kfold`` (``folds`` folds of subjects)
            or ``holdout`` (the dataset-defined split, as one fold).
        subjects: restrict the folds to these subjects' held-out turns (default: all; every
            other subject still trains).
        resume: a cv directory to continue (its stored protocol and config are used).
        progress: progress bars inside each fold.

    Returns:
        CVResult with per-fold and per-subject scores and their summary.

    Example:
        >>> r = cross_validate(overrides=["data.dataset=hapt"], protocol="loso")  # doctest: +SKIP
        >>> r.summary["macro_f1"]["mean"]                                         # doctest: +SKIP
    """
    from harkit.api import _as_config
    from harkit.config import from_dict

    if resume is not None:
        cv_dir = Path(resume)
        meta = json.loads((cv_dir / "cv.json").read_text(encoding="utf-8"))
        cfg = from_dict(ExperimentConfig, meta["config"])
        protocol, fold_subjects = meta["protocol"], meta["folds"]
    else:
        cfg = _as_config(config, overrides)
        if cfg.data.test_subjects is not None:
            raise ConfigError("data.test_subjects: cross-validation chooses the test subjects "
                              "of each fold; drop this setting")
        pool = dataset_subjects(cfg)
        fold_subjects = make_folds(pool, protocol, folds, cfg.train.seed)
        if subjects:
            unknown = sorted(set(subjects) - set(pool))
            if unknown:
                raise ConfigError(f"--subjects: {unknown} are not subjects of {cfg.data.dataset}")
            fold_subjects = [f for f in fold_subjects if f is None or set(f) & set(subjects)]
        name = cfg.name or (time.strftime("%Y%m%d-%H%M%S")
                            + f"-{cfg.data.dataset}-{cfg.model.name}-{protocol}")
        meta = {"protocol": protocol, "folds": fold_subjects, "config": cfg.to_dict(),
                "command": " ".join(command or []), "status": "running",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        cv_dir = _create_cv_dir(Path(cfg.run_root), name, meta)

    tracker = start_group_run(cfg, cv_dir, meta, "cv.json", "cv",
                              {"cv.protocol": protocol, "cv.folds": len(meta["folds"])},
                              split=f"{protocol} over {len(meta['folds'])} folds")
    try:
        result = _run_folds(cv_dir, cfg, meta, protocol, fold_subjects, progress, command,
                            tracker)
    except BaseException as e:
        tracker.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    tracker.log_metrics({f"{k}_{stat}": v for k in SCORES if k in result.summary
                         for stat, v in result.summary[k].items()})
    tracker.log_report(result.pooled, "pooled")
    finish_group_run(tracker, cv_dir, "fold*")
    return result


def _run_folds(cv_dir: Path, cfg: ExperimentConfig, meta: dict[str, Any], protocol: str,
               fold_subjects: list[list[int] | None], progress: bool,
               command: list[str] | None, tracker: Tracker) -> CVResult:
    from harkit.api import train as train_run
    from harkit.runs import RunDir
    from harkit.tracking import parent_run

    rows: list[dict[str, Any]] = []
    subject_rows: list[dict[str, Any]] = []
    y_true: list[np.ndarray] = []
    y_pred: list[np.ndarray] = []
    classes: list[str] = []
    for i, test in enumerate(fold_subjects):
        fold_name = f"fold{i + 1:02d}"
        fold_dir = cv_dir / fold_name
        label = "dataset split" if test is None else f"subjects {test}"
        log.info("%s (%d/%d): test on %s", fold_name, i + 1, len(fold_subjects), label)
        status = RunDir(fold_dir).info().get("status") if fold_dir.exists() else None
        if status != "finished":
            with parent_run(tracker):
                if fold_dir.exists():
                    train_run(resume=fold_dir, progress=progress)
                else:
                    fold_cfg = replace(cfg, run_root=str(cv_dir), name=fold_name,
                                       data=replace(cfg.data, test_subjects=test))
                    train_run(fold_cfg, progress=progress, command=command)
        classes = EvalReport.load(fold_dir / "metrics.json").classes
        truth, pred, subj = _fold_predictions(fold_dir)
        # scored from the saved predictions, so a resumed cv re-scores with current code
        report = evaluate_predictions(truth, pred, classes, subjects=subj)
        y_true.append(truth)
        y_pred.append(pred)
        row: dict[str, Any] = {"fold": fold_name,
                               "test_subjects": " ".join(map(str, test or [])) or "dataset",
                               "n_windows": report.n_windows}
        row.update({k: getattr(report, k) for k in SCORES if getattr(report, k) is not None})
        rows.append(row)
        tracker.log_metrics({f"fold_{k}": getattr(report, k) for k in SCORES
                             if getattr(report, k) is not None}, step=i + 1)
        for sid, m in report.per_subject.items():
            subject_rows.append({"subject": int(sid), "fold": fold_name, **m})
        _write_tables(cv_dir, rows, subject_rows)

    pooled = evaluate_predictions(np.concatenate(y_true), np.concatenate(y_pred), classes,
                                  split=f"{protocol} (all folds)")
    summary = {"protocol": protocol, "n_folds": len(rows)}
    for k in SCORES:
        vals = [r[k] for r in rows if k in r]
        if vals:
            summary[k] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
                          "min": float(np.min(vals)), "max": float(np.max(vals))}
    summary["pooled"] = pooled.to_dict()
    atomic_write_text(cv_dir / "summary.json", json.dumps(summary, indent=2))
    meta["status"] = "finished"
    atomic_write_text(cv_dir / "cv.json", json.dumps(meta, indent=2))
    _plot(cv_dir, cfg, rows, pooled, protocol)
    return CVResult(cv_dir, protocol, rows, subject_rows, summary, pooled)


def _fold_predictions(fold_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fold's test labels and predictions (saved by :func:`harkit.api.evaluate_run`)."""
    path = fold_dir / "test_predictions.npz"
    if not path.exists():
        from harkit.api import evaluate_run

        evaluate_run(fold_dir, "test", plots=False)
    with np.load(path) as z:
        return z["y_true"], z["y_pred"], z["subjects"]


def _write_tables(cv_dir: Path, rows: list[dict[str, Any]],
                  subject_rows: list[dict[str, Any]]) -> None:
    for name, table in (("folds.csv", rows), ("subjects.csv", subject_rows)):
        if not table:
            continue
        fields = list(dict.fromkeys(k for r in table for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(table)
        atomic_write_text(cv_dir / name, buf.getvalue())


def _plot(cv_dir: Path, cfg: ExperimentConfig, rows: list[dict[str, Any]], pooled: EvalReport,
          protocol: str) -> None:
    from harkit.viz import plot_confusion_matrix, plot_folds

    title = f"{cfg.model.name} on {cfg.data.dataset}, {protocol}"
    plot_folds(rows, cv_dir / "plots" / "folds.png", title=title)
    plot_confusion_matrix(pooled.confusion, pooled.classes, cv_dir / "plots" / "confusion_matrix.png",
                          title=f"{title}: all test windows, accuracy {pooled.accuracy:.3f}, "
                                f"macro F1 {pooled.macro_f1:.3f}")


__all__ = ["PROTOCOLS", "CVResult", "cross_validate", "make_folds"]
