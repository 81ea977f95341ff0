"""Allocator settings for processes that run models: keep freed memory for reuse (glibc).

Torch-free, so the CLI can apply it at start-up without importing torch.
"""

from __future__ import annotations

import sys

__all__ = ["retain_freed_memory"]


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_retained = False


def retain_freed_memory(trim_mb: int = 1024) -> bool:
    """Keep memory that torch frees for reuse instead of handing it back to the OS (glibc).

    By default glibc serves each allocation above a (slowly adapting) threshold with a fresh
    ``mmap`` and returns it on ``free``, and trims the heap whenever its free top passes a few
    times that threshold. A model's activations are allocated and freed every batch, so every
    batch then touches new pages: the kernel faults and zeroes each 4 KiB again. Raising the
    mmap threshold to its maximum (32 MiB) and the trim threshold to ``trim_mb`` makes those
    pages stay with the process, as jemalloc or tcmalloc would keep them. On the 2-core Xeon of
    BENCHMARKS.md, in fresh processes (`benchmarks/malloc.py`), harcnn predicted 256 windows
    in 24 ms instead of 39 ms, the GRU 1.25x and the LSTM 1.16x faster; training steps moved
    by 0.96-1.10x. The cost: up to ``trim_mb`` of freed memory stays resident.

    Process-wide and idempotent; the ``harkit`` command calls it at start-up
    (``HARKIT_RETAIN_MEMORY=0`` turns that off). Returns whether it took effect (False off
    glibc, e.g. on macOS or musl).
    """
    global _retained
    if _retained:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
          and mallopt(_M_TRIM_THRESHOLD, int(trim_mb) << 20) == 1)
    _retained = bool(ok)
    return _retained
