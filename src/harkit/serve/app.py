"""The HTTP / WebSocket service around a predictor: ``harkit serve RUN``.

Routes:

- ``POST /predict``: JSON ``{"windows": [...]}`` raw windows ``(N, window_len, channels)``, or
  ``{"samples": [...], "hop": h}`` raw samples ``(n, channels)`` cut into windows as in
  training (``hop`` defaults to the model's). Answers one prediction per window.
- ``WS /stream``: the client sends ``{"samples": [[...], ...]}`` chunks of any size; the
  server keeps one :class:`~harkit.inference.StreamingPredictor` per connection (smoothing
  from the query: ``?smoothing=mean&k=3&threshold=0.5``) and pushes one ``{"type": "event"}``
  message per window. ``{"type": "demo", "speed": 4}`` replays the server's demo recording,
  ``{"type": "stop"}`` ends it, ``{"type": "reset"}`` starts the stream again at sample 0.
  A refused message is answered with ``{"type": "error", "message": ...}`` and the
  connection stays open; bad query options close it with code 1008.
- ``GET /health``, ``GET /model``, ``GET /metrics`` (Prometheus text format) and ``GET /``,
  a live page (plain HTML, JavaScript and canvas; nothing loaded from elsewhere).

Hostile streams: a samples message may carry ``"timestamp"`` (seconds of its first sample, or
one per sample). What a stream does with gaps, NaN bursts and disordered timestamps is the
policy of :mod:`harkit.inference.streaming`: the server's default (``stream_policy``,
``strict`` or ``repair``), overridden per connection by the query options ``policy``,
``gaps``, ``nan``, ``disorder``, ``max_fill`` and ``gap_factor``. With ``nan=repair``,
``null``, ``NaN`` and infinities are accepted as missing values. After a message whose samples
were dropped, filled or reset at, the server sends ``{"type": "repair", "delta": {...},
"total": {...}}`` with the counters of ``StreamingPredictor.stats``.

Hostile clients: every client fault is a 4xx with a JSON ``{"detail": ...}`` naming the field
(malformed JSON, wrong types or shapes, an empty body: 400/422; a body over ``max_body_bytes``:
413, refused by its Content-Length or as soon as the bytes received pass the limit, never
buffered whole). A body not complete within ``body_timeout`` seconds (a client trickling bytes)
is answered 408 and its connection closed; under :func:`serve`, so are headers not complete
within ``header_timeout`` seconds (:mod:`harkit.serve.protocol`); a stream that sends nothing
for ``ws_idle_timeout`` seconds, or does not read its events for ``send_timeout`` seconds, is
closed (1001 / 1008). A client that disconnects mid-request or mid-stream leaves nothing
behind. An unexpected server error is a JSON 500 (``/stream``: an error message and close code
1011), logged with its traceback. Each of these is counted in ``/metrics``
(``harkit_client_faults_total``). Waiting clients cost no thread: one slow client does not hold
up the others.

Predictions run in a thread pool, never on the event loop, so a slow request or stream does
not hold up the others. FastAPI and uvicorn are imported by :func:`create_app` and
:func:`serve` only (``pip install harkit[serve]``).
"""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from harkit.errors import ConfigError, HarkitError
from harkit.serve.inputs import (
    InputError,
    check_keys,
    parse_json,
    positive_float,
    to_float_array,
)
from harkit.serve.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import Response

    from harkit.inference.streaming import StreamingPredictor, WindowPredictor

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
MAX_DEMO_SPEED = 1000.0
#: Seconds of samples per message when the demo recording is replayed.
DEMO_TICK = 0.05
T = TypeVar("T")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def model_info(predictor: "WindowPredictor", source: str = "") -> dict[str, Any]:
    """What a client needs to know about the model: its window contract and names."""
    pre: Mapping[str, Any] = getattr(predictor, "preprocessing", None) or {}
    meta: Mapping[str, Any] = getattr(predictor, "metadata", None) or {}
    name = meta.get("model")
    model = getattr(predictor, "model", None)
    if name is None and hasattr(model, "get_config"):
        name = model.get_config().get("name")  # type: ignore[union-attr]
    units = getattr(predictor, "units", None) or pre.get("units") or {}
    return {
        "model": str(name or type(predictor).__name__),
        "runtime": "onnxruntime" if type(predictor).__name__ == "OnnxPredictor" else "torch",
        "source": source,
        "dataset": pre.get("dataset") or meta.get("dataset"),
        "classes": list(predictor.classes),
        "channels": list(predictor.channels),
        "units": {str(k): str(v) for k, v in dict(units).items()},
        "window_len": int(predictor.window_len),
        "hop": int(predictor.hop),
        "sampling_rate": float(predictor.sampling_rate),
    }


def _load_predictor(model: str | Path, which: str | None, threads: int | None
                    ) -> "WindowPredictor":
    p = Path(model)
    if p.suffix == ".onnx":
        from harkit.inference.onnx_predictor import OnnxPredictor

        return OnnxPredictor(p, threads=threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from harkit.inference import load_predictor

    return load_predictor(p, which)


def _check_recording(rec: Any, predictor: "WindowPredictor") -> np.ndarray:
    """The demo recording as float32 ``(n, channels)``, at least one window long."""
    x = np.asarray(rec, dtype=np.float32)
    n_ch = len(predictor.channels)
    if x.ndim != 2 or x.shape[1] != n_ch:
        raise ConfigError(f"demo_recording: expected raw samples (n, {n_ch}) in the model's "
                          f"channel order, got shape {x.shape}")
    if len(x) < predictor.window_len:
        raise ConfigError(f"demo_recording: {len(x)} samples, fewer than one window of "
                          f"{predictor.window_len}")
    if not np.isfinite(x).all():
        raise ConfigError("demo_recording: holds NaN or infinite values")
    return x


class _Service:
    """The state the routes share: predictor, limits, thread pool and metrics."""

    def __init__(self, predictor: "WindowPredictor", info: dict[str, Any], *, max_batch: int,
                 max_body_bytes: int, demo: np.ndarray | None, workers: int,
                 body_timeout: float = 30.0, ws_idle_timeout: float = 300.0,
                 send_timeout: float = 30.0, stream_policy: str = "strict") -> None:
        self.predictor = predictor
        self.body_timeout = body_timeout
        self.ws_idle_timeout = ws_idle_timeout
        self.send_timeout = send_timeout
        self.stream_policy = stream_policy
        self.info = info
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.demo = demo
        self.workers = workers
        self.metrics = Metrics()
        self.started = time.time()
        self._executor: ThreadPoolExecutor | None = None
        n_ch = len(predictor.channels)
        chans = ", ".join(predictor.channels[:6]) + (", ..." if n_ch > 6 else "")
        self.sample_dims = (None, "samples", ""), (n_ch, "channel values",
                                                   f" (the model's channels: {chans})")
        self.window_dims = ((None, "windows", ""),
                            (int(predictor.window_len), "samples", " (the model's window_len)"),
                            self.sample_dims[1])

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the prediction thread pool."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="harkit-serve")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def max_rows(self, hop: int) -> int:
        """The most samples whose windows (with ``hop``) stay within ``max_batch``."""
        return int(self.predictor.window_len) + self.max_batch * hop - 1

    def samples(self, value: Any, strict: bool, field: str = "samples",
                allow_missing: bool = False) -> np.ndarray:
        return to_float_array(value, field, self.sample_dims, strict, allow_missing)


class _MetricsMiddleware:
    """Counts every HTTP response by route template and status, with its latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            scope["harkit.server_send"] = send  # the server's own, for _abort
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.metrics.observe_request(scope.get("method", ""), route, status,
                                         time.perf_counter() - start)


def _error(status: int, message: str) -> "Response":
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": message}, status_code=status)


async def _read_body(request: "Request", limit: int) -> bytes:
    """The request body, refused (413) beyond ``limit`` bytes by its Content-Length or, for a
    chunked body, by the bytes actually received."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InputError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise InputError(413, f"request body of {size} bytes is over the limit of {limit} "
                                  "bytes (max_body_bytes); send fewer windows per request")
    parts: list[bytes] = []
    received = 0
    try:
        async for part in request.stream():
            received += len(part)
            if received > limit:
                raise InputError(413, f"request body is over the limit of {limit} bytes "
                                      "(max_body_bytes); send fewer windows per request")
            parts.append(part)
    except ClientDisconnect:
        raise InputError(400, "the client disconnected before the body was complete") from None
    return b"".join(parts)


def _has_booleans(text: bytes | str) -> bool:
    """Whether JSON text may hold ``true``/``false`` (then every value is type-checked)."""
    if isinstance(text, bytes):
        return b"true" in text or b"false" in text
    return "true" in text or "false" in text


def _prediction_input(svc: _Service, body: bytes) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Raw windows ``(N, T, C)``, their start samples (None for windows sent as such) and the
    hop, from a ``/predict`` body."""
    from harkit.data.windowing import sliding_windows, window_starts

    p = svc.predictor
    obj = check_keys(parse_json(body, "request body"), ("windows", "samples", "hop"),
                     "the request body")
    if ("windows" in obj) == ("samples" in obj):
        raise InputError(422, "send either 'windows' (raw windows, shape (N, "
                              f"{p.window_len}, {len(p.channels)})) or 'samples' (raw samples, "
                              f"shape (n, {len(p.channels)})), "
                              + ("not both" if "windows" in obj else "found neither"))
    strict = _has_booleans(body)
    if "windows" in obj:
        if "hop" in obj:
            raise InputError(422, "'hop' applies to 'samples' only; 'windows' are predicted "
                                  "as sent")
        value = obj["windows"]
        if isinstance(value, list) and len(value) > svc.max_batch:
            raise InputError(413, f"windows has {len(value)} windows; at most {svc.max_batch} "
                                  "per request (max_batch)")
        X = to_float_array(value, "windows", svc.window_dims, strict)
        return X, None, int(p.hop)
    hop = obj.get("hop", int(p.hop))
    if isinstance(hop, bool) or not isinstance(hop, int) or hop < 1:
        raise InputError(422, f"hop is {hop!r}; expected a positive integer number of samples")
    value = obj["samples"]
    if isinstance(value, list) and len(value) > svc.max_rows(hop):
        n_win = (len(value) - p.window_len) // hop + 1
        raise InputError(413, f"samples has {len(value)} rows, {n_win} windows with hop {hop}; "
                              f"at most {svc.max_batch} windows per request (max_batch): send "
                              "fewer samples or use a larger hop")
    S = svc.samples(value, strict)
    if len(S) < p.window_len:
        raise InputError(422, f"samples has {len(S)} rows, fewer than one window of "
                              f"{p.window_len} (the model's window_len)")
    X = sliding_windows(S, int(p.window_len), hop)  # (n, C) -> (N, T, C), time order kept
    return np.ascontiguousarray(X), window_starts(len(S), int(p.window_len), hop), hop


def _stream_options(query: Mapping[str, str], hop_limit: int, policy: str = "strict"
                    ) -> dict[str, Any]:
    """StreamingPredictor keyword arguments from the ``/stream`` query string (``policy``:
    the server's default hostile-stream preset)."""
    from harkit.inference.streaming import (
        SMOOTHING_KINDS,
        STREAM_POLICIES,
        check_policy_options,
        check_stream_options,
    )

    known = {"smoothing", "k", "margin", "threshold", "hop", "unknown", "demo", "speed",
             "policy", "gaps", "nan", "disorder", "max_fill", "gap_factor"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise InputError(422, f"unknown query option {unknown[0]!r}; expected "
                              f"{', '.join(sorted(known - {'demo', 'speed'}))}")

    def number(name: str, cast: Callable[[str], T], default: T) -> T:
        if name not in query:
            return default
        try:
            return cast(query[name])
        except ValueError:
            raise InputError(422, f"query option {name}={query[name]!r} is not "
                                  f"{'an integer' if cast is int else 'a number'}") from None

    opts: dict[str, Any] = {
        "smoothing": query.get("smoothing", "none"),
        "k": number("k", int, 3),
        "margin": number("margin", float, 0.1),
        "threshold": number("threshold", float, 0.0),
        "unknown": query.get("unknown", "unknown"),
    }
    if opts["smoothing"] not in SMOOTHING_KINDS:
        raise InputError(422, f"query option smoothing={opts['smoothing']!r}: expected one of "
                              f"{', '.join(SMOOTHING_KINDS)}")
    if not (math.isfinite(opts["margin"]) and math.isfinite(opts["threshold"])):
        raise InputError(422, "query options margin and threshold must be finite numbers")
    try:
        check_stream_options(opts["smoothing"], opts["k"], opts["margin"], opts["threshold"])
    except ConfigError as e:
        raise InputError(422, f"query option {e}") from None
    if "hop" in query:
        hop = number("hop", int, 0)
        if not 1 <= hop <= hop_limit:
            raise InputError(422, f"query option hop={hop}: expected 1 to {hop_limit} samples")
        opts["hop"] = hop
    preset = query.get("policy", policy)
    if preset not in STREAM_POLICIES:
        raise InputError(422, f"query option policy={preset!r}: expected one of "
                              f"{', '.join(STREAM_POLICIES)}")
    pol: dict[str, Any] = {**STREAM_POLICIES[preset]}
    pol.update({k: query[k] for k in ("gaps", "nan", "disorder") if k in query})
    pol["gap_factor"] = number("gap_factor", float, 2.0)
    if "max_fill" in query:
        pol["max_fill"] = number("max_fill", int, 0)
        if pol["max_fill"] > hop_limit:
            raise InputError(422, f"query option max_fill={pol['max_fill']}: expected 0 to "
                                  f"{hop_limit} samples")
    try:
        check_policy_options(pol["gaps"], pol["nan"], pol["disorder"], pol["gap_factor"],
                             pol.get("max_fill"))
    except ConfigError as e:
        raise InputError(422, f"query option {e}") from None
    return {**opts, **pol}


class _SlowReader(Exception):
    """A stream client that does not read what the server sends."""


def _timestamp(value: Any, n: int) -> float | np.ndarray | None:
    """A samples message's ``timestamp``: None, a number (the first sample's time in seconds)
    or one number per sample; anything else is a 422 naming the field."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) > 2**53:
            raise InputError(422, f"timestamp is an integer of {len(str(abs(value)))} digits; "
                                  "expected seconds")
        return float(value)
    if isinstance(value, list):  # float64: seconds since an epoch do not fit float32
        if len(value) != n:
            raise InputError(422, f"timestamp has {len(value)} values; expected one per sample "
                                  f"({n}) or one number")
        for i, v in enumerate(value):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise InputError(422, f"timestamp[{i}] is {type(v).__name__}; expected seconds")
        try:
            return np.array([np.nan if v is None else v for v in value], dtype=np.float64)
        except OverflowError:
            raise InputError(422, "timestamp holds an integer too large for seconds") from None
    raise InputError(422, f"timestamp is {type(value).__name__}; expected seconds (a number, "
                          "or one number per sample)")


class _StreamSession:
    """One ``/stream`` connection: its StreamingPredictor, its demo replay, its messages."""

    def __init__(self, svc: _Service, ws: "WebSocket", streamer: "StreamingPredictor") -> None:
        self.svc = svc
        self.ws = ws
        self.streamer = streamer
        self.classes = list(streamer.classes)
        self.demo_task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()

    async def send(self, *messages: dict[str, Any]) -> None:
        """Send messages in order; a client that does not read them within ``send_timeout``
        seconds is a :class:`_SlowReader`."""
        # one lock: the demo task and the receive loop both send
        async with self._send_lock:
            for m in messages:
                try:
                    await asyncio.wait_for(self.ws.send_json(m), self.svc.send_timeout)
                except TimeoutError:
                    raise _SlowReader from None

    async def push(self, chunk: np.ndarray, timestamp: Any = None) -> None:
        """Feed a chunk (in the thread pool) and send its events, then what the hostile-stream
        policies did with it, if anything."""
        before = self.streamer.stats
        events = await self.svc.run(self.streamer.feed, chunk, timestamp)
        if events:
            self.svc.metrics.add_windows("stream", len(events))
            await self.send(*({"type": "event", **e.to_dict(self.classes)} for e in events))
            self.svc.metrics.events(len(events))
        after = self.streamer.stats
        delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        if delta:
            self.svc.metrics.repairs(delta)
            await self.send({"type": "repair", "delta": delta, "total": after})

    async def receive_loop(self) -> None:
        idle = self.svc.ws_idle_timeout
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), idle)
            except TimeoutError:
                if self.demo_task is not None and not self.demo_task.done():
                    continue  # watching a replay is not idle
                self.svc.metrics.fault("ws_idle_timeout")
                await self.send({"type": "error", "status": 408, "message":
                                 f"no message for {idle:g} s (ws_idle_timeout); closing"})
                await self.ws.close(code=1001, reason="idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is None:
                    raise InputError(400, "binary messages are not accepted; send JSON text")
                if len(text) > self.svc.max_body_bytes:
                    raise InputError(413, f"message of {len(text)} characters is over the "
                                          f"limit of {self.svc.max_body_bytes} (max_body_bytes)")
                await self.handle(text)
                self.svc.metrics.ws_message(ok=True)
            except InputError as e:
                self.svc.metrics.ws_message(ok=False)
                await self.send({"type": "error", "status": e.status, "message": e.message})
            except HarkitError as e:  # the streamer's own checks (not expected after ours)
                self.svc.metrics.ws_message(ok=False)
                await self.send({"type": "error", "status": 422, "message": str(e)})

    async def handle(self, text: str) -> None:
        obj = check_keys(parse_json(text, "message"), ("type", "samples", "speed", "timestamp"),
                         "a message")
        kind = obj.get("type", "samples")
        if kind == "samples":
            if "samples" not in obj:
                raise InputError(422, "a samples message needs 'samples': [[channel values], "
                                      "...]")
            if self.demo_task is not None and not self.demo_task.done():
                raise InputError(409, "a demo replay is running on this connection; send "
                                      '{"type": "stop"} first')
            value = obj["samples"]
            if isinstance(value, list) and not value:
                return  # an empty chunk: nothing to do
            limit = self.svc.max_rows(self.streamer.hop)
            if isinstance(value, list) and len(value) > limit:
                raise InputError(413, f"samples has {len(value)} rows; at most {limit} per "
                                      "message (max_batch windows)")
            missing = self.streamer.nan == "repair"
            samples = self.svc.samples(value, _has_booleans(text) or missing,
                                       allow_missing=missing)
            await self.push(samples, _timestamp(obj.get("timestamp"), len(samples)))
        elif "timestamp" in obj:
            raise InputError(422, "'timestamp' belongs to a samples message")
        elif kind == "reset":
            await self.stop_demo()
            self.streamer.reset()
            await self.send({"type": "reset"})
        elif kind == "demo":
            if self.svc.demo is None:
                raise InputError(404, "this server has no demo recording (start it with "
                                      "--demo)")
            speed = positive_float(obj.get("speed", 1.0), "speed", MAX_DEMO_SPEED)
            await self.stop_demo()
            self.demo_task = asyncio.create_task(self.replay(self.svc.demo, speed))
        elif kind == "stop":
            if not await self.stop_demo():
                raise InputError(409, "no demo replay is running on this connection")
        else:
            raise InputError(422, f"message type {kind!r} is unknown; expected samples, demo, "
                                  "stop or reset")

    async def stop_demo(self) -> bool:
        """Cancel a running replay; whether one was running."""
        task, self.demo_task = self.demo_task, None
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await self.send({"type": "demo_end", "stopped": True,
                         "windows": self.streamer.n_windows})
        return True

    async def replay(self, rec: np.ndarray, speed: float) -> None:
        """Send the recording's samples at the sampling rate times ``speed``, each piece
        followed by the events it completes (the stream starts again at sample 0)."""
        from starlette.websockets import WebSocketDisconnect

        try:
            await self._replay(rec, speed)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass  # the client went away mid-replay; the receive loop ends the session

    async def _replay(self, rec: np.ndarray, speed: float) -> None:
        loop = asyncio.get_running_loop()
        rate = self.streamer.sampling_rate * speed
        step = max(1, round(rate * DEMO_TICK))
        self.streamer.reset()
        await self.send({"type": "demo_start", "samples": len(rec), "speed": speed,
                         "sampling_rate": self.streamer.sampling_rate})
        t0 = loop.time()
        for i in range(0, len(rec), step):
            piece = rec[i : i + step]
            wait = t0 + (i + len(piece)) / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.send({"type": "samples", "start": i, "samples": piece.tolist()})
            await self.push(piece)
        await self.send({"type": "demo_end", "stopped": False, "samples": len(rec),
                         "windows": self.streamer.n_windows})


async def _close_quietly(ws: "WebSocket", code: int, reason: str,
                        message: dict[str, Any] | None = None) -> None:
    """Send ``message`` (if any) and close, ignoring a client that is already gone; a client
    that does not read even the close frame has its connection dropped."""
    try:
        if message is not None:
            await asyncio.wait_for(ws.send_json(message), 1.0)
        await asyncio.wait_for(ws.close(code=code, reason=reason), 1.0)
    except TimeoutError:
        _abort(ws)
    except Exception:
        log.debug("closing a stream that is already gone", exc_info=True)


def _abort(ws: "WebSocket") -> None:
    """Drop a stream's TCP connection now, unsent data and all. A graceful close would wait
    for a client that reads nothing to take the server's buffered messages first."""
    # the ASGI send of uvicorn's WebSocket protocols is a method of the protocol, which
    # holds the transport (a graceful close, as uvicorn's own at the end of the session or
    # at a keepalive timeout, waits for the buffered data to be read: forever here)
    protocol = getattr(ws.scope.get("harkit.server_send"), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()


def create_app(model: "str | Path | WindowPredictor", *, which: str | None = None,
               max_batch: int = 1024, max_body_bytes: int = 16 * 2**20,
               demo_recording: np.ndarray | str | Path | None = None, threads: int | None = None,
               workers: int = 4, body_timeout: float = 30.0, ws_idle_timeout: float = 300.0,
               send_timeout: float = 30.0, stream_policy: str = "strict") -> "FastAPI":
    """The FastAPI application serving ``model`` (see the module docstring for the routes).

    Args:
        model: a run directory, a ``.pt`` checkpoint or an exported ``.onnx`` file (see
            :func:`~harkit.inference.load_predictor`), or a predictor object.
        which: for a run directory: its ``final``, ``best`` or ``last`` model.
        max_batch: the most windows one ``/predict`` request or one stream message may make.
        max_body_bytes: the largest request body (and stream message) accepted.
        demo_recording: raw samples ``(n, channels)`` the page's demo mode replays, or a CSV
            of raw samples (see :func:`~harkit.inference.read_samples_csv`); see
            :func:`demo_recording_for_run`.
        threads: intra-op threads of the model (torch or ONNX Runtime); None: their default.
        workers: threads predicting concurrently (requests and streams).
        body_timeout: seconds a request body may take to arrive (then 408).
        ws_idle_timeout: seconds a stream may send nothing before it is closed.
        send_timeout: seconds a stream client may leave the server's messages unread.
        stream_policy: the streams' hostile-input preset, ``strict`` or ``repair`` (see
            :mod:`harkit.inference.streaming`); clients override it with query options.

    Raises:
        ConfigError: a limit out of range or a demo recording that does not fit the model.

    Example:
        >>> app = create_app("runs/my-run", demo_recording=rec)  # doctest: +SKIP
        >>> uvicorn.run(app, port=8000)                           # doctest: +SKIP
    """
    try:
        from fastapi import FastAPI, Request, WebSocket
        from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
        from fastapi.staticfiles import StaticFiles
        from starlette.websockets import WebSocketDisconnect
    except ImportError:
        raise HarkitError("harkit serve needs FastAPI and uvicorn: pip install "
                          "'harkit[serve]'") from None
    for name, v in (("max_batch", max_batch), ("max_body_bytes", max_body_bytes),
                    ("workers", workers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}={v!r}: expected a positive integer")
    for name, t in (("body_timeout", body_timeout), ("ws_idle_timeout", ws_idle_timeout),
                    ("send_timeout", send_timeout)):
        if isinstance(t, bool) or not isinstance(t, int | float) or not (
                math.isfinite(t) and t > 0):
            raise ConfigError(f"{name}={t!r}: expected a positive number of seconds")
    from harkit.inference.streaming import STREAM_POLICIES

    if stream_policy not in STREAM_POLICIES:
        raise ConfigError(f"stream_policy={stream_policy!r}: expected one of "
                          f"{', '.join(STREAM_POLICIES)}")
    source = str(model) if isinstance(model, str | Path) else ""
    predictor = (_load_predictor(model, which, threads) if isinstance(model, str | Path)
                 else model)
    demo: np.ndarray | None = None
    if isinstance(demo_recording, str | Path):
        from harkit.inference import read_samples_csv

        demo = _check_recording(read_samples_csv(demo_recording, list(predictor.channels)),
                                predictor)
    elif demo_recording is not None:
        demo = _check_recording(demo_recording, predictor)
    info = model_info(predictor, source)
    svc = _Service(predictor, info, max_batch=max_batch, max_body_bytes=max_body_bytes,
                   demo=demo, workers=workers, body_timeout=float(body_timeout),
                   ws_idle_timeout=float(ws_idle_timeout), send_timeout=float(send_timeout),
                   stream_policy=stream_policy)
    # the first calls of an optimised model profile its shapes: pay that before serving
    for n in (1, 2):
        predictor.predict_proba(np.zeros((n, info["window_len"], len(info["channels"])),
                                          dtype=np.float32))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        svc.shutdown()

    app = FastAPI(title="harkit", summary=f"activity recognition with {info['model']}",
                  lifespan=lifespan)
    app.state.service = svc
    app.add_middleware(_MetricsMiddleware, metrics=svc.metrics)

    async def server_error(request: Request, exc: Exception) -> Response:
        # a bug, not a client fault: logged with its traceback, answered in JSON
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal server error ({type(exc).__name__}); see the server log")

    app.add_exception_handler(Exception, server_error)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": info["model"],
                "uptime_s": round(time.time() - svc.started, 3),
                "websocket_clients": svc.metrics.ws_active, "demo": demo is not None}

    @app.get("/model")
    async def model_route() -> dict[str, Any]:
        return {**info, "max_batch": max_batch, "max_body_bytes": max_body_bytes,
                "demo_samples": None if demo is None else len(demo)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return PlainTextResponse(svc.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            try:
                body = await asyncio.wait_for(_read_body(request, max_body_bytes),
                                              svc.body_timeout)
            except TimeoutError:
                svc.metrics.fault("body_timeout")
                raise InputError(408, f"the request body did not arrive within "
                                      f"{svc.body_timeout:g} s (body_timeout)") from None
            X, starts, hop = _prediction_input(svc, body)
        except InputError as e:
            if e.status == 400 and "disconnected" in e.message:
                svc.metrics.fault("disconnect")
            response = _error(e.status, e.message)
            if e.status in (408, 413):  # the rest of the body is not read: do not reuse
                response.headers["Connection"] = "close"
            return response
        probs = np.asarray(await svc.run(predictor.predict_proba, X), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
        if bad.size:  # finite input the model overflows on: the client's values, not a bug
            i = int(bad[0])
            return _error(422, f"{'windows' if starts is None else 'the window of samples'}"
                               f"[{i}]: the model's probabilities are not finite numbers for "
                               f"its values (largest |value| {float(np.abs(X[i]).max()):.3g});"
                               " expected values in the range the model was trained on")
        svc.metrics.add_windows("predict", len(X))
        classes = info["classes"]
        preds = []
        for i, p in enumerate(probs):
            top = int(p.argmax())
            row: dict[str, Any] = {"window": i}
            if starts is not None:
                row["start"] = int(starts[i])
                row["end"] = int(starts[i]) + info["window_len"]
            row.update(label=classes[top], confidence=float(p[top]),
                       probabilities=dict(zip(classes, p.tolist(), strict=True)))
            preds.append(row)
        out: dict[str, Any] = {"model": info["model"], "classes": classes,
                               "n_windows": len(preds), "predictions": preds}
        if starts is not None:
            out["hop"] = hop
        return JSONResponse(out)

    @app.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        from harkit.inference.streaming import StreamingPredictor

        await ws.accept()
        svc.metrics.ws_opened()
        session: _StreamSession | None = None
        try:
            try:
                opts = _stream_options(ws.query_params, max(int(predictor.window_len), 1) * 16,
                                       svc.stream_policy)
            except InputError as e:
                await ws.send_json({"type": "error", "status": e.status, "message": e.message})
                await ws.close(code=1008, reason=e.message[:120])
                return
            streamer = StreamingPredictor(predictor, warmup=False, source="stream", **opts)
            session = _StreamSession(svc, ws, streamer)
            await session.send({"type": "hello", **info, "stream": {
                "hop": streamer.hop, "smoothing": streamer.smoothing,
                "threshold": streamer.threshold, "unknown": streamer.unknown},
                "demo": demo is not None, "demo_samples": None if demo is None else len(demo)})
            await session.receive_loop()
        except (WebSocketDisconnect, OSError):
            svc.metrics.fault("ws_disconnect")  # the client went away: nothing to answer
        except _SlowReader:
            svc.metrics.fault("ws_send_timeout")
            _abort(ws)  # a close frame would queue behind the unread messages
        except Exception as exc:
            if ws.client_state.name == "DISCONNECTED" or \
                    ws.application_state.name == "DISCONNECTED":
                svc.metrics.fault("ws_disconnect")  # a send raced the client's leaving
            else:  # a bug, not a client fault
                log.error("/stream failed", exc_info=exc)
                svc.metrics.fault("ws_server_error")
                await _close_quietly(ws, 1011, "internal server error", {
                    "type": "error", "status": 500,
                    "message": f"internal server error ({type(exc).__name__}); see the "
                               "server log"})
        finally:
            if session is not None and session.demo_task is not None:
                session.demo_task.cancel()
            svc.metrics.ws_closed()

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={
            "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                                       "img-src 'self' data:",
            "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def demo_recording_for_run(run_dir: str | Path, csv: str | Path | None = None, *,
                           subject: int | None = None, max_windows: int | None = None
                           ) -> np.ndarray:
    """A continuous recording for the demo: raw samples ``(n, channels)`` float32.

    Without ``csv``: one subject of the run's dataset test split (the first, or ``subject``),
    its windows put back to back without overlap (every ``ceil(window_len / hop)``-th window,
    at most ``max_windows`` of them). With ``csv``: that file's samples, the columns named as
    the model's channels (see :func:`~harkit.inference.read_samples_csv`).

    Raises:
        ConfigError: the dataset has no test split or no such subject.
        DataFormatError: a CSV that cannot be read.
    """
    if csv is not None:
        from harkit.inference import load_predictor, read_samples_csv

        return read_samples_csv(csv, list(load_predictor(run_dir).channels))
    from harkit.api import _load
    from harkit.runs import RunDir

    ds = _load(RunDir.open(run_dir).config())
    test = ds.splits.get("test")
    if test is None or len(test) == 0:
        raise ConfigError(f"{run_dir}: dataset {ds.name!r} has no test windows for a demo")
    subjects = np.unique(test.subjects)
    if subject is None:
        subject = int(subjects[0])
    elif subject not in subjects:
        raise ConfigError(f"subject {subject} is not in the test split of {ds.name!r}; it has "
                          f"{[int(s) for s in subjects]}")
    step = max(1, math.ceil(ds.window_len / ds.hop))
    X = test.X[test.subjects == subject][::step][:max_windows]
    return np.ascontiguousarray(X.reshape(-1, X.shape[2]), dtype=np.float32)  # (N, T, C) -> (N*T, C)


def serve(model: "str | Path | WindowPredictor", host: str = "127.0.0.1", port: int = 8000, *,
          log_level: str = "info", limit_concurrency: int | None = None,
          header_timeout: float = 10.0, **kwargs: Any) -> None:
    """Run :func:`create_app` ``(model, **kwargs)`` under uvicorn until interrupted
    (``limit_concurrency``: most connections at once, more are answered 503;
    ``header_timeout``: seconds a request's headers may take to arrive, then 408 and the
    connection is closed, counted as ``header_timeout`` in ``/metrics``)."""
    try:
        import uvicorn
    except ImportError:
        raise HarkitError("harkit serve needs uvicorn: pip install 'harkit[serve]'") from None
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("websockets", "wsproto")):
        raise HarkitError("harkit serve needs a WebSocket library for /stream: pip install "
                          "websockets (or 'harkit[serve]')")
    app = create_app(model, **kwargs)
    max_body = int(kwargs.get("max_body_bytes", 16 * 2**20))
    # uvicorn closes a stream whose message is over ws_max_size; a little over the limit, so
    # that a slightly larger message gets the server's own error message instead
    from harkit.serve.protocol import http_protocol

    metrics = app.state.service.metrics
    try:
        http = http_protocol(float(header_timeout),
                                       on_timeout=lambda: metrics.fault("header_timeout"))
    except ValueError as e:
        raise HarkitError(str(e)) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="auto", http=http,
                ws_max_size=max_body + 1024, limit_concurrency=limit_concurrency)


__all__ = ["create_app", "demo_recording_for_run", "model_info", "serve"]
