"""Fresh processes with and without `harkit.malloc.retain_freed_memory`, per model.

Each measurement is its own Python process (a fresh heap, as a `harkit predict` or
`harkit train` process starts): the model (random weights, UCI HAR shape 128 x 9) is prepared
as `harkit predict` prepares it (`optimize_for_inference`), then timed at batch 256 for
inference and for batch-64 Adam training steps, and the process's minor page faults over the
timed calls are counted. The two allocator settings alternate, ``--repeats`` processes each,
so a drift in machine speed hits both alike. Medians of the per-process medians are reported
and the section is appended to BENCHMARKS.md (``--no-append`` to only print).

    .venv/bin/python benchmarks/malloc.py --models harcnn lstm gru tinyhar deepconvlstm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import append_section, machine

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, resource, statistics, sys, time, warnings
warnings.simplefilter("ignore")
model, mode, threads, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "retain":
    from harkit.malloc import retain_freed_memory
    assert retain_freed_memory()
import torch
from harkit.inference.predictor import optimize_for_inference
from harkit.models import create_model
torch.set_num_threads(threads)
torch.manual_seed(0)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def timed(fn, n):
    for _ in range(3):
        fn()
    f0, ts = faults(), []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, (faults() - f0) / n
m = create_model(model, 9, 6, 128).eval()
fast = optimize_for_inference(m, 128, 9)
x = torch.randn(256, 128, 9)
with torch.inference_mode():
    infer_ms, infer_faults = timed(lambda: fast(x), calls)
m.train()
opt = torch.optim.Adam(m.parameters(), 1e-3)
xb, yb = torch.randn(64, 128, 9), torch.randint(0, 6, (64,))
loss_fn = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(m(xb), yb).backward()
    opt.step()
train_ms, train_faults = timed(step, calls)
print(json.dumps({"infer_ms": infer_ms, "infer_faults": infer_faults,
                  "train_ms": train_ms, "train_faults": train_faults}))
"""


def run(model: str, mode: str, threads: int, calls: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", WORKER, model, mode, str(threads), str(calls)],
                         capture_output=True, text=True, check=True, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["harcnn", "lstm", "gru", "tinyhar",
                                                    "deepconvlstm"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="processes per model and setting")
    ap.add_argument("--calls", type=int, default=15, help="timed calls per process")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    rows = []
    for model in a.models:
        got: dict[str, list[dict[str, float]]] = {"default": [], "retain": []}
        for _ in range(a.repeats):
            for mode in got:
                got[mode].append(run(model, mode, a.threads, a.calls))
        med = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for mode, rs in got.items()}
        d, r = med["default"], med["retain"]
        rows.append(
            f"| {model} | {d['infer_ms']:.1f} / {r['infer_ms']:.1f} ms "
            f"({d['infer_ms'] / r['infer_ms']:.2f}x) | {d['infer_faults']:,.0f} / "
            f"{r['infer_faults']:,.0f} | {d['train_ms']:.1f} / {r['train_ms']:.1f} ms "
            f"({d['train_ms'] / r['train_ms']:.2f}x) | {d['train_faults']:,.0f} / "
            f"{r['train_faults']:,.0f} |")
        print(rows[-1], flush=True)
    cmd = "python benchmarks/malloc.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        f"## Freed memory kept for reuse (glibc), fresh processes — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        f"- command: `{cmd.strip()}`",
        f"- machine: {machine(f'{a.threads} torch threads')}",
        f"- each cell: median over {a.repeats} fresh processes per setting (alternating) of "
        f"the median of {a.calls} timed calls; random weights, UCI HAR shape; inference = "
        "batch 256 through `optimize_for_inference` (as `harkit predict`); training = a "
        "batch-64 Adam step; faults = minor page faults per call",
        "- default = glibc's own thresholds; retain = `harkit.malloc.retain_freed_memory()`, "
        "which harkit's CLI applies at start-up", "",
        "| model | inference, default / retain | page faults per call | training step, "
        "default / retain | page faults per step |",
        "| --- | --- | --- | --- | --- |", *rows, ""])
    if a.no_append:
        print(text)
    else:
        append_section("\n" + text)


if __name__ == "__main__":
    main()
