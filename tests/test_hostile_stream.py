"""Hostile streams: gaps, NaN bursts, late and duplicate timestamps meet a documented policy
(drop, interpolate or reset), never an exception and never a prediction computed on NaN.

A stand-in model records every window it is given, so the tests see exactly what the policies
fed it; Hypothesis fuzzes chunkings, values and timestamps (derandomized).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from harkit.errors import ConfigError, DataFormatError, HarkitError
from harkit.inference.streaming import STAT_KEYS, StreamEvent, StreamingPredictor, csv_chunks
from harkit.stream_cli import stream_command
from tests.conftest import train_tiny_run

REPAIR: dict[str, Any] = {"gaps": "interpolate", "nan": "repair", "disorder": "drop"}
RATE = 10.0


class Recorder:
    """Window 4, hop 2, 2 channels, 10 Hz; refuses NaN windows loudly and records each window.
    The probabilities depend on the window's values only, so equal windows give equal events."""

    window_len = 4
    hop = 2
    sampling_rate = RATE

    def __init__(self) -> None:
        self.channels = ["a", "b"]
        self.classes = ["low", "high"]
        self.windows: list[np.ndarray] = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        assert X.ndim == 3 and X.shape[1:] == (4, 2)
        assert np.isfinite(X).all(), "a window with NaN reached the model"
        self.windows.extend(np.array(X))
        p = 1.0 / (1.0 + np.exp(-np.clip(X.mean(axis=(1, 2)), -30, 30)))
        return np.stack([1.0 - p, p], axis=1)


def _stream(**kw: Any) -> tuple[StreamingPredictor, Recorder]:
    model = Recorder()
    return StreamingPredictor(model, warmup=False, **kw), model


def _key(events: list[StreamEvent]) -> list[tuple[object, ...]]:
    return [(e.index, e.start, e.end, round(e.timestamp, 9), e.probabilities, e.decision,
             e.repaired) for e in events]


# ------------------------------------------------------------------------------------------
# each policy, by hand


def test_strict_is_the_default_and_refuses_hostile_input() -> None:
    s, _ = _stream()
    assert (s.gaps, s.nan, s.disorder) == ("keep", "raise", "keep")
    with pytest.raises(DataFormatError, match="channel 'b' is nan"):
        s.feed([[0.0, math.nan]])
    with pytest.raises(DataFormatError, match="finite"):
        s.feed([[0.0, 0.0]], timestamp=[math.inf])
    # timestamps are taken as given: a jump back in time is not refused
    ev = s.feed(np.zeros((6, 2)), timestamp=[5.0, 4.0, 4.0, 1.0, 9.0, 9.1])
    assert [e.start for e in ev] == [0, 2] and s.stats == dict.fromkeys(STAT_KEYS, 0)


def test_clean_input_gives_the_same_events_under_every_policy() -> None:
    x = np.random.default_rng(0).standard_normal((41, 2)).astype(np.float32)
    t = 3.0 + np.arange(41) / RATE
    strict, _ = _stream(smoothing="mean", k=2)
    repair, _ = _stream(smoothing="mean", k=2, **REPAIR)
    assert _key(strict.feed(x, t)) == _key(repair.feed(x[:7], t[:7]) + repair.feed(x[7:], t[7:]))
    assert repair.stats == dict.fromkeys(STAT_KEYS, 0)


def test_late_duplicate_and_badly_timed_samples_are_dropped_and_counted() -> None:
    s, model = _stream(disorder="drop")
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    t = [0.0, 0.1, 0.1, 0.2, 0.15, math.nan, 0.3, 0.3, math.inf, 0.4]
    ev = s.feed(x, t)
    assert s.stats["duplicate"] == 2 and s.stats["late"] == 1 and s.stats["bad_time"] == 2
    assert s.n_samples == 5  # rows 0, 1, 3, 6, 9 are kept, in order
    assert [e.start for e in ev] == [0]
    np.testing.assert_array_equal(model.windows[0], x[[0, 1, 3, 6]])
    assert s.feed(x[:1], 0.2) == [] and s.stats["late"] == 2  # later chunks too
    # no timestamp: the samples follow the last one kept at the sampling rate
    s.feed(x[:3])
    s.feed(x[:1], 0.65)  # after 0.5, 0.6, 0.7: late
    assert s.stats["late"] == 3 and s.n_samples == 8
    s.feed(x[:1], 0.75)
    assert s.n_samples == 9


def test_a_short_gap_is_interpolated_a_long_one_resets_the_windows() -> None:
    s, model = _stream(gaps="interpolate", max_fill=2)
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ev = s.feed(x[:3], [0.0, 0.1, 0.2])
    ev += s.feed(x[3:], [0.5, 0.6, 0.7])  # 0.3 and 0.4 are missing: filled
    assert s.stats["gap_filled"] == 2 and s.stats["resets"] == 0 and s.n_samples == 8
    # (4, 5) at 0.2 s to (6, 7) at 0.5 s: thirds of the way
    a, third = np.array([4.0, 5.0]), np.array([2.0, 2.0]) / 3
    np.testing.assert_allclose(model.windows[0], np.stack([[0, 1], [2, 3], a, a + third]), rtol=1e-6)
    np.testing.assert_allclose(model.windows[1], [a, a + third, a + 2 * third, a + 3 * third],
                               rtol=1e-6)
    assert [(e.start, e.repaired) for e in ev] == [(0, 1), (2, 2), (4, 1)]
    ev = s.feed(x, 2.0 + np.arange(6) / RATE)  # 12 samples missing: too many to make up
    assert s.stats["resets"] == 1 and s.stats["gap_filled"] == 2
    # the windows start again at the first sample after the gap; sample numbers go on
    assert [(e.start, e.end) for e in ev] == [(8, 12), (10, 14)]
    np.testing.assert_array_equal(model.windows[-2], x[:4])
    assert ev[0].timestamp == pytest.approx(2.4)


def test_gaps_reset_never_fills() -> None:
    s, _ = _stream(gaps="reset", gap_factor=1.5)
    x = np.ones((8, 2), dtype=np.float32)
    ev = s.feed(x, [0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8])  # a 2-period step: a gap
    assert s.stats["resets"] == 1 and [e.start for e in ev] == [0, 4]
    assert s.feed(x[:1], 0.9) == [] and s.stats["resets"] == 1  # 1 period: no gap


def test_short_nan_runs_are_interpolated_even_across_chunks() -> None:
    s, model = _stream(nan="repair", max_fill=2)
    x = np.arange(16, dtype=np.float32).reshape(8, 2)
    x[2, 0] = np.nan
    x[3:5, 1] = np.inf  # a run of 2 in the other channel
    ev = s.feed(x[:4])  # the run in b is still open at the chunk's end: its window waits
    assert ev == [] and s.stats["interpolated"] == 1
    ev = s.feed(x[4:])
    assert s.stats == {**dict.fromkeys(STAT_KEYS, 0), "interpolated": 3}
    clean = np.arange(16, dtype=np.float32).reshape(8, 2)
    np.testing.assert_allclose(np.concatenate([model.windows[0], model.windows[2]]), clean)
    assert [(e.start, e.repaired) for e in ev] == [(0, 2), (2, 3), (4, 1)]


def test_long_nan_runs_drop_their_windows_and_nothing_else() -> None:
    s, model = _stream(nan="repair", max_fill=1)
    x = np.ones((20, 2), dtype=np.float32)
    x[8:11, 1] = np.nan  # 3 samples: too long to interpolate
    ev = s.feed(x)
    # windows start every 2 samples; those touching samples 8-10 are never predicted
    assert [e.start for e in ev] == [0, 2, 4, 12, 14, 16]
    assert [e.index for e in ev] == [0, 1, 2, 6, 7, 8]  # their numbers stay unused
    assert s.stats["windows_dropped"] == 3 and s.n_windows == 6 and len(model.windows) == 6
    s2, _ = _stream(nan="repair")
    ev = s2.feed([[math.nan, 0.0]] + [[0.0, 0.0]] * 5)  # nothing before it to interpolate from
    assert [e.start for e in ev] == [2] and s2.stats["windows_dropped"] == 1


def test_windows_the_model_overflows_on_give_no_event() -> None:
    """Finite values too large for the model: no NaN probabilities reach an event or the
    smoothing, under every policy."""

    class Overflowing(Recorder):
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            p = super().predict_proba(X)
            p[np.abs(X).max(axis=(1, 2)) > 1e20] = np.nan
            return p

    for kw in ({}, REPAIR):
        s = StreamingPredictor(Overflowing(), warmup=False, smoothing="mean",
                               **kw)
        x = np.zeros((10, 2), dtype=np.float32)
        x[5] = 1e30
        ev = s.feed(x)
        assert [e.start for e in ev] == [0, 6] and s.stats["windows_not_finite"] == 2
        assert all(np.isfinite(e.smoothed).all() for e in ev)


def test_policy_options_are_checked() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"gaps": "fill"}, "gaps='fill'"), ({"nan": "zero"}, "nan='zero'"),
        ({"disorder": "sort"}, "disorder='sort'"), ({"gap_factor": 0.5}, "gap_factor=0.5"),
        ({"max_fill": -1}, "max_fill=-1")]
    for kw, field in cases:
        with pytest.raises(ConfigError, match=field):
            _stream(**kw)


# ------------------------------------------------------------------------------------------
# property: any hostile stream, any chunking, the same events and no exception

finite = st.floats(-50, 50, allow_nan=False, width=32)
value = st.one_of(finite, finite, finite, st.just(math.nan), st.just(math.inf))


@st.composite
def hostile_streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int]]:
    n = draw(st.integers(0, 60))
    x = np.array(draw(st.lists(st.tuples(value, value), min_size=n, max_size=n)),
                 dtype=np.float32).reshape(n, 2)
    if n and draw(st.booleans()):  # a NaN burst
        a = draw(st.integers(0, n - 1))
        x[a : a + draw(st.integers(1, 8)), draw(st.integers(0, 1))] = np.nan
    steps = draw(st.lists(st.sampled_from([0.1, 0.1, 0.1, 0.0, -0.1, -0.35, 0.2, 0.3, 0.5,
                                           2.0, math.nan]), min_size=n, max_size=n))
    t = 100.0 + np.nancumsum(np.array(steps, dtype=np.float64))
    t[np.isnan(np.array(steps, dtype=np.float64))] = np.nan
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return x, t, cuts


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(stream=hostile_streams(), max_fill=st.integers(0, 3),
       gaps=st.sampled_from(["reset", "interpolate"]), timed=st.booleans())
def test_hostile_streams_never_raise_and_do_not_depend_on_chunking(
        stream: tuple[np.ndarray, np.ndarray, list[int]], max_fill: int, gaps: str,
        timed: bool) -> None:
    x, t, cuts = stream
    kw = {"gaps": gaps, "nan": "repair", "disorder": "drop", "max_fill": max_fill,
          "smoothing": "hysteresis", "k": 2}
    whole, m1 = _stream(**kw)
    parts, _ = _stream(**kw)
    ev1 = whole.feed(x, t if timed else None)
    ev2: list[StreamEvent] = []
    for a, b in zip([0, *cuts], [*cuts, len(x)], strict=True):
        ev2 += parts.feed(x[a:b], t[a:b] if timed else None)
    assert _key(ev1) == _key(ev2) and whole.stats == parts.stats
    st_ = whole.stats
    assert all(v >= 0 for v in st_.values())
    # every sample fed is kept, dropped for its time, or (gap fill) made up
    assert whole.n_samples == len(x) - st_["late"] - st_["duplicate"] - st_["bad_time"] \
        + st_["gap_filled"]
    starts = [e.start for e in ev1]
    assert starts == sorted(set(starts)) and all(e.end - e.start == 4 for e in ev1)
    assert [e.index for e in ev1] == sorted(set(e.index for e in ev1))
    assert all(math.isfinite(e.timestamp) and 0 <= e.repaired <= 4 for e in ev1)
    assert len(m1.windows) == whole.n_windows == len(ev1)


# ------------------------------------------------------------------------------------------
# the CLI: missing values in a CSV, times in a column


def test_csv_missing_values_are_refused_or_kept_as_nan() -> None:
    blocks = [["t,a,b\n", "0,1,2\n", "0.1,,nan\n", "x,inf,4\n"]]
    with pytest.raises(DataFormatError, match="line 3: column 'a' has ''"):
        list(csv_chunks(blocks, ["a", "b"], "in.csv"))
    from harkit.inference.streaming import csv_timed_chunks

    [(x, t)] = list(csv_timed_chunks(blocks, ["a", "b"], "in.csv", time_column="t",
                                     allow_missing=True))
    assert t is not None and np.isnan(x[1]).all() and np.isnan(x[2, 0]) and x[2, 1] == 4.0
    np.testing.assert_array_equal(t[:2], [0.0, 0.1])
    assert np.isnan(t[2])


def test_stream_command_repairs_a_hostile_csv(tmp_path_factory: pytest.TempPathFactory,
                                              tmp_path: Path) -> None:
    import io

    root = tmp_path_factory.mktemp("hostile-cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        run = train_tiny_run(root)
    from harkit.inference import Predictor

    channels = Predictor.from_run(run).channels
    rng = np.random.default_rng(1)
    x = rng.standard_normal((700, len(channels))).round(4)
    t = np.arange(700) / 50.0
    lines = ["time," + ",".join(channels)]
    for i, (ti, row) in enumerate(zip(t, x, strict=True)):
        if i in (100, 101):  # 2 rows sent twice
            lines.append(f"{ti}," + ",".join(map(str, row)))
        if 300 <= i < 303:  # a 3-sample gap: interpolated
            continue
        vals = ["" if i in (200, 201) and j == 2 else str(v) for j, v in enumerate(row)]
        lines.append(f"{ti}," + ",".join(vals))
    csv = tmp_path / "hostile.csv"
    csv.write_text("\n".join(lines) + "\n")
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    out = tmp_path / "ev.jsonl"
    with pytest.raises(DataFormatError, match=f"column {channels[2]!r} has ''"):
        stream_command(run, str(csv), replay=False, speed=1.0, hop=None, smoothing="none",
                       window_k=3, threshold=0.0, output=out, console=console)
    with pytest.raises(HarkitError, match="--time-column"):
        stream_command(run, str(csv), replay=False, speed=1.0, hop=None, smoothing="none",
                       window_k=3, threshold=0.0, output=out, console=console,
                       gaps="interpolate")
    code = stream_command(run, str(csv), replay=False, speed=1.0, hop=None, smoothing="none",
                          window_k=3, threshold=0.0, output=out, console=console, nan="repair",
                          gaps="interpolate", disorder="drop", time_column="time")
    assert code == 0
    printed = buf.getvalue()
    assert "duplicate 2" in printed and "gap_filled 3" in printed and "interpolated 2" in printed
    assert len(out.read_text().splitlines()) == (700 - 128) // 64 + 1
