"""Predictor: a trained model plus its preprocessing, rebuilt from a checkpoint."""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harkit.data.transforms import Normalizer, normalizer_from_state
from harkit.errors import CheckpointError, ConfigError
from harkit.inference.samples import (
    WindowPrediction,
    WindowPredictorMixin,
    check_windows,
    read_samples_csv,
)
from harkit.models import HarModel, model_from_config
from harkit.training.checkpoint import load_checkpoint

__all__ = ["INFERENCE_PRECISIONS", "Predictor", "WindowPrediction", "lower_precision",
           "optimize_for_inference", "read_samples_csv"]

INFERENCE_PRECISIONS = ("fp32", "bf16", "int8")
log = logging.getLogger(__name__)


def lower_precision(model: HarModel, precision: str, window_len: int, n_channels: int,
                    tol: float = 0.02) -> tuple[torch.nn.Module, str]:
    """``model`` for faster CPU inference, or the fp32 model and why not.

    ``bf16``: a bfloat16 copy of the weights (oneDNN's native bf16 kernels on CPUs with
    AVX512-BF16 or AMX: up to ~2x the fp32 throughput); ``int8``: dynamic quantisation of the
    Linear / LSTM / GRU layers (int8 weights, activations quantised on the fly). The copy is
    used only if its class probabilities stay within ``tol`` of the fp32 model's on random
    windows, so accuracy holds; otherwise the fp32 model is returned with the reason.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of "
                          f"{', '.join(INFERENCE_PRECISIONS)}")
    if precision == "fp32":
        return model, ""
    x = torch.randn(64, window_len, n_channels, generator=torch.Generator().manual_seed(0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantize_dynamic's deprecation notice
            if precision == "bf16":
                low: torch.nn.Module = _Bf16(copy.deepcopy(model).to(torch.bfloat16))
            else:
                low = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(model), {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU},
                    dtype=torch.qint8)
            with torch.inference_mode():
                diff = float((torch.softmax(low(x).float(), 1)
                              - torch.softmax(model(x), 1)).abs().max())
    except Exception as e:  # an op without a low-precision kernel
        return model, f"{precision} failed ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    if not diff <= tol:
        return model, f"{precision} changes probabilities by {diff:.3f} (> {tol})"
    return low, ""


class _Bf16(torch.nn.Module):
    """A bfloat16 model behind an fp32 interface (fp32 windows in, fp32 logits out)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(torch.bfloat16)).float()


def optimize_for_inference(model: torch.nn.Module, window_len: int, n_channels: int,
                           tol: float = 1e-4) -> Any:
    """A frozen TorchScript trace of ``model`` (BatchNorm folded into convolutions, fused
    oneDNN kernels: about 1.7x faster for harcnn on CPU), used only if it reproduces the eager
    model's logits within ``tol`` on random windows; otherwise the eager model itself. A model
    with an ``inference_module()`` (the GRU) gets that module, scripted, under the same check.

    Models may opt out of tracing with ``trace_for_inference = False`` (the random-kernel
    family: its eager pooling writes into preallocated buffers, which a trace would replace
    by slower functional ops, and MultiRocket takes ~25 s to trace): they run eagerly."""
    example = torch.randn(8, window_len, n_channels, generator=torch.Generator().manual_seed(0))
    # A model may offer a faster module with the same logits (the GRU's wavefront forward):
    # scripted, and used only if it matches the eager model as a trace must.
    make = getattr(model, "inference_module", None)
    if make is not None:
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scripted = torch.jit.script(make().eval())
                if all(torch.allclose(scripted(b), model(b), rtol=tol, atol=tol)
                       for b in (example, example[:3], example[:1])):
                    return scripted
        except Exception:  # pragma: no cover - falls back to the trace below
            log.debug("inference_module of %s failed", type(model).__name__, exc_info=True)
    if not getattr(model, "trace_for_inference", True):
        return model
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = torch.jit.freeze(torch.jit.trace(model, example))
            for batch in (example, example[:3], example[:1]):  # other batch sizes too
                if not torch.allclose(fast(batch), model(batch), rtol=tol, atol=tol):
                    return model
        return fast
    except Exception:  # a model that cannot be traced runs eagerly
        return model


def model_from_checkpoint(path: str | Path) -> tuple[HarModel, dict[str, Any]]:
    """The model (weights loaded) and the preprocessing stored in a checkpoint."""
    ckpt = load_checkpoint(path)
    try:
        model = model_from_config(ckpt["model_config"])
        model.load_state_dict(ckpt["weights"])
        return model, ckpt["preprocessing"]
    except KeyError as e:
        raise CheckpointError(f"{path}: checkpoint lacks {e}") from None


class Predictor(WindowPredictorMixin):
    """Applies a checkpoint's model with its stored normaliser, channel order and classes.

    Example:
        >>> p = Predictor.from_run("runs/my-run")        # doctest: +SKIP
        >>> probs = p.predict_proba(raw_windows)          # doctest: +SKIP
    """

    def __init__(self, model: HarModel, normalizer: Normalizer, preprocessing: dict[str, Any],
                 batch_size: int = 256, optimize: bool = True, precision: str = "fp32",
                 parallel: str = "off") -> None:
        self.model = model.eval()
        self.normalizer = normalizer
        self.preprocessing = preprocessing
        self.channels: list[str] = list(preprocessing["channels"])
        self.classes: list[str] = list(preprocessing["classes"])
        self.window_len = int(preprocessing["window_len"])
        self.hop = int(preprocessing["hop"])
        self.sampling_rate = float(preprocessing["sampling_rate"])
        self.batch_size = batch_size
        self._forward: Any = self.model
        # Inference arithmetic actually used: "fp32", or "bf16" / "int8" when asked for and
        # accurate enough (see lower_precision).
        self.precision = "fp32"
        if precision != "fp32":
            low, why = lower_precision(self.model, precision, self.window_len,
                                       len(self.channels))
            if why:
                log.warning("%s; predicting in fp32", why)
            else:
                self._forward, self.precision = low, precision
        if optimize and self.precision == "fp32":
            self._forward = optimize_for_inference(self.model, self.window_len,
                                                   len(self.channels))
        warm = torch.randn(batch_size, self.window_len, len(self.channels),
                           generator=torch.Generator().manual_seed(0))
        if self._forward is not self.model and self.precision == "fp32":
            # TorchScript profiles the first calls of each input shape before optimising
            # them: pay that at load time for the full batch shape.
            with torch.inference_mode():
                for _ in range(4):
                    self._forward(warm)
        # How a batch uses the cores (see harkit.inference.parallel): "off" (torch's threads
        # inside each kernel) or "batch" (the batch split across cores), as asked or, for
        # "auto", as timed on the full batch shape here.
        self.parallel = "off"
        self.parallel_timings: dict[str, float] = {}
        if parallel != "off":
            from harkit.inference.parallel import choose_parallel

            self._forward, self.parallel, self.parallel_timings = choose_parallel(
                self._forward, warm, parallel)

    @classmethod
    def from_checkpoint(cls, path: str | Path, precision: str = "fp32",
                        parallel: str = "off") -> Predictor:
        model, pre = model_from_checkpoint(path)
        return cls(model, normalizer_from_state(pre["normalizer"]), pre, precision=precision,
                   parallel=parallel)

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str | None = None,
                 precision: str = "fp32", parallel: str = "off") -> Predictor:
        """Load a run's model: by default its final one (the one its test metrics describe);
        ``which`` = ``final``, ``best`` or ``last`` to choose; ``precision`` = ``fp32``,
        ``bf16`` or ``int8`` for the inference arithmetic (see :func:`lower_precision`);
        ``parallel`` = ``off``, ``batch`` or ``auto`` for how a batch uses the cores (see
        :mod:`harkit.inference.parallel`; ``batch`` and ``auto`` may set the process's torch
        intra-op threads to 1)."""
        from harkit.runs import RunDir

        run = RunDir.open(run_dir)
        return cls.from_checkpoint(run.model_checkpoint(run.config(), which), precision,
                                   parallel)

    def _check(self, X: np.ndarray) -> np.ndarray:
        return check_windows(X, self.window_len, self.channels)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` for raw windows ``(N, time, channels)``."""
        Xn = torch.from_numpy(np.ascontiguousarray(self.normalizer.transform(self._check(X))))
        out = []
        bs = self.batch_size
        with torch.inference_mode():
            for i in range(0, len(Xn), bs):
                batch = Xn[i : i + bs]
                n = len(batch)
                if len(Xn) > bs and n < bs:
                    # Pad a short tail batch to the full batch shape, which the optimised
                    # graph has already seen (a new shape would be profiled again first).
                    batch = torch.cat([batch, batch.new_zeros(bs - n, *batch.shape[1:])])
                out.append(torch.softmax(self._forward(batch)[:n], dim=1))
        if not out:
            return np.empty((0, len(self.classes)), dtype=np.float32)
        return torch.cat(out).numpy()

