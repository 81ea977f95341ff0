"""Resampling continuous recordings to a target rate, anti-aliased (polyphase FIR filtering)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np

from harkit.data.recording import Recording
from harkit.errors import ConfigError


def rational_ratio(from_hz: float, to_hz: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)`` with ``up / down`` closest to ``to_hz / from_hz``.

    Example:
        >>> rational_ratio(98.0, 30.0)
        (15, 49)
    """
    if not (from_hz > 0 and to_hz > 0):
        raise ConfigError(f"sampling rates must be positive, got {from_hz} -> {to_hz} Hz")
    f = Fraction(to_hz / from_hz).limit_denominator(max_denominator)
    return f.numerator, f.denominator


def resample_signal(signal: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """Resample ``(time, channels)`` from ``from_hz`` to ``to_hz``.

    Downsampling low-pass filters first (a Kaiser-windowed FIR inside
    :func:`scipy.signal.resample_poly`), so frequencies above the new Nyquist rate do not alias
    into the band that is kept. New sample ``j`` lies at time ``j / to_hz`` (the first sample is
    kept in place); the output has ``ceil(time * up / down)`` samples.

    Example:
        >>> t = np.arange(100) / 50.0
        >>> x = np.sin(2 * np.pi * 1.0 * t)[:, None]          # 1 Hz at 50 Hz
        >>> y = resample_signal(x, 50.0, 25.0)
        >>> y.shape
        (50, 1)
        >>> bool(np.abs(y[5:-5, 0] - np.sin(2 * np.pi * t[::2][5:-5])).max() < 0.01)
        True
    """
    from scipy.signal import resample_poly

    if signal.ndim != 2:
        raise ValueError(f"signal must be (time, channels), got {signal.shape}")
    up, down = rational_ratio(from_hz, to_hz)
    if up == down:
        return signal
    if not np.isfinite(signal).all():
        raise ConfigError("cannot resample a signal with NaN / inf values: fill gaps first")
    out = resample_poly(signal.astype(np.float64), up, down, axis=0, padtype="line")
    return out.astype(signal.dtype, copy=False)


def resample_labels(labels: np.ndarray, from_hz: float, to_hz: float, n_out: int) -> np.ndarray:
    """Per-sample labels at the new rate: each new sample takes the label of the original
    sample nearest in time (labels are categories: they are never interpolated).

    Example:
        >>> resample_labels(np.array([0, 0, 1, 1, 2, 2]), 2.0, 1.0, 3).tolist()
        [0, 1, 2]
    """
    idx = np.rint(np.arange(n_out) * (from_hz / to_hz)).astype(np.int64)
    return labels[np.clip(idx, 0, len(labels) - 1)]


def resample_recording(rec: Recording, from_hz: float, to_hz: float) -> Recording:
    """A copy of ``rec`` at ``to_hz``: anti-aliased signal, nearest-in-time labels."""
    signal = resample_signal(rec.signal, from_hz, to_hz)
    labels = resample_labels(rec.labels, from_hz, to_hz, len(signal))
    return replace(rec, signal=signal, labels=labels,
                   meta={**rec.meta, "resampled_from_hz": from_hz})
