"""Skeleton action recognition benchmarks (issue 4's numbers), run as `harkit train` commands.

Each recipe is one exact `harkit train` command line (dataset x skeleton model x settings),
run in a subprocess on one CPU thread so what is timed is what a user runs. The run directory
(runs/benchmarks/skeleton-<recipe>-<date>) holds everything; this script collects from it the
validation score the settings were chosen on (macro F1 of the selected epoch on the validation
subjects carved from the training subjects), the test accuracy and macro F1 of the final model
(refit on all training subjects), the parameter count and the training time (both phases).

Protocols (the datasets' own splits; the test split is used once, at the end):

- ``natops``: UEA split 180 / 180; every case is its own "subject", so 36 training cases are
  held out for validation (``data.n_val_subjects=36``).
- ``utkinect``: segments, cross-subject (odd subjects train, even test); 1 of the 5 training
  subjects validates.
- ``msr-action3d``: all 20 actions, cross-subject (1 3 5 7 9 train, 2 4 6 8 10 test); 1 of the
  5 training subjects validates.
- ``penn-action``: official split 1258 / 1068 from the 2D keypoints (x, y, visibility); every
  clip is its own "subject", 150 training clips validate.

Results accumulate in benchmarks/results/skeleton.json (one entry per recipe, the latest run
replacing an earlier one) and the markdown table of every recipe there is printed, ready for
BENCHMARKS.md.

    .venv/bin/python benchmarks/skeleton.py --data-dir ../shared/data --recipes natops-stgcn
    .venv/bin/python benchmarks/skeleton.py --recipes 'natops-*'   # glob patterns work
    .venv/bin/python benchmarks/skeleton.py --list
    .venv/bin/python benchmarks/skeleton.py --table                # print the table only
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from uci_har import HARKIT, REPO

THREADS = "train.num_threads=1"
# dataset -> (target test accuracy of issue 4, protocol overrides shared by its recipes, note)
DATASETS: dict[str, tuple[float, list[str], str]] = {
    "natops": (0.95, ["data.n_val_subjects=36"], "NATOPS (UEA split 180 / 180)"),
    "utkinect": (0.95, ["data.options.mode=segments", "data.n_val_subjects=1"],
                 "UTKinect-Action3D segments, cross-subject (odd / even subjects)"),
    "msr-action3d": (0.92, ["data.n_val_subjects=1"],
                     "MSR Action3D, 20 actions, cross-subject (1 3 5 7 9 / 2 4 6 8 10)"),
    "penn-action": (0.92, ["data.n_val_subjects=150"],
                    "Penn Action 2D keypoints, official split 1258 / 1068"),
}
L32 = ["data.options.length=32"]
# stronger skeleton augmentation than harkit's default (scale 0.1, jitter 0.05, rotation 10 deg)
STRONG = ["train.augment.rotate_deg=30", "train.augment.scale=0.2", "train.augment.shear=0.3",
          "train.augment.time_crop=0.2", "train.augment.joint_dropout=0.05"]
# recipe -> (dataset, model, overrides, note). Every recipe that was run is kept here, also
# the ones that lost, so the table stays an honest record of the search.
RECIPES: dict[str, tuple[str, str, list[str], str]] = {
    # ---- NATOPS: 51 steps, 8 arm joints
    "natops-stgcn": ("natops", "stgcn", ["train.epochs=40"], "defaults, 40 epochs"),
    "natops-two-stream-rnn": ("natops", "two-stream-rnn", ["train.epochs=120"],
                              "defaults, 120 epochs"),
    "natops-pose-lstm": ("natops", "pose-lstm", ["train.epochs=120"], "defaults, 120 epochs"),
    # ---- UTKinect: segments of 5-40 frames at 15 Hz, resampled to 32 frames
    "utkinect-stgcn": ("utkinect", "stgcn", ["data.options.length=32", "train.epochs=60"],
                       "length 32, 60 epochs"),
    "utkinect-two-stream-rnn": ("utkinect", "two-stream-rnn",
                                ["data.options.length=32", "train.epochs=120"],
                                "length 32, 120 epochs"),
    "utkinect-pose-lstm": ("utkinect", "pose-lstm", ["data.options.length=32",
                                                     "train.epochs=120"],
                           "length 32, 120 epochs"),
    # second round, after the first three: align each segment to its first frame's body frame
    # (view invariance) and / or stronger skeleton augmentation
    "utkinect-pose-lstm-align": ("utkinect", "pose-lstm", [*L32, "data.options.align=true",
                                                           "train.epochs=120"],
                                 "length 32, aligned, 120 epochs"),
    "utkinect-pose-lstm-aug": ("utkinect", "pose-lstm", [*L32, *STRONG, "train.epochs=120"],
                               "length 32, strong augmentation, 120 epochs"),
    "utkinect-pose-lstm-align-aug": ("utkinect", "pose-lstm",
                                     [*L32, "data.options.align=true", *STRONG,
                                      "train.epochs=120"],
                                     "length 32, aligned, strong augmentation, 120 epochs"),
    "utkinect-two-stream-rnn-align": ("utkinect", "two-stream-rnn",
                                      [*L32, "data.options.align=true", "train.epochs=120"],
                                      "length 32, aligned, 120 epochs"),
    "utkinect-two-stream-rnn-align-aug": ("utkinect", "two-stream-rnn",
                                          [*L32, "data.options.align=true", *STRONG,
                                           "train.epochs=120"],
                                          "length 32, aligned, strong augmentation, 120 epochs"),
    # pose-lstm's best validation score: aligned and strongly augmented
    "utkinect-stgcn-align-aug": ("utkinect", "stgcn", [*L32, "data.options.align=true",
                                                       *STRONG, "train.epochs=60"],
                                 "length 32, aligned, strong augmentation, 60 epochs"),
    # ---- MSR Action3D: sequences of 13-255 frames at 15 fps, resampled to 32 frames
    "msr-action3d-stgcn": ("msr-action3d", "stgcn", ["data.options.length=32",
                                                     "train.epochs=50"],
                           "length 32, 50 epochs"),
    "msr-action3d-two-stream-rnn": ("msr-action3d", "two-stream-rnn",
                                    ["data.options.length=32", "train.epochs=120"],
                                    "length 32, 120 epochs"),
    "msr-action3d-pose-lstm": ("msr-action3d", "pose-lstm", ["data.options.length=32",
                                                             "train.epochs=120"],
                               "length 32, 120 epochs"),
    # second round, as for UTKinect
    "msr-action3d-pose-lstm-align": ("msr-action3d", "pose-lstm",
                                     [*L32, "data.options.align=true", "train.epochs=120"],
                                     "length 32, aligned, 120 epochs"),
    "msr-action3d-pose-lstm-aug": ("msr-action3d", "pose-lstm",
                                   [*L32, *STRONG, "train.epochs=120"],
                                   "length 32, strong augmentation, 120 epochs"),
    "msr-action3d-pose-lstm-align-aug": ("msr-action3d", "pose-lstm",
                                         [*L32, "data.options.align=true", *STRONG,
                                          "train.epochs=120"],
                                         "length 32, aligned, strong augmentation, 120 epochs"),
    "msr-action3d-two-stream-rnn-align-aug": ("msr-action3d", "two-stream-rnn",
                                              [*L32, "data.options.align=true", *STRONG,
                                               "train.epochs=120"],
                                              "length 32, aligned, strong augmentation, "
                                              "120 epochs"),
    # alignment helped pose-lstm's validation score, strong augmentation did not
    "msr-action3d-stgcn-align": ("msr-action3d", "stgcn",
                                 [*L32, "data.options.align=true", "train.epochs=50"],
                                 "length 32, aligned, 50 epochs"),
    # hammer, hand catch and draw x are the errors: more frames (no refit, for time)
    "msr-action3d-stgcn-len64": ("msr-action3d", "stgcn", ["data.options.length=64",
                                                           "train.epochs=50",
                                                           "train.refit=false"],
                                 "length 64, 50 epochs, no refit"),
    # ---- Penn Action: clips of 18-663 frames, resampled to 32; x, y, visibility per joint
    "penn-action-pose-lstm": ("penn-action", "pose-lstm", ["data.options.length=32",
                                                           "train.epochs=60"],
                              "length 32, 60 epochs"),
    "penn-action-two-stream-rnn": ("penn-action", "two-stream-rnn",
                                   ["data.options.length=32", "train.epochs=60"],
                                   "length 32, 60 epochs"),
    # ST-GCN costs about 15 s an epoch here on one thread: no refit (the model of the
    # selection phase, trained on 1108 clips, is the final one)
    "penn-action-stgcn": ("penn-action", "stgcn", ["data.options.length=32",
                                                   "train.epochs=30", "train.refit=false"],
                          "length 32, 30 epochs, no refit"),
}


def command(recipe: str, data_dir: str, run_root: Path, name: str) -> list[str]:
    dataset, model, overrides, _ = RECIPES[recipe]
    cmd = [HARKIT, "train", "--dataset", dataset, "--model", model, "--data-dir", data_dir,
           "--run-root", str(run_root), "--name", name, "--no-progress"]
    for o in [*DATASETS[dataset][1], *overrides, THREADS]:
        cmd += ["--set", o]
    return cmd


def collect(run_dir: Path) -> dict[str, Any]:
    """The scores of a finished run directory."""
    info = json.loads((run_dir / "run.json").read_text())
    test = json.loads((run_dir / "metrics.json").read_text())
    val = json.loads((run_dir / "metrics_val.json").read_text())
    return {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
            "val_windows": val["n_windows"], "test_windows": test["n_windows"],
            "best_val_macro_f1": info.get("best_val_macro_f1"),
            "parameters": info["n_parameters"], "train_seconds": info["train_seconds"],
            "epochs": info["epochs"], "refit_epochs": info.get("refit_epochs")}


def run(recipe: str, data_dir: str, run_root: Path) -> dict[str, Any]:
    name = f"skeleton-{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = command(recipe, data_dir, run_root, name)
    shown = "harkit " + shlex.join(cmd[1:])
    print(f"$ {shown}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    dataset, model, _, note = RECIPES[recipe]
    return {"recipe": recipe, "dataset": dataset, "model": model, "note": note,
            "command": shown, "wall_s": wall, "run_dir": str(run_root / name),
            **collect(run_root / name if run_root.is_absolute() else REPO / run_root / name),
            "machine": machine("1 torch thread"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """One table per dataset, in DATASETS order; the row chosen on validation is marked."""
    rows = list(results.values())
    dates = sorted(r["date"] for r in rows)
    lines = [f"## Skeleton models on the skeleton datasets — {dates[0]} to {dates[-1]}", "",
             "- command: `python benchmarks/skeleton.py --data-dir ../shared/data --recipes "
             "RECIPE` (each row's exact `harkit train` command is under the table)",
             f"- machine: {rows[0]['machine']}; one training process at a time",
             "- protocol: the dataset's own train / test split; settings chosen on the macro F1 "
             "of validation subjects carved from the training subjects (never the test split), "
             "then (unless the row says otherwise) the final model is refit on all training "
             "subjects for the same number of epochs and tested once; training time counts both "
             "phases", ""]
    for dataset, (target, shared, note) in DATASETS.items():
        rs = [r for r in rows if r["dataset"] == dataset]
        if not rs:
            continue
        chosen = max(rs, key=lambda r: (r["val_macro_f1"], r["val_accuracy"]))
        lines += [f"### {note} (target {target:.0%})", "",
                  f"Validation: {rs[0]['val_windows']} windows; test: "
                  f"{rs[0]['test_windows']} windows. Shared settings: "
                  f"`{' '.join('--set ' + s for s in shared)} --set {THREADS}`.", "",
                  "| recipe | model | settings | val macro F1 | test accuracy | test macro F1 "
                  "| parameters | training time | final model |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rs:
            mark = " **(chosen on val)**" if r is chosen else ""
            lines.append(
                f"| `{r['recipe']}`{mark} | {r['model']} | {r['note']} | "
                f"{r['val_macro_f1']:.4f} | {r['test_accuracy']:.2%} | "
                f"{r['test_macro_f1']:.4f} | {r['parameters']:,} | {r['train_seconds']:.0f} s | "
                + (f"refit on all training subjects, {r['refit_epochs']} epochs |"
                   if r["refit_epochs"] else f"selection model, {r['epochs']} epochs |"))
        met = "met" if chosen["test_accuracy"] >= target else "not met"
        lines += ["", f"Target {target:.0%}: {met} by the validation choice "
                      f"(`{chosen['recipe']}`, {chosen['test_accuracy']:.2%}).", "",
                  "<details><summary>commands</summary>", ""]
        lines += [f"- `{r['recipe']}`: `{r['command']}`" for r in rs]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--recipes", nargs="+", default=[], help="names or glob patterns")
    ap.add_argument("--run-root", default="runs/benchmarks", help="relative to the repository")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "skeleton.json"))
    ap.add_argument("--list", action="store_true", help="list the recipes")
    ap.add_argument("--table", action="store_true", help="print the table of --out only")
    args = ap.parse_args()
    if args.list:
        for k, (dataset, model, overrides, note) in RECIPES.items():
            print(f"{k}: {model} on {dataset} {' '.join(overrides)}  ({note})")
        return
    out = Path(args.out)
    results: dict[str, dict[str, Any]] = (json.loads(out.read_text())["results"]
                                          if out.exists() else {})
    chosen = [k for pat in args.recipes for k in RECIPES if fnmatch.fnmatchcase(k, pat)]
    unknown = [p for p in args.recipes if not any(fnmatch.fnmatchcase(k, p) for k in RECIPES)]
    if unknown:
        sys.exit(f"unknown recipe(s) {unknown}; --list shows them")
    for recipe in dict.fromkeys(chosen):
        r = run(recipe, args.data_dir, Path(args.run_root))
        print(json.dumps({k: r[k] for k in ("recipe", "val_macro_f1", "test_accuracy",
                                             "test_macro_f1", "parameters", "train_seconds")}),
              flush=True)
        results[recipe] = r
        out.parent.mkdir(parents=True, exist_ok=True)
        order = {k: i for i, k in enumerate(RECIPES)}
        results = dict(sorted(results.items(), key=lambda kv: order.get(kv[0], len(order))))
        out.write_text(json.dumps({"results": results}, indent=1))
    if results and (args.table or chosen):
        print(markdown(results))


if __name__ == "__main__":
    main()
