"""The HTTP / WebSocket service: answers equal the offline Predictor, refusals are 4xx with a
message naming the problem, streams are independent, the live page shows the model's answer.

Everything goes over real sockets: a uvicorn server on a free port of 127.0.0.1 in a thread,
``http.client`` for HTTP and the ``websockets`` sync client for ``/stream``.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
ws_client = pytest.importorskip("websockets.sync.client")

from harkit.data.windowing import sliding_windows  # noqa: E402
from harkit.errors import ConfigError  # noqa: E402
from harkit.inference import Predictor  # noqa: E402
from harkit.inference.streaming import StreamingPredictor  # noqa: E402
from harkit.serve import create_app, demo_recording_for_run  # noqa: E402
from tests.conftest import BrowserPage, serve_in_thread, train_tiny_run  # noqa: E402

MAX_BATCH = 4
MAX_BODY = 200_000

# ------------------------------------------------------------------------------------------
# a tiny run, a server, clients


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, np.ndarray]]:
    """One short run of the tiny harcnn on the UCI-format fixture (window 128, hop 64, 50 Hz),
    and its demo recording (rounded to 4 decimals, so JSON bodies stay small)."""
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        run = train_tiny_run(root)
        rec = demo_recording_for_run(run)
        yield run, np.round(rec, 4).astype(np.float32)


@pytest.fixture(scope="module")
def predictor(tiny_run: tuple[Path, np.ndarray]) -> Predictor:
    return Predictor.from_run(tiny_run[0])


@pytest.fixture(scope="module")
def recording(tiny_run: tuple[Path, np.ndarray]) -> np.ndarray:
    return tiny_run[1]


def running(app: Any) -> AbstractContextManager[int]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (in a thread); yield the port."""
    return serve_in_thread(app, ws_max_size=MAX_BODY + 1024)


@pytest.fixture(scope="module")
def port(tiny_run: tuple[Path, np.ndarray], recording: np.ndarray) -> Iterator[int]:
    app = create_app(tiny_run[0], max_batch=MAX_BATCH, max_body_bytes=MAX_BODY,
                     demo_recording=recording, workers=2)
    with running(app) as p:
        yield p


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def detail(self) -> str:
        return str(self.json()["detail"])


def request(port: int, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None, chunks: list[bytes] | None = None) -> Reply:
    """One HTTP request on a new connection; ``chunks``: a body sent chunked (no length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunks is not None:
            conn.request(method, path, body=iter(chunks), headers=headers or {},
                         encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def post(port: int, obj: Any) -> Reply:
    return request(port, "POST", "/predict", json.dumps(obj),
                   {"Content-Type": "application/json"})


def receive(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def events_until(ws: Any, n: int) -> list[dict[str, Any]]:
    """The next ``n`` event messages (other message types in between are skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        m = receive(ws)
        assert m["type"] != "error", m
        if m["type"] == "event":
            out.append(m)
    return out


@contextmanager
def connect(port: int, query: str = "") -> Iterator[Any]:
    """A ``/stream`` connection, past its hello message."""
    with ws_client.connect(f"ws://127.0.0.1:{port}/stream{query}", max_size=None) as ws:
        hello = receive(ws)
        assert hello["type"] == "hello", hello
        yield ws


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


# ------------------------------------------------------------------------------------------
# HTTP


def test_model_and_health(port: int, predictor: Predictor, recording: np.ndarray) -> None:
    m = request(port, "GET", "/model")
    assert m.status == 200
    info = m.json()
    assert info["classes"] == predictor.classes and info["channels"] == predictor.channels
    assert (info["window_len"], info["hop"], info["sampling_rate"]) == (128, 64, 50.0)
    assert info["model"] == "harcnn" and info["units"]["body_gyro_x"] == "rad/s"
    assert info["max_batch"] == MAX_BATCH and info["demo_samples"] == len(recording)
    h = request(port, "GET", "/health")
    assert h.status == 200 and h.json()["status"] == "ok" and h.json()["demo"] is True


def test_predict_windows_equal_offline(port: int, predictor: Predictor,
                                       recording: np.ndarray) -> None:
    X = recording[: 3 * 128].reshape(3, 128, 9)  # (3*128, C) -> (3, 128, C): back to back
    r = post(port, {"windows": X.tolist()})
    assert r.status == 200, r.body
    out = r.json()
    expected = predictor.predict_proba(X)
    assert out["n_windows"] == 3 and out["classes"] == predictor.classes
    for i, (pred, p) in enumerate(zip(out["predictions"], expected, strict=True)):
        assert pred["window"] == i and "start" not in pred
        assert pred["label"] == predictor.classes[int(p.argmax())]
        assert pred["confidence"] == pytest.approx(float(p.max()), abs=1e-6)
        assert list(pred["probabilities"]) == predictor.classes
        np.testing.assert_allclose(list(pred["probabilities"].values()), p, atol=1e-6)


@pytest.mark.parametrize("hop", [None, 50])
def test_predict_samples_equal_offline(port: int, predictor: Predictor, recording: np.ndarray,
                                       hop: int | None) -> None:
    signal = recording[100:400]
    body: dict[str, Any] = {"samples": signal.tolist()}
    if hop is not None:
        body["hop"] = hop
    r = post(port, body)
    assert r.status == 200, r.body
    out = r.json()
    offline = predictor.predict_signal(signal, hop)
    assert out["hop"] == (hop or 64) and out["n_windows"] == len(offline) == (3 if hop is None
                                                                              else 4)
    for pred, w in zip(out["predictions"], offline, strict=True):
        assert (pred["start"], pred["end"], pred["label"]) == (w.start, w.end, w.label)
        np.testing.assert_allclose(list(pred["probabilities"].values()), w.probabilities,
                                   atol=1e-6)


def _win(n: int = 1, t: int = 128, c: int = 9, v: Any = 0.5) -> list[Any]:
    return [[[v] * c for _ in range(t)] for _ in range(n)]


def _with(rows: list[Any], i: int, j: int, value: Any) -> list[Any]:
    rows = [list(r) for r in rows]
    rows[i][j] = value
    return rows


ROWS = [[0.5] * 9 for _ in range(130)]
W = _win()

# (body text, status, a regex the message must match)
BAD_REQUESTS = [
    ("", 400, r"empty; expected a JSON object"),
    ("{windows: 1}", 400, r"not valid JSON: .*line 1 column 2"),
    (b'{"windows": "\xff"}', 400, r"not UTF-8"),
    ("[1, 2]", 422, r"request body is a list of 2; expected a JSON object"),
    ('"windows"', 422, r"is a string .*expected a JSON object"),
    ("{}", 422, r"either 'windows'.*found neither"),
    (json.dumps({"windows": W, "samples": ROWS}), 422, r"not both"),
    (json.dumps({"windows": W, "extra": 1}), 422, r"unknown field 'extra'"),
    (json.dumps({"windows": []}), 422, r"windows is empty"),
    (json.dumps({"windows": 3}), 422, r"windows is the number 3; expected a list of windows"),
    (json.dumps({"windows": _win(t=127)}), 422,
     r"windows\[0\] has 127 samples; expected 128 \(the model's window_len\)"),
    (json.dumps({"windows": _win(c=8)}), 422,
     r"windows\[0\]\[0\] has 8 channel values; expected 9 \(the model's channels: body_acc_x"),
    (json.dumps({"windows": [*W, *_win(t=5)]}), 422, r"windows\[1\] has 5 samples"),
    (json.dumps({"windows": W}).replace("0.5", "NaN", 1), 422,
     r"windows\[0\]\[0\]\[0\] is nan; expected a finite number"),
    (json.dumps({"windows": W}).replace("0.5", "-Infinity", 1), 422,
     r"windows\[0\]\[0\]\[0\] is -inf; expected a finite number"),
    (json.dumps({"windows": W}).replace("0.5", "1e39", 1), 422,
     r"windows\[0\]\[0\]\[0\] is 1e\+39; expected a finite number \(float32\)"),
    (json.dumps({"windows": _win(v="NaN")}), 422,
     r"windows\[0\]\[0\]\[0\] is the string 'NaN': values must be finite numbers"),
    (json.dumps({"samples": _with(ROWS, 3, 2, "inf")}), 422,
     r"samples\[3\]\[2\] is the string 'inf'"),
    (json.dumps({"samples": _with(ROWS, 129, 8, "1.5")}), 422,
     r"samples\[129\]\[8\] is a string \('1.5'\); expected a number"),
    (json.dumps({"samples": _with(ROWS, 7, 0, True)}), 422,
     r"samples\[7\]\[0\] is a boolean \(true\); expected a number"),
    (json.dumps({"samples": _with(ROWS, 0, 4, None)}), 422, r"samples\[0\]\[4\] is null"),
    (json.dumps({"samples": _with(ROWS, 2, 1, {"x": 1})}), 422, r"samples\[2\]\[1\] is an object"),
    (json.dumps({"samples": _with(ROWS, 5, 5, 10**400)}), 422,
     r"samples\[5\]\[5\] is an integer of 401 digits; too large for float32"),
    (json.dumps({"samples": _with(ROWS, 6, 0, [1.0])}), 422,
     r"samples\[6\]\[0\] is a list of 1; expected a number"),
    (json.dumps({"samples": [[0.5] * 9, [0.5] * 10]}), 422,
     r"samples\[1\] has 10 channel values; expected 9"),
    (json.dumps({"samples": []}), 422, r"samples is empty"),
    (json.dumps({"samples": ROWS[:127]}), 422,
     r"samples has 127 rows, fewer than one window of 128"),
    (json.dumps({"samples": ROWS, "hop": 0}), 422, r"hop is 0; expected a positive integer"),
    (json.dumps({"samples": ROWS, "hop": "8"}), 422, r"hop is '8'; expected a positive integer"),
    (json.dumps({"samples": ROWS, "hop": True}), 422, r"hop is True"),
    (json.dumps({"windows": W, "hop": 8}), 422, r"'hop' applies to 'samples' only"),
    (json.dumps({"windows": _win(n=MAX_BATCH + 1, v=0)}), 413,
     rf"windows has {MAX_BATCH + 1} windows; at most {MAX_BATCH} per request \(max_batch\)"),
    (json.dumps({"samples": [[0] * 9] * (128 + 4 * 8), "hop": 8}), 413,
     rf"samples has 160 rows, 5 windows with hop 8; at most {MAX_BATCH} windows"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_REQUESTS,
                         ids=[f"{i}-{s}" for i, (_, s, _) in enumerate(BAD_REQUESTS)])
def test_bad_requests_are_refused_with_a_reason(port: int, body: str | bytes, status: int,
                                                message: str) -> None:
    r = request(port, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert r.status == status, (r.status, r.body)
    assert r.headers["content-type"] == "application/json"
    assert re.search(message, r.detail), r.detail


def test_oversized_body_is_413(port: int) -> None:
    big = json.dumps({"windows": _win(n=16, v=0.123456789)}).encode()
    assert MAX_BODY < len(big) < 2 * MAX_BODY
    r = request(port, "POST", "/predict", big, {"Content-Type": "application/json"})
    assert r.status == 413
    assert f"request body of {len(big)} bytes is over the limit of {MAX_BODY}" in r.detail
    # without a Content-Length (chunked), the bytes received count
    r = request(port, "POST", "/predict", chunks=[big[i : i + 32768]
                                                  for i in range(0, len(big), 32768)])
    assert r.status == 413 and f"over the limit of {MAX_BODY} bytes" in r.detail
    # no body after the bad header: bytes the server never reads would make its close a TCP
    # reset, which can reach the client before the 400 is read
    r = request(port, "POST", "/predict", b"", {"Content-Length": "12x"})
    assert r.status == 400


def test_metrics_count_requests_and_latency(port: int, recording: np.ndarray) -> None:
    before = request(port, "GET", "/metrics").body.decode()
    assert post(port, {"windows": recording[:128].reshape(1, 128, 9).tolist()}).status == 200
    assert post(port, {"windows": []}).status == 422
    assert request(port, "GET", "/nowhere").status == 404
    r = request(port, "GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()

    def diff(name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    req = "harkit_http_requests_total"
    assert diff(req, method="POST", route="/predict", status="200") == 1
    assert diff(req, method="POST", route="/predict", status="422") == 1
    assert diff(req, method="GET", route="(unmatched)", status="404") == 1
    assert diff("harkit_http_errors_total", route="/predict", kind="client") == 1
    hist = "harkit_http_request_duration_seconds"
    assert diff(f"{hist}_count", route="/predict") == 2
    assert diff(f"{hist}_bucket", route="/predict", le="+Inf") == 2
    assert diff(f"{hist}_sum", route="/predict") > 0
    buckets = [float(v) for v in re.findall(
        r'^harkit_http_request_duration_seconds_bucket\{route="/predict",le="[^"]+"\} (\S+)$',
        text, re.MULTILINE)]
    assert buckets == sorted(buckets) and len(buckets) == 13  # cumulative, 12 bounds + Inf
    assert diff("harkit_windows_predicted_total", source="predict") == 1
    assert "# TYPE harkit_http_request_duration_seconds histogram" in text
    assert "# TYPE harkit_websocket_clients gauge" in text


def test_create_app_checks_its_arguments(predictor: Predictor) -> None:
    with pytest.raises(ConfigError, match="max_batch=0"):
        create_app(predictor, max_batch=0)
    with pytest.raises(ConfigError, match=r"demo_recording: expected raw samples \(n, 9\)"):
        create_app(predictor, demo_recording=np.zeros((500, 8)))
    with pytest.raises(ConfigError, match="fewer than one window of 128"):
        create_app(predictor, demo_recording=np.zeros((100, 9)))


def test_demo_recording_for_run(tiny_run: tuple[Path, np.ndarray], predictor: Predictor,
                                tmp_path: Path) -> None:
    from tests.conftest import fixture_windows

    test_X = fixture_windows()["test"][0]  # subjects 7 and 8, 24 windows each
    rec = tiny_run[1]
    # the first test subject's windows, every second one (hop 64 of 128: no overlap)
    expected = test_X[:24][::2].reshape(-1, 9)  # (12, 128, 9) -> (1536, 9)
    np.testing.assert_allclose(rec, np.round(expected, 4), atol=1e-6)
    csv = tmp_path / "rec.csv"
    cols = list(reversed(predictor.channels))  # columns are taken by name
    csv.write_text(",".join(cols) + "\n" + "".join(
        ",".join(str(float(v)) for v in row[::-1]) + "\n" for row in rec[:200]))
    np.testing.assert_array_equal(demo_recording_for_run(tiny_run[0], csv), rec[:200])


def test_predictions_run_off_the_event_loop(predictor: Predictor, recording: np.ndarray) -> None:
    """A slow prediction does not hold up other requests."""
    release, entered = threading.Event(), threading.Event()

    class Slow:
        def __init__(self) -> None:
            self.channels, self.classes = predictor.channels, predictor.classes
            self.window_len, self.hop = predictor.window_len, predictor.hop
            self.sampling_rate = predictor.sampling_rate
            self.calls = 0

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            self.calls += 1
            if self.calls > 2:  # the two warm-up calls of create_app pass at once
                entered.set()
                release.wait(20)
            return predictor.predict_proba(X)

    with running(create_app(Slow(), max_body_bytes=MAX_BODY)) as p:
        result: list[Reply] = []
        t = threading.Thread(target=lambda: result.append(post(p, {"windows": _win()})))
        t.start()
        assert entered.wait(20)  # the request is in the model now
        t0 = time.monotonic()
        assert request(p, "GET", "/health").status == 200
        assert time.monotonic() - t0 < 2.0 and not result  # answered while predict waits
        release.set()
        t.join(20)
    assert result[0].status == 200


def test_serves_an_exported_onnx_model(tiny_run: tuple[Path, np.ndarray], tmp_path: Path,
                                       recording: np.ndarray) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from harkit.inference import OnnxPredictor, export_run

    onnx = tmp_path / "model.onnx"
    export_run(tiny_run[0], onnx)
    X = recording[: 2 * 128].reshape(2, 128, 9)  # (2*128, C) -> (2, 128, C)
    expected = OnnxPredictor(onnx).predict_proba(X)
    with running(create_app(onnx, threads=1, max_body_bytes=MAX_BODY)) as p:
        info = request(p, "GET", "/model").json()
        r = post(p, {"windows": X.tolist()})
    assert info["runtime"] == "onnxruntime" and info["model"] == "harcnn"
    assert info["source"] == str(onnx) and info["window_len"] == 128
    assert r.status == 200
    got = [list(w["probabilities"].values()) for w in r.json()["predictions"]]
    np.testing.assert_allclose(got, expected, atol=1e-6)


# ------------------------------------------------------------------------------------------
# WebSocket


def _chunks(signal: np.ndarray, seed: int) -> Iterator[np.ndarray]:
    """``signal`` in seeded random chunks of 0 to 300 rows."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(signal):
        n = int(rng.integers(0, 301))
        yield signal[i : i + n]
        i += n


@pytest.mark.parametrize(("query", "kwargs"), [("", {}),
                                               ("?smoothing=mean&k=3&threshold=0.4",
                                                {"smoothing": "mean", "k": 3, "threshold": 0.4})])
def test_stream_equals_offline(port: int, predictor: Predictor, recording: np.ndarray,
                               query: str, kwargs: dict[str, Any]) -> None:
    signal = recording[:1000]
    windows = sliding_windows(signal, 128, 64)
    offline = StreamingPredictor(predictor, **kwargs).feed(signal)
    with connect(port, query) as ws:
        for chunk in _chunks(signal, seed=len(query)):
            ws.send(json.dumps({"samples": chunk.tolist()}))
        events = events_until(ws, len(windows))
    probs = predictor.predict_proba(windows)
    for ev, off, p in zip(events, offline, probs, strict=True):
        assert (ev["window"], ev["start"], ev["end"]) == (off.index, off.start, off.end)
        assert ev["label"] == predictor.classes[int(p.argmax())] == off.label
        assert ev["decision"] == off.decision and ev["changed"] == off.changed
        assert ev["timestamp"] == pytest.approx(off.end / 50.0)
        np.testing.assert_allclose(list(ev["probabilities"].values()), p, atol=1e-6)
        assert list(ev["probabilities"]) == predictor.classes
        assert ev["decision_confidence"] == pytest.approx(off.decision_confidence, abs=1e-6)


BAD_MESSAGES = [
    ("not json", 400, r"message is not valid JSON"),
    ('{"samples": [[1, 2]]}', 422, r"samples\[0\] has 2 channel values; expected 9"),
    ('{"samples": [["NaN", 0, 0, 0, 0, 0, 0, 0, 0]]}', 422, r"samples\[0\]\[0\] is the string"),
    ('{"samples": [[NaN, 0, 0, 0, 0, 0, 0, 0, 0]]}', 422, r"samples\[0\]\[0\] is nan"),
    ('{"samples": 5}', 422, r"samples is the number 5"),
    ('{"type": "fly"}', 422, r"message type 'fly' is unknown"),
    ('{"type": "demo", "speed": -1}', 422, r"speed is the number -1"),
    ('{"type": "stop"}', 409, r"no demo replay is running"),
    ('{"type": "samples"}', 422, r"needs 'samples'"),
    ('{"sample": []}', 422, r"unknown field 'sample'"),
    ("x" * (MAX_BODY + 1), 413, r"over the limit"),
]


def test_bad_messages_leave_other_streams_alone(port: int, predictor: Predictor,
                                                recording: np.ndarray) -> None:
    signal = recording[:600]
    expected = predictor.predict_proba(sliding_windows(signal, 128, 64)).argmax(1)
    with connect(port) as a, connect(port) as b:
        b.send(json.dumps({"samples": signal[:300].tolist()}))
        a.send(json.dumps({"samples": signal[:100].tolist()}))  # half a window, then errors
        for text, status, message in BAD_MESSAGES:
            a.send(text)
            m = receive(a)
            assert m["type"] == "error" and m["status"] == status, (text[:40], m)
            assert re.search(message, m["message"]), m["message"]
        a.send(b"\x00binary")
        m = receive(a)
        assert m["type"] == "error" and "binary messages are not accepted" in m["message"]
        b.send(json.dumps({"samples": signal[300:].tolist()}))
        got_b = [predictor.classes.index(e["label"]) for e in events_until(b, len(expected))]
        # a's stream is intact: the refused messages added no samples
        for i in range(100, len(signal), 250):
            a.send(json.dumps({"samples": signal[i : i + 250].tolist()}))
        events_a = events_until(a, len(expected))
        assert [e["window"] for e in events_a] == list(range(len(expected)))
        got_a = [predictor.classes.index(e["label"]) for e in events_a]
        clients = metric(request(port, "GET", "/metrics").body.decode(),
                         "harkit_websocket_clients")
    assert got_a == got_b == expected.tolist()
    assert clients >= 2


@pytest.mark.parametrize(("query", "message"), [
    ("smoothing=median", r"smoothing='median': expected one of none, mean, hysteresis"),
    ("k=abc", r"query option k='abc' is not an integer"),
    ("smoothing=mean&k=0", r"k=0"),
    ("threshold=nan", r"must be finite numbers"),
    ("hop=0", r"hop=0: expected 1 to 2048 samples"),
    ("window=5", r"unknown query option 'window'"),
])
def test_bad_stream_options_close_with_1008(port: int, query: str, message: str) -> None:
    from websockets.exceptions import ConnectionClosed

    with ws_client.connect(f"ws://127.0.0.1:{port}/stream?{query}") as ws:
        m = receive(ws)
        assert m["type"] == "error" and re.search(message, m["message"]), m
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def test_demo_replays_the_recording(port: int, predictor: Predictor,
                                    recording: np.ndarray) -> None:
    expected = predictor.predict_proba(sliding_windows(recording, 128, 64)).argmax(1)
    with connect(port) as ws:
        ws.send(json.dumps({"samples": recording[:50].tolist()}))  # dropped: demo resets
        ws.send(json.dumps({"type": "demo", "speed": 400}))
        start = receive(ws)
        assert start["type"] == "demo_start" and start["samples"] == len(recording)
        samples: list[list[list[float]]] = []
        labels: list[int] = []
        while (m := receive(ws))["type"] != "demo_end":
            if m["type"] == "samples":
                assert m["start"] == sum(len(s) for s in samples)
                samples.append(m["samples"])
            elif m["type"] == "event":
                labels.append(predictor.classes.index(m["label"]))
        assert m == {"type": "demo_end", "stopped": False, "samples": len(recording),
                     "windows": len(expected)}
    np.testing.assert_array_equal(np.concatenate(samples).astype(np.float32), recording)
    assert labels == expected.tolist()


# ------------------------------------------------------------------------------------------
# the live page in a browser


def test_live_page_shows_the_models_activity(chromium_page: BrowserPage, port: int,
                                             predictor: Predictor,
                                             recording: np.ndarray) -> None:
    windows = sliding_windows(recording, 128, 64)
    last = predictor.classes[int(predictor.predict_proba(windows[-1:])[0].argmax())]
    page = chromium_page.page
    page.goto(f"http://127.0.0.1:{port}/?demo=1&speed=40", wait_until="load")
    page.wait_for_selector("body[data-state='done']", timeout=30_000)
    shown = page.evaluate("""() => ({...document.getElementById('activity').dataset,
        text: document.getElementById('activity').textContent,
        events: document.body.dataset.events,
        status: document.getElementById('status').textContent})""")
    inked = page.evaluate("""() => ['signal', 'timeline'].map(id => {
        const c = document.getElementById(id);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n; })""")
    requests, errors = chromium_page.requests, chromium_page.errors
    assert shown["label"] == shown["decision"] == shown["text"] == last
    assert int(shown["window"]) == len(windows) - 1 == int(shown["events"]) - 1
    assert int(shown["end"]) == len(windows[:-1]) * 64 + 128
    assert shown["status"] == "demo finished"
    assert min(inked) > 100, inked  # both canvases were drawn on
    assert not errors, errors
    assert requests and all(u.startswith(f"http://127.0.0.1:{port}/") or
                            u.startswith(f"ws://127.0.0.1:{port}/") for u in requests), requests
