"""Normalisers fitted on training windows only; their state travels in the checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np

from harkit.errors import ConfigError


class Standardizer:
    """Per-channel z-score: ``(x - mean) / std`` over all training samples of each channel.

    Example:
        >>> x = np.stack([np.zeros((4, 2)), 2 * np.ones((4, 2))]).astype(np.float32)  # (2, 4, 2)
        >>> s = Standardizer().fit(x)
        >>> s.transform(x)[:, 0, 0].tolist()
        [-1.0, 1.0]
    """

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)

    def fit(self, X: np.ndarray) -> Standardizer:
        """Fit on windows ``(windows, time, channels)`` (the training split only)."""
        flat = X.reshape(-1, X.shape[-1]).astype(np.float64)  # (N*T, C): channel axis kept
        self.mean = flat.mean(0).astype(np.float32)
        std = flat.std(0)
        self.std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer.transform called before fit")
        if X.shape[-1] != self.mean.shape[0]:
            raise ConfigError(
                f"input has {X.shape[-1]} channels, the normaliser was fitted on "
                f"{self.mean.shape[0]}"
            )
        return ((X - self.mean) / self.std).astype(np.float32, copy=False)

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "standard",
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
        }


class MinMaxScaler(Standardizer):
    """Per-channel min-max scaling to [0, 1] over the training samples (as in Ordóñez & Roggen
    2016): the same affine form as :class:`Standardizer`, with ``mean`` = minimum and
    ``std`` = range, so everything that undoes a Standardizer (augmentation in physical units)
    works unchanged. Test values outside the training range fall outside [0, 1].

    Example:
        >>> x = np.stack([np.zeros((4, 1)), 4 * np.ones((4, 1))]).astype(np.float32)
        >>> MinMaxScaler().fit(x).transform(x)[:, 0, 0].tolist()
        [0.0, 1.0]
    """

    def fit(self, X: np.ndarray) -> MinMaxScaler:
        flat = X.reshape(-1, X.shape[-1]).astype(np.float64)  # (N*T, C): channel axis kept
        lo, hi = flat.min(0), flat.max(0)
        self.mean = lo.astype(np.float32)
        self.std = np.where(hi - lo > 1e-8, hi - lo, 1.0).astype(np.float32)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "kind": "minmax"}


class Identity:
    """No normalisation (``data.normalize=none``)."""

    def fit(self, X: np.ndarray) -> Identity:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float32, copy=False)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "none"}


Normalizer = Standardizer | Identity


def make_normalizer(kind: str) -> Normalizer:
    if kind == "standard":
        return Standardizer()
    if kind == "minmax":
        return MinMaxScaler()
    if kind == "none":
        return Identity()
    raise ConfigError(f"data.normalize={kind!r}: expected 'standard', 'minmax' or 'none'")


def normalizer_from_state(state: dict[str, Any]) -> Normalizer:
    if state.get("kind") == "standard":
        return Standardizer(np.asarray(state["mean"]), np.asarray(state["std"]))
    if state.get("kind") == "minmax":
        return MinMaxScaler(np.asarray(state["mean"]), np.asarray(state["std"]))
    return Identity()
