"""Issue 5's tracking-overhead benchmark: the same UCI HAR run (harcnn, 10 epochs, both phases)
with MLflow tracking on and off, as the CLI commands a user types.

Runs alternate (off, on, off, on, ...) so drift in machine speed hits both sides alike. The
"on" runs log to one local SQLite store (MLflow's default kind), created by a first untimed
run so the timed runs see an existing store, as every run after a user's first does; the
first run into a new store is timed separately and reported too. Each run's wall time is the
whole command (start-up, data loading, both phases, test evaluation, plots, and with tracking
the MLflow import, params, per-epoch metrics, artifacts and the pyfunc model).

    .venv/bin/python benchmarks/tracking.py --data-dir ../shared/data --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_section, machine
from uci_har import HARKIT, REPO


def timed(cmd: list[str]) -> float:
    print("$", shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harkit-tracking-bench-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    base = [HARKIT, "train", "--data-dir", args.data_dir, "--epochs", str(args.epochs),
            "--set", f"train.num_threads={args.threads}", "--run-root", str(work / "runs"),
            "--no-progress"]
    on = [*base, "--tracking-uri", uri]
    off = [*base, "--no-track"]
    first = timed(on)  # creates the store: MLflow's one-off table creation is in this one
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.repeat):
        times["off"].append(timed(off))
        times["on"].append(timed(on))
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["on"] / med["off"] - 1
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(f"{args.threads} torch threads"),
        "command_off": shlex.join(off), "command_on": shlex.join(on),
        "seconds": times, "median": med, "overhead": overhead,
        "first_run_new_store_seconds": first,
        "first_run_overhead": first / med["off"] - 1}
    out = REPO / "benchmarks" / "results" / f"tracking_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    fmt = ", ".join
    section = f"""
## MLflow tracking overhead, UCI HAR, harcnn, {args.epochs} epochs ({result['date']})

- machine: {result['machine']}
- command: `.venv/bin/python benchmarks/tracking.py --data-dir {args.data_dir} --repeat {args.repeat}`
  (each run: `harkit train --data-dir ... --epochs {args.epochs}` with `--no-track` or with
  `--tracking-uri sqlite:///.../mlflow.db`; alternating, whole-command wall time)
- tracking off: {fmt(f'{t:.1f}' for t in times['off'])} s (median {med['off']:.1f} s)
- tracking on (existing store): {fmt(f'{t:.1f}' for t in times['on'])} s (median {med['on']:.1f} s)
- **overhead {overhead:+.1%}** of the median (target: at most +5 %); the first run into a new
  store (MLflow creates its tables) took {first:.1f} s, {result['first_run_overhead']:+.1%}
- raw results: `{out.relative_to(REPO)}`
"""
    append_section(section)


if __name__ == "__main__":
    main()
