"""Batch-parallel CPU inference: a batch split across cores, one intra-op thread per part.

PyTorch parallelises *inside* each kernel by default. For the small kernels of HAR models
(a GRU step is a 256 x 128 by 128 x 384 product and a few element-wise ops on 256 x 128
values) the per-kernel synchronisation of that scheme costs a large share of every step.
Splitting the batch instead (one part per core, each part run by its own thread with one
intra-op thread) keeps each core on its own part for the whole forward pass. On the 2-core
Xeon of BENCHMARKS.md (speed suite 2026-11-24 02:01) it lifts the GRU from 39-41 % to 53-56 %
of the fp32 matmul peak and DeepConvLSTM from 38-43 % to 58-59 %; models whose kernels
already scale (harcnn, TinyHAR) gain nothing, which is why ``mode="auto"`` times both schemes
on the real batch shape and keeps the faster.

The intra-op thread count is a process-wide torch setting: enabling batch-parallel mode sets
it to 1 (``torch.set_num_threads(1)``) for the process, and the worker threads take over the
cores. That suits a process that exists to predict (``harkit predict``, a service); a library
user opts in explicitly.
"""

from __future__ import annotations

import statistics
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from harkit.errors import ConfigError

__all__ = ["PARALLEL_MODES", "BatchParallel", "choose_parallel"]

PARALLEL_MODES = ("off", "batch", "auto")

Forward = Callable[[torch.Tensor], torch.Tensor]


class BatchParallel:
    """``forward`` applied to a batch split into ``workers`` parts, run concurrently.

    The calling thread runs the first part itself; ``workers - 1`` pool threads run the
    others. Batches smaller than ``2 * min_part`` windows run whole on the calling thread
    (a split would cost more than it saves). Outputs are concatenated in input order, so the
    result equals ``forward(x)`` up to floating-point summation order.

    The process's intra-op threads must be 1 while it is used (see :func:`enable`), or the
    parts compete for the cores with their own thread teams.
    """

    def __init__(self, forward: Forward, workers: int, min_part: int = 16) -> None:
        if workers < 1:
            raise ConfigError(f"workers={workers}: expected at least 1")
        self.forward = forward
        self.workers = workers
        self.min_part = min_part
        self._pool = (ThreadPoolExecutor(workers - 1, thread_name_prefix="harkit-infer")
                      if workers > 1 else None)
        if self._pool is not None:  # no lingering threads once the predictor is gone
            weakref.finalize(self, self._pool.shutdown, wait=False)

    def _run(self, part: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.forward(part)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._pool is None or len(x) < 2 * self.min_part:
            return self._run(x)
        parts = x.tensor_split(min(self.workers, len(x) // self.min_part))
        futures = [self._pool.submit(self._run, p) for p in parts[1:]]
        first = self._run(parts[0])
        return torch.cat([first] + [f.result() for f in futures])


_lock = threading.Lock()


def enable(forward: Forward, workers: int | None = None) -> BatchParallel:
    """A :class:`BatchParallel` over ``workers`` parts (default: the current intra-op thread
    count, i.e. the cores torch was given), after setting the process's intra-op threads to 1.
    """
    with _lock:
        n = workers if workers is not None else torch.get_num_threads()
        torch.set_num_threads(1)
    return BatchParallel(forward, max(1, n))


def _median_seconds(fn: Forward, x: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def choose_parallel(forward: Forward, example: torch.Tensor, mode: str = "auto",
                    workers: int | None = None, repeats: int = 3,
                    ) -> tuple[Forward, str, dict[str, float]]:
    """The forward callable to predict with under ``mode``, the scheme chosen and, for
    ``auto``, the median seconds of each scheme on ``example`` (the batch shape predicted).

    ``off``: ``forward`` as is (intra-op threads untouched); ``batch``: :func:`enable`,
    warmed up on ``example`` (TorchScript optimises each part's shape after a few calls);
    ``auto``: both are warmed up and timed on ``example`` and the faster is kept; the thread
    setting is restored when ``off`` wins. With one thread there is nothing to split and
    ``auto`` is ``off``.
    """
    if mode not in PARALLEL_MODES:
        raise ConfigError(f"parallel={mode!r}: expected one of {', '.join(PARALLEL_MODES)}")
    threads = workers if workers is not None else torch.get_num_threads()
    if mode == "off" or threads < 2:
        return forward, "off", {}
    warm = max(4, repeats)
    if mode == "batch":
        par = enable(forward, threads)
        _median_seconds(par, example, warm)
        return par, "batch", {}
    _median_seconds(forward, example, warm)  # warm-up
    t_off = _median_seconds(forward, example, repeats)
    par = enable(forward, threads)
    _median_seconds(par, example, warm)
    t_batch = _median_seconds(par, example, repeats)
    timings = {"off": t_off, "batch": t_batch}
    if t_batch < t_off:
        return par, "batch", timings
    with _lock:
        torch.set_num_threads(threads)
    return forward, "off", timings
