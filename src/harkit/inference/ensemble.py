"""Ensembles: several trained runs voting with their averaged class probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harkit.errors import ConfigError
from harkit.inference.predictor import Predictor

COMBINE = ("mean", "geometric")


class EnsemblePredictor(Predictor):
    """Averages the class probabilities of several Predictors (optionally weighted).

    ``combine="mean"`` averages the probabilities; ``combine="geometric"`` averages their
    logarithms and renormalises (a product of experts: a member that is sure a class is wrong
    can veto it, and a member with flat probabilities, such as an uncalibrated ridge head,
    counts for little either way).

    Each member applies its own stored normaliser; windows are given in the first member's
    channel order and reordered for members trained with another order. Members must share
    the classes (in order) and the window length.

    With ``same_windows=False`` the members may take windows of different lengths and
    channels (say an ST-GCN on sequences resampled to 32 frames and a MiniRocket on 64): each
    then needs the windows prepared as it was trained, given one array per member to
    :meth:`predict_proba_views`. That is for scoring prepared splits (``harkit ensemble``);
    a stream or a service has one window shape, so it needs the shared-window form.

    Example:
        >>> ens = EnsemblePredictor.from_runs(["runs/a", "runs/b"])   # doctest: +SKIP
        >>> ens.predict(raw_windows)                                   # doctest: +SKIP
    """

    def __init__(self, members: Sequence[Predictor], weights: Sequence[float] | None = None,
                 combine: str = "mean", same_windows: bool = True) -> None:
        # Predictor.__init__ is deliberately not called: the members hold the models.
        if not members:
            raise ConfigError("an ensemble needs at least one model")
        first = members[0]
        for i, m in enumerate(members[1:], 2):
            if m.classes != first.classes:
                raise ConfigError(f"ensemble member {i} predicts classes {m.classes}, member 1 "
                                  f"{first.classes}")
            if same_windows and (m.window_len != first.window_len
                                 or sorted(m.channels) != sorted(first.channels)):
                raise ConfigError(f"ensemble member {i} takes windows of {m.window_len} x "
                                  f"{m.channels}, member 1 {first.window_len} x {first.channels}")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"ensemble weights {list(w)}: need one non-negative weight per "
                              "member, not all zero")
        if combine not in COMBINE:
            raise ConfigError(f"ensemble combine={combine!r}, expected one of {COMBINE}")
        self.members = list(members)
        self.weights = w / w.sum()
        self.combine = combine
        self.same_windows = same_windows
        self._orders = ([[first.channels.index(c) for c in m.channels] for m in members]
                        if same_windows else [])
        self.model = first.model
        self.normalizer = first.normalizer
        self.preprocessing = first.preprocessing
        self.channels = list(first.channels)
        self.classes = list(first.classes)
        self.window_len = first.window_len
        self.hop = first.hop
        self.sampling_rate = first.sampling_rate
        self.batch_size = first.batch_size

    @classmethod
    def from_runs(cls, run_dirs: Sequence[str | Path], weights: Sequence[float] | None = None,
                  combine: str = "mean", same_windows: bool = True) -> EnsemblePredictor:
        """Each run's final model (a ``.pt`` path is taken as a checkpoint)."""
        members = [Predictor.from_checkpoint(p) if Path(p).is_file() else Predictor.from_run(p)
                   for p in run_dirs]
        return cls(members, weights, combine, same_windows)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The members' probabilities ``(N, n_classes)`` combined: their weighted mean, or the
        renormalised weighted geometric mean (``combine="geometric"``)."""
        if not self.same_windows:
            raise ConfigError("this ensemble's members take windows of different shapes: give "
                              "each its own windows with predict_proba_views")
        X = self._check(X)
        return self._combine([m.predict_proba(X[:, :, order])
                              for m, order in zip(self.members, self._orders, strict=True)])

    def predict_proba_views(self, views: Sequence[np.ndarray]) -> np.ndarray:
        """Combined probabilities when each member gets its own windows: ``views[i]`` holds
        the same N windows (the same sequences, in the same order) prepared as member ``i``
        was trained, in its window length and channel order."""
        if len(views) != len(self.members):
            raise ConfigError(f"{len(views)} window arrays for {len(self.members)} ensemble "
                              "members: give one per member")
        if len({len(v) for v in views}) > 1:
            raise ConfigError("the members' window arrays hold different numbers of windows "
                              f"({[len(v) for v in views]}): they must be the same windows")
        return self._combine([m.predict_proba(v) for m, v in zip(self.members, views,
                                                                   strict=True)])

    def _combine(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(probs[0]), len(self.classes)), dtype=np.float64)
        geometric = self.combine == "geometric"
        for p, w in zip(probs, self.weights, strict=True):
            p = p.astype(np.float64)
            # a probability that underflowed to 0 is floored so one member cannot make -inf
            out += w * (np.log(np.maximum(p, 1e-30)) if geometric else p)
        if geometric:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32)
