"""Model registry. Every model maps ``(batch, time, channels)`` windows to ``(batch, n_classes)``
logits (no softmax inside), declares ``n_channels``, ``n_classes``, ``window_len`` and
``get_config()``, and registers a ``tiny`` variant for tests.

Example:
    >>> import torch
    >>> m = create_model("gru", n_channels=9, n_classes=6, window_len=128, variant="tiny")
    >>> m(torch.zeros(2, 128, 9)).shape
    torch.Size([2, 6])
"""

from __future__ import annotations

import inspect
from typing import Any

from harkit.errors import ConfigError
from harkit.models.base import HarModel
from harkit.registry import Entry, Registry

MODELS: Registry[HarModel] = Registry("model")

from harkit.models import cnn as _cnn  # noqa: E402,F401  (registers on import)
from harkit.models import deepconvlstm as _deepconvlstm  # noqa: E402,F401
from harkit.models import recurrent as _recurrent  # noqa: E402,F401
from harkit.models import rocket as _rocket  # noqa: E402,F401
from harkit.models import skeleton as _skeleton  # noqa: E402,F401
from harkit.models import tinyhar as _tinyhar  # noqa: E402,F401


def create_model(name: str, n_channels: int, n_classes: int, window_len: int,
                 variant: str | None = None, **params: Any) -> HarModel:
    """Build registered model ``name`` for the given input and output sizes.

    Args:
        name: registry name (see :func:`list_models`).
        n_channels, n_classes, window_len: the data contract.
        variant: ``"tiny"`` for the small test variant; params override it.
        **params: model hyperparameters (checked against the model's signature).

    Raises:
        ConfigError: unknown model or unknown / invalid hyperparameter.
    """
    entry = MODELS.get(name)
    kwargs: dict[str, Any] = {}
    if variant is not None:
        variants = entry.tags.get("variants", {})
        if variant not in variants:
            raise ConfigError(f"model {name!r} has no variant {variant!r}; has {sorted(variants)}")
        kwargs.update(variants[variant])
    kwargs.update(params)
    sig = inspect.signature(entry.factory)
    allowed = [p for p in sig.parameters if p not in ("n_channels", "n_classes", "window_len")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"model {name!r}: unknown parameter(s) {unknown}; it accepts {allowed}"
        )
    try:
        return entry.factory(n_channels=n_channels, n_classes=n_classes,
                             window_len=window_len, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model {name!r}: {e}") from None


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def model_entries() -> list[Entry[HarModel]]:
    return MODELS.entries()


def model_from_config(config: dict[str, Any]) -> HarModel:
    """Rebuild a model from ``{"name": ..., **model.get_config()}`` (as stored in checkpoints)."""
    cfg = dict(config)
    name = cfg.pop("name")
    return create_model(name, **cfg)


__all__ = ["MODELS", "HarModel", "create_model", "list_models", "model_from_config"]
