"""Performance measurement helpers: FLOP counts, the machine's matmul peak, peak memory.

``count_flops`` counts the multiply-adds of one forward pass (one multiply-add = 2 FLOPs)
with :class:`torch.utils.flop_counter.FlopCounterMode`, which sees matrix products and
convolutions. On CPU, ``nn.LSTM`` runs as one fused kernel that the counter does not see, so
any recurrent module the counter reports no FLOPs for is counted analytically instead (see
:func:`recurrent_flops`). Element-wise work (activations, gate non-linearities, normalisation)
is not counted, as usual for FLOP figures.

Example:
    >>> from torch import nn
    >>> lstm = nn.LSTM(9, 64, num_layers=2, batch_first=True)
    >>> flops_per_window(lstm, (128, 9))  # 2 * 4 * 64 * ((9 + 64) + (64 + 64)) * 128
    13172736
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)


def _gates(module: nn.Module) -> int:
    if isinstance(module, nn.LSTM | nn.LSTMCell):
        return 4
    if isinstance(module, nn.GRU | nn.GRUCell):
        return 3
    return 1  # plain RNN


def recurrent_flops(module: nn.Module, inputs: tuple[Any, ...]) -> int:
    """Analytic forward FLOPs of a recurrent module (``nn.LSTM``/``GRU``/``RNN`` or a cell).

    Per layer and direction, every step multiplies the input and the previous hidden state
    by the gate weights: ``2 * gates * hidden * (input + state) * steps * batch``, where
    gates is 4 (LSTM), 3 (GRU) or 1 (RNN) and ``state`` is ``proj_size`` when the LSTM has a
    projection, which adds ``2 * hidden * proj_size`` per step and direction.

    Args:
        module: the recurrent module.
        inputs: the positional arguments of its forward call (the first is the input).

    Returns:
        FLOPs (multiply-add = 2).
    """
    x = inputs[0]
    if isinstance(module, nn.LSTMCell | nn.GRUCell | nn.RNNCell):
        batch = 1 if x.dim() == 1 else int(x.shape[0])
        return 2 * _gates(module) * module.hidden_size * (module.input_size
                                                         + module.hidden_size) * batch
    assert isinstance(module, nn.RNNBase)
    if isinstance(x, nn.utils.rnn.PackedSequence):
        tokens = int(x.data.shape[0])  # sum of the sequence lengths
    elif x.dim() == 2:  # unbatched (T, input)
        tokens = int(x.shape[0])
    else:
        tokens = int(x.shape[0] * x.shape[1])  # T * B whether batch_first or not
    gates, hidden = _gates(module), module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    state = proj or hidden
    directions = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inp = module.input_size if layer == 0 else state * directions
        per_step = 2 * gates * hidden * (inp + state) + (2 * hidden * proj if proj else 0)
        total += per_step * directions * tokens
    return total


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs of ``model(x)`` (multiply-add = 2 FLOPs), for the whole batch ``x``.

    The model runs once in eval mode without gradients (its mode is restored), so BatchNorm
    statistics are not touched. Recurrent modules the counter reports zero FLOPs for (the
    fused CPU LSTM) are counted with :func:`recurrent_flops`; those it does see (GRU, cells)
    are left to it, so nothing is counted twice.

    Args:
        model: any module; for harkit models ``x`` is ``(batch, time, channels)``.
        x: the input batch.

    Returns:
        Total FLOPs of the forward pass.

    Example:
        >>> count_flops(nn.Linear(9, 4), torch.zeros(2, 9))  # 2 * 2 * 9 * 4
        144
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    extra = 0
    before: dict[int, int] = {}

    def pre_hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        before[id(module)] = counter.get_total_flops()

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal extra
        if counter.get_total_flops() == before.pop(id(module)):  # the counter missed it
            extra += recurrent_flops(module, inputs)

    handles = []
    for m in model.modules():
        if isinstance(m, _RECURRENT):
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(counter.get_total_flops()) + extra


def flops_per_window(model: nn.Module, window_shape: tuple[int, ...]) -> int:
    """Forward FLOPs for one window of shape ``window_shape`` (``(time, channels)`` for a
    sensor model), counted on a batch of one zero window."""
    return count_flops(model, torch.zeros(1, *window_shape))


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, n: int = 2048,
                       threads: int | None = None, repeats: int = 10) -> float:
    """The machine's measured matrix-multiply peak in GFLOP/s: best of ``repeats`` timed
    ``n x n @ n x n`` products (``2 n^3`` FLOPs each) after one warm-up.

    Args:
        dtype: ``torch.float32`` or ``torch.bfloat16`` (CPU AVX512-BF16 / AMX paths).
        n: matrix size; large enough to be compute bound (2048 is).
        threads: torch intra-op threads for the measurement (restored afterwards); None keeps
            the current setting.
        repeats: timed products; the fastest counts.

    Returns:
        GFLOP/s of the fastest product.
    """
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=g).to(dtype)
        b = torch.randn(n, n, generator=g).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up: allocation, kernel selection
        best = float("inf")
        for _ in range(max(repeats, 1)):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return 2 * n**3 / best / 1e9


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (``getrusage`` ``ru_maxrss``;
    it includes the interpreter, torch and every earlier allocation)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, else KiB


@dataclass
class MemoryPeak:
    """Resident memory around a block, filled in by :func:`track_peak_rss`."""

    start_mb: float = float("nan")  # RSS when the block started
    peak_mb: float = float("nan")  # highest RSS seen during the block
    exact: bool = False  # the high-water mark was reset at the start (see track_peak_rss)

    @property
    def increase_mb(self) -> float:
        """How far the block raised resident memory above its starting point."""
        return max(self.peak_mb - self.start_mb, 0.0)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@contextlib.contextmanager
def track_peak_rss() -> Iterator[MemoryPeak]:
    """Measure the peak resident memory (RSS) of this process during a ``with`` block.

    What it measures: on Linux the kernel's high-water mark (``VmHWM``) is reset at the
    start by writing 5 to ``/proc/self/clear_refs``, so ``peak_mb`` is the true peak RSS
    during the block and ``exact`` is True. This sees every allocation (torch, numpy, Python)
    unlike ``tracemalloc``, but it is the process's RSS: memory freed to an allocator and
    reused counts once, and pages allocated but never touched do not count. Where the reset
    is not possible, ``peak_mb`` is ``ru_maxrss`` at the end, a true peak only when the block
    raised the process's lifetime peak; ``exact`` is then False.

    Example:
        >>> with track_peak_rss() as mem:
        ...     buf = torch.ones(2**20)
        >>> mem.peak_mb >= mem.start_mb
        True
    """
    mem = MemoryPeak()
    rss = _status_kib("VmRSS")
    mem.start_mb = rss / 1024 if rss is not None else peak_rss_mb()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        mem.exact = True
    except OSError:
        mem.exact = False
    try:
        yield mem
    finally:
        hwm = _status_kib("VmHWM") if mem.exact else None
        mem.peak_mb = hwm / 1024 if hwm is not None else peak_rss_mb()


__all__ = ["MemoryPeak", "count_flops", "flops_per_window", "matmul_peak_gflops",
           "peak_rss_mb", "recurrent_flops", "track_peak_rss"]

