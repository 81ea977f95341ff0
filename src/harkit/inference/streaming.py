"""Streaming prediction: raw samples in, one event per hop out, with the checkpoint's preprocessing.

A :class:`StreamingPredictor` wraps a :class:`~harkit.inference.Predictor`. Samples arrive as
``(n, channels)`` chunks of any size (a skeleton frame, flattened as in the dataset's windows,
is one row); they go into a preallocated buffer, and every ``hop`` samples, once a full window
of ``window_len`` samples is there, the window is predicted by the Predictor itself (same
normaliser, channel order and model as offline prediction; the windows that become ready
within one chunk go to the model in one call). Each window gives a :class:`StreamEvent`: the
raw class and probabilities, a smoothed decision, and ``unknown`` when the smoothed
confidence is below a threshold.

Window ``i`` covers samples ``[i * hop, i * hop + window_len)`` counted from the first sample
fed (or from :meth:`StreamingPredictor.reset`): the windows of
:func:`~harkit.data.windowing.sliding_windows` over the same samples, whatever the chunking.

Hostile streams: what the predictor does with gaps, NaN bursts and disordered timestamps is a
documented policy, set per stream (``gaps``, ``nan``, ``disorder``; :data:`STREAM_POLICIES`
names two presets). ``strict`` (the default) is the original contract: a non-finite value or
timestamp raises :class:`~harkit.errors.DataFormatError` (the stream is unchanged and goes on),
and caller timestamps are taken as given. ``repair`` survives hostile input instead:

- **disorder="drop"**: a sample whose timestamp is not after the latest one accepted is
  dropped (``late`` or ``duplicate``), as is one with a non-finite timestamp (``bad_time``).
- **gaps**: a jump of more than ``gap_factor`` sample periods between consecutive timestamps
  is a gap. ``interpolate`` fills a gap of up to ``max_fill`` missing samples with linearly
  interpolated ones (``gap_filled``); a longer gap (or any gap with ``gaps="reset"``) resets
  the window buffer (``resets``): the samples before it are forgotten, the next window starts
  at the first sample after it and the smoothing starts again; sample numbers go on.
- **nan="repair"**: a run of NaN/inf values in a channel of up to ``max_fill`` samples,
  between two finite values, is linearly interpolated (``interpolated``, in samples); a
  window touching a longer run, or a run at the start of the stream, is not predicted
  (``windows_dropped``): no prediction is ever computed on NaN. A window whose last samples
  are a run still open waits for the run to end (at most ``max_fill`` samples).

:attr:`StreamingPredictor.stats` counts each of these since the start (or :meth:`reset`), and
each :class:`StreamEvent` says how many of its samples were ``repaired``. Whatever the
policy, a window whose probabilities come out non-finite (finite values too large for the
model, say 1e30) gives no event and is counted (``windows_not_finite``). Window numbers stay
positional (a dropped window leaves its number unused); with timestamps the window of an event
is placed by its ``start``/``end`` sample numbers, which count the samples kept and filled.

The sources of the ``harkit stream`` command (a CSV file, stdin, a TCP socket sending CSV
lines) are here too, as iterators of chunks (:func:`open_source`), with :func:`paced` to
replay a recording at its real rate.

Latency per hop (:func:`measure_latency`: 2000 hop-sized chunks, each call predicting one
window and timed end to end: checks, buffer, normaliser, model, smoothing, event), with one
torch thread on an idle 16-core x86-64 CPU, 128 x 9 windows, 6 classes: harcnn at the test
size (width 4, hidden 8; 1.5k parameters) p50 0.21-0.28 ms, p99 0.5 ms; harcnn at its default
size (203k parameters) p50 0.5 ms, p99 under 1 ms; the recurrent models take longer (lstm,
204k: p50 2.3 ms; deepconvlstm, 556k: 4.7 ms). The streaming bookkeeping alone (a stand-in
model that answers at once) is 0.015 ms per hop; the rest is the Predictor's own call.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import math
import socket
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import ArrayLike

from harkit.data.windowing import sliding_windows
from harkit.errors import ConfigError, DataFormatError, HarkitError

SMOOTHING_KINDS = ("none", "mean", "hysteresis")
GAP_POLICIES = ("keep", "reset", "interpolate")
NAN_POLICIES = ("raise", "repair")
DISORDER_POLICIES = ("keep", "drop")
#: Named presets of the hostile-stream policies (see the module docstring).
STREAM_POLICIES: dict[str, dict[str, str]] = {
    "strict": {"gaps": "keep", "nan": "raise", "disorder": "keep"},
    "repair": {"gaps": "interpolate", "nan": "repair", "disorder": "drop"},
}
#: The counters of :attr:`StreamingPredictor.stats`.
STAT_KEYS = ("late", "duplicate", "bad_time", "gap_filled", "resets", "interpolated",
             "windows_dropped", "windows_not_finite")
_BAD, _FILLED = np.uint8(1), np.uint8(2)  # row flags: unusable (NaN kept) / interpolated


class WindowPredictor(Protocol):
    """What streaming needs from a predictor (:class:`~harkit.inference.Predictor` has it):
    the window contract and class probabilities ``(N, n_classes)`` for raw windows
    ``(N, window_len, channels)``."""

    channels: list[str]
    classes: list[str]
    window_len: int
    hop: int
    sampling_rate: float

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# smoothing


class Smoother(Protocol):
    """Turns each window's class probabilities into a decision. ``update`` takes one window's
    probabilities ``(n_classes,)`` and returns the decided class index and the probability
    vector the decision's confidence is read from (``vector[decision]``)."""

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]: ...

    def reset(self) -> None: ...


class NoSmoothing:
    """Each window decides alone: its most probable class, with that probability."""

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        return int(probs.argmax()), probs

    def reset(self) -> None:
        pass


class MeanSmoothing:
    """Moving average of the last ``k`` windows' probability vectors (fewer at the start);
    the decision is the average's most probable class, its confidence the average's value.

    Example:
        >>> s = MeanSmoothing(n_classes=2, k=2)
        >>> [s.update(np.array(p))[1].tolist() for p in ([1.0, 0.0], [0.0, 1.0], [0.0, 1.0])]
        [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """

    def __init__(self, n_classes: int, k: int) -> None:
        self.k = k
        self._history = np.zeros((k, n_classes), dtype=np.float64)  # a ring of k vectors
        self._count = 0

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        self._history[self._count % self.k] = probs
        self._count += 1
        mean = self._history[: min(self._count, self.k)].mean(axis=0)
        return int(mean.argmax()), mean

    def reset(self) -> None:
        self._count = 0


class HysteresisSmoothing:
    """A sticky decision, the two-parameter core of an HMM with a strong self-transition.

    The first window decides its most probable class. After that, let ``c`` be the current
    decision and ``j`` a window's most probable class. The window *challenges* ``c`` for ``j``
    when ``j != c`` and ``p[j] - p[c] > margin``. The decision switches to ``j`` when ``j``
    has challenged in ``k`` consecutive windows; a window that does not challenge, or that
    challenges for another class, restarts the count (at 0, or at 1 for its own class). The
    confidence is the current window's probability of the decided class, ``p[c]``, so a held
    decision that the data no longer supports falls below the threshold (``unknown``) before
    it switches. ``k=1, margin=0`` is the raw most probable class (a tie keeps the decision).

    Example:
        >>> s = HysteresisSmoothing(margin=0.2, k=2)
        >>> [s.update(np.array([p, 1 - p]))[0] for p in (0.9, 0.3, 0.9, 0.3, 0.3, 0.55)]
        [0, 0, 0, 0, 1, 1]
    """

    def __init__(self, margin: float, k: int) -> None:
        self.margin = margin
        self.k = k
        self._decision = -1  # -1: no window seen yet
        self._challenger = -1
        self._streak = 0

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        top = int(probs.argmax())
        if self._decision < 0:
            self._decision = top
            return top, probs
        c = self._decision
        if top != c and probs[top] - probs[c] > self.margin:
            self._streak = self._streak + 1 if top == self._challenger else 1
            self._challenger = top
            if self._streak >= self.k:
                self._decision, self._challenger, self._streak = top, -1, 0
        else:
            self._challenger, self._streak = -1, 0
        return self._decision, probs

    def reset(self) -> None:
        self._decision = -1
        self._challenger = -1
        self._streak = 0


def check_stream_options(smoothing: str, k: int, margin: float, threshold: float) -> None:
    """Raise :class:`ConfigError` naming the option that is out of range."""
    if smoothing not in SMOOTHING_KINDS:
        raise ConfigError(f"smoothing={smoothing!r}: expected one of {', '.join(SMOOTHING_KINDS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r}: expected a positive number of windows")
    if not margin >= 0.0:
        raise ConfigError(f"margin={margin!r}: expected a probability difference >= 0")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold={threshold!r}: expected a probability in [0, 1]")


def check_policy_options(gaps: str, nan: str, disorder: str, gap_factor: float,
                         max_fill: int | None) -> None:
    """Raise :class:`ConfigError` naming the hostile-stream option that is out of range."""
    for name, value, allowed in (("gaps", gaps, GAP_POLICIES), ("nan", nan, NAN_POLICIES),
                                 ("disorder", disorder, DISORDER_POLICIES)):
        if value not in allowed:
            raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    if isinstance(gap_factor, bool) or not isinstance(gap_factor, int | float) or not (
            math.isfinite(gap_factor) and gap_factor >= 1.0):
        raise ConfigError(f"gap_factor={gap_factor!r}: expected a number of sample periods "
                          ">= 1")
    if max_fill is not None and (isinstance(max_fill, bool) or not isinstance(max_fill, int)
                                 or max_fill < 0):
        raise ConfigError(f"max_fill={max_fill!r}: expected a number of samples >= 0")


def make_smoother(smoothing: str, n_classes: int, k: int = 3, margin: float = 0.1) -> Smoother:
    """A smoother by name: ``none``, ``mean`` (last ``k`` windows) or ``hysteresis`` (``k``
    consecutive windows won by more than ``margin`` to switch); see the classes above."""
    check_stream_options(smoothing, k, margin, 0.0)
    if smoothing == "mean":
        return MeanSmoothing(n_classes, k)
    if smoothing == "hysteresis":
        return HysteresisSmoothing(margin, k)
    return NoSmoothing()


# --------------------------------------------------------------------------------------------
# the streaming predictor


@dataclass(frozen=True)
class StreamEvent:
    """One predicted window of a stream.

    Attributes:
        index: window number (0 = the first window of the stream).
        start, end: its samples ``[start, end)``, counted from the first sample fed.
        timestamp: seconds at which the window ends: the time of its last sample plus one
            sample period (``start_time + end / sampling_rate`` without caller timestamps).
        label, confidence: the window's own most probable class and its probability.
        probabilities: the window's class probabilities, in the predictor's class order.
        decision: the smoothed decision, or the ``unknown`` label when
            ``decision_confidence`` is below the threshold.
        decision_confidence: the smoothed confidence of the decided class.
        smoothed: the smoothed probabilities (the raw ones for ``none`` and ``hysteresis``).
        changed: whether ``decision`` differs from the previous event's (True for the first).
        repaired: samples of the window that were interpolated (NaN runs or gap fill).
    """

    index: int
    start: int
    end: int
    timestamp: float
    label: str
    confidence: float
    probabilities: tuple[float, ...]
    decision: str
    decision_confidence: float
    smoothed: tuple[float, ...]
    changed: bool
    repaired: int = 0

    def to_dict(self, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready dict; with ``classes`` the probabilities are keyed by class name."""
        d: dict[str, Any] = {
            "window": self.index, "start": self.start, "end": self.end,
            "timestamp": self.timestamp, "label": self.label, "confidence": self.confidence,
            "decision": self.decision, "decision_confidence": self.decision_confidence,
            "changed": self.changed, "repaired": self.repaired,
        }
        if classes is None:
            d["probabilities"] = list(self.probabilities)
            d["smoothed"] = list(self.smoothed)
        else:
            d["probabilities"] = dict(zip(classes, self.probabilities, strict=True))
            d["smoothed"] = dict(zip(classes, self.smoothed, strict=True))
        return d


def _check_hop(hop: int | None) -> None:
    if hop is not None and (isinstance(hop, bool) or not isinstance(hop, int) or hop < 1):
        raise ConfigError(f"hop={hop!r}: expected a positive number of samples")


def _channel_list(channels: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(channels[:limit])
    return shown + (f", ... ({len(channels)} in all)" if len(channels) > limit else "")


class StreamingPredictor:
    """Predicts windows of a sample stream as they complete, with a Predictor's preprocessing.

    Samples are fed as ``(n, channels)`` chunks (one row per time step, in the predictor's
    channel order; any ``n``, 0 included; a 1-D ``(channels,)`` array is one sample). Every
    ``hop`` samples, once ``window_len`` samples are there, a window ``(window_len,
    channels)`` is predicted; windows ready within one chunk are predicted in one call.
    Skeleton data works the same way: a frame, flattened as in the dataset's windows
    (``bodies * joints * dims`` [+ valid]), is one row.

    The samples live in one preallocated buffer of ``capacity`` rows; when a chunk does not
    fit, the rows still needed (less than a window) move to its front. Only a single chunk
    larger than that makes the buffer grow (to at least twice its size), never per sample.

    Args:
        predictor: a :class:`~harkit.inference.Predictor` (or anything with its window
            contract, see :class:`WindowPredictor`).
        hop: samples between window starts (default: the predictor's, as in training).
        smoothing: ``none``, ``mean`` or ``hysteresis`` (see :class:`MeanSmoothing`,
            :class:`HysteresisSmoothing`), or a :class:`Smoother` instance.
        k: ``mean``: windows averaged; ``hysteresis``: consecutive windows a challenger must
            win to switch the decision.
        margin: ``hysteresis``: probability lead a challenger needs in a window.
        threshold: a decision whose smoothed confidence is below this is ``unknown``.
        unknown: the label reported then.
        start_time: time in seconds of the first sample, for timestamps.
        source: name of the stream in error messages.
        warmup: run the model a few times on one window first, so the first real window
            does not pay for shape profiling of the optimised model.
        gaps: ``keep`` (caller timestamps taken as given), ``reset`` or ``interpolate``
            (see the module docstring).
        nan: ``raise`` (a non-finite value is a DataFormatError) or ``repair``.
        disorder: ``keep`` (timestamps taken as given) or ``drop`` late and duplicate samples.
        gap_factor: a time step longer than this many sample periods is a gap.
        max_fill: the longest NaN run or gap (samples) interpolated; default
            ``max(1, window_len // 8)``.

    Example:
        >>> s = StreamingPredictor.from_run("runs/my-run", smoothing="mean", k=3)  # doctest: +SKIP
        >>> for ev in s.feed(samples):  # samples: (n, channels)               # doctest: +SKIP
        ...     print(ev.timestamp, ev.decision)
    """

    def __init__(self, predictor: WindowPredictor, *, hop: int | None = None,
                 smoothing: str | Smoother = "none", k: int = 3, margin: float = 0.1,
                 threshold: float = 0.0, unknown: str = "unknown", start_time: float = 0.0,
                 source: str = "stream", warmup: bool = True, gaps: str = "keep",
                 nan: str = "raise", disorder: str = "keep", gap_factor: float = 2.0,
                 max_fill: int | None = None) -> None:
        _check_hop(hop)
        check_policy_options(gaps, nan, disorder, gap_factor, max_fill)
        hop = predictor.hop if hop is None else hop
        check_stream_options(smoothing if isinstance(smoothing, str) else "none", k, margin,
                             threshold)
        if not math.isfinite(start_time):
            raise ConfigError(f"start_time={start_time!r}: expected a finite number of seconds")
        self.predictor = predictor
        self.channels = list(predictor.channels)
        self.classes = list(predictor.classes)
        self.window_len = int(predictor.window_len)
        self.sampling_rate = float(predictor.sampling_rate)
        self.hop = hop
        self.threshold = float(threshold)
        self.unknown = unknown
        self.start_time = float(start_time)
        self.source = source
        self.gaps, self.nan, self.disorder = gaps, nan, disorder
        self.gap_factor = float(gap_factor)
        self.max_fill = max(1, self.window_len // 8) if max_fill is None else max_fill
        self.strict = (gaps, nan, disorder) == ("keep", "raise", "keep")
        self.smoothing = smoothing if isinstance(smoothing, str) else type(smoothing).__name__
        self.smoother: Smoother = (make_smoother(smoothing, len(self.classes), k, margin)
                                   if isinstance(smoothing, str) else smoothing)
        cap = max(2 * self.window_len, self.window_len + 16 * hop)
        self._buf = np.empty((cap, len(self.channels)), dtype=np.float32)
        self._times = np.empty(cap, dtype=np.float64)  # each buffered sample's time (s)
        self._flags = np.zeros(cap, dtype=np.uint8)  # _BAD / _FILLED per buffered sample
        self.reset()
        if warmup:
            one = np.zeros((1, self.window_len, len(self.channels)), dtype=np.float32)
            for _ in range(3):
                predictor.predict_proba(one)

    @classmethod
    def from_predictor(cls, predictor: WindowPredictor, hop: int | None = None,
                       smoothing: str | Smoother = "none", threshold: float = 0.0,
                       **kwargs: Any) -> StreamingPredictor:
        """Stream with ``predictor``; keyword arguments as for the constructor."""
        return cls(predictor, hop=hop, smoothing=smoothing, threshold=threshold, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path, which: str | None = None, **kwargs: Any
                 ) -> StreamingPredictor:
        """Stream with a run's final model (``which`` as in
        :meth:`Predictor.from_run <harkit.inference.Predictor.from_run>`); a ``.pt`` path is
        read as a checkpoint, an ``.onnx`` file runs in ONNX Runtime without torch. Keyword
        arguments as for the constructor; they are checked before the model is loaded."""
        from harkit.inference import load_predictor

        smoothing = kwargs.get("smoothing", "none")
        check_stream_options(smoothing if isinstance(smoothing, str) else "none",
                             kwargs.get("k", 3), kwargs.get("margin", 0.1),
                             kwargs.get("threshold", 0.0))
        _check_hop(kwargs.get("hop"))
        check_policy_options(kwargs.get("gaps", "keep"), kwargs.get("nan", "raise"),
                             kwargs.get("disorder", "keep"), kwargs.get("gap_factor", 2.0),
                             kwargs.get("max_fill"))
        return cls(load_predictor(run, which), **kwargs)

    @property
    def capacity(self) -> int:
        """Rows of the sample buffer."""
        return len(self._buf)

    @property
    def n_samples(self) -> int:
        """Samples fed since the start (or the last :meth:`reset`)."""
        return self._base + self._len

    @property
    def n_windows(self) -> int:
        """Windows predicted since the start (or the last :meth:`reset`)."""
        return self._predicted

    @property
    def stats(self) -> dict[str, int]:
        """What the hostile-stream policies did since the start (or the last :meth:`reset`):
        samples dropped as ``late``, ``duplicate`` or ``bad_time``, samples ``gap_filled``,
        gaps that caused ``resets``, samples ``interpolated`` (NaN runs) and
        ``windows_dropped`` (touching a NaN run too long to interpolate) and
        ``windows_not_finite`` (the model's probabilities were not finite numbers)."""
        return dict(self._stats)

    def reset(self) -> None:
        """Forget the buffered samples, the smoothing state and the sample count (a new
        stream starts at sample 0 and ``start_time``)."""
        self._base = 0  # stream index of buffer row 0
        self._len = 0  # rows of the buffer in use
        self._next = 0  # stream index where the next window starts
        self._index = 0  # number of the next window
        self._predicted = 0
        self._anchor = (self.start_time, 0)  # a (time, sample index) the default times count from
        self._last_decision: str | None = None
        self._last_time = -math.inf  # time of the latest sample kept (disorder, gaps)
        self._clean = 0  # stream index up to which samples are checked and repaired
        self._prev_row = np.full(len(self.channels), np.nan, dtype=np.float32)  # row _clean - 1
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self.smoother.reset()

    def feed(self, chunk: ArrayLike, timestamp: ArrayLike | None = None) -> list[StreamEvent]:
        """Add samples; return the events of the windows they complete (oldest first).

        Args:
            chunk: ``(n, channels)`` samples (``n`` may be 0) or one ``(channels,)`` sample.
            timestamp: None: the samples follow the previous ones at the sampling rate (the
                first at ``start_time``); a number: the time in seconds of the chunk's first
                sample, the others following at the sampling rate; an ``(n,)`` array: each
                sample's time.

        With the ``repair`` policies (see the module docstring), late, duplicate and
        badly timed samples are dropped, gaps filled or reset at, and NaN runs interpolated
        or their windows skipped; :attr:`stats` counts what was done.

        Raises:
            DataFormatError: a chunk of the wrong shape or channel count, a value that is not
                a finite number (``nan="raise"``; naming the sample and the channel), or bad
                timestamps (a wrong count; non-finite with ``disorder="keep"``). The stream is
                unchanged then.
        """
        x = self._check(chunk)
        n = len(x)
        if n == 0:
            return []
        times = self._sample_times(n, timestamp)
        if self.strict:
            self._append(x, times)
            return self._emit()
        if timestamp is not None and self.disorder == "drop":
            x, times = self._drop_disordered(x, times)
            if len(x) == 0:
                return []
        events: list[StreamEvent] = []
        if timestamp is not None and self.gaps != "keep":
            step = np.diff(times, prepend=self._last_time)
            cuts = np.flatnonzero(step > self.gap_factor / self.sampling_rate).tolist()
        else:
            cuts = []
        bounds = [0, *[c for c in cuts if c > 0], len(x)]
        for a, b in itertools.pairwise(bounds):
            if a in cuts:
                events += self._gap(float(times[a]))
            self._append(x[a:b], times[a:b])
            self._last_time = float(times[b - 1])
            events += self._emit()
        self._anchor = (self._last_time, self.n_samples - 1)
        return events

    def _drop_disordered(self, x: np.ndarray, times: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """The samples whose timestamps are finite and after every earlier one (counted)."""
        finite = np.isfinite(times)
        latest = np.maximum.accumulate(np.where(finite, times, -np.inf))
        before = np.concatenate(([self._last_time], latest[:-1]))
        before = np.maximum(before, self._last_time)
        keep = finite & (times > before)
        self._stats["bad_time"] += int((~finite).sum())
        self._stats["duplicate"] += int((finite & (times == before)).sum())
        self._stats["late"] += int((finite & (times < before)).sum())
        return x[keep], times[keep]

    def _gap(self, t: float) -> list[StreamEvent]:
        """Handle the gap before a sample at time ``t``: fill it or reset the windows."""
        if not math.isfinite(self._last_time):
            return []  # the first sample of the stream
        missing = round((t - self._last_time) * self.sampling_rate) - 1
        if self.gaps == "interpolate" and 0 < missing <= self.max_fill:
            # NaN rows at the missing times: the NaN repair interpolates them
            fill = np.full((missing, len(self.channels)), np.nan, dtype=np.float32)
            steps = np.arange(1, missing + 1, dtype=np.float64)
            self._append(fill, self._last_time + steps * (t - self._last_time) / (missing + 1),
                         _FILLED)
            self._stats["gap_filled"] += missing
            return self._emit()
        self._stats["resets"] += 1
        self._next = self.n_samples  # no window spans the gap
        self._clean = self.n_samples
        self._prev_row[:] = np.nan
        self.smoother.reset()
        return []

    def _check(self, chunk: ArrayLike) -> np.ndarray:
        """The chunk as float32 ``(n, channels)``, or a DataFormatError."""
        n_ch = len(self.channels)
        try:
            x = np.asarray(chunk, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataFormatError(self.source, f"samples must be numbers ({e})") from None
        if x.ndim == 1 and (x.size == n_ch or x.size == 0):
            x = x.reshape(-1, n_ch)  # (C,) -> (1, C); (0,) -> (0, C)
        if x.ndim != 2 or x.shape[1] != n_ch:
            raise DataFormatError(self.source, f"a chunk of samples must be (n, {n_ch}): one row "
                                               f"per time step, columns {_channel_list(self.channels)}"
                                               f"; got shape {x.shape}")
        finite = np.isfinite(x)
        if not finite.all() and self.nan == "repair":
            return np.where(finite, x, np.float32(np.nan))  # inf is missing too
        if not finite.all():
            row, col = (int(v) for v in np.argwhere(~finite)[0])
            raise DataFormatError(self.source, f"sample {self.n_samples + row} (row {row} of the "
                                               f"chunk), channel {self.channels[col]!r} is "
                                               f"{x[row, col]}; expected a finite number")
        return x

    def _sample_times(self, n: int, timestamp: ArrayLike | None) -> np.ndarray:
        """Times of the ``n`` new samples (see :meth:`feed`); moves the time anchor."""
        first = self.n_samples
        steps = np.arange(n, dtype=np.float64)
        if timestamp is None:
            t0, i0 = self._anchor
            return t0 + (first - i0 + steps) / self.sampling_rate
        ts = np.asarray(timestamp, dtype=np.float64)
        if ts.ndim == 0:
            times = float(ts) + steps / self.sampling_rate
        elif ts.shape == (n,):
            times = ts
        else:
            raise DataFormatError(self.source, f"timestamp must be one number or one per sample "
                                               f"({n}), got shape {ts.shape}")
        if self.disorder == "keep" and not np.isfinite(times).all():
            raise DataFormatError(self.source, "timestamps must be finite numbers of seconds")
        if self.strict:  # otherwise feed moves it past what it kept
            self._anchor = (float(times[-1]), first + n - 1)
        return times

    def _append(self, x: np.ndarray, times: np.ndarray, flag: np.uint8 = np.uint8(0)) -> None:
        """Put samples into the buffer; repair NaN runs (the ``nan`` policy) where needed."""
        n = len(x)
        if n == 0:
            return
        self._make_room(n)
        end = self._len + n
        self._buf[self._len : end] = x
        self._times[self._len : end] = times
        self._flags[self._len : end] = flag
        self._len = end
        if self.strict:
            self._clean = self.n_samples
        else:
            self._repair()

    def _repair(self) -> None:
        """Interpolate the NaN runs of up to ``max_fill`` samples between finite values in the
        rows not checked yet; flag longer runs bad; stop before a short run still open."""
        a = self._clean - self._base
        rows = self._buf[a : self._len]
        m = len(rows)
        if m == 0:
            return
        missing = ~np.isfinite(rows)
        done = m
        if missing.any():
            bad = np.zeros(m, dtype=bool)
            filled = np.zeros(m, dtype=bool)
            for c in np.flatnonzero(missing.any(axis=0)):
                col = rows[:, c]
                edges = np.diff(np.concatenate(([0], missing[:, c].astype(np.int8), [0])))
                for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                                strict=True):
                    left = col[s - 1] if s > 0 else self._prev_row[c]
                    short = e - s <= self.max_fill and np.isfinite(left)
                    if e == m and short:
                        done = min(done, int(s))  # may still end within max_fill: wait
                    elif short:
                        right = col[e]
                        frac = np.arange(1, e - s + 1, dtype=np.float32) / np.float32(e - s + 1)
                        col[s:e] = left + (right - left) * frac
                        filled[s:e] = True
                    else:
                        bad[s:e] = True
            flags = self._flags[a : self._len]
            flags[bad] |= _BAD
            self._stats["interpolated"] += int((filled & ((flags & _FILLED) == 0)).sum())
            flags[filled] |= _FILLED
        if done > 0:
            self._prev_row = rows[done - 1].copy()
        self._clean += done

    def _make_room(self, n: int) -> None:
        """Make ``n`` free rows at the end of the buffer: drop the rows no window needs any
        more (moving the rest, fewer than a window, to the front), growing only if a single
        chunk needs more rows than the buffer has."""
        if self._len + n <= len(self._buf):
            return
        total = self.n_samples
        keep_from = min(self._next, self._clean, total)  # the first row still needed
        m = total - keep_from
        src = keep_from - self._base
        if m + n > len(self._buf):
            cap = max(m + n, 2 * len(self._buf))
            buf = np.empty((cap, self._buf.shape[1]), dtype=np.float32)
            times = np.empty(cap, dtype=np.float64)
            flags = np.zeros(cap, dtype=np.uint8)
            buf[:m] = self._buf[src : src + m]
            times[:m] = self._times[src : src + m]
            flags[:m] = self._flags[src : src + m]
            self._buf, self._times, self._flags = buf, times, flags
        else:  # numpy copies overlapping ranges correctly
            self._buf[:m] = self._buf[src : src + m]
            self._times[:m] = self._times[src : src + m]
            self._flags[:m] = self._flags[src : src + m]
        self._base = keep_from
        self._len = m

    def _emit(self) -> list[StreamEvent]:
        """Predict every complete window not predicted yet, in one call."""
        w, hop = self.window_len, self.hop
        ready = (min(self.n_samples, self._clean) - self._next - w) // hop + 1
        if ready <= 0:
            return []
        off = self._next - self._base
        rows = self._buf[off : off + (ready - 1) * hop + w]
        if ready == 1 or hop == w:
            # windows back to back: (ready * W, C) -> (ready, W, C), a plain writable view
            # (a read-only one makes torch.from_numpy warn when the normaliser is Identity)
            windows = rows.reshape(ready, w, rows.shape[1])
        else:
            windows = sliding_windows(rows, w, hop)  # (rows, C) -> (ready, W, C) strided view
        starts = self._next + hop * np.arange(ready)
        repaired = np.zeros(ready, dtype=np.int64)
        keep = np.ones(ready, dtype=bool)
        flags = self._flags[off : off + (ready - 1) * hop + w]
        if flags.any():
            fw = np.lib.stride_tricks.sliding_window_view(flags, w)[::hop]  # (rows,) -> (ready, W)
            keep = np.asarray(((fw & _BAD) == 0).all(axis=1))
            repaired = ((fw & _FILLED) != 0).sum(axis=1)
            windows = windows[keep]  # never a prediction on NaN
            self._stats["windows_dropped"] += int(ready - keep.sum())
        if len(windows) == 0:
            self._next += ready * hop
            self._index += ready
            return []
        probs = np.asarray(self.predictor.predict_proba(windows), dtype=np.float64)
        if probs.shape != (len(windows), len(self.classes)):
            raise RuntimeError(f"the predictor returned probabilities of shape {probs.shape} "
                               f"for {len(windows)} windows of {len(self.classes)} classes")
        events = []
        period = 1.0 / self.sampling_rate
        self._next += ready * hop
        numbers = self._index + np.arange(ready)
        self._index += ready
        for p, start, number, rep in zip(probs, starts[keep].tolist(), numbers[keep].tolist(),
                                         repaired[keep].tolist(), strict=True):
            if not np.isfinite(p).all():  # values beyond what the model takes (overflow)
                self._stats["windows_not_finite"] += 1
                continue
            end = start + w
            top = int(p.argmax())
            decided, smoothed = self.smoother.update(p)
            conf = float(smoothed[decided])
            decision = self.classes[decided] if conf >= self.threshold else self.unknown
            events.append(StreamEvent(
                index=number, start=start, end=end,
                timestamp=float(self._times[end - 1 - self._base]) + period,
                label=self.classes[top], confidence=float(p[top]),
                probabilities=tuple(p.tolist()), decision=decision, decision_confidence=conf,
                smoothed=tuple(np.asarray(smoothed, dtype=np.float64).tolist()),
                changed=decision != self._last_decision, repaired=rep))
            self._last_decision = decision
            self._predicted += 1
        return events


def measure_latency(streamer: StreamingPredictor, n_hops: int = 500, seed: int = 0
                    ) -> dict[str, float]:
    """Per-hop latency of :meth:`StreamingPredictor.feed` in milliseconds.

    The stream is reset and filled to one hop short of a window, then fed ``n_hops``
    hop-sized chunks of random samples; each call predicts exactly one window and is timed
    end to end (checks, buffer, model, smoothing, event). The stream is reset afterwards.

    Returns:
        ``{"p50": ..., "p90": ..., "p99": ..., "max": ..., "mean": ...}`` in ms.
    """
    rng = np.random.default_rng(seed)
    n_ch = len(streamer.channels)
    streamer.reset()
    streamer.feed(rng.standard_normal((max(streamer.window_len - streamer.hop, 0), n_ch)))
    chunks = rng.standard_normal((n_hops + 10, streamer.hop, n_ch)).astype(np.float32)
    for c in chunks[:10]:  # not timed: first calls
        streamer.feed(c)
    ms = np.empty(n_hops)
    for i, c in enumerate(chunks[10:]):
        t0 = time.perf_counter()
        streamer.feed(c)
        ms[i] = (time.perf_counter() - t0) * 1000.0
    streamer.reset()
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "mean": float(ms.mean())}


# --------------------------------------------------------------------------------------------
# sources: CSV text from a file, stdin or a TCP socket, as chunks of samples


def csv_chunks(blocks: Iterable[Sequence[str]], channels: Sequence[str], source: str
               ) -> Generator[np.ndarray, None, None]:
    """Parse CSV text arriving as blocks of lines into float32 chunks ``(n, channels)``.

    See :func:`csv_timed_chunks` (this is it without times or missing values).
    """
    for x, _ in csv_timed_chunks(blocks, channels, source):
        yield x


def csv_timed_chunks(blocks: Iterable[Sequence[str]], channels: Sequence[str], source: str, *,
                     time_column: str | None = None, allow_missing: bool = False
                     ) -> Generator[tuple[np.ndarray, np.ndarray | None], None, None]:
    """Parse CSV text arriving as blocks of lines into float32 chunks ``(n, channels)``, each
    with its samples' times ``(n,)`` float64 from ``time_column`` (None without one).

    The first non-blank line is a header naming the columns; the ``channels`` columns are
    taken by name, in ``channels`` order, and other columns (timestamps, labels) ignored, as
    :func:`~harkit.inference.read_samples_csv` does. Each block of lines gives one chunk
    (blocks without samples give none). With ``allow_missing``, an empty field, ``nan`` or
    ``inf`` is a missing value (NaN, for a stream with ``nan="repair"``), and so is a time
    that is not a number.

    Raises:
        DataFormatError: naming ``source`` and the line: a missing channel (or time column)
            in the header, a row with another number of fields than the header, or a value
            that is not a finite number.
    """
    line_no = 0
    t_idx = -1
    idx: list[int] = []
    n_fields = 0
    header_seen = False
    for block in blocks:
        rows: list[list[float]] = []
        stamps: list[float] = []
        row_lines: list[int] = []
        row_fields: list[list[str]] = []  # the text, for the error of a value that overflows
        for fields in csv.reader(block, skipinitialspace=True):
            line_no += 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if not header_seen:
                header = [f.strip() for f in fields]
                header[0] = header[0].lstrip("\ufeff")
                missing = [c for c in [*channels, *([time_column] if time_column else [])]
                           if c not in header]
                if missing:
                    raise DataFormatError(source, f"missing column(s) {missing}; the model "
                                                  f"expects channels {list(channels)}, the "
                                                  f"header has {header}", line=line_no)
                idx = [header.index(c) for c in channels]
                t_idx = header.index(time_column) if time_column else -1
                n_fields = len(header)
                header_seen = True
                continue
            if len(fields) != n_fields:
                raise DataFormatError(source, f"{len(fields)} fields, the header has {n_fields}",
                                      line=line_no)
            try:
                rows.append([float(fields[j]) for j in idx])
            except ValueError:
                if not allow_missing:
                    _raise_bad_value(fields, idx, channels, source, line_no)
                rows.append([_number_or_nan(fields[j]) for j in idx])
            if t_idx >= 0:
                stamps.append(_number_or_nan(fields[t_idx]))
            row_lines.append(line_no)
            row_fields.append(fields)
        if rows:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: reported below
                x = np.array(rows, dtype=np.float32)
            finite = np.isfinite(x)
            if allow_missing:
                x[~finite] = np.nan
            elif not finite.all():
                r, c = (int(v) for v in np.argwhere(~finite)[0])
                raise DataFormatError(source, f"column {channels[c]!r} has "
                                              f"{row_fields[r][idx[c]].strip()!r}, expected a "
                                              "finite number (float32)", line=row_lines[r])
            yield x, (np.array(stamps, dtype=np.float64) if t_idx >= 0 else None)
    if not header_seen:
        raise DataFormatError(source, f"no data; expected a CSV header naming the channels "
                                      f"{list(channels)}")


def _number_or_nan(text: str) -> float:
    """A CSV field as a float, NaN when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _raise_bad_value(fields: Sequence[str], idx: Sequence[int], channels: Sequence[str],
                     source: str, line: int) -> None:
    """Raise the DataFormatError for the first value of ``fields`` that is not finite."""
    for j, c in zip(idx, channels, strict=True):
        try:
            ok = math.isfinite(float(fields[j]))
        except ValueError:
            ok = False
        if not ok:
            raise DataFormatError(source, f"column {c!r} has {fields[j].strip()!r}, expected a "
                                          "finite number", line=line)
    raise DataFormatError(source, "could not read the samples as numbers", line=line)  # pragma: no cover


def _file_blocks(path: Path, rows: int) -> Iterator[list[str]]:
    """The file's lines, ``rows`` at a time (the file is never read whole)."""
    try:
        f = open(path, encoding="utf-8", newline="")  # noqa: SIM115  (closed below)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as e:
        raise DataFormatError(path, f"cannot be read ({e.strerror})") from None
    with f:
        try:
            while block := list(itertools.islice(f, rows)):
                yield block
        except UnicodeDecodeError:
            raise DataFormatError(path, "not UTF-8 text") from None


def _text_blocks(stream: TextIO, name: str) -> Iterator[list[str]]:
    """Each line of a text stream as it arrives."""
    try:
        for line in iter(stream.readline, ""):
            yield [line]
    except UnicodeDecodeError:
        raise DataFormatError(name, "not UTF-8 text") from None


def _tcp_blocks(url: str, host: str, port: int, connect_timeout: float) -> Iterator[list[str]]:
    """The complete lines received in each read from a TCP connection, until it closes."""
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as e:
        raise HarkitError(f"{url}: cannot connect ({e.strerror or e})") from None
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    with sock:
        sock.settimeout(None)  # a live stream may pause for as long as it likes
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError as e:
                raise HarkitError(f"{url}: connection lost ({e.strerror or e})") from None
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                raise DataFormatError(url, "not UTF-8 text") from None
            *lines, pending = (pending + text).split("\n")
            if lines:
                yield lines
            if not data:
                break
    if pending.strip():
        yield [pending]


def parse_tcp_url(source: str) -> tuple[str, int]:
    """``tcp://host:port`` as ``(host, port)``.

    Example:
        >>> parse_tcp_url("tcp://127.0.0.1:9000"), parse_tcp_url("tcp://[::1]:80")
        (('127.0.0.1', 9000), ('::1', 80))
    """
    parts = urlsplit(source)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise HarkitError(f"{source!r}: expected tcp://host:port")
    return parts.hostname, port


def open_source(source: str, channels: Sequence[str], *, block_rows: int = 1024,
                connect_timeout: float = 10.0) -> Generator[np.ndarray, None, None]:
    """:func:`open_timed_source` without times or missing values: chunks ``(n, channels)``."""
    return (x for x, _ in open_timed_source(source, channels, block_rows=block_rows,
                                            connect_timeout=connect_timeout))


def open_timed_source(source: str, channels: Sequence[str], *, block_rows: int = 1024,
                      connect_timeout: float = 10.0, time_column: str | None = None,
                      allow_missing: bool = False
                      ) -> Generator[tuple[np.ndarray, np.ndarray | None], None, None]:
    """Chunks of samples ``(n, channels)`` float32 from a CSV source, read as they come.

    Args:
        source: a CSV file path (read ``block_rows`` lines at a time), ``-`` for stdin
            (line by line) or ``tcp://host:port`` (connect, then the lines of each read).
            The text is CSV with a header naming the channels (see :func:`csv_chunks`).
        channels: the columns to take, in this order (the predictor's channels).
        time_column, allow_missing: see :func:`csv_timed_chunks`.

    Yields:
        ``(samples, times)``: float32 ``(n, channels)`` and float64 ``(n,)`` seconds (None
        without ``time_column``).

    Raises:
        DataFormatError: as :func:`csv_chunks`, or a file that is missing or not text.
        HarkitError: a TCP address that is malformed or does not accept the connection.
    """
    kw: dict[str, Any] = {"time_column": time_column, "allow_missing": allow_missing}
    if source == "-":
        return csv_timed_chunks(_text_blocks(sys.stdin, "<stdin>"), channels, "<stdin>", **kw)
    if source.startswith("tcp://"):
        host, port = parse_tcp_url(source)
        return csv_timed_chunks(_tcp_blocks(source, host, port, connect_timeout), channels,
                                source, **kw)
    return csv_timed_chunks(_file_blocks(Path(source), block_rows), channels, source, **kw)


def paced(chunks: Iterable[np.ndarray], rate: float, speed: float = 1.0, *, tick: float = 0.02,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Generator[np.ndarray, None, None]:
    """Replay chunks of samples at ``rate`` samples per second times ``speed``.

    Chunks are cut into pieces of about ``tick`` seconds; a piece is yielded once the time of
    its last sample has come (sample ``i`` at ``i / (rate * speed)`` seconds after the first
    piece), so the windows complete when they would in a live recording.
    """
    if not (math.isfinite(speed) and speed > 0):
        raise ConfigError(f"speed={speed!r}: expected a positive replay speed factor")
    step = max(1, round(rate * speed * tick))
    t0: float | None = None
    done = 0
    for chunk in chunks:
        for i in range(0, len(chunk), step):
            piece = chunk[i : i + step]
            if t0 is None:
                t0 = clock()
            due = t0 + (done + len(piece) - 1) / (rate * speed)
            wait = due - clock()
            if wait > 0:
                sleep(wait)
            done += len(piece)
            yield piece


__all__ = ["DISORDER_POLICIES", "GAP_POLICIES", "NAN_POLICIES", "SMOOTHING_KINDS", "STAT_KEYS",
           "STREAM_POLICIES", "HysteresisSmoothing", "MeanSmoothing", "NoSmoothing", "Smoother",
           "StreamEvent", "StreamingPredictor", "WindowPredictor", "check_policy_options",
           "check_stream_options",
           "csv_chunks", "csv_timed_chunks", "make_smoother", "measure_latency", "open_source",
           "open_timed_source", "paced",
           "parse_tcp_url"]
