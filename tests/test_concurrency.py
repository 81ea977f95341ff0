"""Concurrent harkit processes sharing one run root, one MLflow store and one dataset cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harkit.data import store
from harkit.training.checkpoint import load_checkpoint
from tests.conftest import write_uci_fixture


def _train_cmd(data: Path, runs: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "harkit.cli", "train", "--data-dir", str(data),
            "--run-root", str(runs), "--name", "same", "--tracking-uri", f"sqlite:///{db}",
            "--no-progress", "--set", "data.n_val_subjects=2", "--set", "train.epochs=3",
            "--set", "train.batch_size=32", "--set", "model.width=4", "--set", "model.hidden=8",
            "--set", "train.num_threads=1"]


@pytest.mark.slow
def test_three_train_processes_share_run_root_mlflow_store_and_cache(tmp_path: Path) -> None:
    """Three `harkit train` processes started together on a fresh MLflow SQLite store, an
    empty dataset cache and one run root, all with the same run name: each finishes, each gets
    its own complete run directory and its own finished MLflow run with every epoch's metrics,
    and the cache holds one valid entry (no temporary files)."""
    pytest.importorskip("mlflow")
    data, runs, db, cache = (tmp_path / "data", tmp_path / "runs", tmp_path / "mlflow.db",
                             tmp_path / "cache")
    write_uci_fixture(data / "uci-har")
    env = {**os.environ, "HARKIT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1",
           "HARKIT_TRACKING": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen(_train_cmd(data, runs, db), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
        assert "Traceback" not in out and "tracking failed" not in out, out[-3000:]

    dirs = sorted(d.name for d in runs.iterdir())
    assert dirs == ["same", "same-1", "same-2"]
    for d in dirs:
        run = runs / d
        assert json.loads((run / "run.json").read_text())["status"] == "finished"
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1
        for ckpt in (run / "checkpoints").glob("*.pt"):
            load_checkpoint(ckpt)  # checksum verified
        assert not [p for p in run.rglob("*") if p.name.startswith(".")], "temporary files left"

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    (exp,) = [e for e in client.search_experiments() if e.name == "harkit"]
    finished = client.search_runs([exp.experiment_id])
    assert len(finished) == 3
    keys = {frozenset(r.data.metrics) for r in finished}
    assert len(keys) == 1, "every run logged the same metrics"
    for r in finished:
        assert r.info.status == "FINISHED"
        hist = client.get_metric_history(r.info.run_id, "train_loss")
        assert len(hist) >= 3, "every epoch of the selection phase is logged"

    entries = sorted(p.name for p in (cache / "parsed").iterdir())
    assert [e for e in entries if e.endswith(".npz")] and all(
        e.endswith((".npz", ".lock")) for e in entries), entries


def test_cache_fill_is_locked_one_parse_for_concurrent_loads(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Loads of one dataset that start together parse it once; the others wait for the lock
    and read the entry the first one wrote."""
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src.txt"
    src.write_text("1 2 3\n")
    calls: list[int] = []

    def parse(path: Path) -> np.ndarray:
        calls.append(1)
        time.sleep(0.3)  # long enough for the other threads to reach the lock
        return np.loadtxt(path)

    def save(arr: np.ndarray, f: object) -> None:
        np.savez(f, a=arr)  # type: ignore[arg-type]

    def load(path: Path) -> np.ndarray:
        with np.load(path) as z:
            return z["a"]

    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(
        store.cached_parse("fixture", 1, src, parse, save, load))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 4 and all(np.array_equal(r, [1, 2, 3]) for r in results)


def test_a_run_is_trained_by_one_process_at_a_time(tiny_cfg: list[str]) -> None:
    """While one process holds a run (training or evaluating it), resuming it elsewhere is
    refused with a message naming the run; once the holder is done it resumes."""
    import fcntl

    import harkit
    from harkit.errors import HarkitError

    part = harkit.train(overrides=[*tiny_cfg, "train.refit=false"], progress=False,
                        stop_after=1)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
         "time.sleep(60)", str(part.run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(HarkitError, match="another harkit process is training"):
            harkit.train(resume=part.run_dir, progress=False)
    finally:
        holder.kill()
        holder.wait()
    done = harkit.train(resume=part.run_dir, progress=False)
    assert done.test is not None
    fd = os.open(part.run_dir, os.O_RDONLY)  # released after the call
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
