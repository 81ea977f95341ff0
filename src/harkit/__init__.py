"""harkit: human activity recognition from wearable sensors and pose sequences.

Heavy modules (torch, sklearn, matplotlib) load on first use, so ``import harkit`` is fast.

Example:
    >>> import harkit
    >>> result = harkit.train(overrides=["train.epochs=3"])          # doctest: +SKIP
    >>> p = harkit.Predictor.from_run(result.run_dir)                # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from harkit.api import evaluate_run as evaluate
    from harkit.api import train
    from harkit.inference import Predictor

__all__ = ["Predictor", "__version__", "evaluate", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from harkit.api import train

        return train
    if name == "evaluate":
        from harkit.api import evaluate_run

        return evaluate_run
    if name == "Predictor":
        from harkit.inference import Predictor

        return Predictor
    raise AttributeError(f"module 'harkit' has no attribute {name!r}")
