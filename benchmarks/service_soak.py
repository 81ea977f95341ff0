"""Soak the real service: `harkit serve` in its own process under load for --minutes, with
well-behaved clients and random client faults; reports requests served, errors by kind,
crashes and the server's memory growth (target: < 5 % after warm-up, 0 crashes).

Load: --http clients posting 1-4 windows back to back, --streams WebSocket clients each
sending 10 samples every 50 ms (a 200 Hz stream, 4x UCI HAR's rate) and reading their events.
Faults, one every --fault-every seconds on average, drawn at random: malformed JSON, wrong
shapes, oversized bodies (declared and chunked), a client trickling its body until the body
timeout, a request cut mid-body (FIN or reset), a stream cut mid-way without a close frame, a
stream with NaN bursts and disordered timestamps (policy repair), a stream that never reads
its events (dropped at the send timeout). The server's RSS is read every second from /proc
(psutil when installed); the baseline is taken after a warm-up (--warmup of the run, at most
2 minutes) and compared with the end of the run (see `rss_summary`).

    .venv/bin/python benchmarks/service_soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from fuzz_service import N_CH, WINDOW, server, tiny_onnx
from harkit.serve.probe import has_answered, raw_ws_connect, ws_text_frame
from uci_har import REPO


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (psutil if installed, else /proc/PID/status)."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no RSS for process {pid}")


class Tally:
    """Thread-safe counters: requests served by kind, errors by kind, latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency: list[float] = []

    def ok(self, kind: str, seconds: float | None = None) -> None:
        with self.lock:
            self.served[kind] += 1
            if seconds is not None:
                self.latency.append(seconds)

    def err(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def _post(port: int, body: bytes, timeout: float = 30) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def http_client(port: int, stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        n = int(rng.integers(1, 5))
        body = json.dumps({"windows": rng.standard_normal((n, WINDOW, N_CH)).round(3)
                           .tolist()}).encode()
        t0 = time.perf_counter()
        try:
            status = _post(port, body)
        except OSError as e:
            tally.err(f"good_http:{type(e).__name__}")
            time.sleep(0.5)
            continue
        if status == 200:
            tally.ok("http_predict", time.perf_counter() - t0)
        else:
            tally.err(f"good_http:{status}")


def stream_client(port: int, stop: threading.Event, tally: Tally, seed: int) -> None:
    """A well-behaved stream: 10 samples every 50 ms, events read; reconnects when needed."""
    from websockets.sync.client import connect

    rng = np.random.default_rng(seed)
    while not stop.is_set():
        try:
            with connect(f"ws://127.0.0.1:{port}/stream", max_size=None) as ws:
                json.loads(ws.recv(timeout=10))
                tally.ok("stream_connect")
                while not stop.is_set():
                    ws.send(json.dumps({"samples": rng.standard_normal((10, N_CH)).round(3)
                                        .tolist()}))
                    tally.ok("stream_message")
                    end = time.monotonic() + 0.05
                    while (left := end - time.monotonic()) > 0:
                        try:
                            m = json.loads(ws.recv(timeout=left))
                        except TimeoutError:
                            break
                        if m["type"] == "event":
                            tally.ok("stream_event")
                        elif m["type"] == "error":
                            tally.err(f"good_stream:{m['status']}")
        except Exception as e:
            if not stop.is_set():
                tally.err(f"good_stream:{type(e).__name__}")
                time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# faults


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=15)


def _status(s: socket.socket) -> str:
    try:
        data = s.recv(200)
    except OSError:
        return "reset"
    return data.split()[1].decode() if data[:5] == b"HTTP/" else "closed"


def fault_malformed(port: int, r: random.Random) -> str:
    body = r.choice([b"{", b"", b"null", b'{"windows": "x"}', b'{"samples": [[1, 2]]}',
                     b'{"windows": [[[NaN]]]}', r.randbytes(50)])
    return str(_post(port, body))


def fault_oversized(port: int, r: random.Random) -> str:
    with _raw(port) as s:
        if r.random() < 0.5:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n[")
        else:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            try:
                for _ in range(40):
                    s.sendall(b"%x\r\n%s\r\n" % (50_000, b"[" * 50_000))
            except OSError:
                pass
        return _status(s)


def fault_trickle(port: int, r: random.Random) -> str:
    """Trickle a body one byte at a time until the server gives up on it (408)."""
    with _raw(port) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n[")
        for _ in range(100):
            try:
                s.sendall(b"[")
            except OSError:
                break
            if has_answered(s, 0.1):
                break
        return _status(s)


def fault_cut_request(port: int, r: random.Random) -> str:
    s = _raw(port)
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 80000\r\n\r\n{\"windows\": [[")
    if r.random() < 0.5:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return "gone"


def fault_cut_stream(port: int, r: random.Random) -> str:
    s = raw_ws_connect(port, "/stream", timeout=15)
    for _ in range(r.randint(1, 5)):
        s.sendall(ws_text_frame(json.dumps({"samples": np.zeros((r.randint(1, 300), N_CH)).tolist()})))
    if r.random() < 0.5:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # no close frame
    return "gone"


def fault_nan_burst(port: int, r: random.Random) -> str:
    """A repair stream with NaN runs, gaps, duplicates and late samples: must be served."""
    from websockets.sync.client import connect

    rng = np.random.default_rng(r.getrandbits(32))
    x: list[list[Any]] = rng.standard_normal((600, N_CH)).round(3).tolist()
    for _ in range(5):
        a, c = r.randrange(600), r.randrange(N_CH)
        for i in range(a, min(600, a + r.choice([2, 5, 40]))):
            x[i][c] = None
    t = np.arange(600) / 50.0
    t[r.randrange(600):] += r.choice([0.1, 5.0])  # a gap
    t[r.randrange(600):] -= 0.3  # a jump back
    repairs = 0
    with connect(f"ws://127.0.0.1:{port}/stream?policy=repair", max_size=None) as ws:
        json.loads(ws.recv(timeout=10))
        for i in range(0, 600, 100):
            ws.send(json.dumps({"samples": x[i : i + 100], "timestamp": t[i : i + 100].tolist()}))
        ws.send('{"type": "end"}')
        while True:
            m = json.loads(ws.recv(timeout=15))
            if m["type"] == "error":
                if "'end'" in m["message"]:
                    break
                return f"error:{m['status']}"
            repairs += m["type"] == "repair"
    return "repaired" if repairs else "clean"


def fault_never_reads(port: int, r: random.Random) -> str:
    """A stream that sends and never reads: the server drops it at its send timeout."""
    s = raw_ws_connect(port, "/stream?hop=1", rcvbuf=4096, timeout=15)
    frame = ws_text_frame(json.dumps({"samples": np.zeros((WINDOW + 7, N_CH)).tolist()}))
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 30:
            s.sendall(frame)
    except OSError:
        return "dropped"
    finally:
        s.close()
    return "not_dropped"


FAULTS: dict[str, Callable[[int, random.Random], str]] = {
    "malformed": fault_malformed, "oversized": fault_oversized, "trickle": fault_trickle,
    "cut_request": fault_cut_request, "cut_stream": fault_cut_stream,
    "nan_burst": fault_nan_burst, "never_reads": fault_never_reads,
}
WEIGHTS = {"malformed": 6, "oversized": 3, "trickle": 1, "cut_request": 3, "cut_stream": 3,
           "nan_burst": 3, "never_reads": 0.3}
EXPECTED = {"malformed": {"400", "422"}, "oversized": {"413", "reset", "closed"},
            "trickle": {"408"}, "cut_request": {"gone"}, "cut_stream": {"gone"},
            "nan_burst": {"repaired", "clean"}, "never_reads": {"dropped"}}


def fault_injector(port: int, stop: threading.Event, tally: Tally, seed: int,
                   every: float) -> None:
    r = random.Random(seed)
    names = list(FAULTS)
    active: list[threading.Thread] = []

    def one(name: str, sub: random.Random) -> None:
        try:
            outcome = FAULTS[name](port, sub)
        except Exception as e:
            outcome = f"client_exception:{type(e).__name__}"
        with tally.lock:
            tally.served[f"fault:{name}:{outcome}"] += 1
        if outcome not in EXPECTED[name]:
            tally.err(f"fault:{name}:{outcome}")

    while not stop.wait(r.expovariate(1.0 / every)):
        active = [t for t in active if t.is_alive()]
        if len(active) >= 6:
            continue  # enough faults in flight on 2 cores
        name = r.choices(names, [WEIGHTS[n] for n in names])[0]
        t = threading.Thread(target=one, args=(name, random.Random(r.getrandbits(64))),
                             daemon=True)
        t.start()
        active.append(t)
    for t in active:
        t.join(40)


def rss_summary(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, float]:
    """RSS after warm-up (median of the minute after ``warmup_s``, or of what there is) and
    at the end (median of the last minute's samples), and the growth between them."""
    after = [v for t, v in samples if t >= warmup_s]
    end_t = samples[-1][0]
    first = [v for t, v in samples if warmup_s <= t < min(warmup_s + 60, end_t - 60)] or \
        after[: max(1, len(after) // 5)]
    last = [v for t, v in samples if t >= end_t - 60][-max(1, len(after) // 5):]
    a, b = float(np.median(first)), float(np.median(last))
    return {"rss_after_warmup_mb": a / 2**20, "rss_end_mb": b / 2**20,
            "rss_max_mb": max(v for _, v in samples) / 2**20,
            "growth_pct": 100.0 * (b - a) / a}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--http", type=int, default=2, help="well-behaved HTTP clients")
    ap.add_argument("--streams", type=int, default=4, help="well-behaved stream clients")
    ap.add_argument("--fault-every", type=float, default=0.2,
                    help="mean seconds between injected faults")
    ap.add_argument("--warmup", type=float, default=0.2,
                    help="fraction of the run (at most 120 s) before the memory baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="run dir / .pt / .onnx (default: an untrained tiny harcnn)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="harkit-soak-"))
    model = Path(args.model) if args.model else tiny_onnx(tmp / "tiny.onnx")
    log = tmp / "server.log"
    seconds = args.minutes * 60
    warmup_s = min(120.0, args.warmup * seconds)
    tally = Tally()
    stop = threading.Event()
    samples: list[tuple[float, int]] = []
    crashes = 0
    with server(model, log, "--body-timeout", "2", "--send-timeout", "2",
                "--ws-idle-timeout", "30") as (port, proc):
        threads = [threading.Thread(target=http_client, args=(port, stop, tally, i))
                   for i in range(args.http)]
        threads += [threading.Thread(target=stream_client, args=(port, stop, tally, 100 + i))
                    for i in range(args.streams)]
        threads.append(threading.Thread(target=fault_injector, args=(
            port, stop, tally, args.seed, args.fault_every)))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            while (now := time.monotonic() - t0) < seconds:
                if proc.poll() is not None:
                    crashes += 1
                    break
                samples.append((now, rss_bytes(proc.pid)))
                time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        wall = time.monotonic() - t0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        alive = proc.poll() is None
        crashes += not alive
    text = log.read_text()
    server_errors = sum(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("harkit_http_errors_total") and 'kind="server"' in line)
    faults_seen = {line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("harkit_client_faults_total{")}
    lat = np.array(tally.latency) * 1e3
    mem = rss_summary(samples, warmup_s)
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine("server: 1 model thread"),
        "command": f".venv/bin/python benchmarks/service_soak.py --minutes {args.minutes:g} "
                   f"--http {args.http} --streams {args.streams} --fault-every "
                   f"{args.fault_every:g} --seed {args.seed}",
        "wall_s": round(wall, 1), "requests_served": dict(sorted(tally.served.items())),
        "requests_served_total": sum(tally.served.values()),
        "errors_by_kind": dict(sorted(tally.errors.items())),
        "server_fault_counters": faults_seen, "server_5xx": server_errors,
        "crashes": crashes, "tracebacks_in_log": text.count("Traceback"),
        "predict_latency_ms": ({q: float(np.percentile(lat, p)) for q, p in
                                (("p50", 50), ("p99", 99), ("max", 100))} if lat.size else {}),
        "memory": {**{k: round(v, 2) for k, v in mem.items()}, "warmup_s": warmup_s,
                   "samples": len(samples),
                   "rss_mb_every_10s": [round(v / 2**20, 1) for _, v in samples[::10]]},
    }
    out = REPO / "benchmarks" / "results" / f"service_soak_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"results: {out.relative_to(REPO)}")
    ok = (crashes == 0 and server_errors == 0 and not tally.errors and mem["growth_pct"] < 5.0
          and summary["tracebacks_in_log"] == 0)
    if not ok:
        print(f"FAILED; server log: {log}")
        sys.exit(1)


if __name__ == "__main__":
    main()
