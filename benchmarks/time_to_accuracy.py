"""Time to a target accuracy on UCI HAR's official test split, data loading included.

Each recipe is a config file fixed in advance (nothing is chosen on the test split): the
benchmark runs ``harkit train --config RECIPE`` as a fresh process and times it from launch to
exit, so Python start-up, imports, reading the dataset, training, the single test evaluation
and the plots all count. The test accuracy is read from the run's ``metrics.json``. Recipes
run round-robin ``--repeat`` times so a drift in machine speed affects all of them alike.

    .venv/bin/python benchmarks/time_to_accuracy.py --data-dir ../shared/data
    .venv/bin/python benchmarks/time_to_accuracy.py --recipes configs/fast/minirocket-uci-har.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import append_section, machine

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPES = ["configs/fast/minirocket-uci-har.yaml", "configs/fast/harcnn-uci-har.yaml"]


def run_recipe(recipe: Path, data_dir: str, root: Path, threads: int) -> dict[str, object]:
    """One timed ``harkit train`` process; its wall time, test scores and training time."""
    name = f"{recipe.stem}-{time.strftime('%H%M%S')}"
    cmd = [str(REPO / ".venv" / "bin" / "harkit"), "train", "--config", str(recipe),
           "--data-dir", data_dir, "--run-root", str(root), "--name", name, "--no-track",
           "--no-progress", "--set", f"train.num_threads={threads}"]
    env = {**os.environ, "HARKIT_TRACKING": "0"}
    launched = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"recipe": str(recipe), "error": proc.stderr.strip().splitlines()[-1:]}
    run = root / name
    metrics = json.loads((run / "metrics.json").read_text())
    info = json.loads((run / "run.json").read_text())
    # the final model exists once its checkpoint is written (atomically, by rename): launch to
    # that moment is start-up, data loading, training and validation, before the test pass
    final = max(p.stat().st_mtime for p in (run / "checkpoints").glob("*.pt"))
    return {"recipe": str(recipe.relative_to(REPO)) if recipe.is_relative_to(REPO) else str(recipe),
            "model": info.get("model"), "wall_seconds": wall,
            "seconds_to_model": final - launched,
            "train_seconds": info.get("train_seconds"), "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"], "command": " ".join(cmd[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("HARKIT_DATA_DIR", "../shared/data"))
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    recipes = [(REPO / r) if not Path(r).is_absolute() else Path(r) for r in args.recipes]
    root = Path(tempfile.mkdtemp(prefix="harkit-tta-"))
    rows: list[dict[str, object]] = []
    try:
        for i in range(args.repeat):
            for recipe in recipes:
                r = run_recipe(recipe, args.data_dir, root, args.threads)
                r["round"] = i + 1
                print(json.dumps(r), flush=True)
                rows.append(r)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    stamp = datetime.now(timezone.utc)
    out = REPO / "benchmarks" / "results" / f"time_to_accuracy_{stamp:%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"machine": machine(f"{args.threads} torch threads"),
                               "date": stamp.isoformat(), "rows": rows}, indent=1))
    lines = [f"\n## Time to {args.target:.0%} on UCI HAR's official test split, data loading "
             f"included ({stamp:%Y-%m-%d %H:%M} UTC)\n",
             f"- command: `.venv/bin/python benchmarks/time_to_accuracy.py "
             f"{' '.join(sys.argv[1:])}`",
             f"- machine: {machine(f'{args.threads} torch threads')}",
             "- each row: one `harkit train --config RECIPE` process. *To model*: from launch "
             "until the final checkpoint is written (start-up, dataset read, training, "
             "validation); *whole command*: launch to exit (plus the test evaluation, its "
             f"report and plots). Recipes alternate, {args.repeat} rounds; results: "
             f"`{out.relative_to(REPO)}`\n",
             "| recipe | model | to model, median (runs) | whole command, median (runs) | "
             f"training time, median | test accuracy | macro F1 | reaches {args.target:.0%} |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for recipe in recipes:
        mine = [r for r in rows if str(r["recipe"]).endswith(recipe.name) and "error" not in r]
        if not mine:
            lines.append(f"| {recipe.name} | failed | | | | | |")
            continue
        walls = [float(r["wall_seconds"]) for r in mine]  # type: ignore[arg-type]
        tms = [float(r["seconds_to_model"]) for r in mine]  # type: ignore[arg-type]
        train = [float(r["train_seconds"]) for r in mine]  # type: ignore[arg-type]
        accs = sorted({round(float(r["accuracy"]), 4) for r in mine})  # type: ignore[arg-type]
        f1s = sorted({round(float(r["macro_f1"]), 4) for r in mine})  # type: ignore[arg-type]
        ok = all(float(r["accuracy"]) >= args.target for r in mine)  # type: ignore[arg-type]
        lines.append(
            f"| `{mine[0]['recipe']}` | {mine[0]['model']} | {statistics.median(tms):.1f} s "
            f"({', '.join(f'{w:.1f}' for w in tms)}) | {statistics.median(walls):.1f} s "
            f"({', '.join(f'{w:.1f}' for w in walls)}) | {statistics.median(train):.1f} s | "
            f"{' / '.join(f'{a:.2%}' for a in accs)} | {' / '.join(f'{f:.4f}' for f in f1s)} | "
            f"{'yes' if ok else 'no'} |")
    text = "\n".join(lines) + "\n"
    if args.no_append:
        print(text)
    else:
        append_section(text)


if __name__ == "__main__":
    main()
