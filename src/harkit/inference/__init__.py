"""Prediction with exactly the preprocessing stored in the checkpoint.

Names load on first use, so a torch-free module of this package (the ONNX Runtime predictor)
can be imported without importing torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harkit.inference.ensemble import EnsemblePredictor
    from harkit.inference.export import export_model, export_run
    from harkit.inference.onnx_predictor import OnnxPredictor
    from harkit.inference.predictor import Predictor
    from harkit.inference.samples import WindowPrediction, read_samples_csv
    from harkit.inference.streaming import StreamEvent, StreamingPredictor

_WHERE = {"EnsemblePredictor": "ensemble", "Predictor": "predictor",
          "read_samples_csv": "samples", "WindowPrediction": "samples",
          "OnnxPredictor": "onnx_predictor", "export_model": "export", "export_run": "export",
          "StreamEvent": "streaming", "StreamingPredictor": "streaming"}

__all__ = ["EnsemblePredictor", "OnnxPredictor", "Predictor", "StreamEvent",
           "StreamingPredictor", "WindowPrediction", "export_model", "export_run",
           "load_predictor", "read_samples_csv"]


def load_predictor(path: str | Path, which: str | None = None,
                   precision: str = "fp32", parallel: str = "off") -> Predictor | OnnxPredictor:
    """The predictor for ``path``: an exported ``.onnx`` model runs in ONNX Runtime (torch is
    never imported); a ``.pt`` checkpoint or a run directory (its ``which`` model: final, best
    or last) runs in PyTorch, with ``precision`` fp32, bf16 or int8 (dynamic quantisation).
    Both apply the preprocessing stored with the model. ``parallel`` (PyTorch models): off,
    batch or auto, how a batch uses the cores (see :mod:`harkit.inference.parallel`)."""
    p = Path(path)
    if p.suffix == ".onnx":
        from harkit.errors import ConfigError
        from harkit.inference.onnx_predictor import OnnxPredictor

        if precision != "fp32":
            raise ConfigError(f"{p}: precision={precision} applies to PyTorch models; an "
                              ".onnx model runs as exported")
        if parallel != "off":
            raise ConfigError(f"{p}: parallel={parallel} applies to PyTorch models; ONNX "
                              "Runtime schedules its own threads")
        return OnnxPredictor(p)
    from harkit.inference.predictor import Predictor

    if p.is_file():
        return Predictor.from_checkpoint(p, precision, parallel)
    return Predictor.from_run(p, which, precision, parallel)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"harkit.inference.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'harkit.inference' has no attribute {name!r}")
