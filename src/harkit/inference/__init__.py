"""Prediction with exactly the preprocessing stored in the checkpoint.

Names load on first use, so a torch-free module of this package (the ONNX Runtime predictor)
can be imported without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harkit.inference.ensemble import EnsemblePredictor
    from harkit.inference.predictor import Predictor, read_samples_csv
    from harkit.inference.streaming import StreamEvent, StreamingPredictor

_WHERE = {"EnsemblePredictor": "ensemble", "Predictor": "predictor",
          "read_samples_csv": "predictor", "StreamEvent": "streaming",
          "StreamingPredictor": "streaming"}

__all__ = ["EnsemblePredictor", "Predictor", "StreamEvent", "StreamingPredictor",
           "read_samples_csv"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"harkit.inference.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'harkit.inference' has no attribute {name!r}")
