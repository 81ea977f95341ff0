"""Normalisers fitted on training windows only; their state travels in the checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from harkit.errors import ConfigError

if TYPE_CHECKING:
    from harkit.data.skeleton import SkeletonInfo


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


class SkeletonStandardizer(Standardizer):
    """Skeleton z-score: one mean and std per coordinate dim (x, y, z, confidence), shared by
    every joint and body, so the skeleton's shape survives (per-channel statistics would
    stretch each joint differently and break bone lengths). Fitted on the real entries only:
    padded frames (``valid`` = 0) and joints whose values are all exactly zero (a missed
    detection, an absent second body) do not count. The ``valid`` channel is left as is.

    The fitted state is per-channel ``mean`` / ``std`` vectors like a :class:`Standardizer`
    (the per-dim values repeated over joints and bodies; 0 and 1 on the valid channel), so
    everything that undoes a Standardizer works unchanged and the checkpoint state needs no
    layout.

    Example:
        >>> from harkit.data.skeleton import SkeletonInfo
        >>> info = SkeletonInfo("natops8", bodies=1, dims=3)
        >>> x = np.random.default_rng(0).normal(5, 2, (4, 10, info.n_channels)).astype(np.float32)
        >>> s = SkeletonStandardizer(info).fit(x)
        >>> s.mean.shape, bool(np.allclose(s.mean[:3], s.mean[3:6]))
        ((24,), True)
    """

    def __init__(self, skeleton: SkeletonInfo | None = None, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None) -> None:
        super().__init__(mean, std)
        self.skeleton = skeleton

    def fit(self, X: np.ndarray) -> SkeletonStandardizer:
        from harkit.data.skeleton import unflatten

        info = self.skeleton
        if info is None:
            raise RuntimeError("SkeletonStandardizer.fit needs the dataset's SkeletonInfo")
        if X.shape[-1] != info.n_channels:
            raise ConfigError(f"input has {X.shape[-1]} channels, the skeleton "
                              f"{info.layout if isinstance(info.layout, str) else 'layout'} "
                              f"has {info.n_channels}")
        coords = unflatten(X, info).astype(np.float64)  # (N, T, C) -> (N, T, M, J, D)
        real = np.any(coords != 0, axis=-1)  # (N, T, M, J): not a missing joint / body
        if info.valid_channel:
            real &= (X[..., -1] > 0.5)[:, :, None, None]  # padded frames do not count
        values = coords[real]  # (entries, D)
        mean = values.mean(0) if len(values) else np.zeros(info.dims)
        std = values.std(0) if len(values) else np.ones(info.dims)
        std = np.where(std > 1e-8, std, 1.0)
        reps = info.bodies * info.n_joints
        pad = [0.0] if info.valid_channel else []
        self.mean = np.concatenate([np.tile(mean, reps), pad]).astype(np.float32)
        self.std = np.concatenate([np.tile(std, reps), [1.0] * len(pad)]).astype(np.float32)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "kind": "skeleton"}


class Identity:
    """No normalisation (``data.normalize=none``)."""

    def fit(self, X: np.ndarray) -> Identity:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float32, copy=False)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "none"}


Normalizer = Standardizer | Identity


NORMALIZE_KINDS = ("standard", "minmax", "skeleton", "none")


def make_normalizer(kind: str, skeleton: SkeletonInfo | None = None) -> Normalizer:
    """An unfitted normaliser of ``kind`` (``data.normalize``).

    On a skeleton dataset (``skeleton`` given) ``standard`` means ``skeleton`` (one mean and
    std per coordinate dim, see :class:`SkeletonStandardizer`) and ``minmax`` is refused:
    per-channel statistics would distort the skeleton, and min-max scaling would rescale the
    ``valid`` channel the models read.

    Raises:
        ConfigError: an unknown kind, or one that does not fit the data.
    """
    if skeleton is not None and kind in ("standard", "skeleton"):
        return SkeletonStandardizer(skeleton)
    if kind == "skeleton":
        raise ConfigError("data.normalize='skeleton' needs a skeleton dataset; this dataset "
                          "has sensor channels (use 'standard')")
    if skeleton is not None and kind == "minmax":
        raise ConfigError("data.normalize='minmax' would scale each joint coordinate on its "
                          "own and distort the skeleton; use 'standard' (one mean / std per "
                          "coordinate dim) or 'none'")
    if kind == "standard":
        return Standardizer()
    if kind == "minmax":
        return MinMaxScaler()
    if kind == "none":
        return Identity()
    raise ConfigError(f"data.normalize={kind!r}: expected one of {', '.join(NORMALIZE_KINDS)}")


def normalizer_from_state(state: dict[str, Any]) -> Normalizer:
    if state.get("kind") == "standard":
        return Standardizer(np.asarray(state["mean"]), np.asarray(state["std"]))
    if state.get("kind") == "minmax":
        return MinMaxScaler(np.asarray(state["mean"]), np.asarray(state["std"]))
    if state.get("kind") == "skeleton":
        return SkeletonStandardizer(None, np.asarray(state["mean"]), np.asarray(state["std"]))
    return Identity()
