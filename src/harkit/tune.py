"""Hyperparameter search with Optuna over any config field, scored on validation subjects only.

Every trial is an ordinary harkit run of the selection phase (``train.refit=false``) that
never evaluates the test split: its score is the validation macro F1 of the epoch
``train.select`` chooses, on the validation subjects carved from the *training* subjects
(the same ones for every trial). Trials report their validation macro F1 each epoch and
Optuna's median pruner stops the unpromising ones early. With tracking on, the search is an
MLflow run and every trial a child run under it.

A search space is a mapping from dotted config keys to distributions (YAML)::

    train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size: {choices: [32, 64, 128]}
    model.width: {type: int, low: 16, high: 64, step: 16}

Layout of ``<run_root>/<name>/``::

    tune.json         base config, search space, status, MLflow run, best trial
    study.db          the Optuna study (SQLite): an interrupted search resumes from it
    trials.csv        one row per trial: number, state, validation macro F1, params, seconds
    best.yaml         the base config with the best trial's values, for harkit train --config
    plots/trials.png  validation macro F1 of every trial and the best so far
    trialNNN/         each trial's run directory
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from harkit.config import ExperimentConfig, apply_overrides, from_dict, save_config
from harkit.errors import ConfigError, HarkitError
from harkit.io import atomic_write_text

log = logging.getLogger(__name__)

# Model-agnostic defaults: optimisation and augmentation settings every model has.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "train.lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "train.batch_size": {"choices": [32, 64, 128]},
    "train.label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    "train.augment.scale": {"type": "float", "low": 0.0, "high": 0.2},
    "train.augment.jitter": {"type": "float", "low": 0.0, "high": 0.1},
}


@dataclass
class Param:
    """One searched config field and its distribution."""

    key: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low or 0), int(self.high or 0),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low or 0.0), float(self.high or 0.0),
                                   step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": self.choices}
        out: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def parse_space(data: Any, where: str = "search space") -> list[Param]:
    """Read a search space mapping (see the module docstring); errors name the key."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where}: expected a mapping of config keys to distributions")
    out = []
    for key, spec in data.items():
        at = f"{where}: {key}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{at}: expected a mapping like {{type: float, low: 0.0001, "
                              f"high: 0.01, log: true}} or {{choices: [32, 64]}}")
        unknown = sorted(set(spec) - {"type", "low", "high", "log", "step", "choices"})
        if unknown:
            raise ConfigError(f"{at}: unknown field(s) {unknown}; known: type, low, high, "
                              "log, step, choices")
        kind = spec.get("type", "categorical" if "choices" in spec else None)
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{at}: choices must be a non-empty list")
            out.append(Param(str(key), "categorical", choices=list(choices)))
            continue
        if kind not in ("float", "int"):
            raise ConfigError(f"{at}: type {kind!r}: expected float, int or categorical "
                              "(choices)")
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except KeyError as e:
            raise ConfigError(f"{at}: missing {e.args[0]}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"{at}: low and high must be numbers") from None
        log_scale = bool(spec.get("log", False))
        if not low < high:
            raise ConfigError(f"{at}: low ({low}) must be below high ({high})")
        if log_scale and low <= 0:
            raise ConfigError(f"{at}: a log scale needs low > 0")
        step = spec.get("step")
        if step is not None and log_scale:
            raise ConfigError(f"{at}: step and log cannot be combined")
        out.append(Param(str(key), kind, low, high, log_scale,
                         None if step is None else float(step)))
    return out


def load_space(path: str | Path) -> list[Param]:
    """A search space from a YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{p}: cannot read search space ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML ({e})") from None
    return parse_space(data, str(p))


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: numbers, strings and lists survive


def _check_space(base: ExperimentConfig, space: list[Param]) -> None:
    """The search needs validation subjects, and every key must be a field the config
    accepts, with values of the right type."""
    if base.data.n_val_subjects == 0 and not base.data.val_subjects:
        raise ConfigError("harkit tune scores trials on validation subjects: "
                          "data.n_val_subjects=0 (no validation) cannot be tuned")
    for p in space:
        samples = p.choices if p.kind == "categorical" else [p.low, p.high]
        for v in samples or []:
            value = int(v) if p.kind == "int" and v is not None else v
            try:
                apply_overrides(base, [_override(p.key, value)])
            except ConfigError as e:
                raise ConfigError(f"search space: {p.key}: {e}") from None


@dataclass
class TuneResult:
    """What :func:`tune` returns."""

    tune_dir: Path
    best_value: float  # validation macro F1 of the best trial
    best_params: dict[str, Any]
    best_config: Path  # best.yaml
    best_run: Path  # the best trial's run directory
    trials: list[dict[str, Any]]


def tune(config: ExperimentConfig | dict[str, Any] | str | Path | None = None, *,
         overrides: list[str] | None = None,
         space: list[Param] | dict[str, Any] | str | Path | None = None, n_trials: int = 20,
         timeout: float | None = None, prune: bool = True, seed: int = 0,
         resume: str | Path | None = None, progress: bool = True,
         command: list[str] | None = None) -> TuneResult:
    """Search hyperparameters with Optuna (TPE sampler, median pruner).

    Args:
        config, overrides: the base experiment, as for :func:`harkit.train`.
        space: the search space (a list of :class:`Param`, a mapping, or a YAML path);
            default :data:`DEFAULT_SPACE`.
        n_trials: the trial budget (trials already run in a resumed search count).
        timeout: stop starting new trials after this many seconds.
        prune: stop unpromising trials early (median of earlier trials at the same epoch).
        seed: the sampler's seed (the trials themselves use ``train.seed``).
        resume: a tune directory to continue.

    Returns:
        TuneResult; ``best.yaml`` in the tune directory is ready for ``harkit train --config``.

    Example:
        >>> r = tune(overrides=["train.epochs=10"], n_trials=20)   # doctest: +SKIP
        >>> r.best_config                                          # doctest: +SKIP
    """
    try:
        import optuna
    except ImportError:
        raise HarkitError('harkit tune needs Optuna: pip install "harkit[tune]"') from None
    from harkit.api import _as_config
    from harkit.cv import _create_cv_dir
    from harkit.data.store import is_url

    if resume is not None:
        tune_dir = Path(resume)
        meta_path = tune_dir / "tune.json"
        if not meta_path.exists():
            raise ConfigError(f"{tune_dir}: not a tune directory (no tune.json)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        base = from_dict(ExperimentConfig, meta["config"])
        params = parse_space(meta["space"], f"{meta_path}: space")
        n_trials, seed, prune = meta["n_trials"], meta["seed"], meta["prune"]
    else:
        base = _as_config(config, overrides)
        data_dir = base.data.data_dir
        if data_dir and not is_url(data_dir):  # best.yaml works from any directory
            base = replace(base, data=replace(base.data, data_dir=str(
                Path(data_dir).expanduser().resolve())))
        if space is None:
            space = DEFAULT_SPACE
        if isinstance(space, (str, Path)):
            params = load_space(space)
        elif isinstance(space, dict):
            params = parse_space(space)
        else:
            params = list(space)
        _check_space(base, params)
        if n_trials < 1:
            raise ConfigError(f"n_trials={n_trials}: expected at least 1")
        name = base.name or (time.strftime("%Y%m%d-%H%M%S")
                             + f"-{base.data.dataset}-{base.model.name}-tune")
        meta = {"kind": "tune", "config": base.to_dict(),
                "space": {p.key: p.to_dict() for p in params}, "n_trials": n_trials,
                "seed": seed, "prune": prune, "command": " ".join(command or []),
                "status": "running", "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        tune_dir = _create_cv_dir(Path(base.run_root), name, meta, "tune.json")
        meta_path = tune_dir / "tune.json"

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner: Any = (optuna.pruners.MedianPruner(n_startup_trials=5,
                                               n_warmup_steps=max(1, base.train.epochs // 5))
                   if prune else optuna.pruners.NopPruner())
    study = optuna.create_study(
        storage=f"sqlite:///{(tune_dir / 'study.db').resolve()}", study_name="harkit",
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner,
        load_if_exists=True)
    for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        # a trial interrupted by a crash or Ctrl-C: it will not report again
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)

    from harkit.tracking import finish_group_run, start_group_run

    tracker = start_group_run(base, tune_dir, meta, "tune.json", "tune",
                              {f"space.{p.key}": json.dumps(p.to_dict()) for p in params})
    try:
        _optimise(study, base, params, tune_dir, n_trials, timeout, progress, command, tracker)
    except BaseException as e:
        tracker.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    result = _finish(study, base, params, tune_dir, meta, meta_path)
    tracker.log_metrics({"best_val_macro_f1": result.best_value,
                         "n_trials": float(len(result.trials))})
    tracker.set_tags({"harkit.best_run": str(result.best_run),
                      **{f"best.{k}": v for k, v in result.best_params.items()}})
    finish_group_run(tracker, tune_dir, "trial*", ("study.db",))
    return result


def _optimise(study: Any, base: ExperimentConfig, params: list[Param], tune_dir: Path,
              n_trials: int, timeout: float | None, progress: bool, command: list[str] | None,
              tracker: Any) -> None:
    import optuna

    from harkit.api import Pruned
    from harkit.api import train as train_run
    from harkit.tracking import parent_run

    def objective(trial: optuna.Trial) -> float:
        values = {p.key: p.suggest(trial) for p in params}
        cfg = apply_overrides(base, [_override(k, v) for k, v in values.items()])
        cfg = replace(cfg, run_root=str(tune_dir), name=f"trial{trial.number:03d}",
                      train=replace(cfg.train, refit=False))
        log.info("trial %d: %s", trial.number, values)

        def report(_trainer: Any, result: Any) -> None:
            trial.report(result.val_f1, result.epoch)
            if trial.should_prune():
                raise Pruned(f"trial {trial.number} pruned at epoch {result.epoch}")

        trial.set_user_attr("run_dir", str(tune_dir / f"trial{trial.number:03d}"))
        with parent_run(tracker):
            try:
                r = train_run(cfg, progress=progress, callbacks=[report], evaluate_test=False,
                              command=command)
            except Pruned:
                raise optuna.TrialPruned() from None
        trial.set_user_attr("run_dir", str(r.run_dir))
        if r.val is None:
            raise ConfigError("harkit tune scores trials on validation subjects: "
                              "data.n_val_subjects=0 (no validation) cannot be tuned")
        return float(r.val.macro_f1)

    def after_trial(study: Any, trial: Any) -> None:
        _write_trials(study, tune_dir)
        if trial.value is not None:
            tracker.log_metrics({"trial_val_macro_f1": trial.value}, step=trial.number)

    done = len([t for t in study.get_trials() if t.state.is_finished()
                and t.state != optuna.trial.TrialState.FAIL])
    remaining = n_trials - done
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(HarkitError,),
                       callbacks=[after_trial])


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials():
        secs = ((t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start else None)
        value = t.value
        if value is None and t.last_step is not None:  # pruned: its last reported score
            value = t.intermediate_values.get(t.last_step)
        rows.append({"number": t.number, "state": t.state.name,
                     "val_macro_f1": value, "epochs": t.last_step,
                     "seconds": None if secs is None else round(secs, 1),
                     **{f"param.{k}": v for k, v in t.params.items()},
                     "run_dir": t.user_attrs.get("run_dir", "")})
    return rows


def _write_trials(study: Any, tune_dir: Path) -> list[dict[str, Any]]:
    rows = _trial_rows(study)
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(tune_dir / "trials.csv", buf.getvalue())
    return rows


def _finish(study: Any, base: ExperimentConfig, params: list[Param], tune_dir: Path,
            meta: dict[str, Any], meta_path: Path) -> TuneResult:
    rows = _write_trials(study, tune_dir)
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["val_macro_f1"] is not None]
    if not complete:
        meta["status"] = "failed"
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
        raise HarkitError(f"{tune_dir}: no trial completed (see trials.csv and the trial run "
                          "directories)")
    best = study.best_trial
    values = dict(best.params)
    best_cfg = apply_overrides(base, [_override(k, v) for k, v in values.items()])
    best_cfg = replace(best_cfg, name=None)
    best_path = tune_dir / "best.yaml"
    save_config(best_cfg, best_path)
    _plot_trials(rows, tune_dir / "plots" / "trials.png",
                 f"{base.model.name} on {base.data.dataset}: {len(rows)} trials")
    meta.update(status="finished", best_trial=best.number, best_value=best.value,
                best_params=values)
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return TuneResult(tune_dir, float(best.value), values, best_path,
                      Path(best.user_attrs.get("run_dir", "")), rows)


def _plot_trials(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    from harkit.viz.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red"}
    best = -math.inf
    best_x, best_y = [], []
    for r in rows:
        v = r["val_macro_f1"]
        if v is None:
            continue
        ax.scatter(r["number"], v, color=colours.get(r["state"], "grey"), s=24,
                   label=r["state"].lower())
        if r["state"] == "COMPLETE" and v > best:
            best = v
        if best > -math.inf:
            best_x.append(r["number"])
            best_y.append(best)
    ax.step(best_x, best_y, where="post", color="black", lw=1, label="best so far")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), loc="lower right", fontsize=8)
    ax.set_xlabel("trial")
    ax.set_ylabel("validation macro F1 (last reported)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)


__all__ = ["DEFAULT_SPACE", "Param", "TuneResult", "load_space", "parse_space", "tune"]
