"""Fuzz every dataset loader and the config parser with generated hostile inputs.

Each input is a small valid seed copy of a dataset (see ``tests/test_fuzz_files.py``) with one
file mutated (truncated, columns dropped or added, non-numeric / NaN / huge values, duplicated
header or data lines, wrong encodings, byte flips, ...) in a folder whose name has spaces or
non-ASCII characters, or a config file and ``--set`` overrides. A load must succeed with finite
data or raise a HarkitError naming the file (or field), leaving nothing in the cache.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/fuzz.py --n 10000 --seed 0

Counts per loader (inputs, successes, harkit errors, uncaught exceptions with a sample
traceback, errors that do not name the file, failed loads that wrote to the cache, seconds) go
to ``benchmarks/results/fuzz_files_<date>.json`` (or ``--out``) and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.test_fuzz_files import (  # noqa: E402
    BINARY_MUTATIONS,
    MUTATIONS,
    TARGETS,
    Outcome,
    Seeds,
    config_input,
    run_config,
    run_input,
)

from common import machine  # noqa: E402

# Relative share of the inputs per target (slower loaders get fewer).
WEIGHTS = {"pamap2": 0.5, "opportunity": 0.5, "skoda": 0.7, "config": 2.0}


def _row() -> dict[str, Any]:
    return {"inputs": 0, "ok": 0, "harkit_errors": 0, "uncaught": 0, "missing_file_name": 0,
            "cached_on_failure": 0, "non_finite_output": 0, "seconds": 0.0,
            "uncaught_types": Counter(), "samples": [], "unnamed_samples": [],
            "mutations": Counter()}


def _record(row: dict[str, Any], out: Outcome, what: str) -> None:
    row["inputs"] += 1
    if out.kind == "ok":
        row["ok"] += 1
        if out.bad_output:
            row["non_finite_output"] += 1
            if len(row["samples"]) < 5:
                row["samples"].append({"input": what, "error": out.bad_output})
    elif out.kind == "harkit":
        row["harkit_errors"] += 1
        if not out.names_file:
            row["missing_file_name"] += 1
            if len(row["unnamed_samples"]) < 5:
                row["unnamed_samples"].append({"input": what, "error": out.error})
        row["cached_on_failure"] += int(out.cached_on_failure)
    else:
        row["uncaught"] += 1
        kind = out.error.split(":", 1)[0]
        if row["uncaught_types"][kind] == 0 and len(row["samples"]) < 10:
            row["samples"].append({"input": what, "error": out.error, "traceback": out.trace})
        row["uncaught_types"][kind] += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="generated inputs in all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON results file")
    ap.add_argument("--targets", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--timeout", type=int, default=20, help="seconds before a load is a hang")
    args = ap.parse_args(argv)

    logging.disable(logging.WARNING)
    names = [t for t in (args.targets.split(",") if args.targets else [*TARGETS, "config"])]
    weights = [WEIGHTS.get(t, 1.0) for t in names]
    per = {t: max(1, round(args.n * w / sum(weights))) for t, w in zip(names, weights, strict=True)}
    rng = random.Random(args.seed)
    seeds = Seeds()
    rows: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    try:
        for name in names:
            row = rows[name] = _row()
            t0 = time.perf_counter()
            if name != "config":
                try:
                    seeds.files(name)
                except BaseException as e:
                    skipped[name] = str(e)
                    del rows[name]
                    continue
            for _ in range(per[name]):
                s = rng.getrandbits(32)
                if name == "config":
                    text, overrides = config_input(random.Random(s))
                    with tempfile.TemporaryDirectory(dir=seeds.base) as d:
                        out = run_config(text, overrides, Path(d))
                    what = f"config {text!r:.200} {overrides}"
                    row["mutations"]["config"] += 1
                else:
                    mutation = random.Random(s).choice(
                        BINARY_MUTATIONS if TARGETS[name].binary else sorted(MUTATIONS))
                    out, rel = run_input(seeds, name, mutation, s, args.timeout)
                    what = f"{name} {mutation} seed={s} file={rel}"
                    row["mutations"][mutation] += 1
                _record(row, out, what)
            row["seconds"] = round(time.perf_counter() - t0, 2)
            print(f"{name}: {row['inputs']} inputs, {row['uncaught']} uncaught, "
                  f"{row['seconds']} s", file=sys.stderr)
    finally:
        seeds.close()
    total = {k: sum(r[k] for r in rows.values()) for k in
             ("inputs", "ok", "harkit_errors", "uncaught", "missing_file_name",
              "cached_on_failure", "non_finite_output")}
    total["seconds"] = round(time.perf_counter() - start, 1)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    out_path = args.out or ROOT / "benchmarks" / "results" / f"fuzz_files_{stamp}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/fuzz.py " + " ".join(argv or sys.argv[1:]),
              "machine": machine("1 thread (OMP_NUM_THREADS=1)"), "seed": args.seed,
              "total": total, "skipped": skipped,
              "loaders": {k: {**v, "uncaught_types": dict(v["uncaught_types"]),
                              "mutations": dict(v["mutations"])} for k, v in rows.items()}}
    out_path.write_text(json.dumps(result, indent=2))

    cols = ["inputs", "ok", "harkit_errors", "uncaught", "missing_file_name",
            "cached_on_failure", "non_finite_output", "seconds"]
    lines = ["| loader | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for k, v in [*rows.items(), ("**total**", total)]:
        lines.append(f"| {k} | " + " | ".join(str(v[c]) for c in cols) + " |")
    print("\n".join(lines))
    for k, v in rows.items():
        for smp in v["samples"][:3]:
            print(f"\n{k}: {smp['input']}\n  {smp['error']}\n{smp.get('traceback', '')}")
        for smp in v["unnamed_samples"][:2]:
            print(f"\n{k} (no file name): {smp['input']}\n  {smp['error']}")
    print(f"\nresults: {out_path}", file=sys.stderr)
    return 1 if total["uncaught"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
