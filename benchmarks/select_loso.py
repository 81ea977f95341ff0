"""Choose a model by leave-one-subject-out over the *training* subjects, then test it once.

With 5 training subjects (UTKinect, MSR Action3D), one validation subject is too few to tell
models apart. Here every candidate is trained once per training subject with that subject as
the validation subject (``data.val_subjects=[s]``, ``train.refit=false``, no test evaluation).
The candidate with the best mean validation macro F1 over the folds is chosen, and only that
model is then trained by the dataset's standard protocol and scored on the test split, once.
The test subjects take no part in the choice.

An ensemble is a candidate too (``--ensembles minirocket+hydra``, members named from
``--models``): on each fold it averages its members' fold runs (``harkit ensemble --split val``),
so it is scored on exactly the folds its members were; if chosen, each member is trained by the
standard protocol and the ensemble of those runs is tested, once.

A model spec may carry its own settings: ``minirocket[seed=1]`` sets a model parameter, a dotted
key any setting of that model's runs, so members can read the data differently
(``'stgcn[data.options.length=32,train.epochs=50]'`` beside a MiniRocket on 64 frames; the
ensemble scores each member on its own view of the same sequences).

    .venv/bin/python benchmarks/select_loso.py --data-dir ../shared/data --dataset utkinect \\
        --models minirocket multirocket-hydra
    .venv/bin/python benchmarks/select_loso.py --data-dir ../shared/data --dataset msr-action3d \\
        --models minirocket multirocket-hydra hydra --ensembles minirocket+multirocket-hydra

``--validation-only`` scores the candidates and stops (no standard-protocol run, no test).
``--fold-runs DIR`` keeps the fold runs in DIR, each named by a hash of its settings, and
reuses them in later calls: a candidate whose settings are unchanged is not trained again, so
ensembles of expensive members can be added later. An ensemble's score on each fold is kept
there too, named by its member runs and ``--combine``, so a repeated call only renders.

Results are saved under benchmarks/results/ and appended to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import append_section, machine, model_overrides, split_ensemble, split_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    os.environ["HARKIT_TRACKING"] = "0"  # scratch runs in a temporary folder: nothing to track
    import harkit
    from harkit.api import _all_training, _load, evaluate_ensemble
    from harkit.config import ExperimentConfig, apply_overrides

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--ensembles", nargs="*", default=[],
                    help="ensemble candidates, members joined by '+', each one of --models")
    ap.add_argument("--combine", default="mean", choices=["mean", "geometric"],
                    help="how an ensemble combines its members' probabilities")
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--fold-runs", default=None,
                    help="keep the fold runs, and the ensembles' fold scores, in this folder "
                         "and reuse those of a candidate whose settings are unchanged (a later "
                         "call that adds ensembles or models computes only what is new); "
                         "default: a temporary folder")
    ap.add_argument("--validation-only", action="store_true",
                    help="score the candidates on the folds and stop: nothing is trained by "
                         "the standard protocol and the test split is not touched")
    a = ap.parse_args()
    for m in a.models:
        try:
            split_model(m)
        except ValueError as err:
            ap.error(f"--models: {err}")
    for e in a.ensembles:
        unknown = [m for m in split_ensemble(e) if m not in a.models]
        if len(split_ensemble(e)) < 2 or unknown:
            ap.error(f"--ensembles {e}: name two or more of --models {a.models} joined by '+'")
    data_dir = str(Path(a.data_dir).resolve())
    common = [f"data.dataset={a.dataset}", f"data.data_dir={data_dir}",
              f"train.num_threads={a.threads}", *a.set]
    cfg = apply_overrides(ExperimentConfig(), common)
    subjects = _all_training(_load(cfg)).subject_ids()
    res: dict[str, Any] = {"dataset": a.dataset, "training_subjects": subjects, "folds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        keep = Path(a.fold_runs).resolve() if a.fold_runs else Path(tmp)
        fold_runs: dict[tuple[str, int], Path] = {}
        for model in a.models:
            folds = []
            for s in subjects:
                overrides = [*common, *model_overrides(model), f"data.val_subjects=[{s}]",
                             "train.refit=false"]
                # the fold's settings name it, so a changed setting never reuses an old run
                key = hashlib.sha1(json.dumps(overrides).encode()).hexdigest()[:12]
                record = keep / f"{_safe(model)}-val{s}-{key}.json"
                fold, reused = _kept(record if a.fold_runs else None, _fit_fold,
                                     [*overrides, f"run_root={keep}",
                                      f"name={_safe(model)}-val{s}-{key}"], s)
                fold_runs[model, s] = Path(fold.pop("run_dir"))
                folds.append(fold)
                _say(model, fold, str(fold_runs[model, s]) if reused else None)
            res["folds"][model] = folds
        for ens in a.ensembles:
            folds = []
            for s in subjects:
                names = split_ensemble(ens)
                runs = [fold_runs[m, s] for m in names]
                # named by its member runs (folder and fold record: a retrained member changes
                # it) and the combination, so it is reused only for the very same runs
                used = [[str(r), *(f for f in res["folds"][m] if f["subject"] == s)]
                        for m, r in zip(names, runs, strict=True)]
                digest = hashlib.sha1(json.dumps([used, a.combine], sort_keys=True).encode())
                record = keep / f"ensemble-val{s}-{digest.hexdigest()[:12]}.json"
                fold, reused = _kept(record if a.fold_runs else None, _score_fold, runs, s,
                                     a.combine)
                folds.append(fold)
                _say(ens, fold, record.name if reused else None)
            res["folds"][ens] = folds
        means = {m: statistics.mean(f["val_macro_f1"] for f in folds)
                 for m, folds in res["folds"].items()}
        chosen = max(means, key=lambda m: means[m])  # the first listed wins a tie
        res["mean_val_macro_f1"] = means
        res["chosen"] = chosen
        res["test"] = None
        # the chosen candidate by the dataset's standard protocol, tested once
        finals = []
        members = [] if a.validation_only else split_ensemble(chosen)
        for m in members:
            r = harkit.train(overrides=[*common, *model_overrides(m), f"run_root={tmp}",
                                        f"name={_safe(m)}-final"], progress=False,
                             evaluate_test=len(members) == 1)
            finals.append(r.run_dir)
        if members:
            val_subjects = harkit.runs.RunDir(finals[0]).config().data.val_subjects
            if len(members) > 1:
                test = evaluate_ensemble(finals, split="test", combine=a.combine)
            else:
                assert r.test is not None
                test = r.test
            res["test"] = {"model": chosen, "accuracy": test.accuracy,
                           "macro_f1": test.macro_f1, "windows": test.n_windows,
                           "val_subjects": val_subjects}
    print(json.dumps({k: res[k] for k in ("mean_val_macro_f1", "chosen", "test")}, indent=1))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = REPO / "benchmarks" / "results" / f"select_loso_{a.dataset}_{stamp}.json"
    out.write_text(json.dumps(res, indent=1))
    if a.no_append:
        return
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sets = "".join(f" --set {o}" for o in a.set)
    ens_args = (f" --ensembles {' '.join(map(shlex.quote, a.ensembles))}"
                + (f" --combine {a.combine}" if a.combine != "mean" else "")
                if a.ensembles else "")
    only = " --validation-only" if a.validation_only else ""
    lines = [f"\n## {a.dataset}: "
             + ("candidates scored" if only else "model chosen")
             + f" by leave-one-subject-out over the training subjects — {when}\n",
             f"- command: `python benchmarks/select_loso.py --data-dir ../shared/data --dataset "
             f"{a.dataset} --models {' '.join(map(shlex.quote, a.models))}{ens_args}{sets}"
             f"{only}`",
             f"- machine: {machine(f'{a.threads} torch threads')}",
             f"- raw: `benchmarks/results/{out.name}`",
             f"- folds: each of the {len(subjects)} training subjects {subjects} in turn is the "
             "validation subject (no refit, no test evaluation); "
             + ("validation only: the test split was not touched\n" if only else
                "the test split is scored once, for the chosen model only\n"),
             "| model | " + " | ".join(f"val subject {s}" for s in subjects)
             + " | mean val macro F1 |",
             "| --- | " + " | ".join("---" for _ in subjects) + " | --- |"]
    for m, folds in res["folds"].items():
        mean = f"**{means[m]:.4f}**" if m == chosen else f"{means[m]:.4f}"
        lines.append(f"| {m} | " + " | ".join(f"{f['val_macro_f1']:.3f}" for f in folds)
                     + f" | {mean} |")
    t = res["test"]
    if t is None:
        lines.append(f"\nBest on the folds: **{chosen}** (not trained by the standard protocol, "
                     "not tested).\n")
        append_section("\n".join(lines))
        return
    cmds = [f"`harkit train --dataset {a.dataset} {_cli_model(m)}{sets}`"
            for m in split_ensemble(chosen)]
    how = (cmds[0] if len(cmds) == 1
           else "members by " + ", ".join(cmds) + ", then `harkit ensemble` of those runs"
           + (f" with `--combine {a.combine}`" if a.combine != "mean" else ""))
    lines.append(f"\nChosen: **{chosen}**. Trained by the standard protocol ({how}, validation "
                 f"subjects {t['val_subjects']}, refit on all training subjects) and tested once: "
                 f"**test accuracy {t['accuracy']:.2%}**, macro F1 {t['macro_f1']:.4f} "
                 f"({t['windows']} test windows).\n")
    append_section("\n".join(lines))


def _kept(record: Path | None, compute: Callable[..., dict[str, Any]],
          *args: Any) -> tuple[dict[str, Any], bool]:
    """The fold record kept at ``record`` and True, or (when there is none, or ``record`` is
    None) ``compute(*args)`` and False. A computed record is written last, so one on disk
    always names finished work."""
    from harkit.io import atomic_write_text

    if record is not None and record.exists():
        return json.loads(record.read_text(encoding="utf-8")), True
    fold = compute(*args)
    if record is not None:
        atomic_write_text(record, json.dumps(fold))
    return fold, False


def _say(candidate: str, fold: dict[str, Any], reused: str | None) -> None:
    """One progress line for a candidate's fold: its scores, or what was reused."""
    print(f"{candidate} val subject {fold['subject']}: "
          + (f"reused {reused}" if reused is not None else f"accuracy {fold['val_accuracy']:.4f}")
          + f", macro F1 {fold['val_macro_f1']:.4f}", flush=True)


def _fit_fold(overrides: list[str], subject: int) -> dict[str, Any]:
    """Train one fold run (no test evaluation) and score it on its validation subject."""
    import harkit

    t0 = time.perf_counter()
    r = harkit.train(overrides=overrides, progress=False, evaluate_test=False)
    assert r.val is not None
    return {"subject": subject, "val_accuracy": r.val.accuracy, "val_macro_f1": r.val.macro_f1,
            "windows": r.val.n_windows, "seconds": time.perf_counter() - t0,
            "run_dir": str(r.run_dir)}


def _score_fold(runs: list[Path], subject: int, combine: str) -> dict[str, Any]:
    """An ensemble of one fold's member runs, scored on that fold's validation subject."""
    from harkit.api import evaluate_ensemble

    rep = evaluate_ensemble(runs, split="val", combine=combine)
    return {"subject": subject, "val_accuracy": rep.accuracy, "val_macro_f1": rep.macro_f1,
            "windows": rep.n_windows}


def _safe(spec: str) -> str:
    """A run name for a model spec such as ``minirocket[streams=joint+bone]``."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in spec).strip("_")


def _cli_model(spec: str) -> str:
    """``harkit train`` options for a model spec: ``--model NAME`` and a ``--set`` per
    setting, as :func:`common.model_overrides` gives them."""
    name, _ = split_model(spec)
    return f"--model {name}" + "".join(f" --set {o}" for o in model_overrides(spec)[1:])


if __name__ == "__main__":
    main()
