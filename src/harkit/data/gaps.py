"""Filling missing samples (NaN) in continuous signals."""

from __future__ import annotations

import numpy as np


def fill_gaps(signal: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Fill ``NaN`` in ``(time, channels)`` per channel by linear interpolation in time.

    Leading and trailing gaps take the nearest valid value; a channel without any valid value
    becomes 0. Returns the filled float32 copy and the indices of those all-``NaN`` channels.

    Example:
        >>> x = np.array([[np.nan, np.nan], [1.0, np.nan], [np.nan, np.nan], [3.0, np.nan]])
        >>> filled, dead = fill_gaps(x)
        >>> filled[:, 0].tolist(), dead
        ([1.0, 1.0, 2.0, 3.0], [1])
    """
    out = np.array(signal, dtype=np.float32, copy=True)
    gaps = np.isnan(out)
    dead: list[int] = []
    if not gaps.any():
        return out, dead
    t = np.arange(len(out))
    for c in np.flatnonzero(gaps.any(axis=0)).tolist():
        m = gaps[:, c]
        if m.all():
            out[:, c] = 0.0
            dead.append(c)
            continue
        out[m, c] = np.interp(t[m], t[~m], out[~m, c])  # np.interp holds the end values
    return out, dead
