"""The Python API: ``harkit.train(...)`` and ``harkit.evaluate(...)`` do what the CLI does."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from harkit.config import ExperimentConfig, apply_overrides, from_dict
from harkit.data import DATASETS, WindowedDataset, WindowSet, load_dataset
from harkit.data.augment import Augmenter, xyz_groups
from harkit.data.lazywindows import (
    LazyWindowSet,
    fit_normalizer,
    lazy_recording_windows,
    lazy_windowed,
)
from harkit.data.recording import RecordingDataset
from harkit.data.splits import choose_val_subjects, subject_holdout
from harkit.data.store import is_url
from harkit.data.transforms import Normalizer, Standardizer, make_normalizer, normalizer_from_state
from harkit.errors import ConfigError
from harkit.evaluation.metrics import EvalReport, evaluate_predictions
from harkit.io import remove_stale_temp_files
from harkit.models import MODELS, HarModel, create_model
from harkit.runs import RunDir
from harkit.tracking import Tracker
from harkit.training import distributed
from harkit.training.checkpoint import load_first_good, previous_path, save_checkpoint
from harkit.training.trainer import EpochResult, Trainer, seed_everything

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Normalised splits ready for training, plus the preprocessing to store in checkpoints."""

    dataset: WindowedDataset
    train: WindowSet
    val: WindowSet
    test: WindowSet | None
    normalizer: Normalizer
    val_subjects: list[int]

    def preprocessing(self) -> dict[str, Any]:
        ds = self.dataset
        return {
            "dataset": ds.name, "channels": list(ds.channels), "classes": list(ds.classes),
            "units": dict(ds.units), "window_len": ds.window_len, "hop": ds.hop,
            "sampling_rate": ds.sampling_rate, "normalizer": self.normalizer.state_dict(),
            "val_subjects": list(self.val_subjects),
        }


def prepare_data(cfg: ExperimentConfig, normalizer_state: dict[str, Any] | None = None
                 ) -> PreparedData:
    """Load the dataset, carve validation subjects from training, fit the normaliser on the
    training part only (or restore ``normalizer_state``) and normalise every split."""
    ds = _load(cfg)
    train, val, val_subjects = _train_val(cfg, ds)
    norm = _normalizer(cfg, train, normalizer_state, ds)
    test = ds.splits.get("test")
    return PreparedData(ds, _apply(norm, train), _apply(norm, val),
                        None if test is None else _apply(norm, test), norm, list(val_subjects))


def _train_val(cfg: ExperimentConfig, ds: WindowedDataset
               ) -> tuple[WindowSet, WindowSet, list[int]]:
    """The training and validation windows: the dataset's own validation split when it
    defines one (and no validation subjects are named), else validation subjects carved from
    the training subjects."""
    if "val" in ds.splits and not cfg.data.val_subjects:
        return ds.splits["train"], ds.splits["val"], []
    full_train = _all_training(ds)
    val_subjects = cfg.data.val_subjects or choose_val_subjects(
        full_train.subject_ids(), cfg.data.n_val_subjects, cfg.train.seed)
    train, val = subject_holdout(full_train, val_subjects)
    return train, val, list(val_subjects)


def _all_training(ds: WindowedDataset) -> WindowSet:
    """Every window the model may learn from: ``train`` plus a dataset-defined ``val``."""
    if "val" not in ds.splits:
        return ds.splits["train"]
    parts = [ds.splits["train"], ds.splits["val"]]
    if isinstance(parts[0], LazyWindowSet):
        return LazyWindowSet.join(parts)
    return WindowSet.concat(parts)


def _normalizer(cfg: ExperimentConfig, train: WindowSet, state: dict[str, Any] | None,
                ds: WindowedDataset) -> Normalizer:
    """Restore a checkpoint's normaliser, or fit a new one on ``train`` (training data only;
    one shared by all joints on a skeleton dataset, see :func:`make_normalizer`)."""
    if state is not None:
        return normalizer_from_state(state)
    norm = make_normalizer(cfg.data.normalize, ds.skeleton)
    if isinstance(train, LazyWindowSet):  # fitted a chunk of windows at a time
        return fit_normalizer(norm, train.view)
    return norm.fit(train.X)


def _apply(norm: Normalizer, ws: WindowSet) -> WindowSet:
    if isinstance(ws, LazyWindowSet):  # normalised as each batch is gathered
        return ws.normalized(norm)
    return WindowSet(norm.transform(ws.X), ws.y, ws.subjects)


def _tensors(ws: WindowSet, full: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows and labels for the Trainer. A lazy set (``data.window_cache``) gives its
    WindowView, which the Trainer indexes as it indexes a tensor, unless ``full`` asks for
    the materialised tensor."""
    y = torch.from_numpy(ws.y.astype(np.int64))
    if isinstance(ws, LazyWindowSet):
        # the Trainer only takes X[idx], X[i:j] and len(X) of its windows: a view does that
        return (ws.view.to_tensor() if full else cast(torch.Tensor, ws.view)), y
    return torch.from_numpy(np.ascontiguousarray(ws.X)), y


def build_model(cfg: ExperimentConfig, data: PreparedData) -> HarModel:
    """The configured model for the data; a skeleton model (registry tag ``skeleton``), or a
    sensor model that can read a skeleton (tag ``layout``: the random-kernel family's
    ``streams``), also gets the dataset's skeleton (None on sensor data) unless
    ``model.params`` names one."""
    params = dict(cfg.model.params)
    tags = MODELS.get(cfg.model.name).tags
    if (tags.get("skeleton") or tags.get("layout")) and "skeleton" not in params:
        sk = data.dataset.skeleton
        params["skeleton"] = None if sk is None else sk.to_dict()
    return create_model(cfg.model.name, n_channels=data.dataset.n_channels,
                        n_classes=data.dataset.n_classes, window_len=data.dataset.window_len,
                        **params)


def _augmenter(cfg: ExperimentConfig, data: PreparedData) -> Augmenter | None:
    mean = std = None
    if isinstance(data.normalizer, Standardizer):
        assert data.normalizer.mean is not None and data.normalizer.std is not None
        mean = torch.from_numpy(data.normalizer.mean)
        std = torch.from_numpy(data.normalizer.std)
    sk = data.dataset.skeleton
    groups = [] if sk is not None else xyz_groups(data.dataset.channels)
    aug = Augmenter(cfg.train.augment, mean, std, groups, sk)
    return aug if aug.active else None


class Pruned(Exception):
    """Raised by an epoch callback to abandon a run (an unpromising tuning trial)."""


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    test: EvalReport | None
    val: EvalReport | None  # None for a run without validation (data.n_val_subjects=0)
    history: list[dict[str, Any]]
    best_epoch: int  # epoch with the best validation macro F1
    selected_epoch: int  # the epoch train.select chose (what the validation report scores)
    train_seconds: float
    finished: bool


def _as_config(config: ExperimentConfig | dict[str, Any] | str | Path | None,
               overrides: list[str] | None) -> ExperimentConfig:
    from harkit.config import load_config

    if config is None:
        cfg = ExperimentConfig()
    elif isinstance(config, ExperimentConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = from_dict(ExperimentConfig, config)
    else:
        cfg = load_config(config)
    return apply_overrides(cfg, overrides or [])


def _resumed_config(run: RunDir, overrides: list[str] | None) -> ExperimentConfig:
    cfg = run.config()
    if overrides:
        allowed = ("train.epochs", "train.early_stopping", "train.num_threads",
                   "tracking.enabled")
        if any(o.split("=", 1)[0].strip() not in allowed for o in overrides):
            raise ConfigError("--resume continues a run with its stored config; only "
                              f"{', '.join(allowed)} may be changed")
        cfg = apply_overrides(cfg, overrides)
    return cfg


def _load_resume_checkpoint(primary: Path, fallback: Path | None) -> dict[str, Any] | None:
    """The checkpoint to continue from: ``primary``, else the one it replaced (kept by
    ``save_checkpoint(keep_previous=True)``), else ``fallback``; a missing, truncated or
    corrupt one is skipped (with a warning naming it and why). None when none exists.

    Raises:
        CheckpointError: checkpoints exist but every one was refused.
    """
    found = load_first_good([primary, previous_path(primary),
                             *([] if fallback is None else [fallback])])
    return None if found is None else found[1]


def _fit_phase(run: RunDir, cfg: ExperimentConfig, data: PreparedData, *, last: Path,
               best: Path | None, history_name: str, resume_ckpt: dict[str, Any] | None,
               stop_after: int | None, progress: bool, with_val: bool,
               tracker: Tracker | None = None,
               callbacks: list[Callable[[Trainer, EpochResult], None]] | None = None
               ) -> Trainer:
    """Build model and Trainer, restore ``resume_ckpt``, train, checkpoint every epoch."""
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    model = build_model(cfg, data)
    preprocessing = data.preprocessing()

    def checkpoint(trainer: Trainer, result: EpochResult) -> None:
        if not distributed.is_main():
            return  # under DDP rank 0 alone writes the run's files
        payload = {"trainer": trainer.state_dict(), "weights": trainer.inference_weights(),
                   "model_config": model.get_config(), "preprocessing": preprocessing,
                   "config": cfg.to_dict(), "epoch": trainer.epoch}
        if result.is_best and best is not None:
            save_checkpoint(best, payload)
        # the history first: once ``last`` holds this epoch, no later write is needed for a
        # resume (which trains no epoch when this was the last one) to find a complete history
        run.write_history(trainer.history, history_name)
        save_checkpoint(last, payload, keep_previous=True)
        if tracker is not None:
            tracker.log_epoch(result, "selection" if with_val else "refit")

    # a data-dependent fit_init (the random-kernel models) sees every training window at once
    full = type(model).fit_init is not HarModel.fit_init
    trainer = Trainer(model, cfg.train, _tensors(data.train, full),
                      _tensors(data.val) if with_val else None,
                      augment=_augmenter(cfg, data), callbacks=[checkpoint, *(callbacks or [])])
    if resume_ckpt is not None:
        trainer.load_state_dict(resume_ckpt["trainer"])
    run.update_info(n_parameters=sum(p.numel() for p in model.parameters()))
    trainer.fit(stop_after=stop_after, progress=progress)
    return trainer


def train(config: ExperimentConfig | dict[str, Any] | str | Path | None = None, *,
          overrides: list[str] | None = None, resume: str | Path | None = None,
          stop_after: int | None = None, progress: bool = True,
          command: list[str] | None = None,
          callbacks: list[Callable[[Trainer, EpochResult], None]] | None = None,
          evaluate_test: bool = True) -> RunResult:
    """Train and evaluate a model; every artifact goes into a new (or resumed) run directory.

    Two phases: (1) train on the training subjects minus the validation subjects, selecting
    the epoch on validation macro F1 (and early-stopping on it); (2) with ``train.refit``
    (default), train a fresh model on *all* training subjects for the selected number of
    epochs, with the normaliser refitted on them. The test split is only used at the end, to
    evaluate the final model (the refit one, else the selected checkpoint). With
    ``data.n_val_subjects=0`` there is no validation: one fit on all training subjects for
    ``train.epochs`` epochs, whose last epoch is the model (``RunResult.val`` is None).

    Args:
        config: an ExperimentConfig, a mapping, a YAML path, or None for the defaults.
        overrides: dotted ``key=value`` strings applied on top (``["train.lr=0.01"]``).
        resume: a run directory to continue from its last checkpoint (config is taken from it).
        stop_after: train at most this many epochs in this call (resume later).
        progress: show a Rich progress bar.
        command: the command line to record in the run directory (default: ``sys.argv``).
        callbacks: extra ``cb(trainer, result)`` calls after every epoch of the selection phase
            (a callback may raise :class:`Pruned` to abandon the run, as ``harkit tune`` does).
        evaluate_test: evaluate the final model on the test split (``harkit tune``'s trials
            train without ever looking at it).

    With tracking on (``tracking.enabled``, the default, and MLflow installed) the run is
    mirrored into MLflow as it trains: see :mod:`harkit.tracking`.

    In a process started by ``torchrun`` with several workers (what ``harkit train --nproc``
    does) the call joins the process group and trains data-parallel (DDP): every rank returns
    the same result, but only rank 0 writes the run directory, checkpoints, plots and
    tracking; see :mod:`harkit.training.distributed`.

    Returns:
        RunResult with the run directory, test and validation reports and the history.

    Example:
        >>> r = train(overrides=["model.name=gru", "train.epochs=5"])   # doctest: +SKIP
        >>> r.test.accuracy                                             # doctest: +SKIP
    """
    tracking = _Tracking()
    with distributed.process_group_from_env():  # a torchrun worker joins its process group
        try:
            result = _train(config, overrides, resume, stop_after, progress, command, tracking,
                            callbacks or [], evaluate_test)
        except Pruned:
            tracking.tracker.set_tags({"harkit.status": "pruned"})
            tracking.tracker.finish("KILLED")
            raise
        except BaseException as e:
            tracking.tracker.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            if tracking.lock_fd is not None:
                os.close(tracking.lock_fd)
    return result


class _Tracking:
    """The run's tracker and its lock, once its run directory exists (a holder, so a failure
    can close them)."""

    def __init__(self) -> None:
        self.tracker = Tracker()
        self.lock_fd: int | None = None

    def start(self, run: RunDir, cfg: ExperimentConfig) -> Tracker:
        from harkit.config import flatten
        from harkit.tracking import start_run

        if self.lock_fd is None:  # one process at a time trains a run (rank 0 under DDP)
            self.lock_fd = run.lock()
        info = run.info()
        if info.get("status") == "finished":  # re-evaluating a finished run logs nothing new
            return self.tracker
        test = (f"test subjects {cfg.data.test_subjects}" if cfg.data.test_subjects is not None
                else "the dataset's test split")
        val = (f"validation subjects {cfg.data.val_subjects}" if cfg.data.val_subjects
               else "the dataset's validation split")
        self.tracker = start_run(cfg, run.path.name, run_id=info.get("mlflow_run_id"), tags={
            "harkit.dataset": cfg.data.dataset, "harkit.model": cfg.model.name,
            "harkit.split": f"{test}; {val}", "harkit.run_dir": str(run.path.resolve()),
            "harkit.status": "running"})
        if self.tracker.run_id is not None:
            run.update_info(mlflow_run_id=self.tracker.run_id,
                            mlflow_tracking_uri=self.tracker.uri)
            self.tracker.log_params(flatten(cfg.to_dict()))
        return self.tracker

    def stopped(self, run: RunDir) -> None:
        self.tracker.set_tags({"harkit.status": "stopped"})
        self.tracker.log_run_dir(run.path)
        self.tracker.finish("KILLED")


class _WorkerRun(RunDir):
    """A DDP worker's (rank > 0) view of the run directory: run.json's fields are kept in
    memory (starting from rank 0's), and nothing is ever written."""

    def __init__(self, path: str | Path, info: dict[str, Any]) -> None:
        super().__init__(path)
        self._info = dict(info)

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def update_info(self, **fields: Any) -> None:
        self._info.update(fields)

    def write_history(self, history: list[dict[str, Any]], name: str = "history.csv") -> None:
        pass


def has_no_validation(cfg: ExperimentConfig) -> bool:
    """True for a run trained without validation (``data.n_val_subjects=0`` and no named
    validation subjects)."""
    return cfg.data.n_val_subjects == 0 and not cfg.data.val_subjects


def _without_validation(cfg: ExperimentConfig) -> ExperimentConfig:
    """A config with ``data.n_val_subjects=0`` made consistent: the last epoch is the model
    and there is no refit (the one fit already sees every training subject); settings that
    need validation scores are refused."""
    if not has_no_validation(cfg):
        return cfg
    if cfg.train.scheduler == "plateau":
        raise ConfigError("train.scheduler=plateau steps on the validation macro F1, and "
                          "data.n_val_subjects=0 trains without validation: choose another "
                          "scheduler")
    if cfg.train.select == "best":
        raise ConfigError("train.select=best picks an epoch by validation, and "
                          "data.n_val_subjects=0 trains without validation: use select=last")
    return replace(cfg, train=replace(cfg.train, refit=False, early_stopping=None))


def _open_resumed(resume: str | Path, overrides: list[str] | None, tracking: _Tracking
                  ) -> tuple[RunDir, ExperimentConfig]:
    """The run to continue and its config; under DDP rank 0 opens it (and its tracking) and
    sends the path, config and run.json to the other ranks, which never touch its files."""

    def open_run() -> tuple[str, ExperimentConfig, dict[str, Any]]:
        run = RunDir.open(resume)
        cfg = _resumed_config(run, overrides)
        tracking.start(run, cfg)
        return str(run.path), cfg, run.info()

    path, cfg, info = distributed.from_main(open_run)
    return (RunDir(path) if distributed.is_main() else _WorkerRun(path, info)), cfg


def _create_run(cfg: ExperimentConfig, command: list[str] | None, tracking: _Tracking
                ) -> RunDir:
    """A new run directory (and its tracking); under DDP rank 0 creates it and the other
    ranks learn its name, so all agree on one directory that only rank 0 writes."""

    def create() -> str:
        run = RunDir.create(cfg, command)
        tracking.start(run, cfg)
        return str(run.path)

    path = distributed.from_main(create)
    return RunDir(path) if distributed.is_main() else _WorkerRun(path, {})


def check_distributed(config: ExperimentConfig | dict[str, Any] | str | Path | None = None, *,
                      overrides: list[str] | None = None, resume: str | Path | None = None,
                      world_size: int = 1) -> None:
    """Refuse, before any worker starts, a run that ``world_size`` processes cannot share
    (the workers check again, and also refuse closed-form models).

    Raises:
        ConfigError: the global ``train.batch_size`` is not divisible by ``world_size``.
    """
    cfg = (_resumed_config(RunDir.open(resume), overrides) if resume is not None
           else _as_config(config, overrides))
    distributed.check_batch_size(cfg.train.batch_size, world_size)


def _train(config: ExperimentConfig | dict[str, Any] | str | Path | None,
           overrides: list[str] | None, resume: str | Path | None, stop_after: int | None,
           progress: bool, command: list[str] | None, tracking: _Tracking,
           callbacks: list[Callable[[Trainer, EpochResult], None]], evaluate_test: bool
           ) -> RunResult:
    main = distributed.is_main()  # under DDP, rank 0 writes every file; the others only train
    if resume is not None:
        run, cfg = _open_resumed(resume, overrides, tracking)
        if main:  # what a killed process was writing is never read, only removed
            remove_stale_temp_files(run.path)
    else:
        cfg = _without_validation(_as_config(config, overrides))
    no_val = has_no_validation(cfg)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    info = run.info() if resume is not None else {}
    seconds = float(info.get("train_seconds", 0.0))
    budget = stop_after

    # Phase 1: selection on validation subjects.
    if not info.get("selection_done"):
        ckpt = (distributed.from_main(lambda: _load_resume_checkpoint(run.last, run.best))
                if resume is not None else None)
        state = None if ckpt is None else ckpt["preprocessing"]["normalizer"]
        # without validation, the one fit sees every training subject (the refit's data)
        data = prepare_refit_data(cfg, state) if no_val else prepare_data(cfg, state)
        if resume is None:
            # Store the resolved validation subjects (and an absolute data directory) so the
            # run is reproducible from its config, from any working directory.
            data_dir = cfg.data.data_dir
            if data_dir and not is_url(data_dir):
                data_dir = str(Path(data_dir).expanduser().resolve())
            cfg = replace(cfg, data=replace(cfg.data, val_subjects=data.val_subjects,
                                            data_dir=data_dir))
            if distributed.is_distributed():  # refuse before a run directory exists
                distributed.check_trainable(build_model(cfg, data))
            run = _create_run(cfg, command, tracking)
        run.update_info(status="running", dataset=cfg.data.dataset, model=cfg.model.name)
        t0 = time.perf_counter()
        epochs_before = 0 if ckpt is None else int(ckpt["trainer"]["epoch"])
        trainer = _fit_phase(run, cfg, data, last=run.last, best=None if no_val else run.best,
                             history_name="history.csv", resume_ckpt=ckpt, stop_after=budget,
                             progress=progress, with_val=not no_val, tracker=tracking.tracker,
                             callbacks=callbacks)
        seconds += time.perf_counter() - t0
        if budget is not None:
            budget -= trainer.epoch - epochs_before
        run.update_info(train_seconds=seconds, epochs=trainer.epoch,
                        best_epoch=trainer.best_epoch,
                        best_val_macro_f1=None if no_val else trainer.best_f1,
                        stopped_early=trainer.stopped_early, selection_done=trainer.done)
        if not trainer.done:
            run.update_info(status="stopped")
            if main:
                _plot_learning_curves(run, cfg, trainer.history)
            partial = None if no_val else distributed.from_main(lambda: evaluate_run(
                run.path, "val", which=cfg.train.select, dataset=data.dataset))
            tracking.stopped(run)
            return RunResult(run.path, None, partial, trainer.history, trainer.best_epoch,
                             trainer.epoch, seconds, False)
        info = run.info()
        dataset: WindowedDataset | None = data.dataset
    else:
        dataset = None
    val_report = None if no_val else distributed.from_main(lambda: evaluate_run(
        run.path, "val", which=cfg.train.select, dataset=dataset))
    history = distributed.from_main(run.read_history)
    if main:
        _plot_learning_curves(run, cfg, history)
    best_epoch = int(info["best_epoch"])
    selected = best_epoch if cfg.train.select == "best" else int(info["epochs"])
    if val_report is not None:
        # at the last epoch's step, so MLflow's latest val_* values are the selected model's
        tracking.tracker.log_report(val_report, "val", step=int(info["epochs"]))
    tracking.tracker.log_metrics({"epochs": int(info["epochs"]), "best_epoch": best_epoch,
                                  "selected_epoch": selected})

    # Phase 2: refit on all training subjects for the selected number of epochs.
    if cfg.train.refit:
        refit_cfg = replace(cfg, train=replace(cfg.train, epochs=selected,
                                               early_stopping=None))
        ckpt = distributed.from_main(lambda: _load_resume_checkpoint(run.refit_last, None))
        data = prepare_refit_data(cfg, None if ckpt is None else
                                  ckpt["preprocessing"]["normalizer"], dataset)
        dataset = data.dataset
        done_before = 0 if ckpt is None else int(ckpt["trainer"]["epoch"])
        if budget is not None and budget <= 0 and done_before < selected:
            run.update_info(status="stopped")
            tracking.stopped(run)
            return RunResult(run.path, None, val_report, history, best_epoch, selected, seconds,
                             False)
        t0 = time.perf_counter()
        trainer = _fit_phase(run, refit_cfg, data, last=run.refit_last, best=None,
                             history_name="refit_history.csv", resume_ckpt=ckpt,
                             stop_after=budget, progress=progress, with_val=False,
                             tracker=tracking.tracker)
        seconds += time.perf_counter() - t0
        run.update_info(train_seconds=seconds, refit_epochs=trainer.epoch,
                        refit_subjects=data.train.subject_ids())
        if not trainer.done:
            run.update_info(status="stopped")
            tracking.stopped(run)
            return RunResult(run.path, None, val_report, history, best_epoch, selected, seconds,
                             False)
    if not evaluate_test:
        run.update_info(status="finished")
        tracking.tracker.set_tags({"harkit.status": "finished"})
        tracking.tracker.log_run_dir(run.path)
        tracking.tracker.finish("FINISHED")
        return RunResult(run.path, None, val_report, history, best_epoch, selected, seconds,
                         True)

    # "finished" only once the test report, predictions and plots are written: a run killed
    # while evaluating stays resumable, and its resume evaluates again
    run.update_info(status="evaluating")

    def final_test() -> EvalReport:
        ds = dataset if dataset is not None else _load(cfg)
        report = evaluate_run(run.path, "test", dataset=ds)
        run.update_info(status="finished")
        _finish_tracking(tracking.tracker, run, cfg, report, seconds, ds)
        return report

    test_report = distributed.from_main(final_test)
    return RunResult(run.path, test_report, val_report, history, best_epoch, selected, seconds,
                     True)


def _finish_tracking(tracker: Tracker, run: RunDir, cfg: ExperimentConfig, test: EvalReport,
                     seconds: float, dataset: WindowedDataset) -> None:
    """Final scores, the run's files and the final model (with two raw test windows as the
    input example) into the tracker; then close its run."""
    if tracker.run_id is None:
        return
    tracker.log_report(test, "test")
    tracker.log_metrics({"train_seconds": seconds})
    tracker.set_tags({"harkit.status": "finished"})
    tracker.log_run_dir(run.path)
    if cfg.tracking.log_model:
        tracker.log_model(run.model_checkpoint(cfg), dataset.splits["test"].X[:2])
    tracker.finish("FINISHED")


def _plot_learning_curves(run: RunDir, cfg: ExperimentConfig,
                          history: list[dict[str, Any]]) -> None:
    """Draw the selection phase's learning curves once its history is complete (or stopped)."""
    from harkit.viz import plot_history

    if history:
        plot_history(history, run.plots / "learning_curves.png",
                     title=f"{cfg.model.name} on {cfg.data.dataset}")


def prepare_refit_data(cfg: ExperimentConfig, normalizer_state: dict[str, Any] | None = None,
                       dataset: WindowedDataset | None = None) -> PreparedData:
    """All training subjects for the final fit, with the normaliser fitted on all of them."""
    ds = dataset if dataset is not None else _load(cfg)
    full = _all_training(ds)
    norm = _normalizer(cfg, full, normalizer_state, ds)
    train_ws = _apply(norm, full)
    empty = train_ws.select(np.zeros(len(full), dtype=bool))
    return PreparedData(ds, train_ws, empty, None, norm, [])


def _load(cfg: ExperimentConfig) -> WindowedDataset:
    """The configured dataset as windows with train / test splits (continuous sources are
    split by subject first and windowed per recording)."""
    d = cfg.data
    fixed = [k for k in ("window", "hop", "overlap", "sampling_rate") if getattr(d, k) is not None]
    if fixed and not DATASETS.get(d.dataset).tags.get("continuous"):
        raise ConfigError(f"data.{fixed[0]}: {d.dataset!r} comes as fixed windows; window, hop, "
                          "overlap and sampling_rate apply to continuous datasets only")
    ds = load_dataset(d.dataset, data_dir=d.data_dir, **d.options)
    if isinstance(ds, RecordingDataset):
        if d.sampling_rate is not None:
            ds = ds.resample(d.sampling_rate)
        window, hop = window_and_hop(d, ds.sampling_rate, ds.window, ds.hop)
        if d.window_cache != "off":  # windows gathered on demand, never materialised
            return lazy_recording_windows(ds, d.window_cache, window, hop, d.label_policy,
                                          d.min_labeled, d.min_purity, d.test_subjects,
                                          d.channels)
        windowed = ds.to_windows(window, hop, d.label_policy, d.min_labeled, d.min_purity,
                                 d.test_subjects)
    else:
        if fixed:  # a source that is continuous only in some modes (utkinect segments)
            raise ConfigError(f"data.{fixed[0]}: {d.dataset!r} with options {d.options} comes "
                              "as fixed windows; window, hop, overlap and sampling_rate apply "
                              "to its continuous form only")
        windowed = ds if d.test_subjects is None else ds.resplit(d.test_subjects)
    if d.channels:
        windowed = windowed.select_channels(d.channels)
    if "train" not in windowed.splits:
        raise ConfigError(f"dataset {windowed.name!r} has no 'train' split")
    if d.window_cache != "off":
        return lazy_windowed(windowed, d.window_cache)
    return windowed


def window_and_hop(d: Any, rate: float, default_window: int, default_hop: int) -> tuple[int, int]:
    """Window and hop in samples from ``data.window`` / ``data.hop`` / ``data.overlap``
    (sample counts or durations), falling back to the dataset's customary ones."""
    from harkit.data.windowing import to_samples

    window = to_samples(d.window, rate, "data.window") if d.window is not None else default_window
    if d.hop is not None and d.overlap is not None:
        raise ConfigError("data.hop and data.overlap: set one of them, not both")
    if d.overlap is not None:
        if not 0.0 <= d.overlap < 1.0:
            raise ConfigError(f"data.overlap={d.overlap}: expected a fraction in [0, 1)")
        return window, max(1, round(window * (1.0 - d.overlap)))
    if d.hop is not None:
        return window, to_samples(d.hop, rate, "data.hop")
    if d.window is not None:  # a custom window with the dataset's overlap ratio
        return window, max(1, round(window * default_hop / default_window))
    return window, default_hop


_LAST_PREDICTOR: dict[tuple[str, int, int, int], Any] = {}


def evaluate_run(run_dir: str | Path, split: str = "test", which: str | None = None,
                 dataset: WindowedDataset | None = None, plots: bool = True) -> EvalReport:
    """Evaluate a run's model on ``split`` (``test`` or ``val``); save the report and plots.

    Args:
        run_dir: the run directory.
        split: ``test`` (the dataset's test split) or ``val`` (the run's validation subjects).
        which: ``final`` (refit model), ``best`` or ``last``; by default the run's final model.
        dataset: the already-loaded dataset, to avoid reloading it.
        plots: write the confusion matrix (and, for the test split of a skeleton dataset,
            ``skeleton_examples.png`` and ``skeleton_example.gif``: a few test windows drawn
            as skeletons with their true and predicted classes) to the run's ``plots/``.

    The checkpoint's own normaliser is applied, so each model sees its training preprocessing.
    """
    from harkit.inference import Predictor

    run = RunDir.open(run_dir)
    cfg = run.config()
    path = run.model_checkpoint(cfg, which)
    # the model with its own stored preprocessing; the validation and test reports of one
    # run usually score the same checkpoint, so the last Predictor built is reused while the
    # file is unchanged (checkpoints are replaced by rename, so a new one never matches)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
    predictor = _LAST_PREDICTOR.get(key)
    if predictor is None:
        predictor = Predictor.from_checkpoint(path)
        _LAST_PREDICTOR.clear()
        _LAST_PREDICTOR[key] = predictor
    ds = dataset if dataset is not None else _load(cfg)
    if split == "test":
        if "test" not in ds.splits:
            raise ConfigError(f"dataset {ds.name!r} has no test split")
        raw = ds.splits["test"]
    elif split == "val":
        raw = _train_val(cfg, ds)[1]
    else:
        raise ConfigError(f"split {split!r}: expected 'test' or 'val'")
    y_pred = predictor.predict(raw.X)
    report = evaluate_predictions(raw.y, y_pred, ds.classes, split=split, subjects=raw.subjects)
    report.save(run.path / ("metrics.json" if split == "test" else f"metrics_{split}.json"))
    if split == "test":  # per-window predictions, for pooled cross-validation scores
        import io

        from harkit.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, y_true=raw.y, y_pred=y_pred, subjects=raw.subjects)
        atomic_write_bytes(run.path / "test_predictions.npz", buf.getvalue())
    if plots:
        from harkit.viz import plot_confusion_matrix

        suffix = "" if split == "test" else f"_{split}"
        plot_confusion_matrix(
            report.confusion, report.classes, run.plots / f"confusion_matrix{suffix}.png",
            title=f"{cfg.model.name} on {cfg.data.dataset} ({split}, {path.stem} model): "
                  f"accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f}")
        if split == "test" and ds.skeleton is not None and len(raw):
            from harkit.viz.skeleton import plot_skeleton_report

            # the dataset's own windows: what the normaliser sees, not its output
            plot_skeleton_report(raw.X, raw.y, y_pred, ds.skeleton, ds.classes, run.plots,
                                 title=f"{cfg.model.name} on {cfg.data.dataset} (test, "
                                       f"{path.stem} model)")
    return report


def evaluate_ensemble(run_dirs: list[str | Path], split: str = "test",
                      weights: list[float] | None = None, output: str | Path | None = None,
                      combine: str = "mean") -> EvalReport:
    """Evaluate the average of several runs' final models on ``split`` of the first run's
    dataset (``test``, or ``val`` for the first run's validation subjects); ``combine`` as
    :class:`~harkit.inference.EnsemblePredictor`'s (``mean`` or ``geometric``).

    Members may differ in their data settings (``data.options`` such as a skeleton
    sequence's length, its channels): each member then reads the split as it was trained to,
    and the split must come out as the same windows in every member's view (same count,
    labels and subjects, as whole-sequence datasets do), else a ConfigError names the run.

    With ``output``, the report (``metrics.json``), the per-window predictions and the
    confusion matrix plot are written there.
    """
    from harkit.inference import EnsemblePredictor

    if len(run_dirs) < 2:
        raise ConfigError("an ensemble needs at least two runs")
    runs = [RunDir.open(r) for r in run_dirs]
    trained = [r.config() for r in runs]
    cfg = trained[0]
    for r, other in zip(runs[1:], trained[1:], strict=True):
        if (other.data.dataset, other.data.test_subjects) != (cfg.data.dataset,
                                                              cfg.data.test_subjects):
            raise ConfigError(f"{r.path}: trained on {other.data.dataset} with test subjects "
                              f"{other.data.test_subjects}, {runs[0].path} on {cfg.data.dataset} "
                              f"with {cfg.data.test_subjects}; an ensemble is scored on one split")
    # Each member's view of the split: its own data settings, the first run's split (its
    # validation subjects, and its seed, which picks them when they are not named).
    cfgs = [replace(cfg, data=replace(t.data, val_subjects=cfg.data.val_subjects,
                                      n_val_subjects=cfg.data.n_val_subjects)) for t in trained]
    # channel order alone the ensemble handles itself; any other data setting is a view
    same = all(replace(c.data, channels=None) == replace(cfg.data, channels=None) for c in cfgs)
    ens = EnsemblePredictor.from_runs([r.path for r in runs], weights, combine,
                                      same_windows=same)
    views: dict[str, tuple[WindowedDataset, WindowSet]] = {}

    def view(c: ExperimentConfig) -> tuple[WindowedDataset, WindowSet]:
        if repr(c.data) not in views:
            d = _load(c)
            views[repr(c.data)] = d, d.splits["test"] if split == "test" else _train_val(c, d)[1]
        return views[repr(c.data)]

    ds, raw = view(cfg)
    if same:
        y_pred = ens.predict(raw.X)
    else:
        Xs = []
        for r, c in zip(runs, cfgs, strict=True):
            ds_i, raw_i = view(c)
            if (ds_i.classes != ds.classes or len(raw_i.y) != len(raw.y)
                    or not np.array_equal(raw_i.y, raw.y)
                    or not np.array_equal(raw_i.subjects, raw.subjects)):
                raise ConfigError(
                    f"{r.path}: its data settings ({c.data.options}, window "
                    f"{c.data.window}) give other {split} windows than {runs[0].path}'s "
                    f"({cfg.data.options}, window {cfg.data.window}): {len(raw_i.y)} against "
                    f"{len(raw.y)}, or other labels or subjects. Members with different data "
                    "settings can be ensembled only where each split is the same windows, "
                    "one per sequence, in every member's view")
            Xs.append(raw_i.X)
        y_pred = ens.predict_proba_views(Xs).argmax(1)
    how = "" if combine == "mean" else f", {combine} mean"
    report = evaluate_predictions(raw.y, y_pred, ds.classes, split=f"{split} (ensemble of "
                                  f"{len(runs)}{how})", subjects=raw.subjects)
    if output is not None:
        from harkit.io import atomic_write_text
        from harkit.viz import plot_confusion_matrix

        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        report.save(out / "metrics.json")
        atomic_write_text(out / "members.txt", "".join(f"{r.path}\n" for r in runs))
        plot_confusion_matrix(report.confusion, report.classes, out / "confusion_matrix.png",
                              title=f"ensemble of {len(runs)} on {cfg.data.dataset} ({split}): "
                                    f"accuracy {report.accuracy:.3f}, macro F1 "
                                    f"{report.macro_f1:.3f}")
    return report
