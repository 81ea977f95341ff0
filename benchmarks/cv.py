"""Subject-wise cross-validation benchmarks (issue 3's numbers), run as `harkit cv` commands.

Each recipe is one exact `harkit cv` command line (shown in the output and in BENCHMARKS.md),
run in a subprocess so what is timed is what a user runs. Results (per-fold table, per-subject
table, mean +/- std, pooled scores, extra scores such as HAPT's macro F1 without the postural
transitions) go to benchmarks/results/cv_<recipe>_<date>.json and a dated section is appended
to BENCHMARKS.md.

    .venv/bin/python benchmarks/cv.py --data-dir ../shared/data --recipes hapt6-harcnn
    .venv/bin/python benchmarks/cv.py --data-dir ../shared/data --recipes hapt12-harcnn mhad-harcnn
    .venv/bin/python benchmarks/cv.py --list
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from uci_har import HARKIT, REPO

# recipe -> (protocol, dataset, overrides, note)
# LOSO trains one model per subject (30 on HAPT): a narrower harcnn, 10 epochs, and the
# selection-phase model itself (no refit) keep a fold near a minute on 2 cores.
FAST = ["train.refit=false", "train.num_threads=2", "model.width=32"]
RECIPES: dict[str, tuple[str, str, list[str], str]] = {
    "hapt6-harcnn": ("loso", "hapt", ["data.options.activities=6", "train.epochs=10", *FAST],
                     "HAPT 6 activities, 2.56 s windows, 50% overlap"),
    "hapt12-harcnn": ("loso", "hapt", ["data.options.activities=12", "train.epochs=10",
                                       "train.class_weights=true", *FAST],
                      "HAPT 12 classes incl. the 6 postural transitions"),
    "hapt12-harcnn-15ep": ("loso", "hapt", ["data.options.activities=12", "train.epochs=15",
                                            "train.class_weights=true", *FAST],
                           "HAPT 12 classes, 15 epochs"),
    "mhad-harcnn": ("loso", "berkeley-mhad", ["data.options.trial_length=64", "train.epochs=40",
                                              "train.batch_size=32", "train.refit=false",
                                              "train.num_threads=1"],
                    "Berkeley MHAD accelerometers, 11 actions, whole trials stretched to 64 "
                    "samples"),
    "mhad-windows-harcnn": ("loso", "berkeley-mhad", ["train.epochs=20", *FAST],
                            "Berkeley MHAD accelerometers, 11 actions, 1.5 s windows"),
    "basicmotions-harcnn": ("holdout", "ts", ["data.options.problem=BasicMotions",
                                              "train.epochs=10", "train.batch_size=8",
                                              "data.n_val_subjects=8", "train.num_threads=1"],
                            "UEA BasicMotions, official train/test split"),
}
# Extra scores: name -> class indices to average macro F1 over (HAPT: the 6 activities).
HAPT12_SUBSETS = {"macro_f1_activities_only": list(range(6)),
                  "macro_f1_transitions_only": list(range(6, 12))}
SUBSETS = {"hapt12-harcnn": HAPT12_SUBSETS, "hapt12-harcnn-15ep": HAPT12_SUBSETS}


def command(recipe: str, data_dir: str, run_root: Path, name: str, model: str | None) -> list[str]:
    protocol, dataset, overrides, _ = RECIPES[recipe]
    if model is None:  # the registered model named in the recipe: "hapt12-harcnn-15ep"
        from harkit.models import list_models

        model = next(part for part in recipe.split("-") if part in list_models())
    cmd = [HARKIT, "cv", "--dataset", dataset, "--model", model, "--protocol", protocol,
           "--data-dir", data_dir, "--run-root", str(run_root), "--name", name, "--no-progress"]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def subset_f1(cv_dir: Path, labels: list[int]) -> dict[str, float]:
    """Macro F1 over ``labels`` per fold (mean, std) and pooled, from the saved predictions."""
    from sklearn.metrics import f1_score

    per_fold, yt, yp = [], [], []
    for fold in sorted(d for d in cv_dir.glob("fold[0-9]*") if d.is_dir()):
        with np.load(fold / "test_predictions.npz") as z:
            t, p = z["y_true"], z["y_pred"]
        present = [c for c in labels if (t == c).any()]
        per_fold.append(float(f1_score(t, p, labels=present, average="macro", zero_division=0)))
        yt.append(t)
        yp.append(p)
    pooled = float(f1_score(np.concatenate(yt), np.concatenate(yp), labels=labels,
                            average="macro", zero_division=0))
    return {"mean": float(np.mean(per_fold)), "std": float(np.std(per_fold)), "pooled": pooled}


def run(recipe: str, data_dir: str, run_root: Path, model: str | None,
        rescore: Path | None = None) -> dict[str, Any]:
    """Run the recipe's `harkit cv` command, or with ``rescore`` re-score a finished cv
    directory of that recipe from its saved predictions (`harkit cv --resume`)."""
    if rescore is None:
        name = f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        cmd = command(recipe, data_dir, run_root, name, model)
        shown = "harkit " + shlex.join(cmd[1:])
        print(f"$ {shown}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO)
        wall = time.perf_counter() - t0
        cv_dir = run_root / name
    else:
        cv_dir = rescore
        meta = json.loads((cv_dir / "cv.json").read_text())
        shown = meta["command"]
        subprocess.run([HARKIT, "cv", "--resume", str(cv_dir), "--no-progress"], check=True,
                       cwd=REPO)
        wall = float("nan")
    summary = json.loads((cv_dir / "summary.json").read_text())
    folds = list(csv.DictReader((cv_dir / "folds.csv").read_text().splitlines()))
    subjects = list(csv.DictReader((cv_dir / "subjects.csv").read_text().splitlines()))
    extra = {k: subset_f1(cv_dir, v) for k, v in SUBSETS.get(recipe, {}).items()}
    summary.pop("pooled", None)
    return {"recipe": recipe, "command": shown, "note": RECIPES[recipe][3], "wall_s": wall,
            "summary": summary, "extra": extra, "folds": folds, "subjects": subjects,
            "cv_dir": str(cv_dir), "machine": machine(), "date": time.strftime("%Y-%m-%d")}


def markdown(r: dict[str, Any]) -> str:
    s = r["summary"]
    lines = [f"### `{r['recipe']}`: {r['note']} ({r['date']})", "", f"    {r['command']}", "",
             f"Machine: {r['machine'].rsplit(', ', 1)[0]} (torch threads as in the command). "
             + (f"Wall time {r['wall_s'] / 60:.1f} min for {s['n_folds']} folds." if r["wall_s"]
                == r["wall_s"] else f"Re-scored {s['n_folds']} finished folds from their saved "
                                    "predictions."), "",
             "| score | mean | std | min | max |", "| --- | --- | --- | --- | --- |"]
    for k in ("accuracy", "macro_f1", "weighted_f1", "macro_f1_without_null"):
        if k in s:
            lines.append(f"| {k} | {s[k]['mean']:.4f} | {s[k]['std']:.4f} | {s[k]['min']:.4f} | "
                         f"{s[k]['max']:.4f} |")
    for k, v in r["extra"].items():
        lines.append(f"| {k} | {v['mean']:.4f} | {v['std']:.4f} | | (pooled {v['pooled']:.4f}) |")
    lines += ["", "<details><summary>per fold</summary>", "",
              "| fold | test subjects | windows | accuracy | macro F1 | weighted F1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for f in r["folds"]:
        lines.append(f"| {f['fold']} | {f['test_subjects']} | {f['n_windows']} | "
                     f"{float(f['accuracy']):.4f} | {float(f['macro_f1']):.4f} | "
                     f"{float(f['weighted_f1']):.4f} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--recipes", nargs="+", default=["hapt6-harcnn"])
    ap.add_argument("--model", help="run the recipes' protocol with another model")
    ap.add_argument("--run-root", default=str(REPO / "runs" / "benchmarks"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--rescore", type=Path, help="re-score this finished cv directory of the "
                                                  "(single) recipe instead of running it")
    args = ap.parse_args()
    if args.list:
        for k, (protocol, dataset, overrides, note) in RECIPES.items():
            print(f"{k}: {protocol} on {dataset} {' '.join(overrides)}  ({note})")
        return
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    for recipe in args.recipes:
        if recipe not in RECIPES:
            sys.exit(f"unknown recipe {recipe!r}; --list shows them")
        r = run(recipe, args.data_dir, Path(args.run_root), args.model, args.rescore)
        (out / f"cv_{recipe}_{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
            json.dumps(r, indent=2))
        text = markdown(r)
        print(text)
        if not args.no_markdown:
            with open(REPO / "BENCHMARKS.md", "a", encoding="utf-8") as f:
                f.write("\n" + text)


if __name__ == "__main__":
    main()
