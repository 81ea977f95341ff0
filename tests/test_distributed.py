"""Multi-process training (DDP under real torchrun workers, gloo on CPU).

Two CPU processes on the UCI-HAR-format fixture with a tiny harcnn: the same result as one
process with the same global batch, exact resume, rank 0 alone writes, clear refusals.
Every launch is a real ``python -m torch.distributed.run`` with ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harkit.cli import _without_launch_options, main
from harkit.runs import RunDir
from harkit.training import distributed
from harkit.training.checkpoint import load_checkpoint
from tests.conftest import write_uci_fixture

# Two epochs of selection and two of refit. Dropout is off: each process draws its masks
# from its own torch RNG, so they cannot equal a single process's masks for the whole batch
# (augmentation does match: it is drawn for the global batch, see Trainer._batch).
# 96 selection and 144 refit windows: global batches of 32 split 16 + 16, the refit's last
# batch of 16 split 8 + 8, so both runs take exactly the same steps on the same windows.
TRAIN_ARGS = ["--epochs", "2", "--set", "data.n_val_subjects=2", "--set", "train.batch_size=32",
              "--set", "model.width=4", "--set", "model.hidden=8", "--set", "model.dropout=0",
              "--set", "train.num_threads=1", "--no-progress", "--no-track"]


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def _history(run: Path, name: str = "history.csv") -> list[dict[str, object]]:
    """The run's history without timings, NaN (no validation in the refit) as None."""
    return [{k: None if v != v else v for k, v in h.items() if k != "seconds"}
            for h in RunDir(run).read_history(name)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fixture dataset, a private cache and single-threaded workers for this module."""
    root = tmp_path_factory.mktemp("ddp")
    write_uci_fixture(root / "data" / "uci-har")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        mp.setenv("HARKIT_TRACKING", "0")
        mp.setenv("OMP_NUM_THREADS", "1")
        yield root


def _train(env: Path, root: str, *extra: str) -> int:
    return main(["train", "--data-dir", str(env / "data"), "--run-root", str(env / root),
                 *TRAIN_ARGS, *extra])


@pytest.fixture(scope="module")
def runs(env: Path) -> dict[str, Path]:
    """The same run in two torchrun processes and in this one process."""
    assert _train(env, "ddp", "--name", "full", "--nproc", "2") == 0
    assert _train(env, "single", "--name", "full") == 0
    return {"ddp": env / "ddp" / "full", "single": env / "single" / "full"}


@pytest.mark.slow
def test_two_processes_match_one_process(runs: dict[str, Path]) -> None:
    """Same global batch, same windows, same augmentation, synchronised BatchNorm: the
    weights agree up to float32 rounding. They are not bit-identical because the sums are
    formed in another order (gradient: the average of two half-batch means; BatchNorm: the
    sum of two partial sums). Observed differences are ~5e-7 after four epochs; atol 1e-5
    leaves a 20x margin while a real divergence (a wrong shard, per-rank BatchNorm, a skipped
    step) moves weights by 1e-3 or more."""
    for ck in ("last.pt", "refit_last.pt", "best.pt"):
        a = load_checkpoint(runs["ddp"] / "checkpoints" / ck)
        b = load_checkpoint(runs["single"] / "checkpoints" / ck)
        assert a["weights"].keys() == b["weights"].keys()
        for key in a["weights"]:
            torch.testing.assert_close(a["weights"][key], b["weights"][key], rtol=1e-4,
                                       atol=1e-5, msg=f"{ck}:{key}")
        assert a["trainer"]["rng"]["generator"].equal(b["trainer"]["rng"]["generator"])
    for name in ("history.csv", "refit_history.csv"):
        ha, hb = _history(runs["ddp"], name), _history(runs["single"], name)
        assert len(ha) == len(hb) == 2
        for ra, rb in zip(ha, hb, strict=True):
            assert ra.keys() == rb.keys()
            for k in ra:  # train loss / accuracy are all-reduced over both processes
                expected = rb[k] if rb[k] is None else pytest.approx(rb[k], rel=1e-4, abs=1e-6)
                assert ra[k] == expected, (name, k)
    for metrics in ("metrics_val.json", "metrics.json"):
        ma = json.loads((runs["ddp"] / metrics).read_text())
        mb = json.loads((runs["single"] / metrics).read_text())
        # a window whose two top logits tie to within 1e-5 could flip: allow one window
        n = ma["n_windows"]
        assert abs(ma["accuracy"] - mb["accuracy"]) <= 1 / n, metrics


@pytest.mark.slow
def test_only_rank0_writes_one_run_directory(runs: dict[str, Path]) -> None:
    ddp_root = runs["ddp"].parent
    assert [p.name for p in ddp_root.iterdir()] == ["full"]  # no second or partial directory
    assert _files(runs["ddp"]) == _files(runs["single"])
    assert "checkpoints/refit_last.pt" in _files(runs["ddp"])
    info = RunDir(runs["ddp"]).info()
    assert info["status"] == "finished" and info["refit_epochs"] == 2
    assert "--nproc 2" in (runs["ddp"] / "command.txt").read_text()  # the launching command
    # the unwrapped model: no DDP "module." prefix, BatchNorm buffers as in a plain model
    state = load_checkpoint(runs["ddp"] / "checkpoints" / "last.pt")["trainer"]["model"]
    assert not any(k.startswith("module.") for k in state)
    assert state.keys() == load_checkpoint(runs["single"] / "checkpoints" / "last.pt")[
        "trainer"]["model"].keys()


@pytest.mark.slow
def test_resume_two_processes_equals_uninterrupted(env: Path, runs: dict[str, Path]) -> None:
    """Stopped after one epoch, then resumed in two processes: bit for bit the same run."""
    assert _train(env, "resume", "--name", "part", "--nproc", "2", "--stop-after", "1") == 0
    part = env / "resume" / "part"
    assert RunDir(part).info()["status"] == "stopped" and len(_history(part)) == 1
    assert main(["train", "--resume", str(part), "--nproc", "2", "--no-progress"]) == 0
    assert RunDir(part).info()["status"] == "finished"
    for ck in ("last.pt", "refit_last.pt"):
        a = load_checkpoint(runs["ddp"] / "checkpoints" / ck)
        b = load_checkpoint(part / "checkpoints" / ck)
        for key in a["weights"]:
            assert torch.equal(a["weights"][key], b["weights"][key]), f"{ck}:{key}"
        for key, t in a["trainer"]["model"].items():
            assert torch.equal(t, b["trainer"]["model"][key]), f"{ck}:model:{key}"
    assert _history(part) == _history(runs["ddp"])
    assert _history(part, "refit_history.csv") == _history(runs["ddp"], "refit_history.csv")
    assert [p.name for p in (env / "resume").iterdir()] == ["part"]


def test_indivisible_batch_size_refused_before_launch(env: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(env, "bad", "--nproc", "2", "--set", "train.batch_size=33") == 2
    assert "train.batch_size=33 is the global batch size: it must be divisible by the 2 " \
           "processes" in capsys.readouterr().err
    assert not (env / "bad").exists()


def test_closed_form_model_refused_before_a_run_directory_exists(
        env: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """MiniRocket's fit_init is its whole training: the workers refuse it with a ConfigError
    (the workers' message and the launcher's), and no run directory is left behind."""
    assert main(["train", "--data-dir", str(env / "data"), "--run-root", str(env / "rocket"),
                 "--model", "minirocket", "--set", "data.n_val_subjects=2", "--no-progress",
                 "--no-track", "--nproc", "2"]) == 2
    err = capfd.readouterr().err  # the workers write to the inherited file descriptors
    assert "model MiniRocket is fitted in closed form" in err
    assert "a training process failed" in err
    assert not (env / "rocket").exists()


WORKER_SCRIPT = """
import torch
from harkit.config import TrainConfig
from harkit.errors import ConfigError
from harkit.models import create_model
from harkit.training import distributed
from harkit.training.trainer import Trainer

X, y = torch.randn(16, 32, 3), torch.arange(16) % 2
cases = [
    (create_model("minirocket", 3, 2, 32), TrainConfig(batch_size=8), "fitted in closed form"),
    (create_model("harcnn", 3, 2, 32, width=4, hidden=8), TrainConfig(batch_size=7),
     "must be divisible by the 2 processes"),
]
with distributed.process_group_from_env() as joined:
    assert joined and distributed.world_size() == 2
    for model, cfg, expected in cases:
        try:
            Trainer(model, cfg, (X, y), None)
        except ConfigError as e:
            assert expected in str(e), str(e)
        else:
            raise AssertionError(f"no ConfigError for {type(model).__name__}")
    print(f"rank {distributed.rank()} refused both", flush=True)
"""


def test_trainer_refuses_closed_form_and_indivisible_batches_under_ddp(tmp_path: Path) -> None:
    """Inside real workers: a closed-form model (fit_init is its whole training) and a global
    batch the ranks cannot share are ConfigErrors, raised identically on every rank."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER_SCRIPT))
    cmd = [*distributed.torchrun_command([], 2)[:-2], str(script)]  # a script, not harkit
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank 0 refused both" in r.stdout and "rank 1 refused both" in r.stdout


def test_torchrun_command_single_and_multi_node() -> None:
    one = distributed.torchrun_command(["train", "--epochs", "2"], 4)
    assert one[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=4"]
    assert "--standalone" in one and one[-5:] == ["-m", "harkit.cli", "train", "--epochs", "2"]
    multi = distributed.torchrun_command(["train"], 8, nnodes=2, node_rank=1,
                                         rdzv_endpoint="node0:29400", rdzv_id="job7",
                                         extra=["--max-restarts=0"])
    assert "--standalone" not in multi
    for arg in ("--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29400",
                "--rdzv-id=job7", "--node-rank=1", "--max-restarts=0"):
        assert arg in multi
    with pytest.raises(Exception, match="--rdzv-endpoint"):
        distributed.torchrun_command(["train"], 2, nnodes=2)


def test_workers_get_the_command_without_launch_options() -> None:
    argv = ["train", "--nproc", "2", "--epochs", "3", "--nnodes=2", "--rdzv-endpoint", "h:1",
            "--torchrun-args", "--max-restarts 0", "--name", "x"]
    assert _without_launch_options(argv) == ["train", "--epochs", "3", "--name", "x"]


def test_sync_batchnorm_is_plain_batchnorm_outside_a_process_group() -> None:
    from harkit.models import create_model

    torch.manual_seed(0)
    model = create_model("harcnn", 9, 6, 32, width=4, hidden=8, dropout=0.0)
    keys = set(model.state_dict())
    x = torch.randn(8, 32, 9)
    ref_train = model(x)
    model.eval()
    ref_eval = model(x)
    torch.manual_seed(0)
    synced = distributed.convert_sync_batchnorm(
        create_model("harcnn", 9, 6, 32, width=4, hidden=8, dropout=0.0), torch.device("cpu"))
    assert any(isinstance(m, distributed.SyncBatchNorm) for m in synced.modules())
    assert set(synced.state_dict()) == keys  # checkpoints interchangeable with plain models
    torch.testing.assert_close(synced(x), ref_train)
    synced.eval()
    torch.testing.assert_close(synced(x), ref_eval)
