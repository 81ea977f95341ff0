"""Mixed precision for training and inference: one place that maps ``train.precision`` onto
``torch.autocast`` (and loss scaling for fp16), for CPU and CUDA alike."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from harkit.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: str | torch.device) -> None:
    """Refuse a precision the device cannot run; warn where it runs but slowly."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "fp16" and kind != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA device (train.device=cuda); "
                          "on CPU use bf16")
    if precision == "bf16" and kind == "cpu" and not cpu_has_fast_bf16():
        log.warning("train.precision=bf16: this CPU has no AVX512-BF16 or AMX instructions, so "
                    "bfloat16 is emulated and likely slower than fp32")
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision=bf16: this GPU does not support bfloat16; use fp16")


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has native bfloat16 arithmetic here (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


@contextlib.contextmanager
def autocast(device: str | torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=_DTYPES[precision]):
        yield


def grad_scaler(device: str | torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 training (bf16 has fp32's range and needs none)."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
