"""Fuzz the real service: N generated hostile requests (HTTP bodies, raw-socket faults and
WebSocket messages) against `harkit serve` in its own process; counts replies by status.

Targets: 0 HTTP 500s, 0 stream errors with status 500 or closes with 1011, the server process
alive at the end with no traceback in its log. The inputs come from a seeded generator (the
same --seed, the same inputs). The model is an untrained tiny harcnn exported to ONNX with
UCI HAR's shape (9 channels, windows of 128, 6 classes; the weights do not matter here), or
--model to serve another run / .pt / .onnx.

    .venv/bin/python benchmarks/fuzz_service.py --n 5000
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from harkit.serve.probe import wait_healthy
from uci_har import HARKIT, REPO

N_CH, WINDOW, N_CLASSES = 9, 128, 6
MAX_BODY = 1_000_000


def tiny_onnx(out: Path) -> Path:
    """An untrained tiny harcnn with UCI HAR's window contract, exported to ONNX."""
    import torch

    from harkit.data.transforms import Standardizer
    from harkit.inference.export import export_model
    from harkit.models import create_model

    channels = [f"{k}_{a}" for k in ("body_acc", "body_gyro", "total_acc") for a in "xyz"]
    rng = np.random.default_rng(0)
    norm = Standardizer().fit(rng.standard_normal((64, WINDOW, N_CH)).astype(np.float32))
    pre = {"dataset": "synthetic", "channels": channels,
           "classes": [f"class{i}" for i in range(N_CLASSES)], "window_len": WINDOW, "hop": 64,
           "sampling_rate": 50.0, "normalizer": norm.state_dict()}
    torch.manual_seed(0)
    model = create_model("harcnn", n_channels=N_CH, n_classes=N_CLASSES, window_len=WINDOW,
                         width=4, hidden=8).eval()
    return export_model(model, pre, out, "onnx").path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(model: Path, log: Path, *extra: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`harkit serve model` on a free port, until the block ends; yields (port, process)."""
    port = free_port()
    cmd = [HARKIT, "serve", str(model), "--port", str(port), "--threads", "1",
           "--max-body-mb", str(MAX_BODY / 2**20), "--max-batch", "8", *extra]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_healthy(port, proc, log)
            yield port, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# --------------------------------------------------------------------------------------------
# hostile inputs


def _leaf(r: random.Random) -> Any:
    return r.choice([None, True, False, 0, -1, 1.5, 10**30, -(10**400), float("nan"),
                     float("inf"), "", "NaN", "x" * r.randint(1, 30), [], {}])


def _json_value(r: random.Random, depth: int = 0) -> Any:
    kind = r.random()
    if depth > 3 or kind < 0.4:
        return _leaf(r)
    if kind < 0.7:
        return [_json_value(r, depth + 1) for _ in range(r.randint(0, 5))]
    keys = ["windows", "samples", "hop", "type", "speed", "timestamp", "extra"]
    return {r.choice(keys): _json_value(r, depth + 1) for _ in range(r.randint(0, 3))}


def _near_valid(r: random.Random) -> dict[str, Any]:
    rows = r.choice([1, 127, 128, 129, 300])
    ch = r.choice([N_CH, N_CH, N_CH, N_CH - 1, 0])
    arr: list[Any] = np.round(np.random.default_rng(r.randint(0, 2**31)).standard_normal(
        (rows, ch)), 3).tolist()
    if rows and ch and r.random() < 0.5:
        arr[r.randrange(rows)][r.randrange(ch)] = _leaf(r)
    obj: dict[str, Any] = ({"windows": [arr] * r.randint(0, 10)} if r.random() < 0.5
                           else {"samples": arr})
    if r.random() < 0.3:
        obj["hop"] = r.choice([1, 64, 0, -3, 5000, "64", None, 1.5])
    return obj


def _dumps(v: Any) -> bytes:
    return json.dumps(v, allow_nan=True).encode()


def hostile_body(r: random.Random) -> bytes:
    """One /predict body: garbage, broken JSON, odd JSON, near-valid or valid."""
    k = r.random()
    if k < 0.1:
        return r.randbytes(r.randint(0, 200))
    if k < 0.2:
        b = _dumps(_near_valid(r))
        return b[: r.randint(0, len(b))]  # cut short
    if k < 0.25:
        return b"[" * r.randint(100, 50_000)
    if k < 0.45:
        return _dumps(_json_value(r))
    if k < 0.9:
        return _dumps(_near_valid(r))
    return _dumps({"windows": np.zeros((r.randint(1, 8), WINDOW, N_CH)).tolist()})


def http(port: int, body: bytes, headers: dict[str, str] | None = None) -> str:
    """POST /predict; the status as ``http:<code>``, or ``http:closed`` if none came back."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/predict", body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        if r.status >= 400 and r.status != 500:
            json.loads(data)["detail"]  # every refusal is JSON naming the problem
        return f"http:{r.status}"
    except (ConnectionError, TimeoutError) as e:
        return f"http:closed:{type(e).__name__}"
    finally:
        conn.close()


def raw_fault(port: int, r: random.Random) -> str:
    """A fault below the JSON level on a raw socket; the status line's code, if any."""
    kind = r.choice(["huge_length", "disconnect", "chunked_oversize", "bad_length",
                     "garbage", "reset"])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if kind == "huge_length":
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n[")
        elif kind == "bad_length":
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}")
        elif kind == "garbage":
            s.sendall(r.randbytes(r.randint(1, 300)) + b"\r\n\r\n")
        elif kind == "chunked_oversize":
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"[" * 60_000
            try:
                for _ in range(30):
                    s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                pass
        else:  # the client goes away mid-body (reset: without a FIN)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n[[1,")
            if kind == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return f"raw:{kind}:gone"
        try:
            data = s.recv(200)
        except OSError:
            return f"raw:{kind}:reset"
        return f"raw:{kind}:{data.split()[1].decode() if data[:5] == b'HTTP/' else 'closed'}"
    finally:
        s.close()


def ws_message(r: random.Random) -> str:
    """One /stream message: broken, odd or near-valid, with timestamps sometimes."""
    k = r.random()
    if k < 0.15:
        return r.choice(["", "not json", "{", "[]", "null", '{"type": 5}', "\ud800"[:0] + "x"])
    if k < 0.4:
        return json.dumps(_json_value(r), allow_nan=True)
    obj = _near_valid(r)
    msg: dict[str, Any] = {"samples": obj.get("samples", (obj.get("windows") or [[]])[0])}
    if r.random() < 0.4:
        n = len(msg["samples"]) if isinstance(msg["samples"], list) else 1
        t0 = r.uniform(0, 100)
        msg["timestamp"] = r.choice([t0, [t0 + i / 50 * r.choice([1, 1, 0, -1, 3]) for i in
                                          range(n)], "soon", [None] * n, float("nan")])
    return json.dumps(msg, allow_nan=True)


SENTINEL = '{"type": "end-of-input"}'


def ws_session(port: int, r: random.Random, n: int) -> Counter[str]:
    """``n`` messages on one stream (a random policy); each message's replies are read up to
    the sentinel's error. Sometimes the stream is cut mid-way without a close frame."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    counts: Counter[str] = Counter()
    query = r.choice(["", "?policy=repair", "?policy=repair&hop=16", "?nan=repair",
                      "?disorder=drop&gaps=reset", "?smoothing=mean&k=2"])
    with connect(f"ws://127.0.0.1:{port}/stream{query}", max_size=None) as ws:
        json.loads(ws.recv(timeout=10))  # hello
        for _ in range(n):
            if r.random() < 0.02:
                ws.send(r.randbytes(20))  # binary
            else:
                ws.send(ws_message(r))
            ws.send(SENTINEL)
            statuses = []
            try:
                while True:
                    m = json.loads(ws.recv(timeout=30))
                    if m["type"] == "error":
                        if "end-of-input" in m["message"]:
                            break
                        statuses.append(int(m["status"]))
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                counts[f"ws:closed:{code}"] += 1
                return counts
            counts[f"ws:error:{statuses[0]}" if statuses else "ws:ok"] += 1
        if r.random() < 0.3:
            ws.send(json.dumps({"samples": np.zeros((100, N_CH)).tolist()}))
            ws.socket.close()  # cut mid-stream, no close frame
            counts["ws:cut"] += 1
    return counts


# --------------------------------------------------------------------------------------------


def run_fuzz(port: int, n: int, seed: int, workers: int = 4) -> Counter[str]:
    """``n`` hostile inputs: about 55 % HTTP bodies, 10 % raw-socket faults, 35 % stream
    messages (in sessions of up to 10); counts by outcome."""
    r = random.Random(seed)
    jobs: list[Callable[[], Counter[str]]] = []

    def body_job(b: bytes, h: dict[str, str]) -> Callable[[], Counter[str]]:
        return lambda: Counter([http(port, b, h)])

    def raw_job(sub: random.Random) -> Callable[[], Counter[str]]:
        return lambda: Counter([raw_fault(port, sub)])

    def ws_job(sub: random.Random, m: int) -> Callable[[], Counter[str]]:
        return lambda: ws_session(port, sub, m)

    left = n
    while left > 0:
        k = r.random()
        sub = random.Random(r.getrandbits(64))
        if k < 0.55:
            body = hostile_body(sub)
            hdr = {"Content-Type": "application/json"} if sub.random() < 0.8 else {}
            jobs.append(body_job(body, hdr))
            left -= 1
        elif k < 0.65:
            jobs.append(raw_job(sub))
            left -= 1
        else:
            m = min(left, sub.randint(1, 10))
            jobs.append(ws_job(sub, m))
            left -= m
    total: Counter[str] = Counter()
    with ThreadPoolExecutor(workers) as pool:
        for c in pool.map(lambda job: job(), jobs):
            total.update(c)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="hostile inputs to send")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="run dir / .pt / .onnx (default: an untrained tiny harcnn)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="harkit-fuzz-"))
    model = Path(args.model) if args.model else tiny_onnx(tmp / "tiny.onnx")
    log = tmp / "server.log"
    t0 = time.perf_counter()
    with server(model, log, "--body-timeout", "2") as (port, proc):
        counts = run_fuzz(port, args.n, args.seed)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        alive = proc.poll() is None
    wall = time.perf_counter() - t0
    text = log.read_text()
    server_errors = sum(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("harkit_http_errors_total") and 'kind="server"' in line)
    http_500 = sum(v for k, v in counts.items() if k.startswith(("http:500", "raw:")) and
                   k.endswith(":500"))
    ws_500 = counts.get("ws:error:500", 0) + counts.get("ws:closed:1011", 0)
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine("server: 1 model thread"),
        "command": f".venv/bin/python benchmarks/fuzz_service.py --n {args.n} --seed "
                   f"{args.seed}",
        "inputs": sum(counts.values()) - counts.get("ws:cut", 0), "wall_s": round(wall, 1),
        "by_outcome": dict(sorted(counts.items())), "http_500": http_500,
        "stream_500_or_1011": ws_500, "server_error_counter": server_errors,
        "server_alive": alive, "tracebacks_in_log": text.count("Traceback"),
    }
    out = REPO / "benchmarks" / "results" / f"fuzz_service_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"results: {out.relative_to(REPO)}")
    ok = alive and http_500 == 0 and ws_500 == 0 and server_errors == 0 and \
        summary["tracebacks_in_log"] == 0
    if not ok:
        print(f"FAILED; server log: {log}")
        sys.exit(1)


if __name__ == "__main__":
    main()
