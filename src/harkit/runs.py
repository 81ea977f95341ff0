"""Run directories: one folder per run, created atomically, every file written atomically.

Layout of ``<run_root>/<name>/``::

    config.yaml          the resolved ExperimentConfig (validation subjects filled in)
    command.txt          the command line that started the run
    run.json             status (created, running, stopped, evaluating, finished), timings,
                         versions, best epoch
    history.csv          one row per epoch (train/validation loss, accuracy, macro F1, lr)
    checkpoints/best.pt  best validation macro F1 (model, optimizer, RNG, preprocessing)
    checkpoints/last.pt  last completed epoch (what --resume continues from)
    checkpoints/last.prev.pt  the epoch before (kept when last.pt is replaced): --resume
                         falls back to it, then to best.pt, when last.pt fails its checksum
    checkpoints/refit_last.pt  the final model, refit on all training subjects (train.refit)
    checkpoints/refit_last.prev.pt  the refit's epoch before
    refit_history.csv    per-epoch training loss / accuracy of the refit
    metrics.json         test-split report of the final model
    metrics_val.json     validation report of the selected checkpoint of phase 1
    plots/learning_curves.png, plots/confusion_matrix.png
    plots/skeleton_examples.png, plots/skeleton_example.gif   skeleton datasets: test windows
                         drawn as skeletons, with their true and predicted classes

Files are replaced by rename (:mod:`harkit.io`), so a killed process leaves each one old or
new, never partial; its leftover temporary files (``.NAME.PID.tmp-*``) and half-built run
folders (``.NAME.partial-PID``) start with a dot and are removed by the next resume / create.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harkit.config import ExperimentConfig, load_config, save_config
from harkit.errors import CheckpointError, HarkitError
from harkit.io import atomic_write_text, process_alive


def _versions() -> dict[str, str]:
    import numpy
    import torch

    import harkit

    return {"harkit": harkit.__version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def _remove_stale_partial(root: Path, base: str) -> None:
    """Remove the half-built folders of ``base`` whose creating process is gone (killed)."""
    prefix = f".{base}.partial-"
    for p in root.iterdir():
        pid = p.name[len(prefix):]
        if (p.name.startswith(prefix) and pid.isdigit() and p.is_dir()
                and not process_alive(int(pid))):
            shutil.rmtree(p, ignore_errors=True)


class RunDir:
    """A run's folder and the files in it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def refit_last(self) -> Path:
        return self.checkpoints / "refit_last.pt"

    def model_checkpoint(self, cfg: ExperimentConfig, which: str | None = None) -> Path:
        """The checkpoint that a run's test metrics and predictions use.

        ``which``: ``final`` (refit on all training subjects), ``best`` or ``last`` (of the
        selection phase); None = ``final`` when the run refits, else ``train.select``.
        """
        if which is None:
            which = "final" if cfg.train.refit else cfg.train.select
        paths = {"final": self.refit_last, "best": self.best, "last": self.last}
        if which not in paths:
            raise CheckpointError(f"checkpoint {which!r}: expected final, best or last")
        if which == "final" and not cfg.train.refit:
            raise CheckpointError(f"{self.path}: this run did not refit (train.refit=false); "
                                  "use best or last")
        return paths[which]

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @classmethod
    def create(cls, cfg: ExperimentConfig, command: list[str] | None = None) -> RunDir:
        """Make a new run folder atomically (build it under a temporary name, then rename)."""
        root = Path(cfg.run_root)
        root.mkdir(parents=True, exist_ok=True)
        base = cfg.name or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.data.dataset}-{cfg.model.name}"
        tmp = root / f".{base}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_stale_partial(root, base)
        (tmp / "checkpoints").mkdir(parents=True)
        (tmp / "plots").mkdir()
        save_config(cfg, tmp / "config.yaml")
        atomic_write_text(tmp / "command.txt", " ".join(command or sys.argv) + "\n")
        atomic_write_text(tmp / "run.json", json.dumps(
            {"status": "created", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "versions": _versions()}, indent=2))
        for i in range(1000):
            target = root / (base if i == 0 else f"{base}-{i}")
            try:
                os.rename(tmp, target)  # atomic; fails if target exists and is not empty
            except OSError:
                if target.exists():
                    continue
                raise
            return cls(target)
        raise RuntimeError(f"cannot find a free run name under {root}")  # pragma: no cover

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not run.config_path.exists():
            raise CheckpointError(f"{run.path}: not a harkit run directory (no config.yaml)")
        return run

    def lock(self) -> int:
        """Take this run for the calling process: an exclusive lock on the run folder itself
        (no lock file), held until :func:`os.close` of the returned descriptor or the
        process's death, so a second ``harkit train --resume`` of a run that is still being
        trained fails at once instead of writing alongside it.

        Raises:
            HarkitError: another process holds the run.
        """
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HarkitError(f"{self.path}: another harkit process is training or evaluating "
                              "this run; wait for it to end (or stop it), then resume") from None
        return fd

    def config(self) -> ExperimentConfig:
        return load_config(self.config_path)

    def info(self) -> dict[str, Any]:
        p = self.path / "run.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    def update_info(self, **fields: Any) -> None:
        info = self.info()
        info.update(fields)
        atomic_write_text(self.path / "run.json", json.dumps(info, indent=2))

    def write_history(self, history: list[dict[str, Any]], name: str = "history.csv") -> None:
        if not history:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
        atomic_write_text(self.path / name, buf.getvalue())

    def read_history(self, name: str = "history.csv") -> list[dict[str, Any]]:
        p = self.path / name
        if not p.exists():
            return []
        rows = list(csv.DictReader(p.read_text(encoding="utf-8").splitlines()))
        conv: list[dict[str, Any]] = []
        for r in rows:
            d: dict[str, Any] = {}
            for k, v in r.items():
                if v in ("True", "False"):
                    d[k] = v == "True"
                else:
                    try:
                        d[k] = int(v)
                    except ValueError:
                        d[k] = float(v)
            conv.append(d)
        return conv
