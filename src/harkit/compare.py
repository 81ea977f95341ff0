"""Compare experiments: list the runs under a run root (and in MLflow) and set runs side by side.

:func:`list_runs` finds every run directory (``config.yaml``) and cross-validation directory
(``cv.json``) under a run root and summarises each in one :class:`RunSummary` row; a
cross-validation is one row with the mean and standard deviation over its folds (its folds are
not listed on their own). With an MLflow tracking URI the runs of an MLflow experiment are
added; an MLflow run whose ``harkit.run_dir`` tag names a run listed locally is merged into
that row.

:func:`compare_runs` sets two or more run or cross-validation directories side by side: their
scores, per-class F1 relative to the first, configuration differences and their learning
curves overlaid in one plot. Written next to each other::

    <output>/comparison.json      scores, per-class F1 and deltas, missing classes, notes
    <output>/learning_curves.png  validation macro F1 and train / validation loss per epoch

Everything is read from the files the runs wrote; nothing is re-evaluated, so comparing is
instant and needs neither the data nor the checkpoints.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harkit.errors import CheckpointError, ConfigError, DataFormatError, HarkitError
from harkit.io import atomic_write_text

log = logging.getLogger(__name__)

TEST_SCORES = ("accuracy", "macro_f1", "weighted_f1", "macro_f1_without_null",
               "accuracy_without_null")

# (key, label, kind): "score" = higher is better, shown with 4 decimals; the others are facts.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "test accuracy", "score"),
    ("macro_f1", "test macro F1", "score"),
    ("weighted_f1", "test weighted F1", "score"),
    ("macro_f1_without_null", "test macro F1 without NULL", "score"),
    ("accuracy_without_null", "test accuracy without NULL", "score"),
    ("val_macro_f1", "validation macro F1", "score"),
    ("epochs", "epochs", "count"),
    ("best_epoch", "best epoch", "count"),
    ("train_seconds", "training time", "seconds"),
    ("n_parameters", "parameters", "count"),
)
_OPTIONAL_METRICS = ("macro_f1_without_null", "accuracy_without_null")
# config fields that differ between runs without being a choice of the experiment (and
# tracking.*: where the run was logged)
_NOT_SETTINGS = ("name", "run_root", "data.data_dir")


# ---------------------------------------------------------------------------------------------
# reading run and cv directories
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path, strict: bool = False) -> dict[str, Any]:
    """The JSON object in ``path``; {} when missing (or unreadable, unless ``strict``)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if strict:
            raise DataFormatError(path, f"cannot read JSON ({e})") from None
        log.warning("%s: cannot read JSON (%s); ignored", path, e)
        return {}
    if not isinstance(data, dict):
        if strict:
            raise DataFormatError(path, "expected a JSON object")
        return {}
    return data


def _read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a plain mapping (not validated: old runs must still list)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        log.warning("%s: cannot read config (%s); ignored", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def _get(d: dict[str, Any], dotted: str) -> Any:
    """``d["a"]["b"]`` for ``"a.b"``; None when any level is missing."""
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _num(value: Any) -> float | None:
    """``value`` as a finite float, else None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(value: Any) -> int | None:
    x = _num(value)
    return None if x is None else int(x)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (as ``harkit cv`` reports them)."""
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def _fold_dirs(cv_dir: Path) -> list[Path]:
    """The fold run directories of a cross-validation, in fold order."""
    return sorted(p for p in cv_dir.glob("fold*") if (p / "config.yaml").is_file())


def _val_macro_f1(run_dir: Path, info: dict[str, Any]) -> float | None:
    """Validation macro F1 of the selected checkpoint (``metrics_val.json``), else the best
    epoch's from ``run.json`` (a run stopped before its validation report)."""
    val = _num(_read_json(run_dir / "metrics_val.json").get("macro_f1"))
    return val if val is not None else _num(info.get("best_val_macro_f1"))


def _cv_scores(cv_dir: Path) -> tuple[dict[str, tuple[float, float]], int]:
    """({score: (mean, std)} over folds, number of folds scored): from ``summary.json``, or
    from ``folds.csv`` while the cross-validation is still running."""
    summary = _read_json(cv_dir / "summary.json")
    if summary:
        out = {k: (float(v["mean"]), float(v["std"])) for k, v in summary.items()
               if k in TEST_SCORES and isinstance(v, dict) and "mean" in v}
        return out, int(summary.get("n_folds", 0))
    path = cv_dir / "folds.csv"
    if not path.is_file():
        return {}, 0
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    out = {}
    for k in TEST_SCORES:
        vals = [x for x in (_num(r.get(k)) for r in rows) if x is not None]
        if vals:
            out[k] = _mean_std(vals)
    return out, len(rows)


def _created(text: Any, path: Path | None) -> str | None:
    """The creation time as ``YYYY-MM-DDTHH:MM:SS`` (the folder's mtime when not recorded)."""
    if isinstance(text, str) and text:
        return text
    if path is not None:
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))
        except OSError:
            return None
    return None


# ---------------------------------------------------------------------------------------------
# list_runs
# ---------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """One row of :func:`list_runs`: a run, or a cross-validation summarised over its folds.

    For a cross-validation (``kind == "cv"``) the test scores are means over the folds, with
    their standard deviations in ``test_accuracy_std`` / ``test_macro_f1_std``,
    ``val_macro_f1`` is the mean over folds and ``train_seconds`` the total. Fields the
    run has not written yet (a running or stopped run) are None.
    """

    name: str  # the folder's path below the run root (MLflow: the run name)
    path: Path | None
    kind: str  # "run" or "cv"
    dataset: str | None
    model: str | None
    status: str | None
    created: str | None  # local time, YYYY-MM-DDTHH:MM:SS
    epochs: int | None
    best_epoch: int | None
    train_seconds: float | None
    val_macro_f1: float | None
    test_accuracy: float | None
    test_macro_f1: float | None
    source: str = "local"  # "local" (possibly also tracked: see mlflow_run_id) or "mlflow"
    test_accuracy_std: float | None = None
    test_macro_f1_std: float | None = None
    n_folds: int | None = None
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = None if self.path is None else str(self.path)
        return d


def summarise_run(path: str | Path) -> RunSummary:
    """The :class:`RunSummary` of one run directory (whatever state it is in)."""
    p = Path(path)
    info = _read_json(p / "run.json")
    cfg = _read_config(p / "config.yaml")
    test = _read_json(p / "metrics.json")
    return RunSummary(
        name=p.name, path=p, kind="run",
        dataset=info.get("dataset") or _get(cfg, "data.dataset"),
        model=info.get("model") or _get(cfg, "model.name"),
        status=info.get("status"), created=_created(info.get("created"), p),
        epochs=_int(info.get("epochs")), best_epoch=_int(info.get("best_epoch")),
        train_seconds=_num(info.get("train_seconds")), val_macro_f1=_val_macro_f1(p, info),
        test_accuracy=_num(test.get("accuracy")), test_macro_f1=_num(test.get("macro_f1")))


def summarise_cv(path: str | Path) -> RunSummary:
    """The :class:`RunSummary` of one cross-validation directory: mean / std over its folds."""
    p = Path(path)
    meta = _read_json(p / "cv.json")
    cfg: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    scores, n_scored = _cv_scores(p)
    seconds: list[float] = []
    val: list[float] = []
    for fold in _fold_dirs(p):
        info = _read_json(fold / "run.json")
        s = _num(info.get("train_seconds"))
        if s is not None:
            seconds.append(s)
        v = _val_macro_f1(fold, info)
        if v is not None:
            val.append(v)
    acc, f1 = scores.get("accuracy"), scores.get("macro_f1")
    folds = meta.get("folds")
    return RunSummary(
        name=p.name, path=p, kind="cv", dataset=_get(cfg, "data.dataset"),
        model=_get(cfg, "model.name"), status=meta.get("status"),
        created=_created(meta.get("created"), p), epochs=None, best_epoch=None,
        train_seconds=sum(seconds) if seconds else None,
        val_macro_f1=_mean_std(val)[0] if val else None,
        test_accuracy=None if acc is None else acc[0],
        test_macro_f1=None if f1 is None else f1[0],
        test_accuracy_std=None if acc is None else acc[1],
        test_macro_f1_std=None if f1 is None else f1[1],
        n_folds=len(folds) if isinstance(folds, list) else (n_scored or None))


def _find_local(root: Path) -> list[tuple[str, Path]]:
    """(kind, path) of every run and cv directory under ``root``; hidden folders (runs being
    created, ``.name.partial-PID``) are skipped and a cv's folds are not listed separately."""
    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        real = d.resolve()
        if real in seen:  # a symlink loop
            continue
        seen.add(real)
        if (d / "cv.json").is_file():
            found.append(("cv", d))
            continue
        if (d / "config.yaml").is_file():
            found.append(("run", d))
            continue
        try:
            children = sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError as e:
            log.warning("%s: cannot list (%s); skipped", d, e.strerror)
            continue
        stack.extend(reversed(children))
    return found


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise HarkitError("listing MLflow runs needs MLflow: pip install mlflow") from None
    return mlflow


def _mlflow_runs(tracking_uri: str, experiment: str) -> list[tuple[RunSummary, str | None]]:
    """Every active run of MLflow ``experiment`` at ``tracking_uri``: (row, parent run id)."""
    mlflow = _mlflow()
    from mlflow.exceptions import MlflowException

    try:
        client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = sorted(e.name for e in client.search_experiments())
            raise ConfigError(f"MLflow experiment {experiment!r} not found at {tracking_uri!r} "
                              f"(it has: {', '.join(names) or 'no experiments'})")
        rows: list[tuple[RunSummary, str | None]] = []
        token: str | None = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token,
                                      order_by=["attributes.start_time DESC"])
            rows.extend((_mlflow_row(r), r.data.tags.get("mlflow.parentRunId")) for r in page)
            token = page.token
            if not token:
                return rows
    except MlflowException as e:
        raise HarkitError(f"MLflow tracking URI {tracking_uri!r}: {e.message.strip()}") from None


def _mlflow_row(run: Any) -> RunSummary:
    """A RunSummary from an MLflow run logged by harkit's tracker: tags ``harkit.*``, metrics
    ``test_accuracy`` ... (a cross-validation, tag ``harkit.kind`` = cv: ``accuracy_mean``,
    ``accuracy_std`` ... over folds), params = the flattened config."""
    tags: dict[str, str] = run.data.tags
    metrics: dict[str, float] = run.data.metrics
    params: dict[str, str] = run.data.params
    info = run.info
    run_dir = tags.get("harkit.run_dir")
    start = info.start_time
    created = (time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start / 1000))
               if start else None)
    kind = tags.get("harkit.kind") or "run"
    cv = kind == "cv"
    return RunSummary(
        name=info.run_name or (Path(run_dir).name if run_dir else info.run_id[:8]),
        path=Path(run_dir) if run_dir else None, kind=kind,
        dataset=tags.get("harkit.dataset") or params.get("data.dataset"),
        model=tags.get("harkit.model") or params.get("model.name"),
        status=tags.get("harkit.status") or str(info.status).lower(), created=created,
        epochs=None if cv else _int(metrics.get("epochs")),
        best_epoch=None if cv else _int(metrics.get("best_epoch")),
        train_seconds=_num(metrics.get("train_seconds")),
        val_macro_f1=_num(metrics.get("val_macro_f1")),
        test_accuracy=_num(metrics.get("accuracy_mean" if cv else "test_accuracy")),
        test_macro_f1=_num(metrics.get("macro_f1_mean" if cv else "test_macro_f1")),
        test_accuracy_std=_num(metrics.get("accuracy_std")) if cv else None,
        test_macro_f1_std=_num(metrics.get("macro_f1_std")) if cv else None,
        n_folds=_int(params.get("cv.folds")) if cv else None,
        source="mlflow", mlflow_run_id=info.run_id)


def _merge(local: RunSummary, tracked: RunSummary) -> None:
    """Fill the local row's gaps from its MLflow run (the run's own files take precedence)."""
    for k, v in asdict(tracked).items():
        if k not in ("name", "path", "source") and getattr(local, k) is None and v is not None:
            setattr(local, k, v)


def _key(path: Path) -> str:
    return os.path.normcase(str(path.expanduser().resolve()))


def list_runs(run_root: str | Path = "runs", *, tracking_uri: str | None = None,
              experiment: str = "harkit") -> list[RunSummary]:
    """Every run and cross-validation under ``run_root`` (and in MLflow), newest first.

    Run directories are folders holding a ``config.yaml``, cross-validations folders holding
    a ``cv.json`` (listed as one row, mean and std over the folds); sub-folders are searched,
    hidden ones (runs being created) are skipped.

    Args:
        run_root: the folder to search (``--run-root``).
        tracking_uri: also list the runs of MLflow ``experiment`` at this tracking URI
            (``sqlite:///mlflow.db``, ``http://host:5000``, a folder). An MLflow run whose
            ``harkit.run_dir`` tag names a run or cross-validation listed here is merged into
            that row (the local files win, MLflow fills gaps); the folds of a cross-validation
            (nested MLflow runs, or run directories inside a listed one) are part of its row.
        experiment: the MLflow experiment name.

    Returns:
        One :class:`RunSummary` per run or cross-validation, sorted by creation time, newest
        first.

    Raises:
        ConfigError: ``run_root`` does not exist (without ``tracking_uri``), or the MLflow
            experiment does not exist.
        HarkitError: MLflow is not installed, or the tracking URI cannot be read.

    Example:
        >>> rows = list_runs("runs")                               # doctest: +SKIP
        >>> [(r.name, r.test_macro_f1) for r in rows]              # doctest: +SKIP
    """
    root = Path(run_root)
    rows: list[RunSummary] = []
    if root.is_dir():
        for kind, path in _find_local(root):
            row = summarise_cv(path) if kind == "cv" else summarise_run(path)
            if path != root:  # nested runs are named by their path below the root: unique
                row.name = path.relative_to(root).as_posix()
            rows.append(row)
    elif tracking_uri is None:
        raise ConfigError(f"run root {str(root)!r}: no such directory (train a model first, "
                          "or pass --run-root)")
    if tracking_uri is not None:
        by_path = {_key(r.path): r for r in rows if r.path is not None}
        local_cvs = {_key(r.path) for r in rows if r.path is not None and r.kind == "cv"}
        tracked_runs = _mlflow_runs(tracking_uri, experiment)
        cv_ids = {t.mlflow_run_id for t, _ in tracked_runs if t.kind == "cv"}
        for tracked, parent in tracked_runs:
            if tracked.kind not in ("run", "cv"):
                continue  # a study's parent run (harkit tune): its trials are listed
            if parent is not None and parent in cv_ids:
                continue  # a fold: its cross-validation's row covers it
            if tracked.path is not None:
                key = _key(tracked.path)
                if key in by_path:
                    _merge(by_path[key], tracked)
                    continue
                if _key(tracked.path.parent) in local_cvs:
                    continue  # a fold of a cross-validation listed here
            rows.append(tracked)
    rows.sort(key=lambda r: (r.created or "", r.name), reverse=True)
    return rows


# ---------------------------------------------------------------------------------------------
# compare_runs
# ---------------------------------------------------------------------------------------------


@dataclass
class ComparedRun:
    """One run (or cross-validation) of a :class:`Comparison`, read from its directory."""

    label: str  # unique within the comparison (the folder name, numbered when repeated)
    path: Path
    kind: str  # "run" or "cv"
    dataset: str | None
    model: str | None
    status: str | None
    test_subjects: list[int] | None  # a run's test subjects (None: the dataset's test split)
    scores: dict[str, float | None]  # the METRICS keys; cv: test scores are means over folds
    std: dict[str, float]  # cv: standard deviation over folds of each test score
    per_class_f1: dict[str, float]  # class name -> test F1 (cv: pooled over all folds)
    config: dict[str, Any]  # the flattened config (cv: the config shared by its folds)
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch (cv: fold mean)
    n_folds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "path": str(self.path), "kind": self.kind,
                "dataset": self.dataset, "model": self.model, "status": self.status,
                "test_subjects": self.test_subjects, "n_folds": self.n_folds,
                "scores": self.scores, "std": self.std, "per_class_f1": self.per_class_f1}


@dataclass
class Comparison:
    """What :func:`compare_runs` returns: runs side by side, deltas relative to ``runs[0]``."""

    runs: list[ComparedRun]
    metrics: list[str]  # METRICS keys shown (the without-NULL ones only when some run has them)
    classes: list[str]  # every class of any run: the first run's order, then the others'
    shared_classes: list[str]  # classes every run has
    missing_classes: dict[str, list[str]]  # run label -> classes other runs have and it lacks
    config_diff: dict[str, list[Any]]  # flattened config key -> value per run, where they differ
    notes: list[str]  # what makes the runs less comparable
    plot_path: Path | None = None
    json_path: Path | None = None

    def values(self, metric: str) -> list[float | None]:
        """``metric`` of every run (None where missing)."""
        return [r.scores.get(metric) for r in self.runs]

    def deltas(self, metric: str) -> list[float | None]:
        """``metric`` of every run minus the first run's (None where either is missing)."""
        vals = self.values(metric)
        return [None if v is None or vals[0] is None else v - vals[0] for v in vals]

    def class_f1(self, cls: str) -> list[float | None]:
        """Test F1 of class ``cls`` in every run (None where the run lacks the class)."""
        return [r.per_class_f1.get(cls) for r in self.runs]

    def class_deltas(self, cls: str) -> list[float | None]:
        """F1 of ``cls`` in every run minus the first run's (None where either lacks it)."""
        vals = self.class_f1(cls)
        return [None if v is None or vals[0] is None else v - vals[0] for v in vals]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.runs[0].label,
            "runs": [r.to_dict() for r in self.runs],
            "metrics": {m: {"values": self.values(m), "deltas": self.deltas(m)}
                        for m in self.metrics},
            "per_class_f1": {c: {"values": self.class_f1(c), "deltas": self.class_deltas(c)}
                             for c in self.classes},
            "shared_classes": self.shared_classes, "missing_classes": self.missing_classes,
            "config_diff": {k: [_jsonable(v) for v in vals]
                            for k, vals in self.config_diff.items()},
            "notes": self.notes,
            "plot": None if self.plot_path is None else str(self.plot_path),
        }


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)


def _history(run_dir: Path) -> list[dict[str, float]]:
    """The selection phase's per-epoch epoch / losses / validation macro F1."""
    from harkit.runs import RunDir

    keep = ("epoch", "train_loss", "val_loss", "val_f1")
    try:
        rows = RunDir(run_dir).read_history()
    except (OSError, ValueError) as e:
        log.warning("%s: cannot read history.csv (%s); no learning curve", run_dir, e)
        return []
    return [{k: float(r[k]) for k in keep if k in r} for r in rows if "epoch" in r]


def _mean_history(histories: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per epoch, the mean over the folds that reached it (early stopping ends some sooner)."""
    by_epoch: dict[int, list[dict[str, float]]] = {}
    for hist in histories:
        for row in hist:
            by_epoch.setdefault(int(row["epoch"]), []).append(row)
    out = []
    for ep in sorted(by_epoch):
        rows = by_epoch[ep]
        mean: dict[str, float] = {"epoch": float(ep)}
        for k in ("train_loss", "val_loss", "val_f1"):
            vals = [r[k] for r in rows if k in r and math.isfinite(r[k])]
            mean[k] = sum(vals) / len(vals) if vals else math.nan
        out.append(mean)
    return out


def _flat_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The flattened config, fields it lacks (older runs) at their defaults, as the run's
    config is loaded; empty mappings are left out, so ``data.options`` {} vs
    ``data.options.activities`` 6 shows as one difference."""
    from harkit.config import ExperimentConfig, flatten

    if not cfg:
        return {}
    flat = flatten(ExperimentConfig().to_dict())
    flat.update(flatten(cfg))
    return {k: v for k, v in flat.items() if v != {}}


def _open(path: Path, label: str) -> ComparedRun:
    """Read one run or cv directory for comparison (CheckpointError when it is neither)."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such run or cross-validation directory")
    if (path / "cv.json").is_file():
        return _open_cv(path, label)
    if (path / "config.yaml").is_file():
        return _open_run(path, label)
    hint = ""
    if path.is_dir() and any((c / "config.yaml").is_file() or (c / "cv.json").is_file()
                             for c in path.iterdir() if c.is_dir()):
        hint = "; it holds runs: name them (harkit runs lists them)"
    raise CheckpointError(f"{path}: not a harkit run directory (no config.yaml) nor a "
                          f"cross-validation directory (no cv.json){hint}")


def _open_run(path: Path, label: str) -> ComparedRun:
    info = _read_json(path / "run.json", strict=True)
    cfg = _read_config(path / "config.yaml")
    test = _read_json(path / "metrics.json", strict=True)
    scores: dict[str, float | None] = {k: _num(test.get(k)) for k in TEST_SCORES}
    scores["val_macro_f1"] = _val_macro_f1(path, info)
    scores["epochs"] = _num(info.get("epochs"))
    scores["best_epoch"] = _num(info.get("best_epoch"))
    scores["train_seconds"] = _num(info.get("train_seconds"))
    scores["n_parameters"] = _num(info.get("n_parameters"))
    per_class = {str(c): float(m["f1"]) for c, m in (test.get("per_class") or {}).items()
                 if isinstance(m, dict) and _num(m.get("f1")) is not None}
    subjects = _get(cfg, "data.test_subjects")
    return ComparedRun(
        label=label, path=path, kind="run",
        dataset=info.get("dataset") or _get(cfg, "data.dataset"),
        model=info.get("model") or _get(cfg, "model.name"), status=info.get("status"),
        test_subjects=[int(s) for s in subjects] if isinstance(subjects, list) else None,
        scores=scores, std={}, per_class_f1=per_class, config=_flat_config(cfg),
        history=_history(path))


def _open_cv(path: Path, label: str) -> ComparedRun:
    meta = _read_json(path / "cv.json", strict=True)
    cfg: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    summary = _read_json(path / "summary.json", strict=True)
    means, n_scored = _cv_scores(path)
    folds = _fold_dirs(path)
    infos = [_read_json(f / "run.json") for f in folds]
    scores: dict[str, float | None] = {k: means[k][0] if k in means else None
                                       for k in TEST_SCORES}

    def fold_mean(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return sum(got) / len(got) if got else None

    scores["val_macro_f1"] = fold_mean([_val_macro_f1(f, i) for f, i in zip(folds, infos,
                                                                              strict=True)])
    scores["epochs"] = fold_mean([_num(i.get("epochs")) for i in infos])
    scores["best_epoch"] = fold_mean([_num(i.get("best_epoch")) for i in infos])
    seconds = [s for s in (_num(i.get("train_seconds")) for i in infos) if s is not None]
    scores["train_seconds"] = sum(seconds) if seconds else None
    scores["n_parameters"] = next((_num(i["n_parameters"]) for i in infos
                                   if "n_parameters" in i), None)
    pooled: dict[str, Any] = (summary["pooled"] if isinstance(summary.get("pooled"), dict)
                              else {})
    per_class = {str(c): float(m["f1"]) for c, m in (pooled.get("per_class") or {}).items()
                 if isinstance(m, dict) and _num(m.get("f1")) is not None}
    flat = _flat_config(cfg)
    flat["cv.protocol"] = meta.get("protocol")
    n_folds = len(meta["folds"]) if isinstance(meta.get("folds"), list) else n_scored
    return ComparedRun(
        label=label, path=path, kind="cv", dataset=_get(cfg, "data.dataset"),
        model=_get(cfg, "model.name"), status=meta.get("status"), test_subjects=None,
        scores=scores, std={k: v[1] for k, v in means.items()}, per_class_f1=per_class,
        config=flat, history=_mean_history([_history(f) for f in folds]), n_folds=n_folds)


def _labels(paths: Sequence[Path]) -> list[str]:
    """Folder names, numbered where two are the same (``a``, ``a (2)``)."""
    out: list[str] = []
    for p in paths:
        name = p.name or str(p)
        label, i = name, 2
        while label in out:
            label, i = f"{name} ({i})", i + 1
        out.append(label)
    return out


def _notes(runs: list[ComparedRun]) -> list[str]:
    """Why some scores are not measured on the same windows, and what is missing."""
    notes = []
    datasets = {r.dataset for r in runs}
    if len(datasets) > 1:
        notes.append("different datasets (" + ", ".join(f"{r.label}: {r.dataset}" for r in runs)
                     + "): their test scores are not measured on the same windows")
    else:
        plain = [r for r in runs if r.kind == "run"]
        if len({str(r.test_subjects) for r in plain}) > 1:
            notes.append("different test subjects (" + ", ".join(
                f"{r.label}: {r.test_subjects or 'dataset split'}" for r in plain) + ")")
    for r in runs:
        if r.kind == "cv":
            notes.append(f"{r.label} is a cross-validation: its test scores are means over "
                         f"{r.n_folds} folds, its per-class F1 pooled over all test windows, "
                         "its training time the total")
            if r.status != "finished":
                notes.append(f"{r.label}: cross-validation not finished (status {r.status}); "
                             f"continue it with: harkit cv --resume {r.path}")
        elif r.scores.get("accuracy") is None:
            notes.append(f"{r.label}: no test metrics (status {r.status}); finish it with: "
                         f"harkit train --resume {r.path}")
    return notes


def _config_diff(runs: list[ComparedRun]) -> dict[str, list[Any]]:
    keys = list(dict.fromkeys(k for r in runs for k in r.config))
    diff = {}
    for k in keys:
        if k in _NOT_SETTINGS or k.startswith("tracking."):
            continue
        vals = [r.config.get(k) for r in runs]
        if any(v != vals[0] for v in vals[1:]):
            diff[k] = vals
    return diff


def compare_runs(run_dirs: Sequence[str | Path],
                 output: str | Path | None = None) -> Comparison:
    """Set two or more runs (or cross-validations) side by side, relative to the first.

    Reads each directory's files (nothing is re-evaluated) and writes the comparison:
    ``comparison.json`` and ``learning_curves.png`` (validation macro F1 and train /
    validation loss per epoch, one colour per run; a cross-validation draws the mean over its
    folds) into the folder ``output``, or, when ``output`` ends in ``.png``, the plot there
    and the JSON next to it with the same stem.

    Per-class F1 deltas match classes by name; classes that only some runs have are compared
    where present and listed in ``missing_classes``.

    Args:
        run_dirs: two or more run or cross-validation directories; the first is the reference.
        output: a folder (default: ``compare`` in the current directory) or a ``.png`` path.

    Returns:
        Comparison: scores, per-class F1 with deltas, config differences and notes.

    Raises:
        ConfigError: fewer than two directories.
        CheckpointError: a path that is not a run or cross-validation directory (named).

    Example:
        >>> cmp = compare_runs(["runs/cnn", "runs/lstm"], output="cmp")      # doctest: +SKIP
        >>> cmp.deltas("macro_f1")                                          # doctest: +SKIP
        [0.0, 0.034]
    """
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two run or cross-validation directories, "
                          f"got {len(paths)}")
    runs = [_open(p, label) for p, label in zip(paths, _labels(paths), strict=True)]
    metrics = [k for k, _, _ in METRICS
               if k not in _OPTIONAL_METRICS or any(r.scores.get(k) is not None for r in runs)]
    classes = list(dict.fromkeys(c for r in runs for c in r.per_class_f1))
    with_classes = [r for r in runs if r.per_class_f1]
    shared = [c for c in classes if all(c in r.per_class_f1 for r in with_classes)]
    missing = {r.label: [c for c in classes if c not in r.per_class_f1]
               for r in with_classes if len(r.per_class_f1) < len(classes)}
    notes = _notes(runs)
    for label, lacking in missing.items():
        notes.append(f"{label} has no class {', '.join(lacking)}")
    if missing:
        notes.append(f"per-class deltas: on the {len(shared)} classes all runs share, and on "
                     "others where the run and the first both have the class" if shared else
                     "no class is shared by all runs: per-class deltas only where a run and "
                     "the first share a class")
    cmp = Comparison(runs=runs, metrics=metrics, classes=classes, shared_classes=shared,
                     missing_classes=missing, config_diff=_config_diff(runs), notes=notes)

    out = Path(output) if output is not None else Path("compare")
    if out.suffix.lower() == ".png":
        plot_path, json_path = out, out.with_suffix(".json")
    else:
        plot_path, json_path = out / "learning_curves.png", out / "comparison.json"
    if any(r.history for r in runs):
        cmp.plot_path = plot_comparison(runs, plot_path)
    else:
        cmp.notes.append("no run has a history.csv: no learning curves drawn")
    atomic_write_text(json_path, json.dumps(cmp.to_dict(), indent=2))
    cmp.json_path = json_path
    return cmp


def plot_comparison(runs: Sequence[ComparedRun], path: str | Path) -> Path:
    """Validation macro F1 (left) and loss (right) per epoch, one colour per run.

    Training loss is drawn solid, validation loss dashed; a star marks each run's best
    validation epoch. A cross-validation draws the mean over the folds that reached each epoch.
    """
    from harkit.viz.plots import _pyplot, _save

    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab10").colors
    for i, r in enumerate(runs):
        if not r.history:
            continue
        colour = colours[i % len(colours)]
        name = r.label + (f" (mean of {r.n_folds} folds)" if r.kind == "cv" else "")
        ep = [h["epoch"] for h in r.history]
        f1 = [h.get("val_f1", math.nan) for h in r.history]
        ax1.plot(ep, f1, "o-", color=colour, ms=3, label=name)
        finite = [(e, v) for e, v in zip(ep, f1, strict=True) if math.isfinite(v)]
        if finite:
            best = max(finite, key=lambda t: t[1])
            ax1.plot([best[0]], [best[1]], "*", color=colour, ms=12, mec="black", mew=0.5)
        ax2.plot(ep, [h.get("train_loss", math.nan) for h in r.history], "o-", color=colour,
                 ms=3, label=f"{name}: train")
        ax2.plot(ep, [h.get("val_loss", math.nan) for h in r.history], "s--", color=colour,
                 ms=3, label=f"{name}: validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("macro F1")
    ax1.set_title("validation macro F1 (star: best epoch)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, loc="lower right")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("cross-entropy loss")
    # training loss is measured on augmented batches with label smoothing (see plot_history)
    ax2.set_title("loss: train solid, validation dashed")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.legend(fontsize=7, loc="upper right")
    return _save(fig, Path(path))


# ---------------------------------------------------------------------------------------------
# Rich tables for the CLI
# ---------------------------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    """A duration for tables.

    Example:
        >>> format_seconds(42.25), format_seconds(150), format_seconds(7200), format_seconds(None)
        ('42.2 s', '2.5 min', '2.0 h', '-')
    """
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _score(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"


def runs_table(rows: Sequence[RunSummary], title: str | None = None) -> Any:
    """A Rich table of :func:`list_runs` rows: one line per run or cross-validation."""
    from rich.table import Table

    t = Table(title=title or f"{len(rows)} runs, newest first",
              caption="cv: mean ± std over folds; training time: total" if any(
                  r.kind == "cv" for r in rows) else None)
    cols = ["name", "kind", "dataset", "model", "status", "created", "epochs (best)",
            "training", "val macro F1", "test accuracy", "test macro F1"]
    tracked = any(r.source == "mlflow" or r.mlflow_run_id for r in rows)
    if tracked:
        cols.append("source")
    right = {"epochs (best)", "training", "val macro F1", "test accuracy", "test macro F1"}
    for c in cols:
        t.add_column(c, justify="right" if c in right else "left", no_wrap=c != "name")
    for r in rows:
        kind = r.kind if r.n_folds is None else (
            f"{r.kind} ({r.n_folds} fold{'s' if r.n_folds != 1 else ''})")
        epochs = "-" if r.epochs is None else (
            str(r.epochs) + ("" if r.best_epoch is None else f" ({r.best_epoch})"))
        cells = [r.name, kind, r.dataset or "-", r.model or "-", r.status or "-",
                 (r.created or "-").replace("T", " "), epochs, format_seconds(r.train_seconds),
                 _score(r.val_macro_f1), _score(r.test_accuracy, r.test_accuracy_std),
                 _score(r.test_macro_f1, r.test_macro_f1_std)]
        if tracked:
            cells.append("local + mlflow" if r.source == "local" and r.mlflow_run_id
                         else r.source)
        t.add_row(*cells, style=None if r.status in ("finished", None) else "dim")
    return t


def _fmt_metric(key: str, value: float | None) -> str:
    kind = next(k for m, _, k in METRICS if m == key)
    if value is None:
        return "-"
    if kind == "seconds":
        return format_seconds(value)
    if kind == "count":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{value:.4f}"


def _fmt_delta(key: str, delta: float | None) -> str:
    kind = next(k for m, _, k in METRICS if m == key)
    if delta is None:
        return ""
    if kind == "score":
        colour = "green" if delta > 0 else "red" if delta < 0 else "default"
        return f" [{colour}]({delta:+.4f})[/]"
    if kind == "seconds":
        return f" ({'+' if delta >= 0 else '-'}{format_seconds(abs(delta))})"
    return f" ({delta:+,.0f})" if float(delta).is_integer() else f" ({delta:+,.1f})"


def comparison_tables(cmp: Comparison) -> list[Any]:
    """Rich tables of a :class:`Comparison`: scores, per-class F1 and config differences,
    each with the other runs' differences from the first in brackets."""
    from rich.table import Table

    ref = cmp.runs[0].label

    def header(r: ComparedRun) -> str:
        return f"{r.label}\n{r.model or '?'} on {r.dataset or '?'}" + (
            f"\ncv, {r.n_folds} folds" if r.kind == "cv" else "")

    scores = Table(title=f"{len(cmp.runs)} runs compared (differences from {ref})",
                   caption="\n".join(cmp.notes) or None, caption_justify="left")
    scores.add_column("metric")
    for r in cmp.runs:
        scores.add_column(header(r), justify="right")
    label_of = {k: label for k, label, _ in METRICS}
    for key in cmp.metrics:
        cells = []
        for i, (r, d) in enumerate(zip(cmp.runs, cmp.deltas(key), strict=True)):
            text = _fmt_metric(key, r.scores.get(key))
            if key in r.std:
                text += f" ± {r.std[key]:.4f}"
            cells.append(text + ("" if i == 0 else _fmt_delta(key, d)))
        scores.add_row(label_of[key], *cells)
    tables = [scores]

    if cmp.classes:
        per_class = Table(title=f"test F1 per class (differences from {ref})",
                          caption=None if not cmp.missing_classes else "\n".join(
                              f"{label} lacks: {', '.join(c)}"
                              for label, c in cmp.missing_classes.items()),
                          caption_justify="left")
        per_class.add_column("class")
        for r in cmp.runs:
            per_class.add_column(r.label, justify="right")
        for c in cmp.classes:
            cells = []
            for i, (v, d) in enumerate(zip(cmp.class_f1(c), cmp.class_deltas(c), strict=True)):
                if v is None:
                    cells.append("[dim]missing[/]")
                else:
                    cells.append(f"{v:.4f}" + ("" if i == 0 else _fmt_delta("macro_f1", d)))
            per_class.add_row(c, *cells)
        tables.append(per_class)

    if cmp.config_diff:
        diff = Table(title="configuration differences")
        diff.add_column("setting")
        for r in cmp.runs:
            diff.add_column(r.label)
        for k, vals in cmp.config_diff.items():
            diff.add_row(k, *("-" if v is None else str(v) for v in vals))
        tables.append(diff)
    return tables


__all__ = ["ComparedRun", "Comparison", "RunSummary", "compare_runs", "comparison_tables",
           "format_seconds", "list_runs", "plot_comparison", "runs_table", "summarise_cv",
           "summarise_run"]
