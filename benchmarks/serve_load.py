"""Issue 6's service load test: N WebSocket clients each streaming raw samples at the
sensor's rate (UCI HAR: 50 Hz) to `harkit serve` on loopback for a fixed time.

The server is the real CLI (`harkit serve MODEL --port P --threads 1`) in its own process; the
clients are one asyncio process (the `websockets` library). Each client sends its samples in
chunks of `--chunk` rows every chunk / rate seconds (a phone batches sensor reads the same
way), counts the events it gets back and, for each event, the end-to-end latency: from
sending the chunk that completed the window to receiving the window's event. An event is
dropped if a window that the samples sent complete never arrives. The model is an untrained
default-size LSTM exported to ONNX with UCI HAR's shape and normaliser (latency does not
depend on the weights), or `--model` to serve another run / .pt / .onnx.

    .venv/bin/python benchmarks/serve_load.py --data-dir ../shared/data --clients 50 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_section, machine
from harkit.serve.probe import wait_healthy
from uci_har import HARKIT, REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lstm_onnx(data_dir: str, out: Path) -> Path:
    import torch

    from harkit.data import load_dataset
    from harkit.data.transforms import Standardizer
    from harkit.inference.export import export_model
    from harkit.models import create_model

    ds = load_dataset("uci-har", data_dir=data_dir)
    norm = Standardizer().fit(ds.splits["train"].X)
    pre = {"dataset": ds.name, "channels": list(ds.channels), "classes": list(ds.classes),
           "units": dict(ds.units), "window_len": ds.window_len, "hop": ds.hop,
           "sampling_rate": ds.sampling_rate, "normalizer": norm.state_dict()}
    torch.manual_seed(0)
    model = create_model("lstm", n_channels=ds.n_channels, n_classes=ds.n_classes,
                         window_len=ds.window_len).eval()
    return export_model(model, pre, out, "onnx").path


async def _client(url: str, signal: np.ndarray, rate: float, chunk: int, seconds: float,
                  window: int, hop: int) -> dict[str, Any]:
    import websockets

    sent_at: list[float] = []  # send time of each chunk
    latencies: list[float] = []
    errors = 0
    got: set[int] = set()
    async with websockets.connect(url, max_size=2**24) as ws:
        hello = json.loads(await ws.recv())
        assert hello.get("type") == "hello", hello

        async def receive() -> None:
            nonlocal errors
            async for text in ws:
                msg = json.loads(text)
                if msg.get("type") == "event":
                    got.add(int(msg["window"]))
                    last_sample = int(msg["end"]) - 1
                    latencies.append(time.perf_counter() - sent_at[last_sample // chunk])
                elif msg.get("type") == "error":
                    errors += 1

        rx = asyncio.create_task(receive())
        n_chunks = int(seconds * rate / chunk)
        t0 = time.perf_counter()
        for i in range(n_chunks):
            due = t0 + i * chunk / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            rows = signal[(i * chunk) % (len(signal) - chunk):][:chunk]
            sent_at.append(time.perf_counter())
            await ws.send(json.dumps({"samples": rows.tolist()}))
        n_samples = n_chunks * chunk
        expected = 0 if n_samples < window else (n_samples - window) // hop + 1
        deadline = time.perf_counter() + 10.0
        while len(got) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        rx.cancel()
    return {"expected": expected, "received": len(got), "errors": errors,
            "latencies": latencies}


async def _run_clients(url: str, signal: np.ndarray, args: argparse.Namespace, window: int,
                       hop: int) -> list[dict[str, Any]]:
    async def one(i: int) -> dict[str, Any]:
        await asyncio.sleep(i * args.chunk / args.rate / args.clients)  # spread the phases
        return await _client(url, signal[i * 37:], args.rate, args.chunk, args.seconds,
                             window, hop)

    return await asyncio.gather(*(one(i) for i in range(args.clients)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--model", help="run dir / .pt / .onnx (default: an untrained LSTM, ONNX)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=50.0, help="samples per second per client")
    ap.add_argument("--chunk", type=int, default=5, help="samples per message")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="harkit-serve-load-"))
    model = Path(args.model) if args.model else _lstm_onnx(args.data_dir, tmp / "lstm.onnx")
    from harkit.data import load_dataset

    ds = load_dataset("uci-har", data_dir=args.data_dir)
    test = ds.splits["test"]
    signal = test.X[test.subjects == test.subjects[0]][:, : ds.hop].reshape(-1, ds.n_channels)
    signal = np.round(np.concatenate([signal] * 4), 5)
    port = _free_port()
    cmd = [HARKIT, "serve", str(model), "--port", str(port), "--threads", "1"]
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_healthy(port, server, tmp / "server.log")
        url = f"ws://127.0.0.1:{port}/stream"
        t0 = time.perf_counter()
        res = asyncio.run(_run_clients(url, signal, args, ds.window_len, ds.hop))
        wall = time.perf_counter() - t0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    lat = np.concatenate([r["latencies"] for r in res]) * 1e3
    expected = sum(r["expected"] for r in res)
    received = sum(r["received"] for r in res)
    errors = sum(r["errors"] for r in res)
    server_errors = sum(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("harkit_") and "error" in line.split("{")[0]
                        and not line.startswith("#"))
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": machine("server: 1 model thread"),
               "command": " ".join(cmd), "clients": args.clients, "seconds": args.seconds,
               "rate": args.rate, "chunk": args.chunk, "wall": wall, "events_expected": expected,
               "events_received": received, "dropped": expected - received,
               "client_errors": errors, "server_error_counters": server_errors,
               "latency_ms": {q: float(np.percentile(lat, p)) for q, p in
                              (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}}
    out = REPO / "benchmarks" / "results" / f"serve_load_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))
    L = summary["latency_ms"]
    text = f"""
## WebSocket service load, {args.clients} clients x {args.rate:g} Hz x {args.seconds:g} s ({summary['date']})

- machine: {summary['machine']} (server and clients on the same 2 cores, loopback)
- command: `.venv/bin/python benchmarks/serve_load.py --data-dir {args.data_dir}
  --clients {args.clients} --seconds {args.seconds:g}` (server: `harkit serve lstm.onnx --threads 1`,
  an untrained default-size LSTM exported to ONNX at UCI HAR's shape; each client sends
  {args.chunk} samples every {args.chunk / args.rate * 1e3:.0f} ms)
- events: {received} of {expected} expected received (**{expected - received} dropped**),
  **{errors} error messages**; the server's error counters: {server_errors:g}
- end-to-end latency (chunk completing a window sent -> its event received): p50 {L['p50']:.1f} ms,
  p90 {L['p90']:.1f} ms, **p99 {L['p99']:.1f} ms**, max {L['max']:.1f} ms (target: p99 < 50 ms)
- raw results: `{out.relative_to(REPO)}`
"""
    append_section(text)


if __name__ == "__main__":
    main()
