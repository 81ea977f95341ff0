"""Inference forward paths against their predecessors, interleaved in one process.

- ``gru``: the GRU classifier's scripted wavefront forward (``GRUInference``, what
  `harkit predict` runs) against the frozen TorchScript trace of the same model through
  PyTorch's ``nn.GRU`` (what it ran before), at batch 256 and batch 1;
- ``tinyhar``: TinyHAR traced and frozen with its written-out attention softmax
  (``softmax_last``) against the same weights traced with ``torch.softmax``; and the two
  softmax kernels alone on the attention maps' shape (2,048 x 9 x 9 for 256 UCI HAR windows).

Random weights (the speed does not depend on them), UCI HAR (128 x 9) and HAPT (128 x 6)
shapes. Each pair is called alternately ``--rounds`` times; medians are reported, so a drift in
machine speed hits both alike. Appends a section to BENCHMARKS.md unless ``--no-append``.

    .venv/bin/python benchmarks/inference_paths.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

from common import append_section, machine
from harkit.inference.predictor import optimize_for_inference
from harkit.models import create_model, tinyhar

Call = tuple[Callable[[torch.Tensor], object], torch.Tensor]


def alternate(pair: dict[str, Call], rounds: int) -> dict[str, float]:
    """Median milliseconds of each ``fn(x)``, called alternately after warm-up."""
    for fn, x in pair.values():
        for _ in range(5):
            fn(x)
    times: dict[str, list[float]] = {k: [] for k in pair}
    for _ in range(rounds):
        for k, (fn, x) in pair.items():
            t0 = time.perf_counter()
            fn(x)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def frozen_trace(model: torch.nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(model, x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    with torch.inference_mode():
        for channels, shape in ((9, "UCI HAR"), (6, "HAPT")):
            torch.manual_seed(0)
            gru = create_model("gru", channels, 6, 128).eval()
            x = torch.randn(256, 128, channels)
            new = optimize_for_inference(gru, 128, channels)
            old = frozen_trace(gru, x)
            assert torch.allclose(new(x), old(x), atol=1e-5)
            for b in (256, 1):
                xb = x[:b].clone()
                t = alternate({"new": (new, xb), "old": (old, xb)},
                              a.rounds if b > 1 else 5 * a.rounds)
                rows.append(f"| gru, {shape}, batch {b} | wavefront (GRUInference, scripted) "
                            f"| {t['new']:.2f} ms | trace through nn.GRU | {t['old']:.2f} ms "
                            f"| {t['old'] / t['new']:.2f}x |")
                print(rows[-1], flush=True)

            torch.manual_seed(0)
            th = create_model("tinyhar", channels, 6, 128).eval()
            fast = frozen_trace(th, x)
            written = tinyhar.softmax_last
            tinyhar.softmax_last = lambda s: torch.softmax(s, dim=-1)  # the kernel it replaced
            try:
                slow = frozen_trace(th, x)
            finally:
                tinyhar.softmax_last = written
            assert torch.allclose(fast(x), slow(x), atol=1e-5)
            t = alternate({"new": (fast, x), "old": (slow, x)}, a.rounds)
            rows.append(f"| tinyhar, {shape}, batch 256 | written-out softmax | "
                        f"{t['new']:.2f} ms | torch.softmax | {t['old']:.2f} ms | "
                        f"{t['old'] / t['new']:.2f}x |")
            print(rows[-1], flush=True)
        maps = torch.randn(256 * 8, 9, 9)
        t = alternate({"new": (tinyhar.softmax_last, maps),
                       "old": (lambda s: torch.softmax(s, dim=-1), maps)}, 5 * a.rounds)
        rows.append(f"| softmax alone, 2,048 x 9 x 9 | softmax_last | {t['new']:.3f} ms | "
                    f"torch.softmax | {t['old']:.3f} ms | {t['old'] / t['new']:.2f}x |")
    cmd = "python benchmarks/inference_paths.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "", f"## Inference forward paths against their predecessors — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        f"- command: `{cmd.strip()}`", f"- machine: {machine()}",
        f"- each pair called alternately ({a.rounds} rounds at batch 256, {5 * a.rounds} at "
        "batch 1), medians; random weights; outputs checked equal (atol 1e-5)", "",
        "| model, input | new | time | before | time | speed-up |",
        "| --- | --- | --- | --- | --- | --- |", *rows, ""])
    if a.no_append:
        print(text)
    else:
        append_section(text)

if __name__ == "__main__":
    main()
