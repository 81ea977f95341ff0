"""The ``harkit`` command line: thin wrappers that parse, build a config and call the library."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harkit.errors import HarkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="harkit: human activity recognition, honestly evaluated.")
console = Console()
err = Console(stderr=True)


# Options several commands share.
TrackOption = Annotated[bool, typer.Option(
    "--track/--no-track", help="log to MLflow (on by default; HARKIT_TRACKING=0 also switches "
                               "it off); cv and tune runs nest under one parent run")]
TrackingUriOption = Annotated[str | None, typer.Option(
    help="MLflow tracking URI: a server (http://host:5000) or a store (sqlite:///mlflow.db); "
         "default $MLFLOW_TRACKING_URI, else ./mlflow.db")]


def _setup_logging(verbose: bool) -> None:
    """Warnings from everything; harkit's own progress lines too when ``verbose``."""
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)
    logging.getLogger("harkit").setLevel(logging.INFO if verbose else logging.WARNING)


def _print_report(report: Any) -> None:
    from harkit.evaluation.metrics import report_table

    console.print(report_table(report))


def _overrides(dataset: str | None, model: str | None, epochs: int | None, data_dir: str | None,
               run_root: str | None, name: str | None, set_: list[str] | None) -> list[str]:
    """The shortcut options as dotted overrides, followed by the explicit ``--set`` ones."""
    out = [f"{key}={value}" for key, value in (
        ("data.dataset", dataset), ("model.name", model), ("train.epochs", epochs),
        ("data.data_dir", data_dir), ("run_root", run_root), ("name", name)) if value is not None]
    return out + list(set_ or [])


def _tracking(track: bool, uri: str | None, resume: Path | None) -> list[str]:
    """``--no-track`` / ``--tracking-uri`` as overrides (a resumed run keeps its own tracking
    settings: --no-track then only switches tracking off for this process)."""
    if resume is not None:
        if uri is not None:
            raise HarkitError("--resume continues the run's own MLflow run; drop --tracking-uri")
        if not track:
            import os

            os.environ["HARKIT_TRACKING"] = "0"
        return []
    out = [] if track else ["tracking.enabled=false"]
    return out + ([f"tracking.uri={uri}"] if uri is not None else [])


def _print_tracking(run_dir: Path) -> None:
    from harkit.runs import RunDir

    info = RunDir(run_dir).info() if (run_dir / "run.json").exists() else {}
    if "mlflow_run_id" in info:
        uri = info.get("mlflow_tracking_uri", "")
        console.print(f"MLflow run {info['mlflow_run_id']} at {uri} (view it: mlflow ui "
                      f"--backend-store-uri {uri})", soft_wrap=True)


_DDP = "multi-process training (DDP)"


def _launch_workers(config: Path | None, overrides: list[str], resume: Path | None, nproc: int,
                    nnodes: int, node_rank: int | None, rdzv_endpoint: str | None,
                    rdzv_backend: str, rdzv_id: str | None, torchrun_args: str | None) -> bool:
    """Re-run this command in torchrun workers when DDP was asked for and this process is
    not already one of them; True if it did (and they succeeded)."""
    import shlex

    from harkit.training import distributed

    if distributed.under_torchrun() or (nproc * nnodes == 1 and rdzv_endpoint is None):
        return False
    from harkit.api import check_distributed

    if resume is None or nnodes == 1:  # on other nodes the run may be on rank 0's node only
        check_distributed(config, overrides=overrides, resume=resume,
                          world_size=nproc * nnodes)
    argv = _ARGV if _ARGV is not None else sys.argv[1:]
    status = distributed.launch(
        _without_launch_options(argv), nproc, command=["harkit", *argv], nnodes=nnodes,
        node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_backend=rdzv_backend,
        rdzv_id=rdzv_id, extra=shlex.split(torchrun_args or ""))
    if status != 0:
        raise HarkitError(f"a training process failed (torchrun exit status {status}); its "
                          "error is above")
    return True


def _without_launch_options(argv: list[str]) -> list[str]:
    """``argv`` minus the launcher's own options (the workers do not need them, and torchrun
    would take ``--nproc`` for an abbreviation of its ``--nproc-per-node``)."""
    options = ("--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-backend",
               "--rdzv-id", "--torchrun-args")
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True  # and its value
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            out.append(arg)
    return out


@app.command()
def train(
    dataset: Annotated[str | None, typer.Option(help="registered dataset (harkit datasets)")] = None,
    model: Annotated[str | None, typer.Option(help="registered model (harkit models)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML experiment config")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override any config field: --set train.lr=0.001 --set model.hidden=64")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="shortcut for --set train.epochs=N")] = None,
    data_dir: Annotated[str | None, typer.Option(
        help="local dataset mirror directory or URL (else $HARKIT_DATA_DIR, else the cache)")
    ] = None,
    run_root: Annotated[str | None, typer.Option(help="where run directories go")] = None,
    name: Annotated[str | None, typer.Option(help="run directory name")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue this run from its last "
                                                     "checkpoint")] = None,
    stop_after: Annotated[int | None, typer.Option(help="train at most N epochs now; "
                                                        "continue later with --resume")] = None,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every epoch")] = False,
    nproc: Annotated[int, typer.Option(
        help="train data-parallel (DDP) in N processes per node, launched with torchrun; "
             "train.batch_size stays the global batch. CPU: gloo; train.device=cuda: NCCL, "
             "one GPU per process", min=1, rich_help_panel=_DDP)] = 1,
    nnodes: Annotated[int, typer.Option(
        help="number of nodes; run the same command on each (needs --rdzv-endpoint)",
        min=1, rich_help_panel=_DDP)] = 1,
    node_rank: Annotated[int | None, typer.Option(
        help="this node's rank (default: assigned by the rendezvous)", rich_help_panel=_DDP)
    ] = None,
    rdzv_endpoint: Annotated[str | None, typer.Option(
        help="HOST:PORT where the nodes meet (torchrun --rdzv-endpoint)", rich_help_panel=_DDP)
    ] = None,
    rdzv_backend: Annotated[str, typer.Option(help="torchrun rendezvous backend",
                                              rich_help_panel=_DDP)] = "c10d",
    rdzv_id: Annotated[str | None, typer.Option(
        help="job id, the same on every node (default: harkit)", rich_help_panel=_DDP)] = None,
    torchrun_args: Annotated[str | None, typer.Option(
        help="more torchrun options, passed through: e.g. '--max-restarts 0'",
        rich_help_panel=_DDP)] = None,
) -> None:
    """Train a model, evaluate its best-validation checkpoint on the test split, write plots."""
    # Without a terminal there is no progress bar: log one line per epoch instead.
    _setup_logging(verbose or not (progress and err.is_terminal))
    from harkit.api import train as run_train

    overrides = _overrides(dataset, model, epochs, data_dir, run_root, name, set_)
    if resume is not None and config is not None:
        raise HarkitError("--resume takes the config stored in the run; drop --config")
    overrides += _tracking(track, tracking_uri, resume)
    if _launch_workers(config, overrides, resume, nproc, nnodes, node_rank, rdzv_endpoint,
                       rdzv_backend, rdzv_id, torchrun_args):
        return  # the workers trained; rank 0 printed the summary
    from harkit.training.distributed import COMMAND_ENV

    command = (json.loads(os.environ[COMMAND_ENV]) if COMMAND_ENV in os.environ
               else ["harkit", *sys.argv[1:]])  # a DDP worker records the launching command
    result = run_train(config, overrides=overrides, resume=resume, stop_after=stop_after,
                       progress=progress and console.is_terminal, command=command)
    from harkit.runs import RunDir
    from harkit.training.distributed import env_rank

    if env_rank() != 0:
        return  # a DDP worker: rank 0 reports
    info = RunDir(result.run_dir).info()
    console.print(f"run directory: {result.run_dir}")
    cfg = RunDir(result.run_dir).config()
    if result.val is None:
        console.print(f"no validation (data.n_val_subjects=0): {len(result.history)} epochs on "
                      "all training subjects; the last epoch is the model")
    else:
        console.print(f"selection: {len(result.history)} epochs on validation subjects "
                      f"{cfg.data.val_subjects}; selected epoch {result.selected_epoch} "
                      f"({cfg.train.select}): validation accuracy {result.val.accuracy:.4f}, "
                      f"macro F1 {result.val.macro_f1:.4f} (best macro F1 at epoch "
                      f"{result.best_epoch})")
    if "refit_epochs" in info:
        console.print(f"final model: refit on all {len(info['refit_subjects'])} training "
                      f"subjects for {info['refit_epochs']} epochs")
    console.print(f"training time: {result.train_seconds:.1f} s")
    if result.test is None:
        console.print(f"stopped before the last epoch; continue with: harkit train --resume "
                      f"{result.run_dir}")
        return
    _print_report(result.test)
    console.print(f"metrics: {result.run_dir / 'metrics.json'}")
    console.print(f"plots: {result.run_dir / 'plots'}")
    _print_tracking(result.run_dir)


@app.command()
def cv(
    dataset: Annotated[str | None, typer.Option(help="registered dataset (harkit datasets)")] = None,
    model: Annotated[str | None, typer.Option(help="registered model (harkit models)")] = None,
    protocol: Annotated[str, typer.Option(
        help="loso (leave one subject out), kfold (--folds folds of subjects) or holdout (the "
             "dataset's own split)")] = "loso",
    folds: Annotated[int, typer.Option(help="number of folds for kfold")] = 5,
    subjects: Annotated[str | None, typer.Option(
        help="only run the folds holding out these subjects, e.g. 1,5,9")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML experiment config")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override any config field: --set train.epochs=10")] = None,
    epochs: Annotated[int | None, typer.Option(help="shortcut for --set train.epochs=N")] = None,
    data_dir: Annotated[str | None, typer.Option(help="local dataset mirror directory or URL")
                        ] = None,
    run_root: Annotated[str | None, typer.Option(help="where the cv directory goes")] = None,
    name: Annotated[str | None, typer.Option(help="cv directory name")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue this cv directory")] = None,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every epoch")] = False,
) -> None:
    """Cross-validate over subjects: each fold holds out whole subjects, trains a full run on
    the rest (validation subjects carved from them) and tests once; prints per-fold and
    per-subject scores with mean +/- std and writes tables and plots."""
    _setup_logging(verbose or not (progress and err.is_terminal))
    logging.getLogger("harkit.cv").setLevel(logging.INFO)
    from harkit.cv import cross_validate

    overrides = _overrides(dataset, model, epochs, data_dir, run_root, name, set_)
    if resume is not None and (config is not None or overrides):
        raise HarkitError("--resume continues a cv directory with its stored settings; drop "
                          "the other options")
    overrides += _tracking(track, tracking_uri, resume)
    try:
        only = [int(s) for s in subjects.split(",")] if subjects else None
    except ValueError:
        raise HarkitError(f"--subjects {subjects!r}: expected comma-separated subject ids") from None
    r = cross_validate(config, overrides=overrides, protocol=protocol, folds=folds,
                       subjects=only, resume=resume, progress=progress and console.is_terminal,
                       command=["harkit", *sys.argv[1:]])
    has_null = any("macro_f1_without_null" in f for f in r.folds)
    t = Table(title=f"{r.protocol}: {len(r.folds)} folds")
    cols = ["fold", "test subjects", "windows", "accuracy", "macro F1", "weighted F1"]
    keys = ["accuracy", "macro_f1", "weighted_f1"]
    if has_null:
        cols.append("macro F1 w/o NULL")
        keys.append("macro_f1_without_null")
    for c in cols:
        t.add_column(c, justify="left" if c in ("fold", "test subjects") else "right")
    for f in r.folds:
        t.add_row(f["fold"], f["test_subjects"], str(f["n_windows"]),
                  *(f"{f[k]:.4f}" for k in keys))
    t.add_row("mean +/- std", "", "", *(f"{r.summary[k]['mean']:.4f} +/- {r.summary[k]['std']:.4f}"
                                        for k in keys), style="bold")
    console.print(t)
    if len(r.subjects) > len(r.folds):  # several subjects per fold: show them one by one
        st = Table(title="per test subject")
        for c in ("subject", "fold", "windows", "accuracy", "macro F1"):
            st.add_column(c, justify="right")
        for s in sorted(r.subjects, key=lambda s: s["subject"]):
            st.add_row(str(s["subject"]), s["fold"], str(s["n_windows"]), f"{s['accuracy']:.4f}",
                       f"{s['macro_f1']:.4f}")
        console.print(st)
    console.print("mean +/- std over folds: " + ", ".join(
        f"{k.replace('_', ' ').replace('f1', 'F1')} {r.summary[k]['mean']:.4f} +/- "
        f"{r.summary[k]['std']:.4f}" for k in keys), soft_wrap=True)
    console.print(f"pooled over all test windows: accuracy {r.pooled.accuracy:.4f}, macro F1 "
                  f"{r.pooled.macro_f1:.4f}")
    console.print(f"cv directory: {r.cv_dir} (folds.csv, subjects.csv, summary.json, plots/)")


@app.command()
def tune(
    dataset: Annotated[str | None, typer.Option(help="registered dataset (harkit datasets)")] = None,
    model: Annotated[str | None, typer.Option(help="registered model (harkit models)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML experiment config (the base)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="override any base config field: --set train.epochs=10")] = None,
    space: Annotated[Path | None, typer.Option(
        help="YAML search space: dotted config keys -> {type: float, low, high, log} | "
             "{type: int, low, high, step} | {choices: [...]} (default: lr, weight decay, batch "
             "size, label smoothing, augmentation)")] = None,
    trials: Annotated[int, typer.Option(help="trial budget")] = 20,
    timeout: Annotated[float | None, typer.Option(help="start no trial after this many "
                                                        "seconds")] = None,
    prune: Annotated[bool, typer.Option(help="stop unpromising trials early (median pruner)")
                     ] = True,
    seed: Annotated[int, typer.Option(help="the sampler's seed")] = 0,
    epochs: Annotated[int | None, typer.Option(help="shortcut for --set train.epochs=N")] = None,
    data_dir: Annotated[str | None, typer.Option(help="local dataset mirror directory or URL")
                        ] = None,
    run_root: Annotated[str | None, typer.Option(help="where the tune directory goes")] = None,
    name: Annotated[str | None, typer.Option(help="tune directory name")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue this tune directory")] = None,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every epoch")] = False,
) -> None:
    """Search hyperparameters with Optuna: every trial trains on the training subjects and is
    scored on the validation subjects only (never the test split); bad trials are pruned
    early; the best config is written out for harkit train --config."""
    _setup_logging(verbose or not (progress and err.is_terminal))
    logging.getLogger("harkit.tune").setLevel(logging.INFO)
    from harkit.tune import tune as run_tune

    overrides = _overrides(dataset, model, epochs, data_dir, run_root, name, set_)
    if resume is not None and (config is not None or overrides or space is not None):
        raise HarkitError("--resume continues a tune directory with its stored settings; drop "
                          "the other options")
    overrides += _tracking(track, tracking_uri, resume)
    r = run_tune(config, overrides=overrides, space=space, n_trials=trials, timeout=timeout,
                 prune=prune, seed=seed, resume=resume,
                 progress=progress and console.is_terminal, command=["harkit", *sys.argv[1:]])
    keys = sorted({k for row in r.trials for k in row if k.startswith("param.")})
    t = Table(title=f"{len(r.trials)} trials (validation macro F1; test split not used)")
    for c in ("trial", "state", "val macro F1", "epochs", "seconds", *(k[6:] for k in keys)):
        t.add_column(c, justify="right")
    for row in r.trials:
        v = row["val_macro_f1"]
        t.add_row(str(row["number"]), row["state"].lower(), "" if v is None else f"{v:.4f}",
                  str(row["epochs"] or ""), str(row["seconds"] or ""),
                  *(_short(row.get(k)) for k in keys),
                  style="bold" if row["run_dir"] == str(r.best_run) else None)
    console.print(t)
    console.print(f"best: validation macro F1 {r.best_value:.4f} with " + ", ".join(
        f"{k}={_short(v)}" for k, v in r.best_params.items()), soft_wrap=True)
    console.print(f"tune directory: {r.tune_dir} (trials.csv, plots/trials.png)")
    console.print(f"train it: harkit train --config {r.best_config}", soft_wrap=True)


def _short(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@app.command()
def runs(
    run_root: Annotated[Path, typer.Option(help="where run directories are")] = Path("runs"),
    tracking_uri: Annotated[str | None, typer.Option(
        help="also list the MLflow runs at this tracking URI (e.g. sqlite:///mlflow.db)")
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name")] = "harkit",
    last: Annotated[int | None, typer.Option(help="show only the newest N")] = None,
) -> None:
    """List runs and cross-validations (newest first) with their key scores."""
    _setup_logging(False)
    from harkit.compare import list_runs, runs_table

    rows = list_runs(run_root, tracking_uri=tracking_uri, experiment=experiment)
    if not rows:
        console.print(f"no runs under {run_root}")
        return
    shown = rows[:last] if last else rows
    console.print(runs_table(shown, title=f"{len(shown)} of {len(rows)} runs, newest first"))


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="two or more run or cv directories; the "
                                                    "first is the reference")],
    output: Annotated[Path | None, typer.Option(
        help="folder for comparison.json and learning_curves.png (or a .png path); "
             "default: ./compare")] = None,
) -> None:
    """Compare runs side by side: scores, per-class F1 differences from the first run,
    configuration differences, and their learning curves overlaid in one plot."""
    _setup_logging(False)
    from harkit.compare import compare_runs, comparison_tables

    cmp = compare_runs(runs, output=output)
    for t in comparison_tables(cmp):
        console.print(t)
    if cmp.plot_path is not None:
        console.print(f"learning curves: {cmp.plot_path}")
    console.print(f"comparison: {cmp.json_path}")


@app.command()
def explore(
    dataset: Annotated[str, typer.Argument(help="registered dataset (harkit datasets)")],
    data_dir: Annotated[str | None, typer.Option(
        help="local dataset mirror directory or URL (else $HARKIT_DATA_DIR, else the cache)")
    ] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="a source option: --option activities=12 --option policy=pad")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="output folder (default: "
                                                     "explore/<dataset>)")] = None,
    embedding: Annotated[str, typer.Option(help="pca, or umap (pip install umap-learn)")
                         ] = "pca",
    max_windows: Annotated[int, typer.Option(help="embed at most this many windows (a seeded "
                                                  "subsample by split and subject)")] = 5000,
    seed: Annotated[int, typer.Option(help="seed of the subsample and of the examples")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log each step")] = False,
) -> None:
    """Plots and numbers to look at before training: class balance overall and per subject,
    recording lengths, a typical window per class, channel statistics (training split) and a
    2D embedding of windows coloured by class and by subject (labels never among its inputs)."""
    _setup_logging(verbose)
    from harkit.explore import explore as run_explore
    from harkit.explore import parse_options

    result = run_explore(dataset, data_dir=data_dir, options=parse_options(option),
                         output=output, embedding=embedding, max_windows=max_windows, seed=seed,
                         progress=progress and err.is_terminal)
    s = result.summary
    console.print(f"{s['dataset']} ({s['kind']}): {s['n_classes']} classes, {s['n_channels']} "
                  f"channels, windows of {s['window_len']} samples ({s['window_seconds']:.2f} s)")
    table = Table()
    for col in ("split", "windows", "subjects"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split_name, split in s["splits"].items():
        table.add_row(split_name, str(split["n_windows"]), str(split["n_subjects"]))
    console.print(table)
    console.print(f"{len(result.files)} files in {result.output}: "
                  f"{', '.join(p.name for p in result.files)}", soft_wrap=True)


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="run directory or cross-validation directory")],
    output: Annotated[Path | None, typer.Option(
        help="HTML file to write (default: RUN/report.html)")] = None,
    n_worst: Annotated[int, typer.Option(
        help="most confidently wrong test windows to draw (0: none)")] = 6,
) -> None:
    """Write one self-contained HTML report of a run or a cross-validation (images embedded):
    scores, config, learning curves, confusion matrix, per-class and per-subject tables and
    the worst-classified test windows; per-fold results for a cross-validation."""
    _setup_logging(False)
    from harkit.report import write_report

    console.print(f"report: {write_report(run, output, n_worst=n_worst)}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    split: Annotated[str, typer.Option(help="test or val")] = "test",
    checkpoint: Annotated[str | None, typer.Option(
        help="final (refit), best or last (default: the run's final model)")] = None,
) -> None:
    """Evaluate a run's checkpoint on a split; print and save the report and plots."""
    _setup_logging(False)
    from harkit.api import evaluate_run

    report = evaluate_run(run, split=split, which=checkpoint)
    _print_report(report)
    console.print(f"plots: {Path(run) / 'plots'}")


@app.command()
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="two or more run directories")],
    split: Annotated[str, typer.Option(help="test or val")] = "test",
    weights: Annotated[str | None, typer.Option(help="comma-separated weight per run")] = None,
    output: Annotated[Path | None, typer.Option(help="write metrics.json and the confusion "
                                                     "plot here")] = None,
    combine: Annotated[str, typer.Option(help="mean: average the probabilities; geometric: "
                                              "average their logarithms (product of "
                                              "experts)")] = "mean",
) -> None:
    """Evaluate several runs together: their final models' class probabilities averaged.

    Runs trained on other data settings (32 or 64 frames) each read the split their own way.
    """
    _setup_logging(False)
    from harkit.api import evaluate_ensemble

    try:
        w = [float(v) for v in weights.split(",")] if weights else None
    except ValueError:
        raise HarkitError(f"--weights {weights!r}: expected comma-separated numbers") from None
    report = evaluate_ensemble(list(runs), split=split, weights=w, output=output,
                               combine=combine)
    _print_report(report)
    if output is not None:
        console.print(f"report and plot: {output}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory, checkpoint .pt or exported .onnx")],
    file: Annotated[Path, typer.Argument(help="CSV of raw samples: a header naming the "
                                              "channels, one row per time step")],
    hop: Annotated[int | None, typer.Option(help="samples between windows (default: as in "
                                                 "training)")] = None,
    output: Annotated[Path | None, typer.Option(help="write predictions as CSV or JSON "
                                                     "lines (.jsonl)")] = None,
    show: Annotated[int, typer.Option(help="rows to print")] = 20,
    precision: Annotated[str, typer.Option(
        help="inference arithmetic: fp32, bf16 (fast on CPUs with AVX512-BF16/AMX) or int8 "
             "(dynamic quantisation); a lower precision is used only if it keeps the "
             "probabilities within 0.02 of fp32")] = "fp32",
    parallel: Annotated[str, typer.Option(
        help="how a batch uses the cores (PyTorch models): off (torch's threads inside each "
             "kernel), batch (the batch split across cores, one thread each: faster for "
             "recurrent models) or auto (both timed on the model at load, the faster kept)")
                        ] = "off",
) -> None:
    """Predict one activity (with confidence) per window of a CSV of raw samples (an exported
    .onnx model runs in ONNX Runtime without importing torch)."""
    _setup_logging(False)
    from harkit.inference import load_predictor

    t0 = time.perf_counter()
    pred = load_predictor(run, precision=precision, parallel=parallel)
    t1 = time.perf_counter()
    if parallel == "auto":
        timed = getattr(pred, "parallel_timings", {})
        err.print(f"parallel: {getattr(pred, 'parallel', 'off')}" + (
            f" (batch of {pred.batch_size}: off {timed['off'] * 1e3:.1f} ms, batch "
            f"{timed['batch'] * 1e3:.1f} ms)" if timed else " (one thread: nothing to split)"))
    rows = pred.predict_csv(file, hop=hop)
    t2 = time.perf_counter()
    if output is not None:
        from harkit.io import atomic_write_text

        if output.suffix == ".jsonl":
            text = "".join(json.dumps({"start": r.start, "end": r.end, "label": r.label,
                                       "confidence": r.confidence}) + "\n" for r in rows)
        else:
            text = "start,end,label,confidence\n" + "".join(
                f"{r.start},{r.end},{r.label},{r.confidence:.6f}\n" for r in rows)
        atomic_write_text(output, text)
    table = Table(title=f"{file}: {len(rows)} windows of {pred.window_len} samples "
                        f"({pred.window_len / pred.sampling_rate:.2f} s)")
    for col in ("window", "samples", "time (s)", "activity", "confidence"):
        table.add_column(col, justify="left" if col == "activity" else "right")
    for i, r in enumerate(rows[:show]):
        table.add_row(str(i), f"{r.start}-{r.end}", f"{r.start / pred.sampling_rate:.2f}",
                      r.label, f"{r.confidence:.3f}")
    console.print(table)
    if len(rows) > show:
        console.print(f"... {len(rows) - show} more" + (f" in {output}" if output else
                                                         " (use --output to save all)"))
    rate = len(rows) / max(t2 - t1, 1e-9)
    err.print(f"{len(rows)} windows in {t2 - t1:.3f} s ({rate:,.0f} windows/s; model load "
              f"{t1 - t0:.2f} s)")


@app.command()
def stream(
    run: Annotated[Path, typer.Argument(help="run directory, checkpoint .pt or exported .onnx")],
    source: Annotated[str, typer.Argument(help="CSV file, '-' for stdin or tcp://host:port: a "
                                               "header naming the channels, one row per time "
                                               "step")],
    hop: Annotated[int | None, typer.Option(help="samples between windows (default: as in "
                                                 "training)")] = None,
    smoothing: Annotated[str, typer.Option(help="none; mean: average of the last k windows' "
                                                "probabilities; hysteresis: switch only after "
                                                "k consecutive windows won by a 0.1 margin")
                         ] = "none",
    k: Annotated[int, typer.Option("--k", help="windows for --smoothing mean / hysteresis")] = 3,
    threshold: Annotated[float, typer.Option(help="report 'unknown' when the smoothed "
                                                  "confidence is below this")] = 0.0,
    replay: Annotated[bool, typer.Option("--replay/--no-replay", help="replay at the "
                                         "recording's sampling rate (times --speed)")] = False,
    speed: Annotated[float, typer.Option(help="replay speed factor")] = 1.0,
    output: Annotated[Path | None, typer.Option(help="write every window's event as JSON "
                                                     "lines")] = None,
    threads: Annotated[int | None, typer.Option(
        help="torch threads (1 is fastest for one window at a time)")] = None,
    nan: Annotated[str, typer.Option(
        help="raise: stop at a missing or non-finite value; repair: interpolate runs of up "
             "to --max-fill samples, skip the windows of longer runs (empty fields, nan and "
             "inf are missing values)")] = "raise",
    gaps: Annotated[str, typer.Option(
        help="with --time-column: keep (times as given); reset: restart the windows after a "
             "jump of more than --gap-factor sample periods; interpolate: fill gaps of up to "
             "--max-fill samples, reset at longer ones")] = "keep",
    disorder: Annotated[str, typer.Option(
        help="with --time-column: keep (times as given) or drop late and duplicate samples")
                        ] = "keep",
    max_fill: Annotated[int | None, typer.Option(
        help="longest NaN run / gap interpolated, in samples (default: window_len / 8)")
                        ] = None,
    gap_factor: Annotated[float, typer.Option(
        help="a time step longer than this many sample periods is a gap")] = 2.0,
    time_column: Annotated[str | None, typer.Option(
        help="CSV column with each sample's time in seconds (for --gaps and --disorder)")
                           ] = None,
) -> None:
    """Recognise activities live from a stream of samples: a timeline of the changes, every
    window's event as JSON lines. Hostile input (missing values, gaps, disordered timestamps)
    is refused by default; --nan repair, --gaps and --disorder drop, fill or reset instead and
    the summary counts what was done."""
    _setup_logging(False)
    from harkit.stream_cli import stream_command

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    code = stream_command(run, source, replay=replay, speed=speed, hop=hop, smoothing=smoothing,
                          window_k=k, threshold=threshold, output=output, console=console,
                          nan=nan, gaps=gaps, disorder=disorder, max_fill=max_fill,
                          gap_factor=gap_factor, time_column=time_column)
    if code:
        raise typer.Exit(code)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run directory (or a checkpoint .pt file)")],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript")] = "onnx",
    output: Annotated[Path | None, typer.Option(
        help="model file to write (default: RUN/export/model.onnx or model.torchscript.pt); "
             "the sidecar JSON goes beside it as OUTPUT.json")] = None,
    checkpoint: Annotated[str | None, typer.Option(
        help="final (refit), best or last (default: the run's final model)")] = None,
    fold: Annotated[bool, typer.Option(
        "--fold-preprocessing/--no-fold-preprocessing",
        help="put the normaliser into the graph (raw windows in); without it the graph takes "
             "normalised windows and the sidecar holds the normaliser")] = True,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's)")] = None,
) -> None:
    """Export a run's model with its preprocessing (normaliser, softmax) to ONNX or
    TorchScript: raw windows (batch, time, channels) in, class probabilities out, checked
    against the PyTorch model before it is written."""
    _setup_logging(False)
    from harkit.inference.export import export_run

    # a spinner on a terminal (the large random-kernel models take a minute or more to ONNX)
    with err.status(f"exporting {run} to {format} and checking it against PyTorch ..."):
        res = export_run(run, output, format=format, which=checkpoint,
                         fold_preprocessing=fold, opset=opset)
    meta = res.metadata
    console.print(f"{res.format}: {res.path} ({res.path.stat().st_size / 1e6:.2f} MB"
                  + (f", opset {res.opset}" if res.opset else "") + ")")
    console.print(f"sidecar: {res.sidecar}")
    console.print(f"input {meta['input_name']!r}: (batch, {meta['window_len']}, "
                  f"{len(meta['channels'])}) raw float32, channels {', '.join(meta['channels'])}")
    console.print(f"output {meta['output_name']!r}: (batch, {len(meta['classes'])}) "
                  f"probabilities of {', '.join(meta['classes'])}")
    err.print(f"matches the PyTorch model within {res.max_abs_diff:.1e} "
              f"({res.seconds:.1f} s)")


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="run directory, checkpoint .pt or exported .onnx")],
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="let the live page replay a recording: "
                                       "one subject of the run's test split")] = False,
    demo_csv: Annotated[Path | None, typer.Option(
        help="replay this CSV of raw samples instead (a header naming the channels; implies "
             "--demo)")] = None,
    threads: Annotated[int | None, typer.Option(help="model threads (torch or ONNX Runtime)")
                       ] = None,
    max_batch: Annotated[int, typer.Option(help="most windows per request")] = 1024,
    max_body_mb: Annotated[float, typer.Option(help="largest request body, MiB")] = 16.0,
    workers: Annotated[int, typer.Option(help="predictions running at once")] = 4,
    stream_policy: Annotated[str, typer.Option(
        help="what /stream does with NaN, gaps and disordered timestamps: strict (refuse "
             "them) or repair (interpolate, drop, reset; see harkit.inference.streaming); "
             "clients override it with ?policy=, ?nan=, ?gaps=, ?disorder=")] = "strict",
    body_timeout: Annotated[float, typer.Option(
        help="seconds a request body may take to arrive (a trickling client gets 408)")
                            ] = 30.0,
    ws_idle_timeout: Annotated[float, typer.Option(
        help="seconds a /stream client may stay silent before it is closed")] = 300.0,
    send_timeout: Annotated[float, typer.Option(
        help="seconds a /stream client may leave events unread before it is closed")] = 30.0,
    limit_concurrency: Annotated[int | None, typer.Option(
        help="most connections at once (more get 503); default: no limit")] = None,
    header_timeout: Annotated[float, typer.Option(
        help="seconds a request's headers may take to arrive (then 408, connection closed)")
                              ] = 10.0,
) -> None:
    """Serve the model over HTTP and WebSocket: POST /predict, WS /stream, GET /health, /model,
    /metrics, and a live page at / that plots the stream and the predicted activity."""
    _setup_logging(False)
    from harkit.serve import demo_recording_for_run
    from harkit.serve import serve as run_server

    if not 0 < port < 65536:
        raise HarkitError(f"--port {port}: expected 1 to 65535")
    recording: Any = None
    if demo_csv is not None:
        recording = demo_csv  # create_app reads it with the model's channels
    elif demo:
        recording = demo_recording_for_run(run)
    run_server(run, host, port, demo_recording=recording, threads=threads,
               max_batch=max_batch, max_body_bytes=int(max_body_mb * 2**20), workers=workers,
               stream_policy=stream_policy, body_timeout=body_timeout,
               ws_idle_timeout=ws_idle_timeout, send_timeout=send_timeout,
               limit_concurrency=limit_concurrency, header_timeout=header_timeout)


@app.command()
def models(
    flops: Annotated[bool, typer.Option(
        "--flops", help="add the forward MFLOP of one window (harkit.perf.count_flops)")] = False,
) -> None:
    """List the registered models; skeleton models read the joint layout of a skeleton
    dataset (on sensor data they see the channels as joints without bones)."""
    from harkit.models import MODELS, create_model

    t = Table(title="models: (batch, time, channels) -> (batch, classes) logits",
              caption="parameters" + (" and MFLOP/window" if flops else "")
              + ": for 9 channels, 6 classes, 128 steps")
    cols = ("name", "kind", "parameters", *(["MFLOP/window"] if flops else []), "description")
    for col in cols:
        t.add_column(col, no_wrap=col != "description",
                     justify="right" if col in ("parameters", "MFLOP/window") else "left")
    for e in MODELS.entries():
        model = create_model(e.name, 9, 6, 128)
        n = sum(p.numel() for p in model.parameters())
        extra = [_mflops(model)] if flops else []
        t.add_row(e.name, "skeleton" if e.tags.get("skeleton") else "sensor", f"{n:,}",
                  *extra, e.description)
    console.print(t)


def _mflops(model: Any) -> str:
    """Forward MFLOP of one (128, 9) window, or '-' where the model cannot run on it."""
    from harkit.perf import flops_per_window

    try:
        return f"{flops_per_window(model, (128, 9)) / 1e6:,.2f}"
    except Exception:
        return "-"


@app.command()
def datasets() -> None:
    """List the registered datasets with their kind (wearable, skeleton, generic) and
    whether they come as continuous recordings."""
    from harkit.data import list_datasets

    t = Table(title="datasets")
    for col in ("name", "kind", "description"):
        t.add_column(col, no_wrap=col != "description")
    for e in list_datasets():
        kind = str(e.tags.get("kind", ""))
        if e.tags.get("continuous"):
            kind += " (continuous)"
        t.add_row(e.name, kind, e.description)
    console.print(t)


# The arguments main() was called with: `harkit train --nproc N` runs them again in each
# torchrun worker.
_ARGV: list[str] | None = None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 user error or usage error)."""
    global _ARGV
    _ARGV = list(argv) if argv is not None else sys.argv[1:]
    try:
        # standalone mode: Typer reports usage errors itself and exits with their status.
        app(args=argv, prog_name="harkit")
    except HarkitError as e:
        rank = os.environ.get("RANK", "0") if "LOCAL_RANK" in os.environ else "0"
        where = "" if rank == "0" else f"\\[rank {rank}] "  # which torchrun worker
        err.print(f"{where}[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return int(e.code or 0)
        err.print(str(e.code))
        return 1
    return 0


def console_main() -> None:
    """The ``harkit`` command: :func:`main` in a process of its own, which first keeps freed
    memory for reuse (see :mod:`harkit.malloc`; ``HARKIT_RETAIN_MEMORY=0`` turns that off).
    The allocator setting is process-wide, so it is made here and not in :func:`main`, which
    tests and embedding programs call in their own processes."""
    if os.environ.get("HARKIT_RETAIN_MEMORY", "1") != "0":
        from harkit.malloc import retain_freed_memory

        retain_freed_memory()  # per-batch buffers stay mapped: no page faults every batch
    sys.exit(main())


if __name__ == "__main__":
    console_main()
