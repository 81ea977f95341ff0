"""Kill soak: SIGKILL `harkit train` at random moments, resume it, and check that nothing is lost.

A small UCI-HAR-format dataset (the test fixture's generator) is trained once without
interruption (the reference), then the same config is trained again and again, each run
killed with SIGKILL several times and resumed with ``--resume`` until it finishes. Kills land
at random delays after launch, during an epoch, in the middle of a checkpoint write (the
``HARKIT_FAULT_SLOW_WRITE`` hook of :mod:`harkit.io` pauses there) and during the final
evaluation (``status: evaluating`` in run.json, or in the middle of writing metrics.json).

After every kill every file of the run directory is checked (checkpoints through
``load_checkpoint``, JSON / YAML / CSV parsed, PNG complete, predictions loadable); the
epochs the killed process had completed are compared with where the next process resumes
(at most the epoch whose checkpoint was being written may be lost). At the end of each run
its checkpoints must equal the reference's bit for bit and its metrics exactly.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kill_soak.py --kills 20 --seed 0

Results go to benchmarks/results/kill_soak_<date>.json (or --out). tests/test_crash_resume.py
runs a few kills through the same code.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tests.conftest holds the UCI HAR fixture writer
    sys.path.insert(0, str(REPO))

# a tiny model for a few epochs: a whole run takes seconds, most of them process start-up
SOAK_OVERRIDES = ["data.n_val_subjects=2", "train.epochs=4", "train.batch_size=32",
                  "model.width=4", "model.hidden=8", "train.num_threads=1"]
TRAINING_KINDS = ("random", "epoch", "checkpoint-write")
EVALUATION_KINDS = ("evaluation", "evaluation-write")
SLOW_WRITE_S = 0.4  # the fault hook's pause in the middle of a targeted write
POLL_S = 0.005
EPOCH_LINE = re.compile(r"epoch (\d+)(:| \(fit on all training subjects\))")
PNG_MAGIC, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


@dataclass
class Kill:
    """One SIGKILL and what the run directory looked like right after it."""

    round: int
    kind: str  # what the kill waited for (random delay, an epoch, a write, evaluation)
    phase: str  # selection / refit / evaluation / startup (from run.json and the log)
    seconds_after_launch: float
    partial_temp_files: list[str]  # temporary files a write in progress left (never read)
    status: str | None  # run.json's status after the kill
    metrics_json_present: bool
    trained_before_kill: int  # epochs (selection + refit) completed by the run's processes
    checkpoint_epoch_at_kill: int  # progress on disk: what a resume continues from
    epochs_lost: int  # epochs this process completed that no checkpoint holds after the kill
    resumed_from: int | None = None  # where the next process to train started (from its log)
    checkpoint_epoch_after_resume: int | None = None  # progress on disk after that process
    corrupt_files: list[str] = field(default_factory=list)


@dataclass
class Round:
    """One run, killed several times and resumed until it finished."""

    name: str
    kills: int = 0
    launches: int = 0
    finished: bool = False
    failures: list[str] = field(default_factory=list)  # crashes, resume errors
    weights_identical: bool = False
    metrics_identical: bool = False
    differences: list[str] = field(default_factory=list)
    leftover_temp_files: list[str] = field(default_factory=list)
    trained: int = 0  # the most epochs any of its processes completed (from their logs)
    open_kills: list[Kill] = field(default_factory=list)  # until a process shows its resume


def temp_files(folder: Path) -> list[Path]:
    from harkit.io import is_temp_file

    return sorted(p for p in folder.rglob(".*") if p.is_file() and is_temp_file(p))


def check_run_files(run_dir: Path) -> tuple[int, list[str]]:
    """Open every file of a run directory the way its readers do.

    Returns:
        (number of files checked, one ``path: problem`` line per file that is corrupt or
        partial). Temporary files of an interrupted write are skipped: nothing reads them.
    """
    import numpy as np
    import yaml

    from harkit.errors import CheckpointError
    from harkit.io import is_temp_file
    from harkit.training.checkpoint import load_checkpoint

    problems: list[str] = []
    checked = 0
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file() or is_temp_file(p):
            continue
        checked += 1
        rel = p.relative_to(run_dir)
        try:
            if p.suffix == ".pt":
                load_checkpoint(p)
            elif p.suffix == ".json":
                if not isinstance(json.loads(p.read_text(encoding="utf-8")), dict):
                    raise ValueError("not a JSON object")
            elif p.suffix == ".yaml":
                if not isinstance(yaml.safe_load(p.read_text(encoding="utf-8")), dict):
                    raise ValueError("not a YAML mapping")
            elif p.suffix == ".csv":
                rows = list(csv.reader(p.read_text(encoding="utf-8").splitlines()))
                if len(rows) < 2 or any(len(r) != len(rows[0]) for r in rows):
                    raise ValueError(f"ragged or empty table ({len(rows)} rows)")
            elif p.suffix == ".png":
                data = p.read_bytes()
                if not (data.startswith(PNG_MAGIC) and data.endswith(PNG_END)):
                    raise ValueError("incomplete PNG")
            elif p.suffix == ".npz":
                with np.load(p) as z:
                    if len(z["y_true"]) != len(z["y_pred"]):
                        raise ValueError("y_true and y_pred differ in length")
            elif p.suffix == ".txt":
                if not p.read_text(encoding="utf-8").endswith("\n"):
                    raise ValueError("no final newline")
            else:
                problems.append(f"{rel}: unexpected file")
        except (CheckpointError, ValueError, OSError, KeyError, yaml.YAMLError) as e:
            problems.append(f"{rel}: {e}")
    return checked, problems


def _same(a: Any, b: Any, where: str, out: list[str]) -> None:
    """Exact equality of nested dicts / lists / tensors; each difference appended to ``out``."""
    import torch

    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            out.append(f"{where}: keys differ")
            return
        for k in a:
            _same(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            out.append(f"{where}: lengths differ")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]", out)
    elif isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a, b)):
            out.append(f"{where}: tensors differ")
    elif a != b and not (a != a and b != b):  # NaN == NaN here
        out.append(f"{where}: {a!r} != {b!r}")


def compare_runs(run: Path, ref: Path) -> tuple[bool, bool, list[str]]:
    """(weights identical, metrics identical, differences) of two finished run directories:
    every checkpoint's model, EMA, optimizer and inference weights bit for bit; metrics,
    predictions and histories (but their wall-clock ``seconds``) exactly."""
    import numpy as np

    from harkit.training.checkpoint import load_checkpoint

    weights: list[str] = []
    for name in ("best.pt", "last.pt", "refit_last.pt"):
        a, b = (load_checkpoint(d / "checkpoints" / name) for d in (ref, run))
        for part in ("model", "ema", "optimizer", "epoch"):
            _same(a["trainer"][part], b["trainer"][part], f"{name}:{part}", weights)
        _same(a["weights"], b["weights"], f"{name}:weights", weights)
    metrics: list[str] = []
    for name in ("metrics.json", "metrics_val.json"):
        _same(json.loads((ref / name).read_text()), json.loads((run / name).read_text()), name,
              metrics)
    with np.load(ref / "test_predictions.npz") as za, np.load(run / "test_predictions.npz") as zb:
        for k in za.files:
            if not np.array_equal(za[k], zb[k]):
                metrics.append(f"test_predictions.npz:{k} differs")
    for name in ("history.csv", "refit_history.csv"):
        rows = [[{k: v for k, v in r.items() if k != "seconds"}
                 for r in csv.DictReader((d / name).read_text().splitlines())] for d in (ref, run)]
        _same(rows[0], rows[1], name, metrics)
    return not weights, not metrics, weights + metrics


class KillSoak:
    """Launches, kills and resumes `harkit train` runs on a fixture dataset under ``workdir``.

    Args:
        workdir: holds the dataset, the runs, the cache and one log per process.
        seed: seeds the kill schedule (kinds and delays); training itself is seeded by config.
        overrides: the run's config (``--set`` values).
    """

    def __init__(self, workdir: Path, seed: int = 0,
                 overrides: list[str] | None = None) -> None:
        from tests.conftest import write_uci_fixture

        self.workdir = workdir
        self.rng = random.Random(seed)
        self.overrides = list(SOAK_OVERRIDES if overrides is None else overrides)
        self.data_dir = workdir / "data"
        self.run_root = workdir / "runs"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "uci-har").exists():
            write_uci_fixture(self.data_dir / "uci-har")
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "HARKIT_TRACKING": "0",
                    "HARKIT_CACHE_DIR": str(workdir / "cache"), "PYTHONUNBUFFERED": "1",
                    "COLUMNS": "250"}  # one log line per epoch, never wrapped
        for k in ("MLFLOW_TRACKING_URI", "HARKIT_FAULT_SLOW_WRITE",
                  "HARKIT_FAULT_SLOW_WRITE_MATCH"):
            self.env.pop(k, None)
        self.n_launches = 0
        self.kills: list[Kill] = []
        self.rounds: list[Round] = []
        self.reference: Path | None = None
        self.n_selection = 0  # selection epochs of this config (from the reference)
        self.total_epochs = 0
        self.run_seconds = 10.0  # a whole uninterrupted run, process start included
        self.epoch_seconds = 0.5

    # -- processes --------------------------------------------------------------------------
    def command(self, run_dir: Path) -> list[str]:
        """``harkit train`` for ``run_dir``: a new run, or ``--resume`` once it exists."""
        cmd = [sys.executable, "-m", "harkit.cli", "train", "--no-track", "--no-progress"]
        if (run_dir / "config.yaml").exists():
            return [*cmd, "--resume", str(run_dir)]
        sets = [a for o in self.overrides for a in ("--set", o)]
        return [*cmd, "--data-dir", str(self.data_dir), "--run-root", str(self.run_root),
                "--name", run_dir.name, *sets]

    def _next_log(self, run_dir: Path) -> Path:
        self.n_launches += 1
        return self.logs / f"{self.n_launches:03d}-{run_dir.name}.log"

    def _launch(self, run_dir: Path, log: Path, env: dict[str, str] | None = None
                ) -> subprocess.Popen[bytes]:
        with open(log, "wb") as f:
            return subprocess.Popen(self.command(run_dir), stdout=f, stderr=subprocess.STDOUT,
                                    env={**self.env, **(env or {})}, cwd=REPO)

    def logged_progress(self, log: Path) -> list[int]:
        """The epochs a process logged as completed, in selection + refit units."""
        out = []
        for m in EPOCH_LINE.finditer(log.read_text(errors="replace")):
            e = int(m[1])
            out.append(e if m[2] == ":" else self.n_selection + e)
        return out

    def disk_progress(self, run_dir: Path) -> int:
        """The epochs a resume continues from: the refit's (after the selection's) once the
        selection is done, else the selection's; each the first good checkpoint of its chain."""
        from harkit.training.checkpoint import load_first_good, previous_path

        ck = run_dir / "checkpoints"
        info = _read_json(run_dir / "run.json")
        if info.get("selection_done"):
            found = load_first_good([ck / "refit_last.pt", previous_path(ck / "refit_last.pt")])
            return self.n_selection + (0 if found is None else int(found[1]["epoch"]))
        found = load_first_good([ck / "last.pt", previous_path(ck / "last.pt"), ck / "best.pt"])
        return 0 if found is None else int(found[1]["epoch"])

    def run_reference(self, name: str = "reference") -> Path:
        """Train the config once without interruption; its timings pace the kills."""
        run_dir = self.run_root / name
        if not (run_dir / "metrics.json").exists():
            t0 = time.perf_counter()
            log = self._next_log(run_dir)
            proc = self._launch(run_dir, log)
            seen: list[tuple[int, float]] = []  # (epoch in selection + refit units, when)
            while proc.poll() is None:
                logged = self.logged_progress(log)
                if len(logged) > len(seen):
                    seen += [(e, time.perf_counter()) for e in logged[len(seen):]]
                time.sleep(POLL_S)
            if proc.returncode != 0:
                raise RuntimeError(f"reference run failed, see {log}")
            self.run_seconds = time.perf_counter() - t0
            self.use_reference(run_dir)
            # the log numbered both phases from 1 (n_selection was unknown): 4 -> 1 is skipped
            steps = sorted(t2 - t1 for (e1, t1), (e2, t2) in itertools.pairwise(seen)
                           if e2 == e1 + 1)
            if steps:
                self.epoch_seconds = steps[len(steps) // 2]
            return run_dir
        self.use_reference(run_dir)
        return run_dir

    def use_reference(self, run_dir: Path) -> None:
        """Compare with (and pace the kills by) an already finished run of the same config."""
        info = _read_json(run_dir / "run.json")
        if info.get("status") != "finished":
            raise RuntimeError(f"{run_dir}: the reference run is not finished")
        self.reference = run_dir
        self.n_selection = int(info["epochs"])
        self.total_epochs = self.n_selection + int(info.get("refit_epochs", 0))
        self.epoch_seconds = float(info["train_seconds"]) / max(self.total_epochs, 1) / 2

    # -- kills ------------------------------------------------------------------------------
    def _trigger(self, kind: str, run_dir: Path, log: Path, started: float
                 ) -> tuple[dict[str, str], Callable[[], bool]]:
        """Extra environment for the process and a predicate: kill now?"""
        rng = self.rng
        if kind == "random":  # anywhere: start-up, an epoch, a write, evaluation
            deadline = started + rng.uniform(0.2, self.run_seconds)
            return {}, lambda: time.perf_counter() >= deadline
        if kind == "epoch":  # during the epoch after this process's first (or second) one
            n = rng.choice((1, 2))
            extra = rng.uniform(0.0, self.epoch_seconds)
            seen: list[float] = []

            def after_epoch() -> bool:
                if not seen and len(self.logged_progress(log)) >= n:
                    seen.append(time.perf_counter())
                return bool(seen) and time.perf_counter() >= seen[0] + extra
            return {}, after_epoch
        if kind == "checkpoint-write":  # in the middle of the n-th checkpoint this process writes
            n = rng.choice((1, 2, 3))
            names: set[str] = set()

            def mid_write() -> bool:
                for p in temp_files(run_dir / "checkpoints") if run_dir.exists() else []:
                    if p.name.endswith(".tmp") and _size(p) > 0:
                        names.add(p.name)
                return len(names) >= n
            return ({"HARKIT_FAULT_SLOW_WRITE": str(SLOW_WRITE_S),
                     "HARKIT_FAULT_SLOW_WRITE_MATCH": "*.pt"}, mid_write)
        if kind == "evaluation":  # a random moment once the final evaluation has begun
            extra = rng.uniform(0.0, 0.5)
            seen = []

            def evaluating() -> bool:
                if not seen and _read_json(run_dir / "run.json").get("status") == "evaluating":
                    seen.append(time.perf_counter())
                return bool(seen) and time.perf_counter() >= seen[0] + extra
            return {}, evaluating
        if kind == "evaluation-write":  # in the middle of writing the test report

            def mid_metrics() -> bool:
                return any(p.name.startswith(".metrics.json.") and _size(p) > 0
                           for p in (temp_files(run_dir) if run_dir.exists() else []))
            return ({"HARKIT_FAULT_SLOW_WRITE": str(SLOW_WRITE_S),
                     "HARKIT_FAULT_SLOW_WRITE_MATCH": "metrics.json"}, mid_metrics)
        raise ValueError(f"kill kind {kind!r}: expected one of "
                         f"{', '.join(TRAINING_KINDS + EVALUATION_KINDS)}")

    def launch(self, rnd: Round, run_dir: Path, kind: str | None, timeout: float = 300.0
               ) -> Kill | None:
        """Start (or resume) the run and SIGKILL it when ``kind``'s moment comes (None: let it
        run to the end). Returns the kill, or None when the process exited first."""
        log = self._next_log(run_dir)
        started = time.perf_counter()
        env, due = self._trigger(kind, run_dir, log, started) if kind else ({}, None)
        wall_start = time.time()
        proc = self._launch(run_dir, log, env)
        rnd.launches += 1
        killed_after: float | None = None
        while proc.poll() is None:
            if due is not None and due():
                os.kill(proc.pid, signal.SIGKILL)
                killed_after = time.perf_counter() - started
                proc.wait()  # reaped: its temporary files now belong to a dead process
                break
            if time.perf_counter() - started > timeout:
                proc.kill()
                proc.wait()
                rnd.failures.append(f"{log.name}: still running after {timeout:.0f} s")
                return None
            time.sleep(POLL_S)
        logged = self.logged_progress(log)
        self._observe_resume(rnd, run_dir, logged, finished=killed_after is None
                             and proc.returncode == 0)
        rnd.trained = max([rnd.trained, *logged])
        if killed_after is None:
            if proc.returncode != 0:
                rnd.failures.append(f"{log.name}: exit status {proc.returncode}: "
                                    f"{log.read_text(errors='replace')[-1500:]}")
            return None
        assert kind is not None
        return self._record_kill(rnd, run_dir, kind, logged, killed_after, wall_start)

    def _observe_resume(self, rnd: Round, run_dir: Path, logged: list[int], finished: bool
                        ) -> None:
        """Where this process resumed the run after the kills before it: the checkpoint
        that the last kill left, never an older one, and the checkpoints never go back."""
        if not rnd.open_kills or not (logged or finished):
            return  # killed again before training an epoch: the next process tells
        resumed = logged[0] - 1 if logged else self.total_epochs
        after = self.disk_progress(run_dir)
        for kill in rnd.open_kills:
            kill.resumed_from, kill.checkpoint_epoch_after_resume = resumed, after
        last = rnd.open_kills[-1]
        if resumed != last.checkpoint_epoch_at_kill:
            rnd.failures.append(f"resumed from epoch {resumed}, but the checkpoints the kill "
                                f"left held epoch {last.checkpoint_epoch_at_kill}")
        if after < last.checkpoint_epoch_at_kill:
            rnd.failures.append(f"the checkpoints went back from epoch "
                                f"{last.checkpoint_epoch_at_kill} to {after}")
        rnd.open_kills = []

    def _record_kill(self, rnd: Round, run_dir: Path, kind: str, logged: list[int],
                     seconds: float, wall_start: float) -> Kill:
        """Check every file the run directory holds right after a kill."""
        exists = (run_dir / "config.yaml").exists()
        info = _read_json(run_dir / "run.json") if exists else {}
        run_json = run_dir / "run.json"
        touched = exists and run_json.stat().st_mtime >= wall_start  # written by this process
        on_disk = self.disk_progress(run_dir) if exists else 0
        if not exists or (not logged and not touched):
            phase = "startup"  # loading, before this process trained or wrote anything
        elif info.get("status") in ("evaluating", "finished"):
            phase = "evaluation" if info["status"] == "evaluating" else "after the evaluation"
        else:
            phase = "refit" if info.get("selection_done") else "selection"
        kill = Kill(round=len(self.rounds), kind=kind, phase=phase,
                    seconds_after_launch=round(seconds, 3),
                    partial_temp_files=[str(p.relative_to(run_dir))
                                        for p in (temp_files(run_dir) if exists else [])],
                    status=info.get("status"),
                    metrics_json_present=(run_dir / "metrics.json").exists(),
                    trained_before_kill=rnd.trained, checkpoint_epoch_at_kill=on_disk,
                    epochs_lost=max(0, max(logged, default=0) - on_disk),
                    corrupt_files=check_run_files(run_dir)[1] if exists else [])
        if not exists and run_dir.exists():
            kill.corrupt_files.append(f"{run_dir.name}: a run directory without config.yaml")
        if rnd.open_kills and on_disk < rnd.open_kills[-1].checkpoint_epoch_at_kill:
            rnd.failures.append(f"the checkpoints went back from epoch "
                                f"{rnd.open_kills[-1].checkpoint_epoch_at_kill} to {on_disk}")
        self.kills.append(kill)
        rnd.kills += 1
        rnd.open_kills.append(kill)
        return kill

    # -- runs -------------------------------------------------------------------------------
    def soak_round(self, kinds: list[str], name: str | None = None) -> Round:
        """One run: a kill of each of ``kinds`` in turn (skipping those that come too late),
        then a last resume to the end; finally the checks against the reference."""
        assert self.reference is not None, "run_reference() first"
        rnd = Round(name or f"soak{len(self.rounds):02d}")
        run_dir = self.run_root / rnd.name
        shutil.rmtree(run_dir, ignore_errors=True)
        for kind in kinds:
            if self.launch(rnd, run_dir, kind) is None:  # the process ended before the kill
                break
        for _ in range(3):  # resume to the end (3 tries: a crash counts as a failure)
            if _read_json(run_dir / "run.json").get("status") == "finished" or rnd.failures:
                break
            self.launch(rnd, run_dir, None)
        self.finish_round(rnd, run_dir)
        return rnd

    def finish_round(self, rnd: Round, run_dir: Path) -> None:
        assert self.reference is not None
        rnd.finished = _read_json(run_dir / "run.json").get("status") == "finished"
        if rnd.finished:
            rnd.weights_identical, rnd.metrics_identical, rnd.differences = compare_runs(
                run_dir, self.reference)
            corrupt = check_run_files(run_dir)[1]
            rnd.differences += [f"corrupt: {c}" for c in corrupt]
            if self.disk_progress(run_dir) != self.total_epochs:
                rnd.failures.append(f"{run_dir.name}: finished at epoch "
                                    f"{self.disk_progress(run_dir)} of {self.total_epochs}")
        rnd.leftover_temp_files = [str(p) for p in temp_files(run_dir)]
        rnd.leftover_temp_files += [str(p) for p in self.run_root.glob(f".{rnd.name}.partial-*")]
        self.rounds.append(rnd)

    def soak(self, n_kills: int, per_round: int = 6) -> None:
        """Kill runs until ``n_kills`` kills have landed: each run gets up to ``per_round``
        kills during training (random kinds), its last one during the final evaluation."""
        while len(self.kills) < n_kills:
            n = min(per_round, n_kills - len(self.kills))
            # the first kill of a run lands in its first process's selection epochs (a random
            # delay rarely does: they take a fraction of a second after seconds of start-up)
            kinds = [self.rng.choice(("epoch", "checkpoint-write")),
                     *(self.rng.choice(TRAINING_KINDS) for _ in range(n - 2))]
            self.soak_round([*kinds[:n - 1], self.rng.choice(EVALUATION_KINDS)])

    # -- report -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        lost = [k.epochs_lost for k in self.kills]
        return {
            "kills": len(self.kills),
            "kills_by_phase": dict(Counter(k.phase for k in self.kills)),
            "kills_by_kind": dict(Counter(k.kind for k in self.kills)),
            "kills_mid_write": sum(bool(k.partial_temp_files) for k in self.kills),
            "corrupt_files": sum(len(k.corrupt_files) for k in self.kills)
            + sum(len([d for d in r.differences if d.startswith("corrupt")]) for r in self.rounds),
            "runs": len(self.rounds),
            "runs_lost": sum(not r.finished for r in self.rounds),
            "failed_checks": sum(len(r.failures) for r in self.rounds),
            "epochs_lost_max": max(lost, default=0),
            "resumes_checked": sum(k.resumed_from is not None for k in self.kills),
            "final_weights_identical": all(r.weights_identical for r in self.rounds),
            "metrics_identical": all(r.metrics_identical for r in self.rounds),
            "leftover_temp_files": sum(len(r.leftover_temp_files) for r in self.rounds),
            "launches": self.n_launches,
        }

    def ok(self) -> bool:
        s = self.summary()
        return (s["corrupt_files"] == 0 and s["runs_lost"] == 0 and s["failed_checks"] == 0
                and s["epochs_lost_max"] <= 1
                and s["final_weights_identical"] and s["metrics_identical"]
                and s["leftover_temp_files"] == 0 and bool(self.rounds))


def kill_soak_summary_table(s: dict[str, Any]) -> str:
    rows = [("kills", s["kills"]),
            ("  by phase", ", ".join(f"{k} {v}" for k, v in sorted(s["kills_by_phase"].items()))),
            ("  by kind", ", ".join(f"{k} {v}" for k, v in sorted(s["kills_by_kind"].items()))),
            ("  left a half-written temp file", s["kills_mid_write"]),
            ("runs (each resumed to the end)", s["runs"]),
            ("corrupt or partial files", s["corrupt_files"]),
            ("runs lost", s["runs_lost"]),
            ("epochs lost per kill, max (allowed: 1)", s["epochs_lost_max"]),
            ("resume points checked against the log", s["resumes_checked"]),
            ("failed checks (crash, resume from the wrong epoch)", s["failed_checks"]),
            ("final weights identical", s["final_weights_identical"]),
            ("metrics identical", s["metrics_identical"]),
            ("leftover temp files / partial dirs", s["leftover_temp_files"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed into place meanwhile
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs in all (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill schedule")
    ap.add_argument("--per-run", type=int, default=6, help="kills per run before it may finish")
    ap.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/"
                                             "kill_soak_<date>.json)")
    ap.add_argument("--workdir", type=Path, help="keep the runs and logs here (default: a "
                                                 "temporary folder, removed)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harkit-kill-soak-") as tmp:
        work = args.workdir or Path(tmp)
        soak = KillSoak(work, args.seed)
        soak.run_reference()
        print(f"reference run: {soak.run_seconds:.1f} s, {soak.n_selection} selection + "
              f"{soak.total_epochs - soak.n_selection} refit epochs", flush=True)
        soak.soak(args.kills, args.per_run)
        summary = soak.summary()
        seconds = time.perf_counter() - t0
        print(kill_soak_summary_table(summary))
        print(f"wall time {seconds:.0f} s")
        for r in soak.rounds:
            for problem in r.failures + r.differences:
                print(f"{r.name}: {problem}")
        out = args.out or REPO / "benchmarks" / "results" / (
            f"kill_soak_{time.strftime('%Y%m%d-%H%M')}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "command": " ".join(["benchmarks/kill_soak.py", *(argv or sys.argv[1:])]),
            "seed": args.seed, "overrides": soak.overrides, "wall_seconds": round(seconds, 1),
            "reference_run_seconds": round(soak.run_seconds, 2), "summary": summary,
            "kills": [asdict(k) for k in soak.kills],
            "rounds": [{k: v for k, v in asdict(r).items() if k != "open_kills"}
                       for r in soak.rounds]}, indent=2) + "\n")
        print(f"results: {out}")
    return 0 if soak.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
