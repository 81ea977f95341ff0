"""UCI HAR accuracy / training-time benchmark and `harkit predict` throughput.

Runs each model's recipe as the exact `harkit train` command shown in the table (in a
subprocess, so what is timed is what a user runs), then times `harkit predict` on the full
test set written out as a CSV of raw samples. Appends a dated section to BENCHMARKS.md.

    .venv/bin/python benchmarks/uci_har.py --data-dir ../shared/data            # all models
    .venv/bin/python benchmarks/uci_har.py --data-dir ../shared/data --models harcnn
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import machine

REPO = Path(__file__).resolve().parents[1]
HARKIT = str(Path(sys.executable).parent / "harkit")

# One recipe per registered model: the overrides on top of harkit's defaults (which are
# harcnn's recipe: select the epoch on 4 validation subjects, then refit on all 21). The
# recurrent models skip the refit and keep epoch counts that hold each near 5 minutes on a
# 2-core CPU.
RNN = ["train.batch_size=128", "train.lr=2e-3", "train.grad_clip=1.0", "train.refit=false"]
RECIPES: dict[str, list[str]] = {
    "harcnn": [],
    "lstm": ["train.epochs=25", *RNN],
    "gru": ["train.epochs=20", *RNN],
    "bilstm": ["train.epochs=8", *RNN],
    "lstm-relu": ["train.epochs=80", *RNN[:1], "train.lr=3e-3", *RNN[2:]],
    "deepconvlstm": ["train.epochs=6", "train.batch_size=128", "train.lr=1e-3",
                     "train.grad_clip=1.0", "train.refit=false"],
}
SEEDS = {"harcnn": [0, 1, 2]}  # the default model is run with several seeds


def final_model(run: Path, info: dict[str, object]) -> str:
    """How the evaluated model was obtained, in words."""
    from harkit.runs import RunDir

    cfg = RunDir(run).config()
    if "refit_epochs" in info:
        subjects = info["refit_subjects"]
        assert isinstance(subjects, list)
        return f"refit on all {len(subjects)} training subjects, {info['refit_epochs']} epochs"
    n_val = len(cfg.data.val_subjects or [])
    epoch = info["epochs"] if cfg.train.select == "last" else info["best_epoch"]
    return f"{cfg.train.select} epoch ({epoch}) on {21 - n_val} subjects"


def run_train(model: str, data_dir: str, run_root: Path, seed: int = 0) -> dict[str, object]:
    name = f"{model}-seed{seed}"
    args = ["train", "--model", model, "--data-dir", data_dir, "--run-root", str(run_root),
            "--name", name, "--no-progress"]
    for o in RECIPES[model] + ([f"train.seed={seed}"] if seed else []):
        args += ["--set", o]
    shown = "harkit " + " ".join(shlex.quote(a) for a in args
                                 if a not in ("--run-root", str(run_root), "--name", name,
                                              "--no-progress"))
    t0 = time.perf_counter()
    proc = subprocess.run([HARKIT, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{shown} failed:\n{proc.stdout}\n{proc.stderr}")
    run = run_root / name
    metrics = json.loads((run / "metrics.json").read_text())
    info = json.loads((run / "run.json").read_text())
    return {"model": model, "seed": seed, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "train_seconds": info["train_seconds"], "wall_seconds": wall,
            "epochs": info["epochs"], "best_epoch": info["best_epoch"],
            "best_val_f1": info["best_val_macro_f1"], "n_parameters": info["n_parameters"],
            "final": final_model(run, info),
            "recall": {c: m["recall"] for c, m in metrics["per_class"].items()},
            "command": shown, "run": str(run)}


def bench_predict(run: Path, data_dir: str, workdir: Path) -> dict[str, Any]:
    """Time `harkit predict` on the full test set written as one CSV of raw samples."""
    from harkit.data import load_dataset
    from harkit.inference import Predictor

    ds = load_dataset("uci-har", data_dir=data_dir)
    test = ds.splits["test"]
    # Windows laid end to end: predicting with hop = 128 gives back exactly the test windows.
    signal = test.X.reshape(-1, test.X.shape[2])  # (N, T, C) -> (N*T, C), time order kept
    csv = workdir / "uci_test_samples.csv"
    np.savetxt(csv, signal, delimiter=",", header=",".join(ds.channels), comments="",
               fmt="%.7g")
    pred = Predictor.from_run(run)
    pred.predict_csv(csv, hop=128)  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        rows = pred.predict_csv(csv, hop=128)
        times.append(time.perf_counter() - t0)
    assert len(rows) == len(test)
    acc = float(np.mean([pred.classes.index(r.label) for r in rows] == test.y))
    t0 = time.perf_counter()
    model_only = pred.predict_proba(test.X)
    t_model = time.perf_counter() - t0
    del model_only
    t0 = time.perf_counter()
    proc = subprocess.run([HARKIT, "predict", str(run), str(csv), "--hop", "128",
                           "--output", str(workdir / "pred.csv")], capture_output=True, text=True)
    t_cli = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return {"windows": len(test), "csv_windows_per_s": len(test) / min(times),
            "model_windows_per_s": len(test) / t_model, "cli_total_seconds": t_cli,
            "cli_reported": proc.stderr.strip().splitlines()[-1], "accuracy_via_csv": acc}


def predict_text(pred: dict[str, Any], model: str) -> str:
    return (
        f"`harkit predict` on the full test set ({pred['windows']} windows written as one CSV "
        f"of {pred['windows'] * 128:,} raw samples, hop 128, model {model}): "
        f"{pred['csv_windows_per_s']:,.0f} windows/s including CSV parsing "
        f"(best of 3, in-process); model alone {pred['model_windows_per_s']:,.0f} windows/s; "
        f"the CLI command took {pred['cli_total_seconds']:.2f} s end to end including "
        f"start-up and model load (its own report: `{pred['cli_reported']}`). Accuracy of "
        f"the CSV path: {pred['accuracy_via_csv']:.2%} (same windows as the table)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("HARKIT_DATA_DIR", "../shared/data"))
    ap.add_argument("--models", nargs="*", default=list(RECIPES))
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    ap.add_argument("--run-root", default=None, help="keep runs here (default: a temp dir)")
    ap.add_argument("--seeds", nargs="*", type=int, default=None,
                    help="seeds for every model (default: 0, and 0 1 2 for harcnn)")
    ap.add_argument("--predict-run", default=None,
                    help="only time `harkit predict` with this run's model")
    args = ap.parse_args()
    root = Path(args.run_root or tempfile.mkdtemp(prefix="harkit-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.predict_run:
        pred = bench_predict(Path(args.predict_run), args.data_dir, root)
        text = predict_text(pred, Path(args.predict_run).name)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(f"\n## `harkit predict` throughput, UCI HAR test set — "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                    f"- command: `python benchmarks/uci_har.py --data-dir ../shared/data "
                    f"--predict-run RUN` (RUN: the run directory of a harcnn row above)\n"
                    f"- machine: {machine()}\n\n{text}\n")
        print(text)
        return
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    for m in args.models:
        for seed in args.seeds if args.seeds is not None else SEEDS.get(m, [0]):
            print(f"training {m} (seed {seed}) ...", flush=True)
            r = run_train(m, args.data_dir, root, seed)
            print(json.dumps(r, indent=1), flush=True)
            results.append(r)
    best = max(results, key=lambda r: float(r["macro_f1"]))  # type: ignore[arg-type]
    pred = bench_predict(Path(str(best["run"])), args.data_dir, root)
    print(json.dumps(pred, indent=1))
    cmd = "python benchmarks/uci_har.py --data-dir ../shared/data" + (
        "" if args.models == list(RECIPES) else " --models " + " ".join(args.models)) + (
        "" if args.seeds is None else " --seeds " + " ".join(map(str, args.seeds)))
    lines = [
        f"\n## UCI HAR, official test split, raw inertial signals — {started}\n",
        f"- command: `{cmd}`",
        f"- machine: {machine()}",
        "- validation: 4 training subjects drawn with the run's seed (never the test split); "
        "test metrics are of the final model, obtained as the 'final model' column says\n",
        "| model | seed | test accuracy | macro F1 | sitting / standing recall | training time | "
        "epochs | final model | parameters | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rec = r["recall"]
        assert isinstance(rec, dict)
        lines.append(
            f"| {r['model']} | {r['seed']} | {float(r['accuracy']):.2%} | {float(r['macro_f1']):.4f} | "  # type: ignore[arg-type]
            f"{rec['SITTING']:.2f} / {rec['STANDING']:.2f} | {float(r['train_seconds']):.0f} s | "  # type: ignore[arg-type]
            f"{r['epochs']} | {r['final']} | {int(r['n_parameters']):,} | `{r['command']}` |"  # type: ignore[call-overload]
        )
    for m in args.models:
        rows = [r for r in results if r["model"] == m]
        if len(rows) > 1:
            acc = np.array([float(r["accuracy"]) for r in rows])  # type: ignore[arg-type]
            f1 = np.array([float(r["macro_f1"]) for r in rows])  # type: ignore[arg-type]
            lines.append(f"| {m} | mean ± std of {len(rows)} | {acc.mean():.2%} ± "
                         f"{acc.std():.2%} | {f1.mean():.4f} ± {f1.std():.4f} | | | | | | |")
    lines += ["", predict_text(pred, str(best["model"]))]
    with open(args.out, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / f"uci_har_{time.strftime('%Y%m%d-%H%M%S')}.json"
     ).write_text(json.dumps({"results": results, "predict": pred, "machine": machine()},
                             indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
