"""Hostile clients of the service: malformed JSON, wrong shapes, oversized and trickled bodies,
abrupt disconnects, unread streams, NaN bursts and disordered timestamps. Every client fault
is a 4xx (or a closed stream) with a JSON reason, never a 500; other clients do not notice.

Everything goes over real sockets to a real uvicorn server on 127.0.0.1 (in a thread); raw
sockets play the clients that misbehave below HTTP. Hypothesis (derandomized) writes the
hostile bodies and messages.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
ws_client = pytest.importorskip("websockets.sync.client")

from harkit.inference import Predictor  # noqa: E402
from harkit.serve import create_app  # noqa: E402
from harkit.serve.probe import has_answered, raw_ws_connect, ws_text_frame  # noqa: E402
from tests.conftest import serve_in_thread, train_tiny_run  # noqa: E402

MAX_BATCH = 4
MAX_BODY = 100_000
BODY_TIMEOUT = 1.5
WS_IDLE = 2.0
CLIENT_FAULTS = {400, 404, 405, 408, 409, 413, 422}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    root = tmp_path_factory.mktemp("hostile-serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        return Predictor.from_run(train_tiny_run(root))


def running(app: Any) -> AbstractContextManager[int]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (in a thread); yield the port."""
    return serve_in_thread(app, ws_max_size=MAX_BODY + 1024)


def hostile_app(predictor: Predictor) -> Any:
    """The app under test: small limits and short timeouts, so faults show within seconds."""
    return create_app(predictor, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY, workers=2,
                      body_timeout=BODY_TIMEOUT, ws_idle_timeout=WS_IDLE, send_timeout=2.0)


@pytest.fixture(scope="module")
def port(predictor: Predictor) -> Iterator[int]:
    app = hostile_app(predictor)
    with running(app) as p:
        yield p


def request(port: int, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One request on a new connection: the status and the JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if r.getheader("content-type", "").startswith(
            "application/json") else {"text": data.decode()})
    finally:
        conn.close()


def metric(port: int, name: str, **labels: str) -> float:
    text = str(request(port, "GET", "/metrics")[1]["text"])
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") \
        + r" (\S+)$"
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of an HTTP/1.1 response on a raw socket (read until close)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        if sep and length and len(body) >= int(length.group(1)):
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def one_window(predictor: Predictor, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((128, len(predictor.channels))).round(3).tolist()


@contextmanager
def stream(port: int, query: str = "") -> Iterator[Any]:
    with ws_client.connect(f"ws://127.0.0.1:{port}/stream{query}", max_size=None) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello", hello
        yield ws


def until(ws: Any, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message of type ``kind`` (others in between are skipped)."""
    end = time.monotonic() + timeout
    while True:
        m = dict(json.loads(ws.recv(timeout=max(0.01, end - time.monotonic()))))
        if m["type"] == kind:
            return m


# ------------------------------------------------------------------------------------------
# HTTP: every refusal is a 4xx naming what is wrong


@pytest.mark.parametrize(("body", "status", "field"), [
    (b"", 400, "request body is empty"),
    (b"   ", 400, "request body is empty"),
    (b"{\"windows\": [", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[" * 10_000 + b"]" * 10_000, 400, "nested too deeply"),
    (b"[1, 2]", 422, "expected a JSON object"),
    (b'{"windows": "abc"}', 422, "windows is a string"),
    (b'{"windows": [[[1]]]}', 422, r"windows\[0\] has 1 samples; expected 128"),
    (b'{"samples": [[1, 2, 3]]}', 422, r"samples\[0\] has 3 channel values"),
    (b'{"samples": [], "hop": 1}', 422, "samples is empty"),
    (b'{"samples": [[0,0,0,0,0,0,0,0,0]], "hop": "x"}', 422, "hop is 'x'"),
    (b'{"samples": [[0,0,0,0,0,0,0,0,true]]}', 422, r"samples\[0\]\[8\] is a boolean"),
    (b'{"samples": [[0,0,0,0,0,0,0,0,1e400]]}', 422, r"samples\[0\]\[8\] is inf"),
    (b'{"samples": [[0,0,0,0,0,0,0,0,' + b"9" * 400 + b"]]}", 422, "integer of 400 digits"),
    (b'{"window": []}', 422, "unknown field 'window'"),
])
def test_malformed_bodies_are_4xx_naming_the_problem(port: int, body: bytes, status: int,
                                                    field: str) -> None:
    got, detail = request(port, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert got == status and re.search(field, detail["detail"]), (got, detail)


def test_wrong_routes_and_methods_are_json_4xx(port: int) -> None:
    assert request(port, "GET", "/nope") == (404, {"detail": "Not Found"})
    status, detail = request(port, "GET", "/predict")
    assert status == 405 and detail == {"detail": "Method Not Allowed"}


def test_an_oversized_body_is_refused_before_it_is_sent(port: int) -> None:
    """A declared length over the limit is answered at once, while the client is still
    holding back its body: nothing is buffered."""
    with raw(port) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n" + b'{"windows": [')
        status, body = read_response(s)
    assert status == 413 and "over the limit of 100000 bytes" in json.loads(body)["detail"]


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(port: int) -> None:
    with raw(port) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        for _ in range(40):  # far more than the limit if the server kept reading
            piece = b"[" * 20_000
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                break  # the server answered and closed
            sent += len(piece)
            if has_answered(s, 0.05):
                break
        status, body = read_response(s)
    assert status == 413 and "over the limit" in json.loads(body)["detail"]
    assert sent <= MAX_BODY + 40_000


def test_a_trickled_body_times_out_with_408(port: int) -> None:
    faults = metric(port, "harkit_client_faults_total", kind="body_timeout")
    with raw(port) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        t0 = time.monotonic()
        for _ in range(10):  # one byte every 0.1 s: alive, but never done in time
            time.sleep(0.1)
            s.sendall(b" ")
        status, body = read_response(s)
    assert status == 408 and "body_timeout" in json.loads(body)["detail"]
    assert BODY_TIMEOUT <= time.monotonic() - t0 < BODY_TIMEOUT + 2
    assert metric(port, "harkit_client_faults_total", kind="body_timeout") == faults + 1


HEADER_TIMEOUT = 1.0
LINGER_IDLE, LINGER_MAX = 0.5, 1.5


@pytest.fixture(scope="module")
def header_port(predictor: Predictor) -> Iterator[int]:
    """A server with harkit serve's HTTP protocol: request headers have HEADER_TIMEOUT s, and
    a body answered before it was read lingers LINGER_IDLE s without bytes, LINGER_MAX in all."""
    from harkit.serve.protocol import http_protocol

    app = hostile_app(predictor)
    metrics = app.state.service.metrics
    http = http_protocol(HEADER_TIMEOUT, lambda: metrics.fault("header_timeout"),
                         linger_idle=LINGER_IDLE, linger_max=LINGER_MAX)
    with serve_in_thread(app, ws_max_size=MAX_BODY + 1024, http=http) as p:
        yield p


def test_trickled_or_missing_headers_time_out_with_408(header_port: int) -> None:
    port = header_port
    before = metric(port, "harkit_client_faults_total", kind="header_timeout")
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    with raw(port) as s:  # one header byte every 0.1 s: alive, but never done in time
        t0 = time.monotonic()
        try:
            for byte in head:
                s.sendall(bytes([byte]))
                time.sleep(0.1)
                if has_answered(s, 0.01):
                    break
            else:
                pytest.fail("all the header bytes went through")
        except OSError:  # the server answered and closed: the next bytes were refused
            pass
        waited = time.monotonic() - t0
        status, body = read_response(s)
        assert status == 408 and b"header_timeout" in body
        assert HEADER_TIMEOUT - 0.1 <= waited < HEADER_TIMEOUT + 2
    with raw(port) as s:  # connected, silent
        t0 = time.monotonic()
        status, _ = read_response(s)
        assert status == 408 and time.monotonic() - t0 < HEADER_TIMEOUT + 2
    assert metric(port, "harkit_client_faults_total", kind="header_timeout") == before + 2


def test_the_header_deadline_spares_complete_requests_and_streams(header_port: int,
                                                                  predictor: Predictor) -> None:
    port = header_port
    before = metric(port, "harkit_client_faults_total", kind="header_timeout")
    with raw(port) as s:  # a keep-alive connection: the deadline restarts for each request
        for _ in range(2):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _ = read_response(s)
            assert status == 200
            time.sleep(HEADER_TIMEOUT * 0.7)  # idle between requests: keep-alive's business
        s.sendall(b"GET /health HTTP/1.1\r\n")  # the third request's headers never end
        t0 = time.monotonic()
        status, _ = read_response(s)
        assert status == 408 and time.monotonic() - t0 < HEADER_TIMEOUT + 2
    with stream(port) as ws:  # an upgraded connection is past its headers
        time.sleep(HEADER_TIMEOUT * 1.5)
        ws.send(json.dumps({"samples": one_window(predictor)}))
        assert until(ws, "event", timeout=5)["window"] >= 0
    status, _ = request(port, "POST", "/predict",  # a body slower than the header deadline
                        body=json.dumps({"windows": [one_window(predictor)]}))
    assert status == 200
    assert metric(port, "harkit_client_faults_total", kind="header_timeout") == before + 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_still_uploading_after_the_answer_still_reads_it(header_port: int,
                                                                   framing: str) -> None:
    """413 comes while the client is mid-upload. The client goes on sending for a while (as
    http.client, curl or requests do) and then reads: the answer is there, not lost to a
    connection reset, and the server closes once the upload is over."""
    piece = b"[" * 20_000
    length = b"Content-Length: 400000" if framing == "content-length" else \
        b"Transfer-Encoding: chunked"
    frame = (lambda b: b) if framing == "content-length" else \
        (lambda b: b"%x\r\n%s\r\n" % (len(b), b))
    with raw(header_port) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n" + length + b"\r\n\r\n")
        for _ in range(10):  # up to the limit, until the server has answered
            s.sendall(frame(piece))
            if has_answered(s, 0.05):
                break
        else:
            pytest.fail("no answer after 200 kB of a 100 kB limit")
        for _ in range(4):  # well after the answer, the client still sends
            time.sleep(0.1)
            s.sendall(frame(piece))
        if framing == "chunked":
            s.sendall(b"0\r\n\r\n")
        status, body = read_response(s)
        assert status == 413 and "over the limit" in json.loads(body)["detail"]
        assert s.recv(1) == b""  # the answer was followed by the server's close


def test_lingering_after_an_answer_is_bounded(header_port: int) -> None:
    """A client that never stops sending after its 413 is cut off after LINGER_MAX s."""
    with raw(header_port) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
        status, _ = read_response(s)
        assert status == 413
        t0 = time.monotonic()
        with pytest.raises(OSError):  # reset or broken pipe once the server has closed
            while time.monotonic() - t0 < LINGER_MAX + 3:
                s.sendall(b"x" * 1000)
                time.sleep(0.05)
        assert LINGER_MAX - 0.2 <= time.monotonic() - t0 < LINGER_MAX + 1


def test_serve_runs_uvicorn_with_the_header_deadline(predictor: Predictor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from harkit.errors import HarkitError
    from harkit.serve import serve

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    serve(predictor, header_timeout=3.5)
    assert seen["http"].header_timeout == 3.5 and seen["ws"] == "auto"
    with pytest.raises(HarkitError, match="header_timeout must be positive"):
        serve(predictor, header_timeout=0)


def test_a_client_leaving_mid_body_leaves_the_server_healthy(port: int,
                                                            predictor: Predictor) -> None:
    before = metric(port, "harkit_client_faults_total", kind="disconnect")
    for _ in range(5):
        s = raw(port)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
                  b'{"windows": [[[0.1')
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset, not a goodbye
    deadline = time.monotonic() + 5
    while metric(port, "harkit_client_faults_total", kind="disconnect") < before + 5:
        assert time.monotonic() < deadline, "the disconnects were not seen"
        time.sleep(0.05)
    status, out = request(port, "POST", "/predict",
                          json.dumps({"windows": [one_window(predictor)]}))
    assert status == 200 and out["n_windows"] == 1
    assert metric(port, "harkit_http_errors_total", route="/predict", kind="server") == 0


def test_an_unexpected_bug_is_a_json_500_and_a_1011_close(predictor: Predictor) -> None:
    from websockets.exceptions import ConnectionClosed

    class Buggy:
        classes, channels = predictor.classes, predictor.channels
        window_len, hop, sampling_rate = predictor.window_len, predictor.hop, 50.0

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            if X.size and X.flat[0] == 7:
                raise ZeroDivisionError("a bug")
            p = predictor.predict_proba(X)
            p[X[:, 0, 0] > 1e20] = np.nan
            return p

    with running(create_app(Buggy(), max_body_bytes=MAX_BODY)) as p:
        window = one_window(predictor)
        status, out = request(p, "POST", "/predict", json.dumps({"windows": [window]}))
        assert status == 200
        window[0][0] = 7
        status, out = request(p, "POST", "/predict", json.dumps({"windows": [window]}))
        assert status == 500 and "ZeroDivisionError" in out["detail"]
        window[0][0] = 1e30  # finite, but the model overflows: the client's values, a 422
        status, out = request(p, "POST", "/predict", json.dumps({"windows": [window]}))
        assert status == 422 and "probabilities are not finite" in out["detail"]
        window[0][0] = 7
        with stream(p) as ws:
            ws.send(json.dumps({"samples": window}))
            m = until(ws, "error")
            assert m["status"] == 500 and "ZeroDivisionError" in m["message"]
            with pytest.raises(ConnectionClosed) as e:
                ws.recv(timeout=5)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1011
        assert request(p, "GET", "/health")[0] == 200


# ------------------------------------------------------------------------------------------
# other clients are not affected


def _latencies(port: int, body: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _ = request(port, "POST", "/predict", body)
        out.append(time.perf_counter() - t0)
        assert status == 200
    return out


def test_slow_and_vanishing_clients_do_not_slow_down_the_others(port: int,
                                                               predictor: Predictor) -> None:
    body = json.dumps({"windows": [one_window(predictor)]})
    _latencies(port, body, 5)
    base = statistics.median(_latencies(port, body, 30))
    stop = threading.Event()
    socks: list[socket.socket] = []

    def trickle() -> None:  # headers and bodies one byte at a time
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(b"x")
                except OSError:
                    pass
            time.sleep(0.05)

    def vanish() -> None:  # requests and streams cut mid-way, over and over
        while not stop.is_set():
            s = raw(port)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n[[")
            s.close()
            try:
                cut = raw_ws_connect(port, "/stream", rcvbuf=4096)
                cut.sendall(ws_text_frame(json.dumps({"samples": one_window(predictor)[:100]})))
                cut.close()  # no close frame
            except OSError:
                pass

    for i in range(12):
        s = raw(port)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n[" if i % 2
                  else b"POST /predict HTTP/1.1\r\nX-Slow: ")
        socks.append(s)
    threads = [threading.Thread(target=trickle), threading.Thread(target=vanish)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        under_fault = _latencies(port, body, 30)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for s in socks:
            s.close()
    # a generous bound (2 shared cores), far below what blocking on a slow client would cost
    assert statistics.median(under_fault) < max(4 * base, base + 0.05), (base, under_fault)
    assert max(under_fault) < 1.0
    deadline = time.monotonic() + 5
    while request(port, "GET", "/health")[1]["websocket_clients"] != 0:
        assert time.monotonic() < deadline, "cut streams were not cleaned up"
        time.sleep(0.05)
    assert metric(port, "harkit_http_errors_total", route="/predict", kind="server") == 0


# ------------------------------------------------------------------------------------------
# WebSocket streams


def test_an_idle_stream_is_closed(port: int) -> None:
    from websockets.exceptions import ConnectionClosed

    with stream(port) as ws:
        t0 = time.monotonic()
        m = until(ws, "error", timeout=WS_IDLE + 5)
        assert m["status"] == 408 and "ws_idle_timeout" in m["message"]
        assert WS_IDLE - 0.2 <= time.monotonic() - t0 < WS_IDLE + 3  # timed from the hello
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1001


def test_a_stream_that_never_reads_is_dropped_and_others_go_on(port: int,
                                                               predictor: Predictor) -> None:
    """The server stops at send_timeout (2 s) and drops the connection, unsent events and all
    (a close frame could never get through); another stream is served throughout.

    The lazy client writes from its own thread: its writes block once the server stops reading
    it, and the other stream must keep talking meanwhile (it is closed after WS_IDLE seconds of
    silence, which is about as long as the lazy client's last write blocks)."""
    before = metric(port, "harkit_client_faults_total", kind="ws_send_timeout")
    rng = np.random.default_rng(0)
    frame = ws_text_frame(json.dumps({"samples": rng.standard_normal((131, 9)).round(2).tolist()}))
    lazy = raw_ws_connect(port, "/stream?hop=1", rcvbuf=4096)
    outcome: dict[str, object] = {}

    def flood() -> None:
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 20:
                lazy.sendall(frame)  # 4 events each, never read
        except OSError as e:  # reset by the server; a socket timeout is one too, caught below
            outcome["error"] = e
        outcome["seconds"] = time.monotonic() - t0

    flooder = threading.Thread(target=flood, daemon=True)
    with stream(port, "?hop=128") as other:  # one event per window sent, all read
        flooder.start()
        served = 0
        while flooder.is_alive():
            other.send(json.dumps({"samples": one_window(predictor)}))
            assert until(other, "event", timeout=5)["window"] >= 0
            served += 1
            time.sleep(0.05)
        flooder.join()
        assert isinstance(outcome.get("error"), OSError)
        assert not isinstance(outcome["error"], TimeoutError)  # reset, not our own timeout
        assert outcome["seconds"] < 12  # type: ignore[operator]
        assert served >= 5  # the other stream was answered while the lazy one stalled
        other.send(json.dumps({"samples": one_window(predictor)}))
        assert until(other, "event", timeout=5)["type"] == "event"
    lazy.close()
    assert metric(port, "harkit_client_faults_total", kind="ws_send_timeout") == before + 1


def test_nan_bursts_and_disordered_timestamps_over_a_stream(port: int) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 9)).round(3)
    rows: list[list[float | None]] = x.tolist()
    for i in range(50, 53):
        rows[i][4] = None  # a short burst of missing values: interpolated
    for i in range(200, 260):
        rows[i][0] = None  # a long one: its windows are skipped
    t = (np.arange(400) / 50.0).tolist()
    with stream(port, "?policy=repair") as ws:
        ws.send(json.dumps({"samples": rows[:300], "timestamp": t[:300]}))
        events = [until(ws, "event") for _ in range(2)]
        repair = until(ws, "repair")
        # windows 0 and 1 are predicted, window 2 (samples 128-255) touches the long run
        assert repair["delta"] == {"interpolated": 3, "windows_dropped": 1}
        assert events[0]["repaired"] == 3
        ws.send(json.dumps({"samples": rows[300:310], "timestamp": t[295:305]}))  # replayed
        repair = until(ws, "repair")  # 295-298 are late, 299 a duplicate, 5 are new
        assert repair["delta"] == {"late": 4, "duplicate": 1}
        ws.send(json.dumps({"samples": x[:3].tolist(), "timestamp": 100.0}))  # a long gap
        assert until(ws, "repair")["delta"] == {"resets": 1}
        ws.send(json.dumps({"samples": [[None] * 9], "timestamp": [math.nan]}))
        assert until(ws, "repair")["delta"] == {"bad_time": 1}
    with stream(port) as ws:  # the server's default is strict: refused, stream intact
        ws.send(json.dumps({"samples": [[None] * 9]}))
        m = until(ws, "error")
        assert m["status"] == 422 and "samples[0][0] is null" in m["message"]
        ws.send(json.dumps({"samples": [[0] * 9], "timestamp": "soon"}))
        assert "timestamp is str" in until(ws, "error")["message"]
    with stream(port, "?nan=repair&gaps=reset&disorder=drop&max_fill=3&gap_factor=3") as ws:
        ws.send(json.dumps({"samples": rows[:140], "timestamp": t[:140]}))
        assert until(ws, "event")["window"] == 0


@pytest.mark.parametrize(("query", "message"), [
    ("policy=lenient", r"policy='lenient': expected one of strict, repair"),
    ("nan=zero", r"nan='zero'"),
    ("gap_factor=0.5", r"gap_factor=0.5"),
    ("max_fill=-1", r"max_fill=-1"),
])
def test_bad_policy_options_close_with_1008(port: int, query: str, message: str) -> None:
    with ws_client.connect(f"ws://127.0.0.1:{port}/stream?{query}") as ws:
        m = json.loads(ws.recv(timeout=10))
        assert m["type"] == "error" and re.search(message, m["message"]), m


# ------------------------------------------------------------------------------------------
# fuzz: hostile bodies and messages, generated

numbers = st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                    st.just(0.5))
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
json_values = st.recursive(leaves, lambda c: st.one_of(
    st.lists(c, max_size=6), st.dictionaries(st.sampled_from(
        ["windows", "samples", "hop", "type", "speed", "timestamp", "x"]), c, max_size=3)),
    max_leaves=40)


@st.composite
def near_valid(draw: st.DrawFn) -> Any:
    """Bodies close to valid ones: right keys, shapes a little off, odd values planted."""
    n_ch = draw(st.sampled_from([9, 9, 9, 8, 0]))
    rows = draw(st.sampled_from([1, 127, 128, 129, 200]))
    arr: list[Any] = np.zeros((rows, n_ch)).tolist()
    if rows and n_ch and draw(st.booleans()):
        arr[draw(st.integers(0, rows - 1))][draw(st.integers(0, n_ch - 1))] = draw(leaves)
    key = draw(st.sampled_from(["windows", "samples"]))
    obj: dict[str, Any] = {key: [arr] * draw(st.integers(0, 6)) if key == "windows" else arr}
    if draw(st.booleans()):
        obj["hop"] = draw(st.one_of(st.integers(-2, 300), leaves))
    return obj


def as_body(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


hostile_bodies = st.one_of(
    json_values.map(as_body), near_valid().map(as_body), st.binary(max_size=64),
    near_valid().map(as_body).flatmap(lambda b: st.integers(0, max(len(b) - 1, 0)).map(
        lambda i: b[:i])))  # cut short


@settings(max_examples=120, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=hostile_bodies)
def test_fuzzed_bodies_are_answered_never_500(port: int, body: bytes) -> None:
    status, out = request(port, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert status == 200 or status in CLIENT_FAULTS, (status, out, body[:200])
    assert isinstance(out.get("detail" if status != 200 else "predictions"), str | list)


@pytest.fixture(scope="module")
def fuzz_stream(port: int) -> Iterator[Any]:
    with stream(port, "?policy=repair&hop=32") as ws:
        yield ws


ws_messages = st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    near_valid().map(lambda o: json.dumps({"samples": o.get("samples", o.get("windows")),
                                           **({"timestamp": o["hop"]} if "hop" in o else {})},
                                          allow_nan=True)),
    st.text(max_size=30))


@settings(max_examples=100, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(message=ws_messages)
def test_fuzzed_stream_messages_keep_the_stream_open(fuzz_stream: Any, message: str) -> None:
    fuzz_stream.send(message)
    fuzz_stream.send('{"type": "ping-check"}')  # always an error: marks the end of the replies
    while True:
        m = json.loads(fuzz_stream.recv(timeout=10))
        assert m["type"] in ("event", "repair", "error", "reset"), m
        if m["type"] == "error":
            assert m["status"] in CLIENT_FAULTS, m
            if "ping-check" in m["message"]:
                break


def test_the_server_survived_the_fuzz(port: int) -> None:
    assert metric(port, "harkit_http_errors_total", route="/predict", kind="server") == 0
    assert metric(port, "harkit_client_faults_total", kind="ws_server_error") == 0
    assert request(port, "GET", "/health")[0] == 200


def test_policy_defaults_are_documented() -> None:
    import harkit.inference.streaming as streaming
    import harkit.serve.app as app

    for word in ("disorder", "gaps", "nan", "max_fill", "reset", "interpolate", "drop"):
        assert word in (streaming.__doc__ or "")
    for word in ("body_timeout", "ws_idle_timeout", "send_timeout", "413", "policy"):
        assert word in (app.__doc__ or "")
    assert Path(streaming.__file__).exists()
