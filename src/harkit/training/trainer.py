"""The model-agnostic Trainer: it knows tensors, a model and a TrainConfig, nothing else."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harkit.config import TrainConfig
from harkit.errors import ConfigError
from harkit.evaluation.metrics import basic_scores
from harkit.training import distributed
from harkit.training.precision import autocast, check_precision, grad_scaler

log = logging.getLogger(__name__)


@dataclass
class EpochResult:
    """Metrics of one epoch: training (on augmented batches) and validation."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    val_f1: float
    lr: float
    seconds: float
    is_best: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 1024,
                   precision: str = "fp32") -> torch.Tensor:
    """Logits of ``model`` on windows ``X`` ``(N, T, C)`` in eval mode, batched; fp32 logits
    whatever the ``precision`` of the arithmetic."""
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    try:
        with torch.inference_mode(), autocast(device, precision):
            outs = [model(X[i : i + batch_size].to(device)).float()
                    for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    if not outs:
        return torch.empty(0, getattr(model, "n_classes", 0))
    return torch.cat(outs)


def _ema_with_warmup(decay: float) -> Callable[..., None]:
    """EMA update whose decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after n updates,
    so short runs are not dominated by the random initial weights."""

    def update(ema: list[torch.Tensor], current: list[torch.Tensor],
               num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        floats = [(e, c) for e, c in zip(ema, current, strict=True) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [c for _, c in floats], 1 - d)
        for e, c in zip(ema, current, strict=True):
            if not e.is_floating_point():  # counters such as BatchNorm's num_batches_tracked
                e.copy_(c)

    return update


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rmsprop_alpha,
                                   weight_decay=cfg.weight_decay)
    raise ConfigError(f"train.optimizer={cfg.optimizer!r}: expected adam, adamw or rmsprop")


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> Any:
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.gamma,
                                                          patience=max(cfg.step_size // 2, 1))
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.max_lr or 3 * cfg.lr, epochs=cfg.epochs,
            steps_per_epoch=steps_per_epoch,
        )
    raise ConfigError(
        f"train.scheduler={cfg.scheduler!r}: expected none, step, cosine, plateau or onecycle"
    )


def _check_config(cfg: TrainConfig) -> None:
    checks = [
        (cfg.epochs >= 1, "train.epochs must be >= 1"),
        (cfg.batch_size >= 1, "train.batch_size must be >= 1"),
        (cfg.lr > 0, "train.lr must be > 0"),
        (0 <= cfg.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
        (cfg.grad_clip is None or cfg.grad_clip > 0, "train.grad_clip must be > 0 or null"),
        (cfg.early_stopping is None or cfg.early_stopping >= 1,
         "train.early_stopping must be >= 1 or null"),
        (cfg.device == "cpu" or cfg.device.startswith("cuda"),
         "train.device must be 'cpu' or 'cuda[:N]'"),
        (cfg.ema_decay is None or 0 < cfg.ema_decay < 1, "train.ema_decay must be in (0, 1)"),
        (cfg.select in ("best", "last"), "train.select must be 'best' or 'last'"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    check_precision(cfg.precision, cfg.device)


class Trainer:
    """Trains any ``(B, T, C) -> (B, K)`` logits model on prepared tensors.

    Batches are drawn by indexing tensors that were prepared once (no per-sample Python).
    Selection and early stopping use validation macro F1 only; the test split never
    reaches the Trainer. ``state_dict()`` holds everything needed to continue exactly:
    model, optimizer, scheduler, epoch, RNG states, history and early-stopping counters.

    Args:
        model: the network (any registered model).
        cfg: optimisation settings.
        train: ``(X, y)`` normalised training windows ``(N, T, C)`` and class indices.
        val: ``(X, y)`` validation windows from held-out training subjects, or None for a
            final fit without validation (no selection, no early stopping).
        augment: optional callable ``(x, generator) -> x`` applied to training batches.
        callbacks: called as ``cb(trainer, result)`` after every epoch (checkpointing, logging).

    Before the first epoch of a fresh fit the model's ``fit_init(X, y)`` hook sees the
    (un-augmented) training windows; a resumed fit restores its result from the checkpoint
    instead. A ``closed_form`` model's fit_init is the whole training: it is recorded as one
    epoch (validated, checkpointed by the callbacks) and the fit is then done.

    Under DDP (a process group of W > 1 processes, see :mod:`harkit.training.distributed`)
    the model trains through ``DistributedDataParallel``; ``cfg.batch_size`` stays the global
    batch: every rank draws the same seeded permutation and takes its ``batch_size / W``
    contiguous share of each global batch (the last one cut to a multiple of W windows), so
    all ranks take the same number of steps and DDP's gradient average is the gradient of the
    mean loss over the global batch. With ``cfg.sync_batchnorm`` BatchNorm statistics are
    over the global batch too. Training metrics are summed over the ranks; rank 0 validates
    and sends its scores to all, so selection and early stopping agree; only rank 0 logs.
    ``state_dict()`` holds the unwrapped model, interchangeable between 1 and W processes.
    Closed-form models are refused under DDP.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig,
                 train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor] | None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 callbacks: list[Callable[[Trainer, EpochResult], None]] | None = None) -> None:
        _check_config(cfg)
        self.cfg = cfg
        self.device = torch.device(distributed.rank_device(cfg.device))
        if self.device.type == "cuda":
            # Time cuDNN's algorithms once per shape instead of trusting its heuristics, which
            # pick FFT weight gradients for harcnn's 1-D convolutions (10x slower on an H100).
            # Under train.deterministic only deterministic algorithms compete.
            torch.backends.cudnn.benchmark = True
        self.model = model.to(self.device)
        self.X, self.y = train
        self.val = val
        if len(self.X) == 0:
            raise ConfigError("the training split is empty")
        if val is not None and len(val[0]) == 0:
            raise ConfigError("the validation split is empty: check data.val_subjects")
        self.augment = augment
        self.callbacks = list(callbacks or [])
        self.n_classes = int(getattr(model, "n_classes", int(self.y.max()) + 1))
        self.closed_form = bool(getattr(model, "closed_form", False))
        self.initialised = False  # fit_init has run (or its result was restored)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        if self.world_size > 1:
            self._setup_distributed()
        # A final batch of one window (per process) is dropped (BatchNorm cannot train on
        # it); with shuffling a different window sits out each epoch.
        full, rest = divmod(len(self.X), cfg.batch_size)
        self.steps_per_epoch = max(full + (1 if rest // self.world_size >= 2 else 0), 1)
        self.optimizer = _make_optimizer(self.model, cfg)
        self.scaler = grad_scaler(self.device, cfg.precision)
        # The module the training steps call: the model, under DDP its wrapper, compiled when
        # asked (all share the model's parameters, so state_dict, EMA and checkpoints are
        # unaffected).
        self.forward_model: nn.Module = self.model
        if self.world_size > 1:
            self.forward_model = distributed.wrap_ddp(self.model, self.device)
        if cfg.compile and not self.closed_form:
            self.forward_model = torch.compile(self.forward_model)  # type: ignore[assignment]
        self.scheduler = _make_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        if cfg.ema_decay is not None and not self.closed_form:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=_ema_with_warmup(cfg.ema_decay), use_buffers=True)
        weight = None
        if cfg.class_weights:
            counts = torch.bincount(self.y, minlength=self.n_classes).float()
            weight = counts.sum() / (self.n_classes * counts.clamp(min=1))
        self.loss_weight = None if weight is None else weight.to(self.device)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        self.best_f1 = -math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped_early = False

    def _setup_distributed(self) -> None:
        """Check that the run can be split over the ranks; synchronise BatchNorm."""
        cfg, w = self.cfg, self.world_size
        distributed.check_trainable(self.model)
        distributed.check_batch_size(cfg.batch_size, w)
        if len(self.X) < cfg.batch_size and len(self.X) // w < 2:
            raise ConfigError(f"the training split has {len(self.X)} windows: too few to "
                              f"give each of {w} processes two of them")
        if cfg.sync_batchnorm:
            self.model = distributed.convert_sync_batchnorm(self.model, self.device)

    # -- state ---------------------------------------------------------------------------
    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated, checkpointed for inference and predicted with."""
        return self.model if self.ema is None else self.ema.module

    def inference_weights(self) -> dict[str, torch.Tensor]:
        return self.eval_model.state_dict()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "best_f1": self.best_f1,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "rng": {"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best_f1 = float(state["best_f1"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state.get("stopped_early", False))
        self.initialised = True  # the checkpoint's buffers hold fit_init's result
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])

    # -- loop ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return (self.epoch >= self.cfg.epochs or self.stopped_early
                or (self.closed_form and self.epoch >= 1))

    def fit(self, stop_after: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
        """Train until ``cfg.epochs`` (or early stopping); ``stop_after`` epochs at most now.

        Returns the full history (one dict per completed epoch).
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        done_now = 0
        total = 1 if self.closed_form else self.cfg.epochs * self.steps_per_epoch
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), "{task.fields[info]}",
                      disable=not progress or self.rank != 0, transient=False) as bar:
            task = bar.add_task("training", total=total,
                                completed=min(self.epoch * self.steps_per_epoch, total), info="")
            while not self.done and (stop_after is None or done_now < stop_after):
                if self.closed_form:
                    result = self._closed_form_fit()
                    bar.advance(task)
                else:
                    if not self.initialised:
                        self._fit_init()
                    result = self._train_epoch(lambda: bar.advance(task))
                done_now += 1
                info = f"loss {result.train_loss:.3f}" + (
                    "" if self.val is None else f" val F1 {result.val_f1:.4f}")
                bar.update(task, description=f"epoch {result.epoch}/{self.cfg.epochs}",
                           info=info)
                say = log.info if self.rank == 0 else log.debug  # rank 0 speaks for all
                if self.val is None:
                    say("epoch %d (fit on all training subjects): train loss %.4f acc %.4f",
                        result.epoch, result.train_loss, result.train_acc)
                else:
                    say("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f "
                        "macro F1 %.4f%s", result.epoch, result.train_loss,
                        result.train_acc, result.val_loss, result.val_acc, result.val_f1,
                        " (best)" if result.is_best else "")
                for cb in self.callbacks:
                    cb(self, result)
        return self.history

    def _fit_init(self) -> torch.Tensor | None:
        """Run the model's data-dependent initialisation once, on un-augmented windows."""
        fit_init = getattr(self.model, "fit_init", None)
        logits = None if fit_init is None else fit_init(self.X, self.y)
        self.initialised = True
        if self.ema is not None:  # the average starts from the initialised model
            self.ema.module.load_state_dict(self.model.state_dict())
        return logits

    def _closed_form_fit(self) -> EpochResult:
        """The whole training of a closed-form model, recorded as epoch 1."""
        t0 = time.perf_counter()
        self.model.train()
        logits = self._fit_init()
        if logits is None:
            logits = predict_logits(self.model, self.X.to(self.device))
        logits = logits.to(self.device)
        y = self.y.to(self.device)
        train_loss = float(F.cross_entropy(logits, y))
        train_acc = float((logits.argmax(1) == y).float().mean())
        return self._end_epoch(t0, train_loss, train_acc, float("nan"))

    def _train_epoch(self, on_step: Callable[[], None]) -> EpochResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.model.train()
        perm = torch.randperm(len(self.X), generator=self.generator)
        # Running sums stay on the device: reading them every step would wait for the GPU.
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct_sum = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        for step in range(self.steps_per_epoch):
            xb, yb = self._batch(perm, step)
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            with autocast(self.device, cfg.precision):
                logits = self.forward_model(xb).float()
            loss = F.cross_entropy(logits, yb, weight=self.loss_weight,
                                   label_smoothing=cfg.label_smoothing)
            if self.world_size > 1 and self.loss_weight is not None:
                loss = loss * self._weight_share(yb)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:  # fp16: scaled loss, unscaled before clipping
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            if cfg.scheduler == "onecycle" and self.scheduler is not None:
                # OneCycle is a per-step schedule; guard the final step of a resumed run.
                if self.scheduler.last_epoch < self.scheduler.total_steps - 1:
                    self.scheduler.step()
            loss_sum += loss.detach().double() * len(yb)
            correct_sum += (logits.detach().argmax(1) == yb).sum()
            seen += len(yb)
            on_step()
        total_loss, correct = float(loss_sum), int(correct_sum)
        if self.world_size > 1:  # the epoch's metrics over every rank's windows
            total_loss, correct_all, seen_all = distributed.all_reduce_sum(
                [total_loss, correct, seen])
            correct, seen = round(correct_all), round(seen_all)
        lr = float(self.optimizer.param_groups[0]["lr"])
        return self._end_epoch(t0, total_loss / seen, correct / seen, lr)

    def _batch(self, perm: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's windows ``(b, T, C)`` and labels of global batch ``step`` of ``perm``.

        Under DDP the global batch (the last one cut to a multiple of the world size) is split
        into contiguous equal shares, rank r taking the r-th. Augmentation is drawn for the
        whole global batch on every rank, then cut: the generator advances identically on all
        ranks (the next permutation agrees, a resumed run continues exactly) and each window
        is augmented as in a single-process run.
        """
        b = self.cfg.batch_size
        idx = perm[step * b : (step + 1) * b]  # index tensors: no per-sample Python
        share = slice(None)
        if self.world_size > 1:
            n = len(idx) // self.world_size
            idx = idx[: n * self.world_size]
            share = slice(self.rank * n, (self.rank + 1) * n)
            if self.augment is None:
                idx, share = idx[share], slice(None)
        xb, yb = self.X[idx], self.y[idx]
        if self.augment is not None:
            xb = self.augment(xb, self.generator)
        return xb[share], yb[share]

    def _weight_share(self, yb: torch.Tensor) -> float:
        """Factor turning this rank's class-weighted mean loss into its part of the weighted
        mean over the global batch (what DDP's gradient average then sums up)."""
        assert self.loss_weight is not None
        local = float(self.loss_weight[yb].sum())
        (total,) = distributed.all_reduce_sum([local])
        return self.world_size * local / total

    def _validate(self) -> tuple[float, float, float]:
        """Validation (loss, accuracy, macro F1); under DDP rank 0 evaluates and sends the
        scores to every rank, so best-epoch, early-stopping and plateau decisions agree."""
        assert self.val is not None
        if self.world_size == 1:
            return self.evaluate(*self.val)
        nan = float("nan")
        scores = self.evaluate(*self.val) if self.rank == 0 else (nan, nan, nan)
        loss, acc, f1 = distributed.broadcast_floats(scores)
        return loss, acc, f1

    def _end_epoch(self, t0: float, train_loss: float, train_acc: float,
                   lr: float) -> EpochResult:
        """Validate, step epoch-wise schedules, track the best epoch and record the history."""
        cfg = self.cfg
        nan = float("nan")
        val_loss, val_acc, val_f1 = (nan, nan, nan) if self.val is None else self._validate()
        if self.closed_form:
            pass  # no optimiser steps were taken: nothing to schedule
        elif self.scheduler is not None and cfg.scheduler in ("step", "cosine"):
            self.scheduler.step()
        elif self.scheduler is not None and cfg.scheduler == "plateau":
            self.scheduler.step(val_f1)
        self.epoch += 1
        is_best = self.val is not None and val_f1 > self.best_f1
        if self.val is None:  # no validation (a final refit): the last epoch is the model
            self.best_epoch = self.epoch
        elif is_best:
            self.best_f1, self.best_epoch, self.bad_epochs = val_f1, self.epoch, 0
        else:
            self.bad_epochs += 1
            if cfg.early_stopping is not None and self.bad_epochs >= cfg.early_stopping:
                self.stopped_early = True
        result = EpochResult(self.epoch, train_loss, train_acc, val_loss, val_acc,
                             val_f1, lr, time.perf_counter() - t0, is_best)
        self.history.append(result.as_dict())
        return result

    def evaluate(self, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
        """(loss, accuracy, macro F1) of the current model on ``X``, ``y``."""
        logits = predict_logits(self.eval_model, X, precision=self.cfg.precision)
        loss = float(F.cross_entropy(logits, y.to(logits.device)))
        pred = logits.argmax(1).cpu().numpy()
        acc, f1 = basic_scores(y.numpy(), pred, self.n_classes)
        return loss, acc, f1


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed torch and numpy; on CPU with ``deterministic`` the run is bit-reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
