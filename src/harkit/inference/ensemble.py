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

    Example:
        >>> ens = EnsemblePredictor.from_runs(["runs/a", "runs/b"])   # doctest: +SKIP
        >>> ens.predict(raw_windows)                                   # doctest: +SKIP
    """

    def __init__(self, members: Sequence[Predictor], weights: Sequence[float] | None = None,
                 combine: str = "mean") -> None:
        # Predictor.__init__ is deliberately not called: the members hold the models.
        if not members:
            raise ConfigError("an ensemble needs at least one model")
        first = members[0]
        for i, m in enumerate(members[1:], 2):
            if m.classes != first.classes:
                raise ConfigError(f"ensemble member {i} predicts classes {m.classes}, member 1 "
                                  f"{first.classes}")
            if m.window_len != first.window_len or sorted(m.channels) != sorted(first.channels):
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
        self._orders = [[first.channels.index(c) for c in m.channels] for m in members]
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
                  combine: str = "mean") -> EnsemblePredictor:
        """Each run's final model (a ``.pt`` path is taken as a checkpoint)."""
        members = [Predictor.from_checkpoint(p) if Path(p).is_file() else Predictor.from_run(p)
                   for p in run_dirs]
        return cls(members, weights, combine)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The members' probabilities ``(N, n_classes)`` combined: their weighted mean, or the
        renormalised weighted geometric mean (``combine="geometric"``)."""
        X = self._check(X)
        out = np.zeros((len(X), len(self.classes)), dtype=np.float64)
        geometric = self.combine == "geometric"
        for m, w, order in zip(self.members, self.weights, self._orders, strict=True):
            p = m.predict_proba(X[:, :, order]).astype(np.float64)
            # a probability that underflowed to 0 is floored so one member cannot make -inf
            out += w * (np.log(np.maximum(p, 1e-30)) if geometric else p)
        if geometric:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32)
