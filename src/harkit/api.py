"""The Python API: ``harkit.train(...)`` and ``harkit.evaluate(...)`` do what the CLI does."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harkit.config import ExperimentConfig, apply_overrides, from_dict
from harkit.data import WindowedDataset, WindowSet, load_dataset
from harkit.data.augment import Augmenter, xyz_groups
from harkit.data.splits import choose_val_subjects, subject_holdout
from harkit.data.transforms import Normalizer, Standardizer, make_normalizer, normalizer_from_state
from harkit.errors import CheckpointError, ConfigError
from harkit.evaluation.metrics import EvalReport, evaluate_predictions
from harkit.models import HarModel, create_model
from harkit.runs import RunDir
from harkit.training.checkpoint import load_checkpoint, save_checkpoint
from harkit.training.trainer import EpochResult, Trainer, predict_logits, seed_everything

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
    ds = load_dataset(cfg.data.dataset, data_dir=cfg.data.data_dir)
    if cfg.data.channels:
        ds = ds.select_channels(cfg.data.channels)
    if "train" not in ds.splits:
        raise ConfigError(f"dataset {ds.name!r} has no 'train' split")
    full_train = ds.splits["train"]
    val_subjects = cfg.data.val_subjects or choose_val_subjects(
        full_train.subject_ids(), cfg.data.n_val_subjects, cfg.train.seed)
    train, val = subject_holdout(full_train, val_subjects)
    if normalizer_state is not None:
        norm = normalizer_from_state(normalizer_state)
    else:
        norm = make_normalizer(cfg.data.normalize).fit(train.X)

    def tr(ws: WindowSet) -> WindowSet:
        return WindowSet(norm.transform(ws.X), ws.y, ws.subjects)

    test = ds.splits.get("test")
    return PreparedData(ds, tr(train), tr(val), None if test is None else tr(test), norm,
                        list(val_subjects))


def _tensors(ws: WindowSet) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(ws.X)), torch.from_numpy(ws.y.astype(np.int64))


def build_model(cfg: ExperimentConfig, data: PreparedData) -> HarModel:
    return create_model(cfg.model.name, n_channels=data.dataset.n_channels,
                        n_classes=data.dataset.n_classes, window_len=data.dataset.window_len,
                        **cfg.model.params)


def _augmenter(cfg: ExperimentConfig, data: PreparedData) -> Augmenter | None:
    mean = std = None
    if isinstance(data.normalizer, Standardizer):
        assert data.normalizer.mean is not None and data.normalizer.std is not None
        mean = torch.from_numpy(data.normalizer.mean)
        std = torch.from_numpy(data.normalizer.std)
    aug = Augmenter(cfg.train.augment, mean, std, xyz_groups(data.dataset.channels))
    return aug if aug.active else None


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    test: EvalReport | None
    val: EvalReport
    history: list[dict[str, Any]]
    best_epoch: int
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


def train(config: ExperimentConfig | dict[str, Any] | str | Path | None = None, *,
          overrides: list[str] | None = None, resume: str | Path | None = None,
          stop_after: int | None = None, progress: bool = True,
          command: list[str] | None = None) -> RunResult:
    """Train and evaluate a model; every artifact goes into a new (or resumed) run directory.

    Args:
        config: an ExperimentConfig, a mapping, a YAML path, or None for the defaults.
        overrides: dotted ``key=value`` strings applied on top (``["train.lr=0.01"]``).
        resume: a run directory to continue from its last checkpoint (config is taken from it).
        stop_after: train at most this many epochs in this call (resume later).
        progress: show a Rich progress bar.

    Returns:
        RunResult with the run directory, test and validation reports and the history.

    Example:
        >>> r = train(overrides=["model.name=gru", "train.epochs=5"])   # doctest: +SKIP
        >>> r.test.accuracy                                             # doctest: +SKIP
    """
    if resume is not None:
        run = RunDir.open(resume)
        cfg = run.config()
        if overrides:
            allowed = [o for o in overrides if o.split("=", 1)[0].strip() in
                       ("train.epochs", "train.early_stopping", "train.num_threads")]
            if len(allowed) != len(overrides):
                raise ConfigError("--resume continues a run with its stored config; only "
                                  "train.epochs, train.early_stopping and train.num_threads "
                                  "may be changed")
            cfg = apply_overrides(cfg, overrides)
        try:
            ckpt = load_checkpoint(run.last)
        except CheckpointError:
            ckpt = None
            if run.best.exists():
                log.warning("last checkpoint unusable, resuming from best.pt")
                ckpt = load_checkpoint(run.best)
        if ckpt is None:
            raise CheckpointError(f"{run.path}: no checkpoint to resume from")
        normalizer_state = ckpt["preprocessing"]["normalizer"]
    else:
        cfg = _as_config(config, overrides)
        ckpt, normalizer_state = None, None

    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = prepare_data(cfg, normalizer_state)
    if resume is None:
        # Store the resolved validation subjects so the run is reproducible from its config.
        cfg = replace(cfg, data=replace(cfg.data, val_subjects=data.val_subjects))
        run = RunDir.create(cfg, command)
    model = build_model(cfg, data)
    preprocessing = data.preprocessing()

    def checkpoint(trainer: Trainer, result: EpochResult) -> None:
        payload = {"trainer": trainer.state_dict(), "weights": trainer.inference_weights(),
                   "model_config": model.get_config(), "preprocessing": preprocessing,
                   "config": cfg.to_dict(), "epoch": trainer.epoch}
        if result.is_best:
            save_checkpoint(run.best, payload)
        save_checkpoint(run.last, payload)
        run.write_history(trainer.history)

    trainer = Trainer(model, cfg.train, _tensors(data.train), _tensors(data.val),
                      augment=_augmenter(cfg, data), callbacks=[checkpoint])
    if ckpt is not None:
        trainer.load_state_dict(ckpt["trainer"])
    prev_seconds = float(run.info().get("train_seconds", 0.0))
    run.update_info(status="running", dataset=cfg.data.dataset, model=cfg.model.name,
                    n_parameters=sum(p.numel() for p in model.parameters()))
    t0 = time.perf_counter()
    trainer.fit(stop_after=stop_after, progress=progress)
    seconds = prev_seconds + time.perf_counter() - t0
    finished = trainer.done
    run.update_info(status="finished" if finished else "stopped", train_seconds=seconds,
                    epochs=trainer.epoch, best_epoch=trainer.best_epoch,
                    best_val_macro_f1=trainer.best_f1, stopped_early=trainer.stopped_early)
    test_report: EvalReport | None = None
    val_report = evaluate_run(run.path, split="val", data=data)
    if finished:
        test_report = evaluate_run(run.path, split="test", data=data)
    return RunResult(run.path, test_report, val_report, trainer.history, trainer.best_epoch,
                     seconds, finished)


def evaluate_run(run_dir: str | Path, split: str = "test", data: PreparedData | None = None,
                 which: str | None = None, plots: bool = True) -> EvalReport:
    """Evaluate a run's checkpoint on ``split`` (``test`` or ``val``), save report and plots.

    ``which`` is ``best`` or ``last``; by default the run's ``train.select``.
    """
    run = RunDir.open(run_dir)
    cfg = run.config()
    which = which or cfg.train.select
    ckpt = load_checkpoint(run.best if which == "best" else run.last)
    if data is None:
        data = prepare_data(cfg, ckpt["preprocessing"]["normalizer"])
    ws = data.test if split == "test" else data.val if split == "val" else None
    if ws is None:
        raise ConfigError(f"split {split!r}: expected 'test' or 'val' (dataset has "
                          f"{sorted(data.dataset.splits)})")
    from harkit.models import model_from_config

    model = model_from_config(ckpt["model_config"])
    model.load_state_dict(ckpt["weights"])
    X, y = _tensors(ws)
    pred = predict_logits(model, X).argmax(1).numpy()
    report = evaluate_predictions(y.numpy(), pred, data.dataset.classes, split=split)
    report.save(run.path / ("metrics.json" if split == "test" else f"metrics_{split}.json"))
    if plots:
        from harkit.viz import plot_confusion_matrix, plot_history

        history = run.read_history()
        if history:
            plot_history(history, run.plots / "learning_curves.png",
                         title=f"{cfg.model.name} on {cfg.data.dataset}")
        plot_confusion_matrix(report.confusion, report.classes,
                              run.plots / f"confusion_matrix{'' if split == 'test' else '_' + split}.png",
                              title=f"{cfg.model.name} on {cfg.data.dataset} ({split}): "
                                    f"accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f}")
    return report
