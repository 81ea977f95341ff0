"""Torch-free pieces every predictor shares: the raw-samples CSV reader, the window check and
the per-window results. Kept free of torch so :class:`~harkit.inference.onnx_predictor.
OnnxPredictor` (ONNX Runtime only) can use them on a device without PyTorch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harkit.data.windowing import sliding_windows, window_starts
from harkit.errors import DataFormatError

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class WindowPrediction:
    """One predicted window: its sample range, the class and its probability."""

    start: int
    end: int
    label: str
    confidence: float
    probabilities: list[float]


def read_samples_csv(path: str | Path, channels: list[str]) -> np.ndarray:
    """Read a CSV of raw samples (one row per time step, a header naming the channels).

    Columns are picked by name and put in ``channels`` order; other columns (timestamps,
    labels) are ignored. Returns float32 ``(time, channels)``.

    Raises:
        DataFormatError: naming the file, the missing column or the line with a bad value.
    """
    import pandas as pd

    p = Path(path)
    # Fast path: let pandas' C parser read numbers directly. Only when that does not give
    # finite numbers in every needed column is the file re-read as text to find the bad line.
    df = _read_csv(p, channels, dtype=None, keep_default_na=True)
    cols = [str(c).strip() for c in df.columns]
    df.columns = cols
    missing = [c for c in channels if c not in cols]
    if missing:
        raise DataFormatError(p, f"missing column(s) {missing}; the model expects channels "
                                 f"{channels}, the header has {cols}", line=1)
    sub = df[channels]
    if all(pd.api.types.is_numeric_dtype(t) for t in sub.dtypes):
        out = sub.to_numpy(dtype=np.float64)
        if np.isfinite(out).all():
            return out.astype(np.float32)
    text = _read_csv(p, channels, dtype=str, keep_default_na=False)
    text.columns = cols
    for c in channels:
        col = pd.to_numeric(text[c], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(col))
        if len(bad):
            i = int(bad[0])
            raise DataFormatError(p, f"column {c!r} has {text[c].iloc[i]!r}, expected a finite "
                                     "number", line=i + 2)  # +1 header, +1 for 1-based
    raise DataFormatError(p, "could not read the samples as numbers")  # pragma: no cover


def _read_csv(p: Path, channels: list[str], dtype: type | None,
              keep_default_na: bool) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(p, dtype=dtype, keep_default_na=keep_default_na,
                           skipinitialspace=True)
    except FileNotFoundError:
        raise DataFormatError(p, "file not found") from None
    except UnicodeDecodeError:
        raise DataFormatError(p, "not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(p, f"file is empty; expected a header with {channels}") from None
    except pd.errors.ParserError as e:
        raise DataFormatError(p, f"not a well-formed CSV ({str(e).strip()})") from None


def check_windows(X: np.ndarray, window_len: int, channels: list[str]) -> np.ndarray:
    """``X`` as float32 raw windows ``(N, window_len, len(channels))``.

    Raises:
        ValueError: another shape, or NaN / Inf values.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[1:] != (window_len, len(channels)):
        raise ValueError(
            f"expected raw windows (N, {window_len}, {len(channels)}) with channels "
            f"{channels}, got shape {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ValueError("windows contain NaN or Inf values")
    return X


def window_predictions(signal: np.ndarray, window_len: int, hop: int, classes: list[str],
                       predict_proba: Callable[[np.ndarray], np.ndarray]
                       ) -> list[WindowPrediction]:
    """Cut a raw ``(time, channels)`` signal into windows as in training and predict each
    with ``predict_proba`` (raw windows ``(N, time, channels)`` -> ``(N, n_classes)``)."""
    probs = predict_proba(sliding_windows(signal, window_len, hop))
    starts = window_starts(len(signal), window_len, hop)
    return [
        WindowPrediction(int(s), int(s) + window_len, classes[int(p.argmax())],
                         float(p.max()), [float(v) for v in p])
        for s, p in zip(starts, probs, strict=True)
    ]


def read_signal_csv(path: str | Path, channels: list[str], window_len: int) -> np.ndarray:
    """:func:`read_samples_csv`, refusing a file shorter than one window.

    Raises:
        DataFormatError: see :func:`read_samples_csv`; or fewer than ``window_len`` samples.
    """
    signal = read_samples_csv(path, channels)
    if len(signal) < window_len:
        raise DataFormatError(path, f"has {len(signal)} samples, fewer than one window of "
                                    f"{window_len}")
    return signal


class WindowPredictorMixin:
    """``predict``, ``predict_signal`` and ``predict_csv`` for any predictor that has
    ``predict_proba(raw windows)``, ``classes``, ``channels``, ``window_len`` and ``hop``."""

    classes: list[str]
    channels: list[str]
    window_len: int
    hop: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices ``(N,)`` for raw windows ``(N, time, channels)``."""
        return self.predict_proba(X).argmax(1)

    def predict_signal(self, signal: np.ndarray, hop: int | None = None) -> list[WindowPrediction]:
        """Window a raw ``(time, channels)`` signal as in training and predict each window."""
        return window_predictions(signal, self.window_len, hop or self.hop, self.classes,
                                  self.predict_proba)

    def predict_csv(self, path: str | Path, hop: int | None = None) -> list[WindowPrediction]:
        """Read a CSV of raw samples (see :func:`read_samples_csv`) and predict every window."""
        return self.predict_signal(read_signal_csv(path, self.channels, self.window_len), hop)
