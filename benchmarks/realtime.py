"""Issue 6's in-process latency numbers: per-hop streaming latency and batch-1 inference,
eager PyTorch vs ONNX Runtime, for the recurrent models at UCI HAR's shape (128 x 9).

The models have their default sizes and the Standardizer fitted on UCI HAR's training windows;
their weights are untrained (latency does not depend on the weight values). Streaming uses
UCI HAR's hop (64 samples, 50 % overlap): each timed ``StreamingPredictor.feed`` call gets one
hop of samples and predicts exactly one window (checks, ring buffer, normaliser, model,
softmax, event). Batch-1 latency times the model call alone: the eager wrapper (normalise +
model + softmax) and ``session.run`` of the exported graph (the same three steps in one
graph), interleaved call by call so load changes hit both alike. One thread each.

    .venv/bin/python benchmarks/realtime.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from harkit.data import load_dataset
from harkit.data.transforms import Standardizer
from harkit.inference.export import DeployableModel, export_model
from harkit.inference.onnx_predictor import OnnxPredictor
from harkit.inference.predictor import Predictor
from harkit.inference.streaming import StreamingPredictor, measure_latency
from harkit.models import create_model
from uci_har import REPO


def pct(ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--models", nargs="+", default=["lstm", "gru", "bilstm"])
    ap.add_argument("--hops", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    ds = load_dataset("uci-har", data_dir=args.data_dir)
    train = ds.splits["train"]
    norm = Standardizer().fit(train.X)
    pre = {"dataset": ds.name, "channels": list(ds.channels), "classes": list(ds.classes),
           "units": dict(ds.units), "window_len": ds.window_len, "hop": ds.hop,
           "sampling_rate": ds.sampling_rate, "normalizer": norm.state_dict()}
    x1 = ds.splits["test"].X[:1].astype(np.float32)
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="harkit-realtime-"))
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, n_channels=ds.n_channels, n_classes=ds.n_classes,
                             window_len=ds.window_len).eval()
        exported = export_model(model, pre, tmp / f"{name}.onnx", "onnx")
        torch_pred = Predictor(model, norm, pre, batch_size=1)
        ort_pred = OnnxPredictor(exported.path, threads=1, batch_size=1)
        row: dict[str, Any] = {}
        for label, pred in (("torch", torch_pred), ("onnxruntime", ort_pred)):
            streamer = StreamingPredictor(pred, hop=ds.hop)
            row[f"stream_{label}"] = measure_latency(streamer, n_hops=args.hops)
        wrapper = DeployableModel(model, norm.mean, norm.std).eval()
        xt = torch.from_numpy(x1)
        sess = ort_pred.session
        feed = {sess.get_inputs()[0].name: x1}
        out_name = sess.get_outputs()[0].name
        calls: dict[str, list[float]] = {"eager": [], "onnxruntime": []}
        with torch.inference_mode():
            for _ in range(30):
                wrapper(xt)
                sess.run([out_name], feed)
            for _ in range(args.calls):
                t0 = time.perf_counter()
                wrapper(xt)
                t1 = time.perf_counter()
                sess.run([out_name], feed)
                t2 = time.perf_counter()
                calls["eager"].append((t1 - t0) * 1e3)
                calls["onnxruntime"].append((t2 - t1) * 1e3)
        row["batch1_eager"] = pct(calls["eager"])
        row["batch1_onnxruntime"] = pct(calls["onnxruntime"])
        row["ort_speedup_p50"] = row["batch1_eager"]["p50"] / row["batch1_onnxruntime"]["p50"]
        row["parameters"] = sum(p.numel() for p in model.parameters())
        results[name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = REPO / "benchmarks" / "results" / f"realtime_{stamp}.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                               "machine": machine("1 torch / ONNX Runtime thread"),
                               "results": results}, indent=2))
    lines = [
        f"\n## Real-time latency, UCI HAR shape, recurrent models ({time.strftime('%Y-%m-%d')})\n",
        f"- machine: {machine('1 torch / ONNX Runtime thread')}",
        f"- command: `.venv/bin/python benchmarks/realtime.py --data-dir {args.data_dir}` "
        f"({args.hops} timed hops, {args.calls} timed batch-1 calls per model; untrained "
        "default-size models with the Standardizer of UCI HAR's training windows)",
        "",
        "| model | parameters | streaming per hop, torch p50 / p99 (ms) | streaming per hop, "
        "ONNX Runtime p50 / p99 (ms) | batch-1 eager p50 / p99 (ms) | batch-1 ONNX Runtime "
        "p50 / p99 (ms) | ORT speed-up (p50) |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['parameters']:,} | {r['stream_torch']['p50']:.2f} / "
            f"{r['stream_torch']['p99']:.2f} | {r['stream_onnxruntime']['p50']:.2f} / "
            f"{r['stream_onnxruntime']['p99']:.2f} | {r['batch1_eager']['p50']:.2f} / "
            f"{r['batch1_eager']['p99']:.2f} | {r['batch1_onnxruntime']['p50']:.2f} / "
            f"{r['batch1_onnxruntime']['p99']:.2f} | {r['ort_speedup_p50']:.2f}x |")
    lines.append(f"\n- raw results: `{out.relative_to(REPO)}`\n")
    with open(REPO / "BENCHMARKS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
