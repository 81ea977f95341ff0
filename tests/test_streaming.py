"""Streaming prediction: chunked input equals batch prediction, smoothing, sources, the CLI body."""

from __future__ import annotations

import io
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from harkit.data.skeleton import SkeletonInfo
from harkit.data.transforms import SkeletonStandardizer
from harkit.data.windowing import sliding_windows, window_starts
from harkit.errors import ConfigError, DataFormatError, HarkitError
from harkit.inference import Predictor
from harkit.inference.streaming import (
    HysteresisSmoothing,
    MeanSmoothing,
    StreamEvent,
    StreamingPredictor,
    csv_chunks,
    paced,
    parse_tcp_url,
)
from harkit.models import create_model
from harkit.stream_cli import stream_command
from tests.conftest import fixture_windows, train_tiny_run

# ------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One short run of the tiny harcnn on the UCI-format fixture (window 128, hop 64, 50 Hz)."""
    root = tmp_path_factory.mktemp("stream")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        yield train_tiny_run(root)


@pytest.fixture(scope="module")
def predictor(tiny_run: Path) -> Predictor:
    return Predictor.from_run(tiny_run)


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    """A continuous ``(3072, 9)`` signal: 24 class-dependent fixture windows back to back."""
    return fixture_windows(seed=3)["test"][0][:24].reshape(-1, 9)  # (24, 128, 9) -> (3072, 9)


def _feed_in_random_chunks(s: StreamingPredictor, signal: np.ndarray, seed: int
                           ) -> list[StreamEvent]:
    """Feed ``signal`` in chunks of 0 to 3 windows (seeded), starting with sizes 0 and 1."""
    rng = np.random.default_rng(seed)
    events = s.feed(signal[:0]) + s.feed(signal[0])  # an empty chunk, then one (C,) sample
    i = 1
    while i < len(signal):
        n = int(rng.integers(0, 3 * s.window_len + 1))
        events += s.feed(signal[i : i + n])
        i += n
    return events


class TableModel:
    """A stand-in predictor with a tiny window: window ``i`` (whose first sample holds ``i``
    in channel ``a``) gets row ``i`` of a hand-made probability table."""

    def __init__(self, table: list[list[float]], classes: list[str], window_len: int = 4,
                 hop: int = 2) -> None:
        self.table = np.asarray(table, dtype=np.float64)
        self.channels = ["a", "b"]
        self.classes = classes
        self.window_len = window_len
        self.hop = hop
        self.sampling_rate = 10.0
        self.calls: list[tuple[int, ...]] = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(X.shape)
        return self.table[np.rint(X[:, 0, 0]).astype(int)]

    def signal(self) -> np.ndarray:
        """Samples for exactly ``len(table)`` windows."""
        n = (len(self.table) - 1) * self.hop + self.window_len
        x = np.zeros((n, 2), dtype=np.float32)
        x[:, 0] = np.arange(n) / self.hop  # the first sample of window i holds i
        return x


CLASSES = ["sit", "stand", "walk"]


def _events(table: list[list[float]], **kw: object) -> list[StreamEvent]:
    model = TableModel(table, CLASSES)
    s = StreamingPredictor(model, warmup=False, **kw)  # type: ignore[arg-type]
    return s.feed(model.signal())


# ------------------------------------------------------------------------------------------
# streaming equals batch prediction


@pytest.mark.parametrize("hop", [1, 7, 64, 128, 200])
def test_random_chunks_equal_batch_prediction(predictor: Predictor, recording: np.ndarray,
                                              hop: int) -> None:
    s = StreamingPredictor.from_predictor(predictor, hop=hop)
    events = _feed_in_random_chunks(s, recording, seed=hop)
    expected = predictor.predict_proba(sliding_windows(recording, 128, hop))
    starts = window_starts(len(recording), 128, hop)
    assert len(events) == len(expected) == len(starts) == s.n_windows
    assert [e.start for e in events] == starts.tolist()
    assert [e.end for e in events] == (starts + 128).tolist()
    assert [e.index for e in events] == list(range(len(events)))
    np.testing.assert_allclose([e.probabilities for e in events], expected, rtol=0, atol=1e-5)
    assert [e.label for e in events] == [predictor.classes[i] for i in expected.argmax(1)]
    np.testing.assert_allclose([e.timestamp for e in events], (starts + 128) / 50.0, atol=1e-9)
    # the default: no smoothing, no threshold, so the decision is the window's own class
    assert [e.decision for e in events] == [e.label for e in events]
    assert s.n_samples == len(recording)


def test_real_recording_streamed_equals_batch(real_data_dir: Path, predictor: Predictor) -> None:
    """A real UCI HAR test subject's signal (its 50%-overlapping windows put back to back)."""
    from harkit.data import load_dataset

    test = load_dataset("uci-har", data_dir=real_data_dir).splits["test"]
    subject = test.subjects[0]
    X = test.X[test.subjects == subject][:48]  # (48, 128, 9), consecutive windows of one subject
    signal = np.concatenate([X[0], *(w[64:] for w in X[1:])])  # (128 + 47 * 64, 9)
    s = StreamingPredictor.from_predictor(predictor, hop=32, smoothing="mean", k=4)
    events = _feed_in_random_chunks(s, signal, seed=1)
    expected = predictor.predict_proba(sliding_windows(signal, 128, 32))
    np.testing.assert_allclose([e.probabilities for e in events], expected, rtol=0, atol=1e-5)
    # the mean smoother averages the last 4 windows' probabilities
    np.testing.assert_allclose(events[10].smoothed, expected[7:11].mean(0), atol=1e-6)


def test_skeleton_frames_stream_like_windows() -> None:
    """Flattened skeleton frames (OpenPose COCO-18, x/y, + valid channel) are rows like any
    sensor sample; nothing assumes sensor channels."""
    info = SkeletonInfo("coco18", bodies=1, dims=2, valid_channel=True)
    rng = np.random.default_rng(0)
    model = create_model("pose-lstm", info.n_channels, 4, 30, variant="tiny",
                         skeleton=info.to_dict())
    frames = rng.normal(0.5, 0.2, (200, info.n_channels)).astype(np.float32)
    frames[:, -1] = 1.0
    frames[50:60, -1] = 0.0  # some padded frames
    norm = SkeletonStandardizer(info).fit(frames[None])
    pre = {"channels": info.channel_names(), "classes": ["a", "b", "c", "d"], "window_len": 30,
           "hop": 10, "sampling_rate": 30.0}
    pred = Predictor(model, norm, pre, batch_size=8)
    s = StreamingPredictor.from_predictor(pred)
    events = [e for f in frames for e in s.feed(f)]  # one frame at a time
    expected = pred.predict_proba(sliding_windows(frames, 30, 10))
    assert len(events) == len(expected) == 18
    np.testing.assert_allclose([e.probabilities for e in events], expected, rtol=0, atol=1e-5)


def test_one_model_call_per_chunk_and_a_fixed_buffer() -> None:
    model = TableModel([[1.0, 0.0, 0.0]] * 400, CLASSES)
    s = StreamingPredictor(model, warmup=False)  # type: ignore[arg-type]
    x = model.signal()
    assert s.feed(x[:3]) == [] and model.calls == []
    events = s.feed(x[3:14])  # samples 0..13: windows at 0, 2, ..., 10
    assert [e.start for e in events] == [0, 2, 4, 6, 8, 10]
    assert model.calls == [(6, 4, 2)]  # all in one call, windows (N, time, channels)
    cap = s.capacity
    i = 14
    while i + 2 <= 600:  # hop-sized chunks: one window each, the buffer never grows
        assert len(s.feed(x[i : i + 2])) == 1
        i += 2
    assert s.capacity == cap and len(model.calls) == 1 + (600 - 14) // 2
    model.calls.clear()
    big = s.feed(x[i:])  # a chunk larger than the buffer: it grows once, one call
    assert s.capacity > cap and model.calls == [(len(big), 4, 2)]
    # window i's first sample holds i, so every window got its own row of data
    assert [e.start for e in big] == list(range(600 - 2, 2 * 399 + 1, 2))
    assert s.n_windows == 400


def test_timestamps_and_reset() -> None:
    model = TableModel([[1.0, 0.0, 0.0]] * 5, CLASSES)  # window 4, hop 2, 10 Hz
    x = model.signal()
    s = StreamingPredictor(model, warmup=False, start_time=100.0)  # type: ignore[arg-type]
    assert [e.timestamp for e in s.feed(x)] == pytest.approx([100.4, 100.6, 100.8, 101.0, 101.2])
    s.reset()
    assert s.n_samples == 0 and s.n_windows == 0
    ev = s.feed(x[:4], timestamp=7.0)  # the time of the chunk's first sample
    assert [(e.start, e.timestamp) for e in ev] == [(0, pytest.approx(7.4))]
    ev = s.feed(x[4:6])  # no timestamp: follows the previous samples at the sampling rate
    assert ev[0].timestamp == pytest.approx(7.6) and ev[0].changed is False
    ev = s.feed(x[6:8], timestamp=np.array([20.0, 20.5]))  # per-sample times
    assert ev[0].timestamp == pytest.approx(20.6)  # last sample's time + one period
    assert s.feed(x[8:10])[0].timestamp == pytest.approx(20.8)
    with pytest.raises(DataFormatError, match="one per sample"):
        s.feed(x[:3], timestamp=[1.0, 2.0])
    with pytest.raises(DataFormatError, match="finite"):
        s.feed(x[:1], timestamp=float("nan"))
    assert s.n_samples == 10  # failed feeds changed nothing


def test_feed_rejects_bad_chunks_with_clear_errors(predictor: Predictor) -> None:
    s = StreamingPredictor.from_predictor(predictor, warmup=False)
    s.feed(np.zeros((5, 9)))
    with pytest.raises(DataFormatError, match=r"must be \(n, 9\).*body_acc_x.*got shape \(4, 8\)"):
        s.feed(np.zeros((4, 8)))
    with pytest.raises(DataFormatError, match=r"got shape \(2, 3, 9\)"):
        s.feed(np.zeros((2, 3, 9)))
    bad = np.zeros((4, 9))
    bad[2, 7] = np.nan
    with pytest.raises(DataFormatError, match=r"sample 7 \(row 2.*channel 'total_acc_y' is nan"):
        s.feed(bad)
    with pytest.raises(DataFormatError, match="must be numbers"):
        s.feed([["x"] * 9])
    assert s.n_samples == 5  # nothing of the bad chunks was kept


def test_options_are_checked() -> None:
    model = TableModel([[1.0, 0.0, 0.0]], CLASSES)
    for kw, field in [({"smoothing": "median"}, "smoothing='median'"), ({"k": 0}, "k=0"),
                      ({"threshold": 1.5}, "threshold=1.5"), ({"hop": 0}, "hop=0"),
                      ({"margin": -0.1}, "margin=-0.1")]:
        with pytest.raises(ConfigError, match=field):
            StreamingPredictor(model, warmup=False, **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="smoothing='median'"):  # before loading anything
        StreamingPredictor.from_run("no/such/run", smoothing="median")


# ------------------------------------------------------------------------------------------
# smoothing and unknown, on hand-made probability sequences


def test_no_smoothing_with_threshold() -> None:
    ev = _events([[0.8, 0.1, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8], [0.1, 0.15, 0.75]],
                 threshold=0.5)
    assert [e.decision for e in ev] == ["sit", "unknown", "walk", "walk"]
    assert [e.label for e in ev] == ["sit", "sit", "walk", "walk"]
    assert [e.decision_confidence for e in ev] == pytest.approx([0.8, 0.4, 0.8, 0.75])
    assert [e.changed for e in ev] == [True, True, True, False]


def test_mean_smoothing_averages_the_last_k_windows() -> None:
    table = [[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0], [0, 1.0, 0]]
    ev = _events(table, smoothing="mean", k=3)
    assert [e.smoothed for e in ev] == [pytest.approx(v) for v in (
        [1, 0, 0], [1, 0, 0], [2 / 3, 1 / 3, 0], [1 / 3, 2 / 3, 0], [0, 1, 0])]
    assert [e.decision for e in ev] == ["sit", "sit", "sit", "stand", "stand"]
    assert [e.changed for e in ev] == [True, False, False, True, False]
    assert [e.label for e in ev] == ["sit", "sit", "stand", "stand", "stand"]  # raw, unsmoothed
    ev = _events(table, smoothing="mean", k=3, threshold=0.7)
    assert [e.decision for e in ev] == ["sit", "sit", "unknown", "unknown", "stand"]


HYSTERESIS_TABLE = [
    [0.9, 0.05, 0.05],  # 0: first window decides: sit
    [0.3, 0.6, 0.1],  # 1: stand leads by 0.3 > margin: challenge 1 of 2
    [0.9, 0.05, 0.05],  # 2: no challenge: the count restarts
    [0.3, 0.6, 0.1],  # 3: stand, challenge 1 of 2
    [0.3, 0.1, 0.6],  # 4: walk challenges instead: walk 1 of 2
    [0.35, 0.5, 0.15],  # 5: stand leads by 0.15 < margin: no challenge
    [0.2, 0.7, 0.1],  # 6: stand 1 of 2
    [0.2, 0.7, 0.1],  # 7: stand 2 of 2: switch
    [0.45, 0.4, 0.15],  # 8: sit leads by 0.05 < margin: stand holds
]


def test_hysteresis_switches_after_k_windows_won_by_a_margin() -> None:
    ev = _events(HYSTERESIS_TABLE, smoothing="hysteresis", k=2, margin=0.2)
    assert [e.label for e in ev] == ["sit", "stand", "sit", "stand", "walk", "stand", "stand",
                                     "stand", "sit"]
    assert [e.decision for e in ev] == ["sit"] * 7 + ["stand"] * 2
    # the confidence is the window's probability of the decided class
    assert [e.decision_confidence for e in ev] == pytest.approx(
        [0.9, 0.3, 0.9, 0.3, 0.3, 0.35, 0.2, 0.7, 0.4])
    ev = _events(HYSTERESIS_TABLE, smoothing="hysteresis", k=2, margin=0.2, threshold=0.35)
    assert [e.decision for e in ev] == ["sit", "unknown", "sit", "unknown", "unknown", "sit",
                                        "unknown", "stand", "stand"]
    assert [e.changed for e in ev] == [True, True, True, True, False, True, True, True, False]


def test_hysteresis_k1_margin0_is_the_raw_class() -> None:
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=50)
    h = HysteresisSmoothing(margin=0.0, k=1)
    assert [h.update(p)[0] for p in probs] == probs.argmax(1).tolist()
    m = MeanSmoothing(3, k=1)
    assert [m.update(p)[0] for p in probs] == probs.argmax(1).tolist()


def test_custom_smoother_and_reset() -> None:
    class Last:
        """Always the last class."""

        def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
            return len(probs) - 1, probs

        def reset(self) -> None:
            pass

    ev = _events([[0.9, 0.05, 0.05]] * 2, smoothing=Last())
    assert [e.decision for e in ev] == ["walk", "walk"]
    model = TableModel(HYSTERESIS_TABLE, CLASSES)
    s = StreamingPredictor(model, smoothing="hysteresis", k=2, margin=0.2,  # type: ignore[arg-type]
                           warmup=False)
    first = s.feed(model.signal())
    s.reset()  # the smoother forgets its state too: the same stream gives the same events
    assert s.feed(model.signal()) == first


# ------------------------------------------------------------------------------------------
# sources


def test_csv_chunks_parse_blocks_by_channel_name() -> None:
    blocks = [["\ufefft, b ,a,label\n", "\n", "0,1.5,2,x\n"], [], ["1, 3,4 ,y\n", "2,5,6,z"]]
    chunks = list(csv_chunks(blocks, ["a", "b"], "in.csv"))
    assert [c.tolist() for c in chunks] == [[[2.0, 1.5]], [[4.0, 3.0], [6.0, 5.0]]]
    assert all(c.dtype == np.float32 for c in chunks)
    cases = [
        ([["t,a\n", "0,1\n"]], r"in.csv, line 1: missing column\(s\) \['b'\]"),
        ([["a,b\n", "1,2\n"], ["\n", "3,oops\n"]], r"line 4: column 'b' has 'oops'"),
        ([["a,b\n", "1,2\n", "1e39,2\n"]], r"line 3: column 'a' has '1e39', expected a finite"),
        ([["a,b\n", "1,2,3\n"]], r"line 2: 3 fields, the header has 2"),
        ([["\n"]], r"no data; expected a CSV header"),
    ]
    for bad, message in cases:
        with pytest.raises(DataFormatError, match=message):
            list(csv_chunks(bad, ["a", "b"], "in.csv"))


def test_paced_replays_at_the_sampling_rate() -> None:
    now = [0.0]

    def sleep(dt: float) -> None:
        now[0] += dt

    chunks = [np.zeros((120, 2)), np.zeros((0, 2)), np.zeros((81, 2))]
    pieces = list(paced(chunks, rate=50.0, speed=2.0, clock=lambda: now[0], sleep=sleep))
    assert max(len(p) for p in pieces) == 2  # 20 ms at 100 samples/s
    assert sum(len(p) for p in pieces) == 201
    assert now[0] == pytest.approx(200 / 100.0)  # the last sample is due at 200 / (50 * 2) s
    with pytest.raises(ConfigError, match="speed"):
        list(paced(chunks, rate=50.0, speed=0.0))


def test_tcp_addresses() -> None:
    assert parse_tcp_url("tcp://localhost:5000") == ("localhost", 5000)
    for bad in ("tcp://localhost", "tcp://:80", "tcp://host:port"):
        with pytest.raises(HarkitError, match="expected tcp://host:port"):
            parse_tcp_url(bad)


# ------------------------------------------------------------------------------------------
# the command body


def _csv_text(signal: np.ndarray, channels: list[str]) -> str:
    """A CSV with a timestamp column and the channels in reverse order."""
    cols = ["timestamp", *reversed(channels)]
    rows = [",".join([f"{i / 50:.2f}", *(f"{v:.6f}" for v in s[::-1])])
            for i, s in enumerate(signal)]
    return ",".join(cols) + "\n" + "\n".join(rows) + "\n"


def _stream(run: Path, source: str, out: Path, **kw: object) -> tuple[int, str, list[dict]]:
    buf = io.StringIO()
    opts: dict[str, object] = {"replay": False, "speed": 1.0, "hop": None, "smoothing": "none",
                               "window_k": 3, "threshold": 0.0, "output": out,
                               "console": Console(file=buf, width=200)}
    opts.update(kw)
    code = stream_command(run, source, **opts)  # type: ignore[arg-type]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return code, buf.getvalue(), lines


def _assert_same_events(a: list[dict], b: list[dict]) -> None:
    """Equal events, up to float rounding of the probabilities (other chunk sizes batch the
    windows differently)."""
    floats = ("confidence", "decision_confidence", "probabilities", "smoothed")
    assert [{k: v for k, v in e.items() if k not in floats} for e in a] == [
        {k: v for k, v in e.items() if k not in floats} for e in b]
    for k in ("probabilities", "smoothed"):
        np.testing.assert_allclose([list(e[k].values()) for e in a],
                                   [list(e[k].values()) for e in b], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def samples_csv(tmp_path_factory: pytest.TempPathFactory, recording: np.ndarray,
                predictor: Predictor) -> Path:
    path = tmp_path_factory.mktemp("csv") / "samples.csv"
    path.write_text(_csv_text(recording[:1500], predictor.channels))
    return path


def test_stream_command_csv_file_equals_offline_prediction(
        tiny_run: Path, predictor: Predictor, samples_csv: Path, tmp_path: Path) -> None:
    code, printed, events = _stream(tiny_run, str(samples_csv), tmp_path / "ev.jsonl", hop=50,
                                    smoothing="mean", window_k=2)
    assert code == 0
    offline = predictor.predict_csv(samples_csv, hop=50)
    assert [(e["start"], e["end"]) for e in events] == [(r.start, r.end) for r in offline]
    assert [e["label"] for e in events] == [r.label for r in offline]
    got = [[e["probabilities"][c] for c in predictor.classes] for e in events]
    np.testing.assert_allclose(got, [r.probabilities for r in offline], rtol=0, atol=1e-5)
    assert events[0]["timestamp"] == pytest.approx(128 / 50)
    changes = [e for e in events if e["changed"]]
    timeline = re.findall(r"window \d+, samples \d+-\d+", printed)
    assert len(timeline) == len(changes) >= 1  # one timeline line per change
    assert changes[0]["decision"] in printed and "00:02.56" in printed
    assert f"end of stream: 1,500 samples, {len(events)} windows, {len(changes)} changes" in printed


def test_stream_command_stdin_and_tcp_give_the_same_events(
        tiny_run: Path, samples_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, from_file = _stream(tiny_run, str(samples_csv), tmp_path / "file.jsonl")
    text = samples_csv.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code, _, from_stdin = _stream(tiny_run, "-", tmp_path / "stdin.jsonl")
    assert code == 0
    _assert_same_events(from_stdin, from_file)

    data = text.encode()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                for i in range(0, len(data), 1000):  # pieces that cut lines in two
                    conn.sendall(data[i : i + 1000])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    code, _, from_tcp = _stream(tiny_run, f"tcp://127.0.0.1:{port}", tmp_path / "tcp.jsonl")
    thread.join(timeout=30)
    assert code == 0 and len(from_file) == 22
    _assert_same_events(from_tcp, from_file)


def test_stream_command_replay_on_a_terminal(tiny_run: Path, predictor: Predictor,
                                             recording: np.ndarray, tmp_path: Path) -> None:
    csv = tmp_path / "short.csv"
    csv.write_text(_csv_text(recording[:400], predictor.channels))
    buf = io.StringIO()
    t0 = time.monotonic()
    code, _, events = _stream(tiny_run, str(csv), tmp_path / "ev.jsonl", replay=True,
                              speed=200.0, threshold=0.99,
                              console=Console(file=buf, width=200, force_terminal=True))
    assert time.monotonic() - t0 >= 399 / (50 * 200)  # paced: the last sample at 399 / 10000 s
    assert code == 0 and len(events) == 5
    assert all(e["decision"] == "unknown" for e in events)  # nothing is that sure
    assert "unknown" in buf.getvalue() and "end of stream" in buf.getvalue()


def test_stream_command_bad_input(tiny_run: Path, predictor: Predictor, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    header = ",".join(predictor.channels[:-1])  # no total_acc_z
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\n" + "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{bad}, line 1: missing column(s) "
                                                        "['total_acc_z']")):
        _stream(tiny_run, str(bad), tmp_path / "ev.jsonl")
    monkeypatch.setattr(sys, "stdin", io.StringIO(",".join(predictor.channels) + "\n"
                                                  + "0.1," * 8 + "0.1\n" + "0.1," * 8 + "x\n"))
    with pytest.raises(DataFormatError, match=r"<stdin>, line 3: column 'total_acc_z' has 'x'"):
        _stream(tiny_run, "-", tmp_path / "ev.jsonl")
    with pytest.raises(DataFormatError, match="file not found"):
        _stream(tiny_run, str(tmp_path / "missing.csv"), tmp_path / "ev.jsonl")
    with pytest.raises(ConfigError, match="smoothing='median'"):
        _stream(tiny_run, str(bad), tmp_path / "ev.jsonl", smoothing="median")
    with pytest.raises(HarkitError, match="speed"):
        _stream(tiny_run, str(bad), tmp_path / "ev.jsonl", speed=-1.0)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(HarkitError, match=rf"tcp://127.0.0.1:{port}: cannot connect"):
        _stream(tiny_run, f"tcp://127.0.0.1:{port}", tmp_path / "ev.jsonl")


def test_stream_command_ctrl_c_ends_cleanly(tiny_run: Path, samples_csv: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C is how a live stream ends: the events so far are in the file, exit status 130."""

    class LiveInput(io.StringIO):
        def readline(self, size: int | None = -1) -> str:
            line = super().readline(size)
            if not line:  # the sender is still there when the user presses Ctrl-C
                raise KeyboardInterrupt
            return line

    monkeypatch.setattr(sys, "stdin", LiveInput(samples_csv.read_text()))
    code, printed, events = _stream(tiny_run, "-", tmp_path / "ev.jsonl")
    assert code == 130 and len(events) == 22
    assert "interrupted: 1,500 samples, 22 windows" in printed
