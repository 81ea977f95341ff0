"""Prediction from an exported ONNX model with ONNX Runtime alone: no PyTorch needed.

:class:`OnnxPredictor` reads a file written by ``harkit export --format onnx`` and its sidecar
``<file>.json`` and offers the :class:`~harkit.inference.Predictor` API for raw windows:
``predict_proba``, ``predict``, ``predict_signal`` and ``predict_csv``, with the same channel
order, window length, hop and classes. The normaliser is either inside the graph (the
default export) or applied here from the sidecar's state. Importing this module loads
neither torch nor any harkit module that does, so it runs on a device with only numpy,
pandas (for CSV files) and onnxruntime installed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.transforms import Identity, Normalizer, normalizer_from_state
from harkit.errors import DataFormatError, HarkitError
from harkit.inference.samples import WindowPredictorMixin, check_windows

SIDECAR_SUFFIX = ".json"  # as harkit.inference.export writes it (not imported: that needs torch)


class OnnxPredictor(WindowPredictorMixin):
    """An exported ONNX model with its sidecar: raw windows in, class probabilities out.

    Args:
        path: the ``.onnx`` file; its sidecar ``<path>.json`` must be beside it.
        threads: ONNX Runtime's intra-op threads (None: its default, one per core).
        batch_size: windows per ONNX Runtime call (bounds the memory of large inputs).
        check_hash: verify that the file is the one the sidecar describes (its sha256).

    Raises:
        DataFormatError: missing or malformed file or sidecar, a sidecar of another file or
            format, or a graph whose input does not match the sidecar.
        HarkitError: onnxruntime is not installed.

    Example:
        >>> p = OnnxPredictor("model.onnx")                       # doctest: +SKIP
        >>> p.predict_proba(raw_windows).shape                    # doctest: +SKIP
        (10, 6)
        >>> p.predict_csv("walk.csv")[0].label                    # doctest: +SKIP
        'WALKING'
    """

    def __init__(self, path: str | Path, threads: int | None = None, batch_size: int = 256,
                 check_hash: bool = True) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise HarkitError("OnnxPredictor needs onnxruntime: pip install onnxruntime "
                              "(or harkit[export])") from None
        self.path = Path(path)
        self.sidecar = self.path.with_name(self.path.name + SIDECAR_SUFFIX)
        meta = _read_sidecar(self.sidecar, self.path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise DataFormatError(self.path, "ONNX model file not found") from None
        if check_hash and meta.get("sha256") not in (None, hashlib.sha256(data).hexdigest()):
            raise DataFormatError(self.path, f"is not the file its sidecar {self.sidecar.name} "
                                             "describes (sha256 differs); export it again")
        self.metadata: dict[str, Any] = meta
        self.channels: list[str] = [str(c) for c in meta["channels"]]
        self.classes: list[str] = [str(c) for c in meta["classes"]]
        self.units: dict[str, str] = dict(meta.get("units") or {})
        self.window_len = int(meta["window_len"])
        self.hop = int(meta["hop"])
        self.sampling_rate = float(meta["sampling_rate"])
        self.batch_size = batch_size
        # normalised here only when the export left it out of the graph
        self.normalizer: Normalizer = (Identity() if meta["normalizer_folded"]
                                       else normalizer_from_state(meta["normalizer"]))
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for a corrupt graph
            raise DataFormatError(self.path, f"ONNX Runtime cannot load it ({e})") from None
        self._input = str(meta["input_name"])
        self._output = str(meta["output_name"])
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        shape = inputs.get(self._input)
        if shape is None or list(shape[1:]) != [self.window_len, len(self.channels)]:
            raise DataFormatError(self.path, f"graph inputs {inputs} do not match the sidecar's "
                                             f"{self._input!r} (batch, {self.window_len}, "
                                             f"{len(self.channels)})")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` float32 for raw windows ``(N, time,
        channels)`` in :attr:`channels` order."""
        Xn = np.ascontiguousarray(self.normalizer.transform(
            check_windows(X, self.window_len, self.channels)), dtype=np.float32)
        out = [self.session.run([self._output], {self._input: Xn[i : i + self.batch_size]})[0]
               for i in range(0, len(Xn), self.batch_size)]
        if not out:
            return np.empty((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)



REQUIRED = ("format", "input_name", "output_name", "classes", "channels", "window_len", "hop",
            "sampling_rate", "normalizer_folded", "normalizer")


def _read_sidecar(sidecar: Path, model: Path) -> dict[str, Any]:
    """The sidecar's contents, checked to describe an ONNX export of ``model``."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError(sidecar, f"sidecar not found; harkit export writes it beside "
                                       f"{model.name}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataFormatError(sidecar, f"not a JSON sidecar ({e})") from None
    if not isinstance(meta, dict):
        raise DataFormatError(sidecar, "expected a JSON object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise DataFormatError(sidecar, f"lacks {missing}; export the model again")
    if meta["format"] != "onnx":
        raise DataFormatError(sidecar, f"describes a {meta['format']!r} export; OnnxPredictor "
                                       "reads ONNX exports")
    if meta.get("file") not in (None, model.name):
        raise DataFormatError(sidecar, f"describes {meta['file']!r}, not {model.name!r}")
    return meta
