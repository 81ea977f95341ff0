"""Batch-parallel inference: the batch split across cores, one intra-op thread per part."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import harkit
from harkit.cli import main
from harkit.errors import ConfigError
from harkit.inference import Predictor, load_predictor
from harkit.inference.parallel import BatchParallel, choose_parallel, enable


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """Batch-parallel mode sets the process's intra-op threads; give the next test its own."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


class _Recorder:
    """A forward that records which thread ran which part, and returns a row-wise result."""

    def __init__(self, delay_per_row: float = 0.0, serial: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.delay, self.lock = delay_per_row, threading.Lock()
        self.serial = serial

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((threading.get_ident(), len(x)))
        if self.serial:  # a fixed cost per call that the threads cannot overlap
            with self.lock:
                time.sleep(0.02)
        else:
            time.sleep(self.delay * len(x))  # releases the GIL: parts overlap
        return x.sum(dim=(1, 2), keepdim=False)[:, None] * torch.tensor([1.0, -1.0])


def test_batch_parallel_splits_across_threads_in_order() -> None:
    fwd = _Recorder()
    par = BatchParallel(fwd, workers=2)
    x = torch.randn(256, 8, 3, generator=torch.Generator().manual_seed(0))
    out = par(x)
    torch.testing.assert_close(out, fwd(x))  # the parts come back in input order
    split = fwd.calls[:2]
    assert sorted(n for _, n in split) == [128, 128]
    assert len({t for t, _ in split}) == 2 and threading.get_ident() in {t for t, _ in split}
    fwd.calls.clear()
    par(x[:20])  # below 2 x min_part: one call on the caller's thread
    assert fwd.calls == [(threading.get_ident(), 20)]
    fwd.calls.clear()
    BatchParallel(fwd, workers=8)(x[:40])  # never parts smaller than min_part
    assert sorted(n for _, n in fwd.calls) == [20, 20]
    with pytest.raises(ConfigError, match="workers=0"):
        BatchParallel(fwd, workers=0)


def test_enable_sets_one_intra_op_thread() -> None:
    torch.set_num_threads(2)
    par = enable(_Recorder())
    assert torch.get_num_threads() == 1 and par.workers == 2


def test_choose_parallel_keeps_the_faster_scheme() -> None:
    torch.set_num_threads(2)
    x = torch.zeros(64, 4, 2)
    # work proportional to the rows, overlapping across threads: splitting halves the time
    fwd, mode, timed = choose_parallel(_Recorder(delay_per_row=2e-4), x, "auto")
    assert mode == "batch" and isinstance(fwd, BatchParallel)
    assert timed["batch"] < timed["off"] and torch.get_num_threads() == 1
    # a fixed cost per call that cannot overlap: splitting doubles it, so "off" is kept and
    # the thread setting restored
    torch.set_num_threads(2)
    slow = _Recorder(serial=True)
    fwd, mode, timed = choose_parallel(slow, x, "auto")
    assert mode == "off" and fwd is slow and timed["batch"] > timed["off"]
    assert torch.get_num_threads() == 2
    # off never touches the threads; one thread has nothing to split
    assert choose_parallel(slow, x, "off")[1] == "off"
    torch.set_num_threads(1)
    assert choose_parallel(slow, x, "auto") == (slow, "off", {})
    with pytest.raises(ConfigError, match="parallel='cores'"):
        choose_parallel(slow, x, "cores")


@pytest.mark.parametrize("model", ["gru", "harcnn"])
def test_predictor_batch_parallel_matches_off(tiny_cfg: list[str], model: str,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A trained model predicts the same probabilities split across cores as whole, through
    the library and the CLI."""
    cfg = [o for o in tiny_cfg if not o.startswith("model.width")]
    r = harkit.train(overrides=[*cfg, f"model.name={model}", "train.epochs=1",
                                "train.refit=false"], progress=False)
    torch.set_num_threads(2)  # training set 1 (train.num_threads)
    whole = Predictor.from_run(r.run_dir)
    split = Predictor.from_run(r.run_dir, parallel="batch")
    assert whole.parallel == "off" and split.parallel == "batch"
    assert isinstance(split._forward, BatchParallel)
    X = np.random.default_rng(0).standard_normal(
        (300, whole.window_len, len(whole.channels))).astype(np.float32)
    np.testing.assert_allclose(split.predict_proba(X), whole.predict_proba(X), atol=1e-5)
    torch.set_num_threads(2)  # the batch-parallel predictor set 1
    auto = load_predictor(r.run_dir, parallel="auto")
    assert auto.parallel in ("off", "batch")  # type: ignore[union-attr]
    assert set(auto.parallel_timings) == {"off", "batch"}  # type: ignore[union-attr]
    np.testing.assert_allclose(auto.predict_proba(X), whole.predict_proba(X), atol=1e-5)

    csv = tmp_path / "samples.csv"
    sig = np.random.default_rng(1).standard_normal((400, len(whole.channels)))
    csv.write_text(",".join(whole.channels) + "\n"
                   + "\n".join(",".join(f"{v:.5f}" for v in s) for s in sig) + "\n")
    torch.set_num_threads(2)
    assert main(["predict", str(r.run_dir), str(csv), "--parallel", "auto"]) == 0
    assert "parallel: " in capsys.readouterr().err
    assert main(["predict", str(r.run_dir), str(csv), "--parallel", "cores"]) == 2
    assert "parallel='cores'" in capsys.readouterr().err
