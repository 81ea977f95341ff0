"""Sliding windows over a continuous signal, as a pure function."""

from __future__ import annotations

import numpy as np


def sliding_windows(signal: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Cut ``signal`` of shape ``(time, channels)`` into ``(windows, window, channels)``.

    Windows start at 0, hop, 2*hop, ... and only full windows are returned; the time axis
    inside each window stays in its original order (no reshape of the time axis happens).
    The result is a read-only view when possible; copy it before writing to it.

    Args:
        signal: array ``(time, channels)``.
        window: samples per window (> 0).
        hop: samples between window starts (> 0).

    Returns:
        array ``(n_windows, window, channels)``, ``n_windows = 1 + (time - window) // hop``
        (0 when the signal is shorter than one window).

    Example:
        >>> x = np.arange(10, dtype=float).reshape(5, 2)   # time 0..4, two channels
        >>> w = sliding_windows(x, window=3, hop=2)
        >>> w.shape
        (2, 3, 2)
        >>> w[1, :, 0].tolist()   # window 1 = samples 2, 3, 4 of channel 0
        [4.0, 6.0, 8.0]
    """
    if signal.ndim != 2:
        raise ValueError(f"signal must be (time, channels), got shape {signal.shape}")
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got window={window}, hop={hop}")
    n_time, n_ch = signal.shape
    if n_time < window:
        return np.empty((0, window, n_ch), dtype=signal.dtype)
    # (time, C) -> (n_windows, C, window) view; then swap to (n_windows, window, C)
    view = np.lib.stride_tricks.sliding_window_view(signal, window, axis=0)[::hop]
    return view.transpose(0, 2, 1)


def window_starts(n_time: int, window: int, hop: int) -> np.ndarray:
    """Start sample of each full window that :func:`sliding_windows` returns."""
    if n_time < window:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, n_time - window + 1, hop, dtype=np.int64)


def to_samples(value: int | str, rate: float, field: str = "data.window") -> int:
    """A window length or hop in samples: ``value`` is a sample count (``128``, ``"128"``) or a
    duration (``"2.56s"``, ``"500ms"``) converted at ``rate`` samples per second.

    Example:
        >>> to_samples("2.56s", 50.0), to_samples("500ms", 30.0), to_samples(64, 50.0)
        (128, 15, 64)
    """
    from harkit.errors import ConfigError

    if isinstance(value, bool):
        raise ConfigError(f"{field}: expected a sample count or a duration, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip().lower()
        try:
            if text.endswith("ms"):
                n = round(float(text[:-2]) * rate / 1000.0)
            elif text.endswith("s"):
                n = round(float(text[:-1]) * rate)
            else:
                n = int(text)
        except ValueError:
            raise ConfigError(f"{field}: {value!r} is neither a sample count (128) nor a "
                              "duration (2.56s, 500ms)") from None
    if n <= 0:
        raise ConfigError(f"{field}: {value!r} is {n} samples at {rate:g} Hz; it must be at "
                          "least one sample")
    return n


def interp_columns(x_new: np.ndarray, x_old: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each column of ``values`` ``(len(x_old), C)`` linearly interpolated at ``x_new`` (held
    constant beyond the ends, as :func:`numpy.interp`): ``(len(x_new), C)`` float64.

    Example:
        >>> interp_columns(np.array([0.5, 2.0]), np.array([0.0, 1.0]),
        ...                np.array([[0.0, 10.0], [2.0, 20.0]])).tolist()
        [[1.0, 15.0], [2.0, 20.0]]
    """
    cols = [np.interp(x_new, x_old, values[:, c]) for c in range(values.shape[1])]
    return np.stack(cols, axis=1) if cols else np.empty((len(x_new), 0))


def to_length(x: np.ndarray, length: int, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """``(time, dims)`` to ``length`` samples and the 0/1 validity of each output sample.

    ``pad`` repeats the last value (and cuts longer cases); ``resample`` linearly
    interpolates the whole case onto ``length`` evenly spaced points (all valid).

    Example:
        >>> x = np.array([[0.0], [2.0]])
        >>> y, valid = to_length(x, 3, "pad")
        >>> y[:, 0].tolist(), valid.tolist()
        ([0.0, 2.0, 2.0], [1.0, 1.0, 0.0])
        >>> to_length(x, 3, "resample")[0][:, 0].tolist()
        [0.0, 1.0, 2.0]
    """
    n = len(x)
    if policy == "pad":
        valid = (np.arange(length) < n).astype(np.float32)
        if n >= length:
            return x[:length], valid
        return np.concatenate([x, np.repeat(x[-1:], length - n, axis=0)]), valid
    if n == 1:
        return np.repeat(x, length, axis=0), np.ones(length, np.float32)
    pos = np.linspace(0.0, n - 1, length)
    return interp_columns(pos, np.arange(n), x).astype(x.dtype), np.ones(length, np.float32)
