"""The MLflow tracker: one MLflow run per harkit run, written through ``MlflowClient``.

The client API is used instead of MLflow's global "active run", so a tracker never depends on
(or disturbs) whatever run the calling program has open, and runs nest by the
``mlflow.parentRunId`` tag.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harkit.config import TrackingConfig
from harkit.data.store import file_lock
from harkit.errors import HarkitError
from harkit.tracking import Tracker, metric_key, resolve_uri

if TYPE_CHECKING:
    from harkit.evaluation.metrics import EvalReport
    from harkit.training.trainer import EpochResult

log = logging.getLogger(__name__)

MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


def git_commit(where: Path) -> str | None:
    """The commit checked out at ``where`` (None outside a git work tree or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


@contextlib.contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for the block (its model logging has
    no client argument), then put back as it was (unset stays unset)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    previous = getattr(utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]


def store_lock_path(uri: str) -> Path | None:
    """The lock file that serialises the creation of a local MLflow store (its schema
    migration), of experiments and of runs between processes; None for a tracking server,
    which does its own locking.

    Example:
        >>> str(store_lock_path("sqlite:////tmp/x/mlflow.db"))
        '/tmp/x/mlflow.db.lock'
        >>> store_lock_path("http://host:5000") is None
        True
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            return None
        db = Path(path)
        return db.with_name(db.name + ".lock")
    if parsed.scheme in ("", "file"):
        store = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri)
        return store.with_name(store.name + ".lock")
    return None


# A local store that another process is writing answers "database is locked" for a moment.
_TRANSIENT = ("database is locked", "database table is locked", "busy")
RETRIES = 6


def _transient(e: Exception) -> bool:
    return any(t in str(e).lower() for t in _TRANSIENT)


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """A tracking call that fails (the server went away, the disk filled up) warns once and
    switches the tracker off: a long training run is never lost to its tracker. A store
    locked by another process is retried with backoff first."""

    @functools.wraps(method)
    def call(self: MlflowTracker, *args: Any, **kwargs: Any) -> None:
        if self.broken:
            return
        try:
            for attempt in range(RETRIES):
                try:
                    method(self, *args, **kwargs)
                    return
                except Exception as e:
                    if not _transient(e) or attempt == RETRIES - 1:
                        raise
                    time.sleep(0.05 * 2**attempt)
        except Exception as e:  # MlflowException, OSError, requests' errors, ...
            self.broken = True
            log.warning("MLflow tracking failed (%s: %s) in %s; the run continues untracked "
                        "(its run directory has everything)", type(e).__name__, e,
                        method.__name__)

    return call


def close_orphaned_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the experiment's MLflow runs that a killed ``harkit train`` left RUNNING.

    A run is orphaned when its harkit run folder (tag ``harkit.run_dir``) exists and no process
    holds the folder's lock (:meth:`~harkit.runs.RunDir.lock`, held by the process training
    or evaluating it until its last MLflow call). A SIGKILL during the final logging leaves a
    complete run folder behind an MLflow run still marked RUNNING; the next run started in
    the same local store closes it. ``harkit.status`` becomes the folder's own status. Group
    runs (cross-validation, tuning: tag ``harkit.kind``) hold no folder lock and are left
    alone. A resumed run reopens its MLflow run as RUNNING.

    Returns:
        The ids of the runs marked KILLED.
    """
    from harkit.runs import RunDir

    closed = []
    for r in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                max_results=1000):
        tags = r.data.tags
        folder = Path(tags.get("harkit.run_dir", ""))
        if "harkit.run_dir" not in tags or "harkit.kind" in tags or not folder.is_dir():
            continue
        run = RunDir(folder)
        try:
            fd = run.lock()
        except HarkitError:  # a live process has it
            continue
        try:
            try:
                status = run.info().get("status")
            except (OSError, ValueError):  # run.json unreadable: the kill came mid-write
                status = None
            client.set_tag(r.info.run_id, "harkit.status", str(status or "killed"))
            client.set_terminated(r.info.run_id, "KILLED")
        finally:
            os.close(fd)
        log.warning("MLflow run %s (%s) was left RUNNING by a harkit process that is gone: "
                    "marked KILLED", r.info.run_id, folder)
        closed.append(r.info.run_id)
    return closed


class MlflowTracker(Tracker):
    """Mirrors a harkit run into one MLflow run."""

    def __init__(self, client: Any, run_id: str, uri: str, cfg: TrackingConfig) -> None:
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self.cfg = cfg
        self.broken = False

    @classmethod
    def start(cls, cfg: TrackingConfig, name: str, *, run_id: str | None = None,
              parent_id: str | None = None, tags: dict[str, Any]) -> MlflowTracker:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = resolve_uri(cfg)
        lock = store_lock_path(uri)
        try:
            # Concurrent `harkit train` processes on one fresh local store would otherwise race
            # through its schema migration and the experiment's creation.
            with file_lock(lock) if lock is not None else contextlib.nullcontext():
                return cls._start(client_cls=MlflowClient, uri=uri, cfg=cfg, name=name,
                                  run_id=run_id, parent_id=parent_id, tags=tags)
        except MlflowException as e:
            raise HarkitError(f"MLflow tracking at {uri}: {e.message}; fix tracking.uri or "
                              "switch tracking off (--no-track, HARKIT_TRACKING=0)") from None
        except Exception as e:  # the store's database layer (sqlalchemy), the file system
            raise HarkitError(f"MLflow tracking at {uri}: {type(e).__name__}: {e}; fix "
                              "tracking.uri or switch tracking off (--no-track, "
                              "HARKIT_TRACKING=0)") from None

    @classmethod
    def _start(cls, *, client_cls: Any, uri: str, cfg: TrackingConfig, name: str,
               run_id: str | None, parent_id: str | None, tags: dict[str, Any]
               ) -> MlflowTracker:
        from mlflow.exceptions import MlflowException

        client = client_cls(tracking_uri=uri)
        if run_id is not None:
            client.update_run(run_id, status="RUNNING")
            return cls(client, run_id, uri, cfg)
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is not None:
            exp_id = exp.experiment_id
            if store_lock_path(uri) is not None:  # a local store: its run folders are here
                try:
                    close_orphaned_runs(client, exp_id)
                except Exception as e:  # housekeeping must not stop the new run
                    log.warning("could not close MLflow runs left RUNNING by dead processes: "
                                "%s: %s", type(e).__name__, e)
        else:
            try:
                exp_id = client.create_experiment(cfg.experiment)
            except MlflowException:  # created meanwhile by a process using another lock file
                exp = client.get_experiment_by_name(cfg.experiment)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        all_tags = {"mlflow.runName": name, "mlflow.source.type": "LOCAL",
                    "mlflow.source.name": "harkit", **tags}
        commit = git_commit(Path.cwd())
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        import harkit

        own = git_commit(Path(harkit.__file__).resolve().parent)
        if own:
            all_tags["harkit.git_commit"] = own
        if parent_id is not None:
            all_tags["mlflow.parentRunId"] = parent_id
        run = client.create_run(exp_id, run_name=name,
                                tags={k: str(v) for k, v in all_tags.items()})
        log.info("tracking to MLflow run %s at %s", run.info.run_id, uri)
        return cls(client, run.info.run_id, uri, cfg)

    # ------------------------------------------------------------------ values
    @_guarded
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        new = []
        for k, v in params.items():
            text = str(v)[:MAX_PARAM_LEN]
            if k not in logged:
                new.append(Param(k, text))
            elif logged[k] != text:  # a resumed run changed it (train.epochs): params are fixed
                self.set_tags({f"harkit.changed.{k}": text})
        for i in range(0, len(new), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=new[i : i + 100])

    @_guarded
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(metric_key(k), float(v), now, step or 0) for k, v in metrics.items()
                if v is not None and np.isfinite(v)]
        for i in range(0, len(rows), 1000):
            self.client.log_batch(self.run_id, metrics=rows[i : i + 1000])

    @_guarded
    def log_epoch(self, result: EpochResult, phase: str = "selection") -> None:
        if phase == "refit":
            values = {"refit_train_loss": result.train_loss, "refit_train_accuracy":
                      result.train_acc, "refit_lr": result.lr, "refit_epoch_seconds":
                      result.seconds}
        else:
            values = {"train_loss": result.train_loss, "train_accuracy": result.train_acc,
                      "val_loss": result.val_loss, "val_accuracy": result.val_acc,
                      "val_macro_f1": result.val_f1, "lr": result.lr,
                      "epoch_seconds": result.seconds}
        self.log_metrics(values, step=result.epoch)

    @_guarded
    def log_report(self, report: EvalReport, prefix: str, step: int | None = None) -> None:
        values: dict[str, float] = {f"{prefix}_accuracy": report.accuracy,
                                    f"{prefix}_macro_f1": report.macro_f1,
                                    f"{prefix}_weighted_f1": report.weighted_f1}
        if report.macro_f1_without_null is not None:
            values[f"{prefix}_macro_f1_without_null"] = report.macro_f1_without_null
        if report.accuracy_without_null is not None:
            values[f"{prefix}_accuracy_without_null"] = report.accuracy_without_null
        for cls_name, row in report.per_class.items():
            values[f"{prefix}_f1.{cls_name}"] = row["f1"]
        self.log_metrics(values, step=step)

    @_guarded
    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    # ------------------------------------------------------------------ files
    @_guarded
    def log_run_dir(self, run_dir: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> None:
        for p in sorted(run_dir.iterdir()):
            if p.name.startswith(".") or p.name in exclude:
                continue
            if p.is_dir():
                self.client.log_artifacts(self.run_id, str(p), p.name)
            else:
                self.client.log_artifact(self.run_id, str(p))
        metrics = run_dir / "metrics.json"
        if metrics.exists():
            import json

            rep = json.loads(metrics.read_text(encoding="utf-8"))
            self.client.log_dict(self.run_id, {"classes": rep["classes"],
                                               "confusion": rep["confusion"],
                                               "confusion_normalized":
                                                   rep["confusion_normalized"]},
                                 "confusion_matrix.json")

    @_guarded
    def log_model(self, checkpoint: Path, example: Any) -> None:
        """Log ``checkpoint`` as the run's pyfunc model ``model``."""

        from harkit.training.checkpoint import load_checkpoint

        assert self.run_id is not None and self.uri is not None
        preprocessing = load_checkpoint(checkpoint)["preprocessing"]
        with _global_tracking_uri(self.uri), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # MLflow's advice on type hints
            from harkit.tracking.pyfunc import log_pyfunc_model

            log_pyfunc_model(self.run_id, checkpoint, preprocessing, np.asarray(example))

    @_guarded
    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)
