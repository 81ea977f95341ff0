"""Crashes lose nothing: real SIGKILLs of `harkit train` (through benchmarks/kill_soak.py's
harness), checksummed checkpoints refused when truncated or altered, the fallback to the
previous good checkpoint, temporary files of killed processes, and the slow-write fault hook."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import harkit
from harkit.config import ExperimentConfig
from harkit.errors import CheckpointError
from harkit.io import (
    SLOW_WRITE_ENV,
    SLOW_WRITE_MATCH_ENV,
    atomic_write_bytes,
    is_temp_file,
    remove_stale_temp_files,
)
from harkit.runs import RunDir
from harkit.training.checkpoint import (
    load_checkpoint,
    load_first_good,
    previous_path,
    save_checkpoint,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from kill_soak import SOAK_OVERRIDES, KillSoak, check_run_files, compare_runs


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillSoak]:
    """The harness on a fresh fixture dataset, with the uninterrupted reference run trained
    in this process (the killed runs are separate `harkit train` processes)."""
    soak = KillSoak(tmp_path_factory.mktemp("soak"), seed=0)
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the per-test cache fixture
        mp.setenv("HARKIT_CACHE_DIR", soak.env["HARKIT_CACHE_DIR"])
        ref = harkit.train(overrides=[*_overrides(soak), "name=reference"], progress=False)
    soak.use_reference(ref.run_dir)
    yield soak


def _overrides(soak: KillSoak) -> list[str]:
    """What the harness's `harkit train --data-dir ... --run-root ... --no-track` sets."""
    return [f"data.data_dir={soak.data_dir}", f"run_root={soak.run_root}",
            "tracking.enabled=false", *SOAK_OVERRIDES]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # exited and reaped
    return proc.pid


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(soak: KillSoak) -> None:
    """Three SIGKILLs of one run (during an epoch, in the middle of a checkpoint write of the
    resumed process, in the middle of writing the test report), each followed by
    ``--resume``: no file is ever corrupt, at most the epoch being checkpointed is lost, every
    resume continues from the checkpoint the kill left, and the final run equals the
    uninterrupted one bit for bit. (benchmarks/kill_soak.py does the same 20 times.)"""
    rnd = soak.soak_round(["epoch", "checkpoint-write", "evaluation-write"], "killed")
    assert rnd.failures == [] and rnd.kills == 3 and rnd.finished, rnd
    kills = soak.kills[-3:]
    assert [k.corrupt_files for k in kills] == [[]] * 3
    for k in kills:
        assert k.resumed_from == k.checkpoint_epoch_at_kill, k
        assert k.checkpoint_epoch_after_resume is not None
        assert k.checkpoint_epoch_after_resume >= k.checkpoint_epoch_at_kill, k
        assert 0 <= k.epochs_lost <= 1, k
    write = kills[1]  # killed while the fault hook held a half-written checkpoint
    assert any(re.fullmatch(r"checkpoints/\.(best|last|refit_last)\.pt\.\d+\.tmp-\w+\.tmp", p)
               for p in write.partial_temp_files), write
    evaluation = kills[2]  # the test report half written: the run is not finished
    assert evaluation.phase == "evaluation" and evaluation.status == "evaluating"
    assert not evaluation.metrics_json_present
    assert any(p.startswith(".metrics.json.") for p in evaluation.partial_temp_files)
    assert rnd.weights_identical and rnd.metrics_identical, rnd.differences
    assert rnd.leftover_temp_files == []
    run_dir = soak.run_root / "killed"
    assert RunDir(run_dir).info()["status"] == "finished"
    assert check_run_files(run_dir)[1] == []


@pytest.mark.parametrize(("damage", "phase_epochs"), [("truncate", 2), ("flip", 6)])
def test_resume_refuses_a_damaged_last_checkpoint_and_uses_the_previous_one(
        soak: KillSoak, damage: str, phase_epochs: int, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A truncated last.pt (selection phase) or a refit_last.pt with one flipped byte is
    refused, naming the file; the resume continues from the one it replaced and still ends
    on the uninterrupted run's weights and metrics."""
    monkeypatch.setenv("HARKIT_CACHE_DIR", soak.env["HARKIT_CACHE_DIR"])
    part = harkit.train(overrides=[*_overrides(soak), f"name={damage}"], progress=False,
                        stop_after=phase_epochs)
    ck = part.run_dir / "checkpoints"
    last = ck / ("last.pt" if phase_epochs <= soak.n_selection else "refit_last.pt")
    prev = previous_path(last)
    assert load_checkpoint(last)["epoch"] == 2 and load_checkpoint(prev)["epoch"] == 1
    data = last.read_bytes()
    if damage == "truncate":
        last.write_bytes(data[:len(data) // 2])
    else:
        mid = len(data) // 2
        last.write_bytes(data[:mid] + bytes([data[mid] ^ 0x10]) + data[mid + 1:])
    with pytest.raises(CheckpointError, match=re.escape(str(last)) + r": checkpoint is corrupt "
                       r"or truncated \(checksum mismatch\)"):
        load_checkpoint(last)
    with caplog.at_level(logging.WARNING, logger="harkit"):
        resumed = harkit.train(resume=part.run_dir, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(last) in w and "checksum mismatch" in w and f"trying {prev.name}" in w
               for w in warnings), warnings
    assert any(f"resuming from {prev} (epoch 1)" in w for w in warnings), warnings
    assert resumed.finished
    assert soak.reference is not None
    assert compare_runs(resumed.run_dir, soak.reference) == (True, True, [])


def test_first_good_checkpoint_order_and_refusals(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    assert load_first_good([last, previous_path(last), best]) is None  # nothing saved yet
    for epoch in (1, 2, 3):
        save_checkpoint(last, {"epoch": epoch}, keep_previous=True)
    save_checkpoint(best, {"epoch": 2})
    assert load_checkpoint(previous_path(last))["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.prev.pt", "last.pt"]
    chain = [last, previous_path(last), best]
    found = load_first_good(chain)
    assert found is not None and found[0] == last and found[1]["epoch"] == 3
    last.write_bytes(b"HARKIT-CKPT 1\n")  # a header and nothing else
    previous_path(last).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="harkit"):
        found = load_first_good(chain)
    assert found is not None and found[0] == best
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and str(last) in refusals[0] and "last.prev.pt" in refusals[1]
    best.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="no usable checkpoint") as e:
        load_first_good(chain)
    for p in chain:
        assert str(p) in str(e.value)
    assert "bad header" in str(e.value)


def test_temp_files_of_killed_processes_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / "checkpoints" / f".last.pt.{dead}.tmp-ab12cd_9.tmp"
    stale_plot = tmp_path / "plots" / f".confusion_matrix.png.{dead}.tmp-x1y2z3w4.tmp"
    live = tmp_path / f".run.json.{os.getpid()}.tmp-q8w7e6r5.tmp"
    keep = [tmp_path / ".hidden", tmp_path / "last.pt", tmp_path / f".notes.{dead}.txt"]
    for p in (stale, stale_plot, live, *keep):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert is_temp_file(stale) and is_temp_file(live) and not any(map(is_temp_file, keep))
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([stale, stale_plot])
    assert live.exists() and all(p.exists() for p in keep)


def test_create_removes_half_built_run_folders_of_killed_processes(tmp_path: Path) -> None:
    cfg = ExperimentConfig(run_root=str(tmp_path), name="r")
    stale = tmp_path / f".r.partial-{_dead_pid()}"
    (stale / "checkpoints").mkdir(parents=True)
    run = RunDir.create(cfg, ["harkit", "train"])
    assert run.path == tmp_path / "r" and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_slow_write_hook_pauses_half_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault hook leaves a half-written temporary file (and the old target) in place for
    as long as it sleeps; other files are written without a pause."""
    target = tmp_path / "c.pt"
    atomic_write_bytes(target, b"old")
    data = bytes(range(256)) * 40
    monkeypatch.setenv(SLOW_WRITE_ENV, "0.5")
    monkeypatch.setenv(SLOW_WRITE_MATCH_ENV, "*.pt")
    t0 = time.perf_counter()
    atomic_write_bytes(tmp_path / "fast.json", b"{}")
    assert time.perf_counter() - t0 < 0.25
    writer = threading.Thread(target=atomic_write_bytes, args=(target, data))
    writer.start()
    seen: list[int] = []
    while writer.is_alive() and not any(seen):  # the temporary file exists, then fills
        seen = [p.stat().st_size for p in tmp_path.iterdir() if is_temp_file(p)]
        time.sleep(0.01)
    assert target.read_bytes() == b"old"  # still the old file while the new one is half done
    writer.join()
    assert seen == [len(data) // 2]
    assert target.read_bytes() == data and not any(map(is_temp_file, tmp_path.iterdir()))


def test_checkpoint_payload_survives_keep_previous(tmp_path: Path) -> None:
    """The kept previous checkpoint is a complete, verified file, not a link to the new one."""
    p = tmp_path / "refit_last.pt"
    save_checkpoint(p, {"w": torch.zeros(3)}, keep_previous=True)
    save_checkpoint(p, {"w": torch.ones(3)}, keep_previous=True)
    assert torch.equal(load_checkpoint(p)["w"], torch.ones(3))
    assert torch.equal(load_checkpoint(previous_path(p))["w"], torch.zeros(3))
