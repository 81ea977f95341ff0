"""Experiment tracking behind one small interface: MLflow when installed and enabled, else nothing.

A training run owns one :class:`Tracker`. The run directory stays the source of truth (every
file is written there first); the tracker mirrors it into MLflow: the resolved config as
flattened params, one metrics row per epoch, the final validation and test scores, the run's
files as artifacts (plots, ``metrics.json``, ``confusion_matrix.json``, the config), the final
model as an MLflow *pyfunc* model with a signature and an input example (raw windows in,
labels and class probabilities out), and tags (dataset, model, split, git commit, run
directory). ``harkit cv`` and ``harkit tune`` open a parent run and their runs nest under it.

Tracking is on by default (``tracking.enabled``); ``HARKIT_TRACKING=0`` or ``--no-track``
switch it off. With MLflow not installed harkit trains as before and says, once, how to enable
tracking.

Example:
    >>> from harkit.config import ExperimentConfig
    >>> cfg = ExperimentConfig()
    >>> cfg.tracking.enabled, cfg.tracking.experiment
    (True, 'harkit')
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harkit.config import ExperimentConfig, TrackingConfig

if TYPE_CHECKING:
    from harkit.evaluation.metrics import EvalReport
    from harkit.training.trainer import EpochResult

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "harkit[mlflow]"'
_warned_missing = False
# The MLflow run that runs started now nest under (a cross-validation or a tuning study).
_parent: contextvars.ContextVar[str | None] = contextvars.ContextVar("harkit_parent_run",
                                                                      default=None)


class Tracker:
    """No tracking: every method does nothing. :class:`MlflowTracker` does the real work."""

    run_id: str | None = None
    uri: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        """Parameters (values are stringified); ones already logged are not changed."""

    def log_epoch(self, result: EpochResult, phase: str = "selection") -> None:
        """One epoch's metrics, stepped by epoch; the refit phase's keys start with ``refit_``."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Scalar metrics."""

    def log_report(self, report: EvalReport, prefix: str, step: int | None = None) -> None:
        """An evaluation report's scores as ``<prefix>_accuracy``, ``<prefix>_macro_f1``, ..."""

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Tags (values are stringified)."""

    def log_run_dir(self, run_dir: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> None:
        """Upload a run directory's files (not its checkpoints) as artifacts."""

    def log_model(self, checkpoint: Path, example: Any) -> None:
        """Log a checkpoint as an MLflow pyfunc model; ``example``: raw windows (N, T, C)."""

    def finish(self, status: str = "FINISHED") -> None:
        """Close the run: ``FINISHED``, ``FAILED`` or ``KILLED`` (stopped, to be resumed)."""


def tracking_active(cfg: TrackingConfig) -> bool:
    """Whether a run with this config is tracked (``enabled`` and not HARKIT_TRACKING=0)."""
    env = os.environ.get("HARKIT_TRACKING", "").strip().lower()
    return cfg.enabled and env not in ("0", "off", "false", "no")


def mlflow_available() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True


def _missing_mlflow() -> None:
    global _warned_missing
    if not _warned_missing:
        log.warning("MLflow is not installed, so this run is not tracked (its run directory "
                    "has everything). To track runs: %s, or set tracking.enabled=false to "
                    "silence this.", INSTALL_HINT)
        _warned_missing = True


def resolve_uri(cfg: TrackingConfig) -> str:
    """The tracking URI: ``tracking.uri``, else $MLFLOW_TRACKING_URI, else MLflow's default."""
    if cfg.uri:
        return cfg.uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    from mlflow.tracking import get_tracking_uri

    return str(get_tracking_uri())


@contextlib.contextmanager
def parent_run(tracker: Tracker) -> Iterator[None]:
    """Runs started inside this block nest under ``tracker``'s MLflow run."""
    token = _parent.set(tracker.run_id)
    try:
        yield
    finally:
        _parent.reset(token)


def start_run(cfg: ExperimentConfig, name: str, *, run_id: str | None = None,
              tags: dict[str, Any] | None = None) -> Tracker:
    """A tracker for a new MLflow run named ``name`` (or the existing ``run_id``, resumed).

    Returns a do-nothing :class:`Tracker` when tracking is off or MLflow is missing.
    """
    if not tracking_active(cfg.tracking):
        return Tracker()
    if not mlflow_available():
        _missing_mlflow()
        return Tracker()
    from harkit.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker.start(cfg.tracking, name, run_id=run_id, parent_id=_parent.get(),
                               tags=tags or {})


def start_group_run(cfg: ExperimentConfig, directory: Path, meta: dict[str, Any],
                    meta_file: str, kind: str, params: dict[str, Any],
                    split: str | None = None) -> Tracker:
    """The MLflow run of a cross-validation or tuning directory (its runs nest under it).

    A new run's id goes into ``meta`` (written back to ``directory / meta_file``) and its
    params are the flattened config plus ``params``; a resumed directory reopens its run.
    """
    import json

    from harkit.config import flatten
    from harkit.io import atomic_write_text

    tags = {"harkit.dataset": cfg.data.dataset, "harkit.model": cfg.model.name,
            "harkit.kind": kind, "harkit.run_dir": str(directory.resolve()),
            "harkit.status": "running"}
    if split is not None:
        tags["harkit.split"] = split
    tracker = start_run(cfg, directory.name, run_id=meta.get("mlflow_run_id"), tags=tags)
    if tracker.run_id is not None and "mlflow_run_id" not in meta:
        meta["mlflow_run_id"] = tracker.run_id
        atomic_write_text(directory / meta_file, json.dumps(meta, indent=2))
        tracker.log_params({**flatten(cfg.to_dict()), **params})
    return tracker


def finish_group_run(tracker: Tracker, directory: Path, children: str,
                     also_exclude: tuple[str, ...] = ()) -> None:
    """Mark a group's run finished and upload its files, not its children's directories
    (``children``: their glob pattern; each is an MLflow run of its own)."""
    tracker.set_tags({"harkit.status": "finished"})
    tracker.log_run_dir(directory, exclude=(*(p.name for p in directory.glob(children)),
                                            *also_exclude))
    tracker.finish("FINISHED")


def metric_key(name: str) -> str:
    """A class name as an MLflow metric key (letters, digits, ``_ - . /`` and spaces)."""
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", name)
