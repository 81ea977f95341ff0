"""UCI HAR's 98 % recipe (issue 3): harcnn, three MiniRocket seeds and TinyHAR, one ensemble.

``--mrh`` adds a MultiRocket-Hydra member (and, with ``--validation``, the candidate ensembles
that include it). ``--deep MODEL ...`` adds other registered deep models, each by harkit's
default recipe (the same way: candidates with each, and with all of them).

Every member is an ordinary `harkit train` command run in a subprocess, one after the
other on this machine, then `harkit ensemble` scores the members together on the official
test split. The clock runs from the first launch until the ensemble's report is printed, so
the time is what a user waits for on this CPU, data loading included.

    .venv/bin/python benchmarks/uci_har_ensemble.py --data-dir ../shared/data
    .venv/bin/python benchmarks/uci_har_ensemble.py --data-dir ../shared/data --validation

``--validation`` is how the recipe was chosen: the same members trained on 17 training
subjects only (`train.refit=false`, the same 4 validation subjects for every member), and
the candidate ensembles (which members, ``mean`` or ``geometric`` combination) scored on those
4 validation subjects with `harkit ensemble --split val`. The test split plays no part in it.
Results are appended to BENCHMARKS.md and saved as JSON under benchmarks/results/.
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import append_section, machine

REPO = Path(__file__).resolve().parents[1]
HARKIT = str(Path(sys.executable).parent / "harkit")
FAST_MR = "configs/fast/minirocket-uci-har.yaml"
MR_SEEDS = 3  # MiniRocket members (seeds 0, 1, ...); chosen with --validation (BENCHMARKS.md)
MRH = False  # a MultiRocket-Hydra member; compared with --validation --mrh (BENCHMARKS.md)
DEEP: tuple[str, ...] = ("tinyhar",)  # further deep members; chosen with --validation
COMBINE = "mean"  # chosen with --validation (BENCHMARKS.md)
VALIDATION_SIZES = (1, 3, 5, 8)  # the MiniRocket counts --validation compares


def members(validation: bool, mr_seeds: int = MR_SEEDS, mrh: bool = MRH,
            deep: tuple[str, ...] = DEEP, seed: int = 0) -> list[tuple[str, list[str]]]:
    """(name, harkit train arguments) of every member, in the order they are run. ``seed``
    > 0 gives every member other seeds (the deep ones ``train.seed=seed``, the MiniRocket
    ones the next ``mr_seeds`` seeds after ``seed * mr_seeds - 1``): the same recipe, drawn
    again."""
    trained = ["--set", f"train.seed={seed}"] if seed else []
    out: list[tuple[str, list[str]]] = [("harcnn", ["--model", "harcnn", *trained])]
    for s in range(seed * mr_seeds, seed * mr_seeds + (max(VALIDATION_SIZES) if validation
                                                       else mr_seeds)):
        # calibrated ridge heads: the fast recipe skips the temperature, an ensemble needs it
        out.append((f"minirocket-seed{s}", ["--config", FAST_MR, "--set", f"train.seed={s}",
                                            "--set", f"model.params.seed={s}",
                                            "--set", "model.params.calibrate=true"]))
    if mrh:  # ridge alpha chosen by leave-one-out on its own training windows, calibrated
        out.append(("multirocket-hydra", ["--model", "multirocket-hydra", "--set",
                                          "train.refit=false", "--set", "data.n_val_subjects=1"]))
    out += [(m, ["--model", m, *trained]) for m in deep]
    if validation:  # one validation split for all: 4 subjects drawn with seed 0, no refit
        # (later overrides win, so train.seed=0 replaces each member's own split seed)
        fixed = ["--set", "train.refit=false", "--set", "data.n_val_subjects=4",
                 "--set", "train.seed=0"]
        out = [(n, [*a, *fixed]) for n, a in out]
    return out


def harkit(args: list[str], what: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([HARKIT, *args], capture_output=True, text=True, cwd=REPO,
                          env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout, wall


def _validation_member(name: str, cli: list[str], data_dir: str, root: Path,
                       threads: int) -> dict[str, Any]:
    """One member of the validation study through ``harkit.train(evaluate_test=False)``: the
    test split is never evaluated, so the choice cannot see it."""
    import harkit

    config = cli[cli.index("--config") + 1] if "--config" in cli else None
    overrides = [cli[i + 1] for i, a in enumerate(cli) if a == "--set"]
    if "--model" in cli:
        overrides.append(f"model.name={cli[cli.index('--model') + 1]}")
    os.environ["HARKIT_TRACKING"] = "0"
    t0 = time.perf_counter()
    r = harkit.train(None if config is None else REPO / config, overrides=[
        *overrides, f"data.data_dir={data_dir}", f"train.num_threads={threads}",
        f"run_root={root}", f"name={name}"], progress=False, evaluate_test=False)
    wall = time.perf_counter() - t0
    assert r.val is not None and r.test is None
    print(f"{name}: validation accuracy {r.val.accuracy:.4f} ({wall:.1f} s)", flush=True)
    return {"name": name, "command": shown(["harkit", "train", *cli]), "wall_seconds": wall,
            "train_seconds": r.train_seconds, "val_accuracy": r.val.accuracy,
            "val_macro_f1": r.val.macro_f1}


def shown(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def run(data_dir: str, root: Path, validation: bool, threads: int,
        shown_data_dir: str = "../shared/data", mr_seeds: int = MR_SEEDS,
        mrh: bool = MRH, deep: tuple[str, ...] = DEEP, seed: int = 0) -> dict[str, Any]:
    t_start = time.perf_counter()
    rows = []
    for name, extra in members(validation, mr_seeds, mrh, deep, seed):
        if validation:  # trained in-process without ever scoring the test split
            rows.append(_validation_member(name, extra, data_dir, root, threads))
            continue
        args = ["train", *extra, "--data-dir", data_dir, "--set", f"train.num_threads={threads}"]
        cmd = ["harkit", *args, "--name", name]
        cmd[cmd.index(data_dir)] = shown_data_dir
        # MLflow tracking stays on (as a user runs it), into a store beside the runs
        _, wall = harkit([*args, "--run-root", str(root), "--name", name, "--no-progress"],
                           shown(cmd), {"MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"})
        info = json.loads((root / name / "run.json").read_text())
        metrics = json.loads((root / name / "metrics.json").read_text())
        rows.append({"name": name, "command": shown(cmd), "wall_seconds": wall,
                     "train_seconds": info["train_seconds"], "test_accuracy": metrics["accuracy"],
                     "test_macro_f1": metrics["macro_f1"],
                     "val_macro_f1": info.get("best_val_macro_f1")})
        print(f"{name}: test accuracy {metrics['accuracy']:.4f} ({wall:.1f} s)", flush=True)
    t_members = time.perf_counter() - t_start
    names = [r["name"] for r in rows]
    result: dict[str, Any] = {"members": rows, "members_seconds": t_members}
    if validation:
        candidates = {(f"harcnn + minirocket x{k}" if k > 1 else "harcnn + minirocket"):
                      names[:1 + k] for k in VALIDATION_SIZES}
        candidates.update({f"minirocket x{k}": names[1:1 + k] for k in (3, max(VALIDATION_SIZES))})
        if mrh:
            candidates.update({
                "harcnn + multirocket-hydra": ["harcnn", "multirocket-hydra"],
                "harcnn + minirocket + multirocket-hydra": [*names[:2], "multirocket-hydra"],
                "harcnn + minirocket x3 + multirocket-hydra": [*names[:4], "multirocket-hydra"],
                "minirocket x3 + multirocket-hydra": [*names[1:4], "multirocket-hydra"]})
        for m in (*deep, *(["all of " + " + ".join(deep)] if len(deep) > 1 else [])):
            extra = list(deep) if m.startswith("all of ") else [m]
            label = " + ".join(extra)
            candidates.update({f"harcnn + {label}": ["harcnn", *extra],
                               f"harcnn + minirocket + {label}": [*names[:2], *extra],
                               f"harcnn + minirocket x3 + {label}": [*names[:4], *extra],
                               f"minirocket x3 + {label}": [*names[1:4], *extra]})
        scores = []
        for label, group in candidates.items():
            for combine in ("mean", "geometric"):
                out_dir = root / f"val-{len(scores)}"
                harkit(["ensemble", *(str(root / n) for n in group), "--split", "val",
                        "--combine", combine, "--output", str(out_dir)], f"ensemble {label}")
                report = json.loads((out_dir / "metrics.json").read_text())
                scores.append({"members": label, "combine": combine,
                               "val_accuracy": report["accuracy"],
                               "val_macro_f1": report["macro_f1"]})
                print(scores[-1], flush=True)
        result["validation"] = scores
        return result
    args = ["ensemble", *(str(root / n) for n in names), "--combine", COMBINE,
            "--output", str(root / "ensemble")]
    _, wall = harkit(args, "ensemble")
    result["ensemble_seconds"] = wall
    result["total_seconds"] = time.perf_counter() - t_start
    report = json.loads((root / "ensemble" / "metrics.json").read_text())
    result["ensemble"] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                          "command": "harkit ensemble " + " ".join(
                              [*(f"runs/{n}" for n in names), "--combine", COMBINE])}
    print(f"ensemble: test accuracy {report['accuracy']:.4f}, total "
          f"{result['total_seconds']:.1f} s", flush=True)
    return result


def section(res: dict[str, Any], validation: bool, threads: int, cmdline: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    what = "recipe chosen on validation subjects" if validation else "official test split"
    names = [r["name"] for r in res["members"]]
    k = sum(n.startswith("minirocket") for n in names)
    plus = "".join(f" + {n}" for n in names
                   if not n.startswith("minirocket") and n != "harcnn")
    lines = [f"\n## UCI HAR 98 % recipe: harcnn + {k} MiniRocket seeds{plus}, {what} — {when}\n",
             f"- command: `{cmdline}`",
             f"- machine: {machine(f'{threads} torch threads')}",
             "- members trained in-process with `harkit.train(evaluate_test=False)`, the "
             "test split never scored (the commands show the same settings)\n" if validation
             else "- members run one after the other, each a fresh `harkit train` process "
             "(MLflow tracking on, as a user runs it)\n",
             "| member | command | training s | wall s | test accuracy | test macro F1 |",
             "| --- | --- | --- | --- | --- | --- |"]
    if validation:  # no test scores exist in this mode
        lines[-2:] = ["| member (17 subjects) | command | training s | val accuracy | "
                      "val macro F1 |", "| --- | --- | --- | --- | --- |"]
    for r in res["members"]:
        if validation:
            lines.append(f"| {r['name']} | `{r['command']}` | {r['train_seconds']:.1f} | "
                         f"{r['val_accuracy']:.2%} | {r['val_macro_f1']:.4f} |")
            continue
        lines.append(f"| {r['name']} | `{r['command']}` | {r['train_seconds']:.1f} | "
                     f"{r['wall_seconds']:.1f} | {r['test_accuracy']:.2%} | "
                     f"{r['test_macro_f1']:.4f} |")
    if validation:
        lines += ["", "Candidate ensembles on the 4 validation subjects (members trained on "
                  "the other 17):", "", "| members | combine | val accuracy | val macro F1 |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {s['members']} | {s['combine']} | {s['val_accuracy']:.2%} | "
                  f"{s['val_macro_f1']:.4f} |" for s in res["validation"]]
    else:
        e = res["ensemble"]
        lines += ["", f"Ensemble (`{e['command']}`): **test accuracy {e['accuracy']:.2%}**, "
                  f"macro F1 {e['macro_f1']:.4f}; **{res['total_seconds']:.0f} s** from the "
                  f"first launch to the ensemble's report ({res['members_seconds']:.0f} s "
                  f"for the members, {res['ensemble_seconds']:.0f} s for the ensemble)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--validation", action="store_true",
                    help="choose the recipe on validation subjects instead of testing it")
    ap.add_argument("--mr-seeds", type=int, default=MR_SEEDS,
                    help="how many MiniRocket members (seeds 0, 1, ...) join harcnn")
    ap.add_argument("--mrh", action=argparse.BooleanOptionalAction, default=MRH,
                    help="add a multirocket-hydra member (with --validation: and the "
                    "candidates that include it)")
    ap.add_argument("--deep", nargs="*", default=list(DEEP), metavar="MODEL",
                    help="further deep members by harkit's default recipe (with --validation: "
                    "and the candidates that include them)")
    ap.add_argument("--seed", type=int, default=0,
                    help="draw every member's seeds again (test mode only): 1, 2, ... give "
                    "the same recipe with other initialisations and kernels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run-root", help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    a = ap.parse_args()
    data_dir = str(Path(a.data_dir).resolve())
    cmdline = "python benchmarks/uci_har_ensemble.py --data-dir ../shared/data" + (
        " --validation" if a.validation else "") + (
        f" --mr-seeds {a.mr_seeds}" if a.mr_seeds != MR_SEEDS and not a.validation else "") + (
        (" --mrh" if a.mrh else " --no-mrh") if a.mrh != MRH else "") + (
        f" --deep {' '.join(a.deep)}" if tuple(a.deep) != DEEP else "") + (
        f" --seed {a.seed}" if a.seed else "")
    if a.seed and a.validation:
        ap.error("--seed applies to the test mode: the validation study fixes train.seed=0 "
                 "for its split")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.run_root or tmp).resolve()
        res = run(data_dir, root, a.validation, a.threads, a.data_dir, a.mr_seeds, a.mrh,
                  tuple(a.deep), a.seed)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = REPO / "benchmarks" / "results" / f"uci_har_ensemble{'_val' if a.validation else ''}_{stamp}.json"
    out.write_text(json.dumps(res, indent=1))
    if not a.no_append:
        append_section(section(res, a.validation, a.threads, cmdline))


if __name__ == "__main__":
    main()
