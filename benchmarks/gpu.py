"""GPU numbers for issue 7: whole `harkit train` runs on CUDA, per-model training throughput
and inference latency on the GPU, the fp16 / bf16 / compile paths and a NCCL smoke check.

Run on a machine with a CUDA GPU, from the repository root (harkit importable, for example
``PYTHONPATH=src``):

    python benchmarks/gpu.py --data-dir ../shared/data --out gpu.json
    python benchmarks/gpu.py --data-dir ../shared/data --sections runs --runs default-fp32

Sections (``--sections``, default all):

* ``runs``: recipes run as ``python -m harkit.cli train ... --set train.device=cuda`` in a fresh
  process each, timed from launch to exit (start-up, imports, reading the dataset, training,
  refit, the test evaluation and the plots all count); test accuracy read from metrics.json.
  The first process also fills harkit's dataset cache; it is timed and reported apart.
* ``models``: for each model, Trainer steps on UCI HAR windows held on the GPU side by the
  Trainer's own batching (windows/s over whole epochs, fp32 / bf16 / fp16 autocast, batch 64
  and 256), then batch-1 and batch-256 inference latency (CUDA-synchronised, median and p99)
  and peak GPU memory.
* ``nccl``: a one-process NCCL group (the backend ``harkit train --nproc N`` uses on GPUs):
  an all-reduce, a DistributedDataParallel step of harcnn and torch's SyncBatchNorm on CUDA.

The JSON written to ``--out`` holds every sample; the script prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

RUNS: dict[str, list[str]] = {
    # the README's main command (harcnn, 25 epochs selected on 4 subjects, then refit on 21)
    "default-fp32": [],
    "default-bf16": ["--set", "train.precision=bf16"],
    "default-fp16": ["--set", "train.precision=fp16"],
    # train.deterministic=false lets cuDNN use its fastest (non-deterministic) kernels
    "default-fp32-nondet": ["--set", "train.deterministic=false"],
    "default-bf16-nondet": ["--set", "train.precision=bf16", "--set", "train.deterministic=false"],
    "tuned-fp32": ["--config", "configs/harcnn-uci-har-tuned.yaml"],
    "fast-minirocket": ["--config", "configs/fast/minirocket-uci-har.yaml"],
    "fast-harcnn-bf16": ["--config", "configs/fast/harcnn-uci-har.yaml"],
}
MODELS = ["harcnn", "harcnn[width=32]", "lstm", "gru", "deepconvlstm", "tinyhar", "minirocket"]


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median_ms": 1000 * statistics.median(samples),
            "p99_ms": 1000 * float(np.percentile(samples, 99)), "n": len(samples)}


def environment() -> dict[str, Any]:
    from common import machine

    p = torch.cuda.get_device_properties(0)
    return {"machine": machine(), "gpu": p.name, "gpu_memory_gib": p.total_memory / 2**30,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "date": time.strftime("%Y-%m-%d")}


def run_recipe(name: str, args: list[str], data_dir: str, root: Path,
               env: dict[str, str]) -> dict[str, Any]:
    run = f"{name}-{time.strftime('%H%M%S')}"
    cmd = [sys.executable, "-m", "harkit.cli", "train", *args, "--data-dir", data_dir,
           "--run-root", str(root), "--name", run, "--no-track", "--no-progress",
           "--set", f"train.device={DEVICE}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=REPO)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"recipe": name, "command": " ".join(cmd[1:]), "wall_seconds": wall,
                           "returncode": proc.returncode}
    if proc.returncode != 0:
        row["error"] = proc.stderr.strip()[-3000:]
        return row
    metrics = json.loads((root / run / "metrics.json").read_text())
    info = json.loads((root / run / "run.json").read_text())
    row.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"],
               train_seconds=info.get("train_seconds"), model=info.get("model"))
    return row


def section_runs(ns: argparse.Namespace) -> list[dict[str, Any]]:
    env = {**os.environ, "HARKIT_TRACKING": "0", "HARKIT_CACHE_DIR": ns.cache_dir,
           "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # cold: the first process parses the dataset archive into the cache
        cold = run_recipe("cold-cache-fast-minirocket", RUNS["fast-minirocket"], ns.data_dir,
                          root, env)
        print(json.dumps(cold), flush=True)
        rows.append(cold)
        for _ in range(ns.repeat):
            for name in ns.runs:
                row = run_recipe(name, RUNS[name], ns.data_dir, root, env)
                print(json.dumps({k: v for k, v in row.items() if k != "command"}), flush=True)
                rows.append(row)
    return rows


DEVICE = "cuda"


def _sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def measure_model(spec: str, data: Any, cfg0: Any, ns: argparse.Namespace) -> dict[str, Any]:
    from harkit.api import build_model
    from harkit.config import TrainConfig, apply_overrides
    from harkit.perf import flops_per_window
    from harkit.training.trainer import Trainer
    from speed import model_overrides

    cfg = apply_overrides(cfg0, list(model_overrides(spec)))
    X = torch.from_numpy(np.ascontiguousarray(data.train.X))
    y = torch.from_numpy(data.train.y.astype(np.int64))
    row: dict[str, Any] = {"model": spec}
    torch.manual_seed(0)
    model = build_model(cfg, data)
    row["parameters"] = sum(p.numel() for p in model.parameters())
    row["flops_per_window"] = flops_per_window(model, tuple(X.shape[1:]))
    closed = bool(getattr(model, "closed_form", False))
    if closed:  # one closed-form fit on all training windows, on the GPU
        for i in range(2):  # the first pays CUDA start-up and kernel compilation
            torch.manual_seed(0)
            model = build_model(cfg, data)
            _sync()
            t0 = time.perf_counter()
            Trainer(model, TrainConfig(epochs=1, batch_size=64, device=DEVICE),
                    (X, y), None).fit(progress=False)
            _sync()
            row[f"fit_seconds_{'first' if i == 0 else 'second'}"] = time.perf_counter() - t0
    else:
        for bs in (64, 256):
            for precision in ns.precisions:
                torch.manual_seed(0)
                m = build_model(cfg, data)
                tc = TrainConfig(epochs=10**6, batch_size=bs, optimizer="adam", lr=1e-3,
                                 weight_decay=0.0, scheduler="none", label_smoothing=0.0,
                                 ema_decay=None, seed=0, device=DEVICE, precision=precision)
                trainer = Trainer(m, tc, (X, y), None)
                trainer.fit(stop_after=1, progress=False)  # warm-up epoch
                rates = []
                for _ in range(ns.epochs):
                    _sync()
                    t0 = time.perf_counter()
                    trainer.fit(stop_after=1, progress=False)
                    _sync()
                    rates.append(trainer.steps_per_epoch * bs / (time.perf_counter() - t0))
                row[f"train_{precision}_b{bs}_windows_per_s"] = statistics.median(rates)
        model = m
    model = model.to(DEVICE).eval()
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for b in (1, 256):
        x = X[:b].to(DEVICE)
        with torch.inference_mode():
            for _ in range(5):
                model(x)
            samples = []
            for _ in range(ns.latency_repeats):
                _sync()
                t0 = time.perf_counter()
                model(x)
                _sync()
                samples.append(time.perf_counter() - t0)
        row[f"latency_b{b}"] = _stats(samples)
    med = row["latency_b256"]["median_ms"] / 1000
    row["infer_windows_per_s"] = 256 / med
    if DEVICE.startswith("cuda"):
        row["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def section_models(ns: argparse.Namespace) -> list[dict[str, Any]]:
    from harkit.api import prepare_data
    from harkit.config import ExperimentConfig, apply_overrides

    os.environ["HARKIT_CACHE_DIR"] = ns.cache_dir
    cfg0 = apply_overrides(ExperimentConfig(), ["data.dataset=uci-har",
                                                f"data.data_dir={ns.data_dir}"])
    data = prepare_data(cfg0)
    rows = []
    for spec in ns.models:
        try:
            row = measure_model(spec, data, cfg0, ns)
        except Exception as e:  # reported; the other models still run
            row = {"model": spec, "error": f"{type(e).__name__}: {e}"[:2000]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def section_nccl() -> dict[str, Any]:
    import torch.distributed as dist

    from harkit.models import create_model
    from harkit.training import distributed

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    out: dict[str, Any] = {}
    try:
        torch.cuda.set_device(0)
        dist.init_process_group("cpu:gloo,cuda:nccl", rank=0, world_size=1)
        t = torch.ones(4, device="cuda")
        dist.all_reduce(t)
        out["all_reduce"] = t.tolist()
        dev = torch.device("cuda", 0)
        model = create_model("harcnn", n_channels=9, n_classes=6, window_len=128).to(dev)
        model = distributed.convert_sync_batchnorm(model, dev)
        out["sync_batchnorm_layers"] = sum(isinstance(m, torch.nn.SyncBatchNorm)
                                           for m in model.modules())
        ddp = distributed.wrap_ddp(model, dev)
        opt = torch.optim.Adam(ddp.parameters())
        x, y = torch.randn(64, 128, 9, device=dev), torch.randint(0, 6, (64,), device=dev)
        losses = []
        for _ in range(20):
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        out["ddp_losses_first_last"] = [losses[0], losses[-1]]
        out["ok"] = losses[-1] < losses[0]
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:2000]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    print(json.dumps(out), flush=True)
    return out


def summary(res: dict[str, Any]) -> str:
    lines = [f"GPU: {res['env']['gpu']}, CUDA {res['env']['cuda']}, cuDNN {res['env']['cudnn']}; "
             f"{res['env']['machine']}; {res['env']['date']}", ""]
    if res.get("runs"):
        lines += ["| recipe | wall s (launch to exit) | train s | test accuracy | macro F1 |",
                  "| --- | --- | --- | --- | --- |"]
        for r in res["runs"]:
            if "error" in r:
                lines.append(f"| {r['recipe']} | failed: {r['error'][-200:]!r} | | | |")
                continue
            lines.append(f"| {r['recipe']} | {r['wall_seconds']:.1f} | "
                         f"{(r.get('train_seconds') or float('nan')):.1f} | "
                         f"{100 * r['accuracy']:.2f} % | {r['macro_f1']:.4f} |")
        lines.append("")
    if res.get("models"):
        lines += ["| model | params | MFLOP/window | train w/s fp32 b64 / b256 | bf16 b256 | "
                  "fp16 b256 | latency b1 ms (p99) | b256 ms (p99) | infer w/s b256 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in res["models"]:
            if "error" in r:
                lines.append(f"| {r['model']} | failed: {r['error'][:200]!r} |||||||| ")
                continue
            if "fit_seconds_second" in r:
                train = f"closed form: fit {r['fit_seconds_second']:.2f} s | | "
            else:
                def w(key: str, r: dict[str, Any] = r) -> str:
                    v = r.get(f"train_{key}_windows_per_s")
                    return "-" if v is None else f"{v:,.0f}"
                train = (f"{w('fp32_b64')} / {w('fp32_b256')} | {w('bf16_b256')} | "
                         f"{w('fp16_b256')} ")
            l1, l2 = r["latency_b1"], r["latency_b256"]
            lines.append(f"| {r['model']} | {r['parameters']:,} | {r['flops_per_window'] / 1e6:.1f} "
                         f"| {train}| {l1['median_ms']:.2f} ({l1['p99_ms']:.2f}) | "
                         f"{l2['median_ms']:.2f} ({l2['p99_ms']:.2f}) | "
                         f"{r['infer_windows_per_s']:,.0f} |")
        lines.append("")
    if res.get("nccl"):
        lines.append(f"NCCL smoke check: {json.dumps(res['nccl'])}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("HARKIT_DATA_DIR", "../shared/data"))
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "harkit-gpu-cache"))
    ap.add_argument("--sections", nargs="*", default=["runs", "models", "nccl"],
                    choices=["runs", "models", "nccl"])
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--repeat", type=int, default=1, help="rounds over the recipes")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per throughput cell")
    ap.add_argument("--latency-repeats", type=int, default=100)
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16", "fp16"])
    ap.add_argument("--out", default="gpu.json")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: a dry run
    ns = ap.parse_args()
    global DEVICE
    DEVICE = ns.device
    if DEVICE == "cpu":
        res0: dict[str, Any] = {"env": {"gpu": "none (dry run)", "cuda": None, "cudnn": None,
                                        "machine": "", "date": time.strftime("%Y-%m-%d")}}
    elif not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 2
    else:
        res0 = {"env": environment()}
    res: dict[str, Any] = {**res0, "argv": sys.argv}
    print(json.dumps(res["env"]), flush=True)
    for section in ns.sections:
        if section == "runs":
            res["runs"] = section_runs(ns)
        elif section == "models":
            res["models"] = section_models(ns)
        else:
            res["nccl"] = section_nccl()
        Path(ns.out).write_text(json.dumps(res, indent=1))
    print(summary(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
