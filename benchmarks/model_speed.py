"""Parameters and CPU inference throughput of every registered model.

For each (channels, classes, window) shape, every registered model is built with its default
hyperparameters and timed on random windows in eval mode: eager (``torch.inference_mode``) and
as a frozen TorchScript trace (what the Predictor runs). Timings take the median of several
repeats after a warm-up; the models are timed round-robin within each repeat, so a change in
the machine's load affects all of them alike. Prints a table and writes
``benchmarks/results/model_speed.json``.

    .venv/bin/python benchmarks/model_speed.py                            # all models
    .venv/bin/python benchmarks/model_speed.py --models deepconvlstm tinyhar --shapes 6,6,128
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from common import machine

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("model_speed")
# HAPT 6 / 12 activities, OPPORTUNITY gestures, Skoda, UCI HAR
DEFAULT_SHAPES = ["6,6,128", "6,12,128", "113,18,24", "30,11,24", "9,6,128"]


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        c, k, t = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--shapes: {text!r} is not channels,classes,window (e.g. 6,6,128)") from None
    return c, k, t


def traced(model: torch.nn.Module, x: torch.Tensor) -> tuple[Callable[..., Any] | None, str]:
    """A frozen TorchScript trace that reproduces the eager logits, or None and why not."""
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = torch.jit.freeze(torch.jit.trace(model, x[:8]))
            if not torch.allclose(fast(x), model(x), rtol=1e-4, atol=1e-4):
                return None, "trace differs from eager"
        return fast, ""
    except Exception as e:  # a model that cannot be traced is reported, not timed
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"


def time_round_robin(fns: dict[str, Callable[[], Any]], warmup: int, repeats: int
                     ) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn in every repeat."""
    with torch.inference_mode():
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                samples[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_shape(names: list[str], shape: tuple[int, int, int], batch: int, warmup: int,
                repeats: int) -> list[dict[str, Any]]:
    from harkit.models import create_model

    c, k, t = shape
    x = torch.randn(batch, t, c, generator=torch.Generator().manual_seed(0))
    rows: dict[str, dict[str, Any]] = {}
    fns: dict[str, Callable[[], Any]] = {}
    for name in names:
        row: dict[str, Any] = {"model": name, "channels": c, "classes": k, "window": t}
        rows[name] = row
        try:
            torch.manual_seed(0)
            model = create_model(name, c, k, t).eval()
            with torch.inference_mode():
                model(x[:2])
        except Exception as e:  # e.g. a model that needs fitting before it can predict
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
            continue
        row["parameters"] = sum(p.numel() for p in model.parameters())
        fns[f"{name}/eager"] = lambda m=model: m(x)
        fast, why = traced(model, x)
        if fast is None:
            row["traced_error"] = why
        else:
            fns[f"{name}/traced"] = lambda f=fast: f(x)
    seconds = time_round_robin(fns, warmup, repeats)
    for key, s in seconds.items():
        name, mode = key.split("/")
        rows[name][f"{mode}_windows_per_s"] = batch / s
        rows[name][f"{mode}_ms_per_batch"] = 1000 * s
    return list(rows.values())


def relative_to(rows: list[dict[str, Any]], reference: str) -> None:
    """Add parameter and speed ratios against ``reference`` (same shape) to every row."""
    ref = {(r["channels"], r["classes"], r["window"]): r for r in rows if r["model"] == reference}
    for r in rows:
        base = ref.get((r["channels"], r["classes"], r["window"]))
        if base is None or "parameters" not in r or "parameters" not in base:
            continue
        r[f"parameters_vs_{reference}"] = r["parameters"] / base["parameters"]
        for mode in ("eager", "traced"):
            key = f"{mode}_windows_per_s"
            if key in r and key in base:
                r[f"{mode}_speedup_vs_{reference}"] = r[key] / base[key]


def _fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def table(rows: list[dict[str, Any]], reference: str) -> str:
    head = (f"{'model':<18} {'shape C,K,T':<12} {'params':>10} {'x ref':>7} "
            f"{'eager win/s':>12} {'traced win/s':>13} {'eager x':>8} {'traced x':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = f"{r['channels']},{r['classes']},{r['window']}"
        if "error" in r:
            lines.append(f"{r['model']:<18} {shape:<12} not timed: {r['error']}")
            continue
        lines.append(
            f"{r['model']:<18} {shape:<12} {r['parameters']:>10,} "
            f"{_fmt(r, f'parameters_vs_{reference}', '.3f'):>7} "
            f"{_fmt(r, 'eager_windows_per_s', ',.0f'):>12} "
            f"{_fmt(r, 'traced_windows_per_s', ',.0f'):>13} "
            f"{_fmt(r, f'eager_speedup_vs_{reference}', '.2f'):>8} "
            f"{_fmt(r, f'traced_speedup_vs_{reference}', '.2f'):>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="*", help="registered names (default: every model)")
    ap.add_argument("--shapes", nargs="*", default=DEFAULT_SHAPES,
                    help="channels,classes,window per shape (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--reference", default="deepconvlstm", help="model the ratios compare with")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "model_speed.json")
    args = ap.parse_args(argv)

    from harkit.models import list_models

    torch.set_num_threads(args.threads)
    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; registered: {list_models()}")
    rows: list[dict[str, Any]] = []
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for text in args.shapes:
        t0 = time.perf_counter()
        rows += bench_shape(names, parse_shape(text), args.batch, args.warmup, args.repeats)
        log.info("shape %s: %d models in %.0f s", text, len(names), time.perf_counter() - t0)
    relative_to(rows, args.reference)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "load_average_after": load,
        "batch": args.batch, "threads": args.threads, "warmup": args.warmup,
        "repeats": args.repeats, "statistic": "median", "reference": args.reference,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['date']} | {result['machine']} | batch {args.batch}, median of "
          f"{args.repeats} after {args.warmup} warm-up calls; load average {load}")
    print(table(rows, args.reference))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
