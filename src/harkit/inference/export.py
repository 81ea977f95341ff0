"""Export a trained model with its preprocessing to ONNX or TorchScript for on-device inference.

The exported graph takes **raw** windows ``(batch, window_len, n_channels)`` float32 (any batch
size, channels in the checkpoint's order) and returns class probabilities ``(batch,
n_classes)``: the checkpoint's normaliser, the model and the softmax are one graph (or the
normaliser is left to the caller with ``fold_preprocessing=False``). A sidecar JSON beside the
file (``<output>.json``) holds everything else a device needs: classes, channels and units,
window length, hop, sampling rate, the input and output names, and the normaliser's state when
it is not folded in. The same JSON is embedded in the file itself (ONNX metadata property /
TorchScript extra file ``harkit.json``).

Every export is checked before it is written: the exported artifact (run by ONNX Runtime, or
the TorchScript file loaded back) must reproduce the eager model's probabilities on random
windows at two batch sizes, so a trace that silently froze a data-dependent branch, a
constant computed outside torch, or a batch size baked into the graph is refused with an
:class:`ExportError` instead of being shipped.

Example:
    >>> from harkit.inference.export import export_run
    >>> res = export_run("runs/my-run", "model.onnx")              # doctest: +SKIP
    >>> res.path, res.sidecar                                     # doctest: +SKIP
    (PosixPath('model.onnx'), PosixPath('model.onnx.json'))
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harkit.errors import CheckpointError, ConfigError, HarkitError
from harkit.io import atomic_path

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
INPUT_NAME = "windows"
OUTPUT_NAME = "probabilities"
SIDECAR_SUFFIX = ".json"
METADATA_KEY = "harkit"  # ONNX metadata property / TorchScript extra file ``harkit.json``
DEFAULT_FILE = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
EXPORT_INSTALL_HINT = "pip install 'harkit[export]'"

# Model name -> format -> "ok" or why that model cannot be exported to that format.
# tests/test_export.py holds this against reality: each "ok" exports (tiny variant, fitted
# normaliser) and matches the PyTorch Predictor within 1e-4 at batch sizes 1 and 7, and each
# reason must really fail. Every forward pass registered so far is plain tensor code with
# shapes fixed by the window (the rocket family's closed-form ridge fit and its numpy /
# scipy parts run in fit_init at training time only; their forward is convolutions,
# comparisons and counts), so all of them export. Their Python loops (one compare-and-add per
# bias, one step per sample for MultiRocket's longest-run pooling) are unrolled into the
# graph, though: at 128 x 9 a default MiniRocket exports to ONNX in ~8 s, a 2,000-feature
# MultiRocket in ~40 s, and the default 50,000-feature MultiRocket had not finished after 12 CPU
# minutes (TorchScript: 15 s).
EXPORT_SUPPORT: dict[str, dict[str, str]] = {
    name: {"onnx": "ok", "torchscript": "ok"}
    for name in (
        "bilstm", "deepconvlstm", "deepconvlstm-1l", "gru", "harcnn", "hydra", "lstm",
        "lstm-relu", "minirocket", "multirocket", "multirocket-hydra", "pose-lstm", "stgcn",
        "tinyhar", "two-stream-rnn",
    )
}


class ExportError(HarkitError):
    """A model cannot be exported to the requested format (the message says which and why)."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the model file (``.onnx`` or TorchScript ``.pt``).
        sidecar: the JSON beside it (``<path>.json``).
        format: ``onnx`` or ``torchscript``.
        model: the registered model name.
        opset: the ONNX opset of the graph (None for TorchScript).
        max_abs_diff: largest difference between the exported artifact's probabilities and the
            eager model's on the check windows.
        seconds: time the export and its check took.
        metadata: the sidecar's contents.
    """

    path: Path
    sidecar: Path
    format: str
    model: str
    opset: int | None
    max_abs_diff: float
    seconds: float
    metadata: dict[str, Any] = field(repr=False)


class DeployableModel(nn.Module):
    """Raw windows ``(batch, time, channels)`` -> normalise -> model -> softmax probabilities.

    Args:
        model: a harkit model (``(batch, time, channels)`` -> logits).
        shift, scale: the fitted normaliser's per-channel ``mean`` / ``std`` (``(channels,)``),
            applied as ``(x - shift) / scale`` exactly as :class:`~harkit.data.transforms.
            Standardizer` does; None leaves the input as it is (already normalised, or
            ``data.normalize=none``).
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, model: nn.Module, shift: np.ndarray | None = None,
                 scale: np.ndarray | None = None) -> None:
        super().__init__()
        self.model = model
        self.normalise = shift is not None and scale is not None
        n = int(getattr(model, "n_channels", 0))
        self.register_buffer("shift", torch.as_tensor(
            np.zeros(n) if shift is None else shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(
            np.ones(n) if scale is None else scale, dtype=torch.float32))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            windows = (windows - self.shift) / self.scale  # (B, T, C) - (C,): per channel
        return torch.softmax(self.model(windows), dim=1)  # (B, n_classes)


def export_run(run_dir: str | Path, output: str | Path | None = None, format: str = "onnx",
               which: str | None = None, fold_preprocessing: bool = True,
               opset: int | None = None, tol: float = 1e-4) -> ExportResult:
    """Export a run's model (or a checkpoint file) with its preprocessing.

    Args:
        run_dir: a run directory, or a checkpoint ``.pt`` file.
        output: the model file to write; default ``<run>/export/model.onnx`` (or
            ``model.torchscript.pt``). The sidecar goes to ``<output>.json``.
        format: ``onnx`` or ``torchscript``.
        which: ``final``, ``best`` or ``last`` checkpoint of a run (default: the run's final
            model, the one its test metrics describe).
        fold_preprocessing: put the normaliser into the graph (raw windows in); False leaves
            it to the caller (normalised windows in; its state is in the sidecar).
        opset: ONNX opset (default: the exporter's own, 20 with torch 2.13).
        tol: largest accepted difference between exported and eager probabilities.

    Returns:
        the :class:`ExportResult`.

    Raises:
        CheckpointError: not a run directory / checkpoint, or an unknown ``which``.
        ConfigError: an unknown format.
        ExportError: the model cannot be exported to ``format`` (says which model and why).

    Example:
        >>> export_run("runs/uci-lstm", "lstm.onnx", format="onnx")   # doctest: +SKIP
    """
    from harkit.inference.predictor import model_from_checkpoint

    _check_format(format)
    src = Path(run_dir)
    if src.is_file():
        if which is not None:
            raise CheckpointError(f"{src}: a checkpoint file was given; --checkpoint "
                                  f"{which!r} applies to run directories only")
        ckpt_path = src
        default_dir = src.parent / "export"
    else:
        from harkit.runs import RunDir

        run = RunDir.open(src)
        ckpt_path = run.model_checkpoint(run.config(), which)
        default_dir = run.path / "export"
    model, pre = model_from_checkpoint(ckpt_path)
    out = Path(output) if output is not None else default_dir / DEFAULT_FILE[format]
    return export_model(model, pre, out, format=format, fold_preprocessing=fold_preprocessing,
                        opset=opset, tol=tol, source=str(ckpt_path))


def export_model(model: nn.Module, preprocessing: dict[str, Any], output: str | Path,
                 format: str = "onnx", fold_preprocessing: bool = True, opset: int | None = None,
                 tol: float = 1e-4, source: str | None = None) -> ExportResult:
    """Export ``model`` with ``preprocessing`` (a checkpoint's ``preprocessing`` dict) to
    ``output`` and its sidecar ``<output>.json``, both written atomically.

    The export is checked against the eager model on random windows at batch sizes 1 and 5
    (the batch axis is dynamic) before anything is written.

    Args:
        model: a harkit model taking ``(batch, time, channels)`` windows.
        preprocessing: ``channels``, ``classes``, ``window_len``, ``hop``, ``sampling_rate``,
            ``normalizer`` (state dict) and optionally ``units`` and ``dataset``.
        output: the model file to write.
        format: ``onnx`` or ``torchscript``.
        fold_preprocessing: put the normaliser into the graph (see :func:`export_run`).
        opset: ONNX opset (None: the exporter's default).
        tol: largest accepted difference between exported and eager probabilities.
        source: where the model came from (recorded in the sidecar).

    Raises:
        ConfigError: an unknown format or incomplete ``preprocessing``.
        ExportError: the model cannot be exported (says which model and why); nothing is
            written then.
    """
    _check_format(format)
    if opset is not None and format != "onnx":
        raise ConfigError(f"opset={opset} applies to ONNX exports only, not {format}")
    name = str(getattr(model, "registry_name", "") or type(model).__name__)
    reason = EXPORT_SUPPORT.get(name, {}).get(format, "ok")
    if reason != "ok":
        raise ExportError(f"model {name!r} cannot be exported to {format}: {reason}")
    meta = _metadata(model, name, preprocessing, format, fold_preprocessing, source)
    shift, scale = _affine(preprocessing["normalizer"]) if fold_preprocessing else (None, None)
    wrapper = DeployableModel(model, shift, scale)
    t0 = time.perf_counter()
    was_training = model.training
    wrapper.eval()
    try:
        check = _check_windows(meta["window_len"], len(meta["channels"]), shift, scale)
        with torch.no_grad():
            expected = [wrapper(x).numpy() for x in check]
        if format == "onnx":
            data, opset_used, got = _export_onnx(wrapper, name, meta, check, opset)
        else:
            data, got = _export_torchscript(wrapper, name, meta, check)
            opset_used = None
    finally:
        model.train(was_training)
    shapes = [g.shape for g in got]
    if shapes != [e.shape for e in expected]:
        raise ExportError(
            f"model {name!r}: the {format} export returns shapes {shapes} for batch sizes "
            f"{[len(x) for x in check]}, expected {[e.shape for e in expected]}; the batch "
            "size is baked into the graph (a value computed outside torch, e.g. with numpy, "
            "is a constant there)")
    diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    if not np.isfinite(diff) or diff > tol:
        raise ExportError(
            f"model {name!r}: the {format} export does not reproduce the PyTorch model "
            f"(largest probability difference {diff:.3g} > {tol:g} on random windows at batch "
            f"sizes {[len(x) for x in check]}); its forward pass depends on the data or the "
            "batch size in a way the exporter cannot capture")
    meta["opset"] = opset_used
    meta["verified_max_abs_diff"] = diff
    path = Path(output)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    meta["file"] = path.name
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    _write_pair(path, data, sidecar, json.dumps(meta, indent=2) + "\n")
    seconds = time.perf_counter() - t0
    log.info("exported %s to %s (%s, max |diff| %.2g, %.1f s)", name, path, format, diff, seconds)
    return ExportResult(path, sidecar, format, name, opset_used, diff, seconds, meta)


# --------------------------------------------------------------------------------------------
# helpers


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ConfigError(f"export format {format!r}: expected one of {', '.join(FORMATS)}")


def _affine(state: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The normaliser's ``(shift, scale)`` (``mean`` / ``std`` of every affine kind), or
    ``(None, None)`` for ``none``."""
    from harkit.data.transforms import Standardizer, normalizer_from_state

    norm = normalizer_from_state(state)
    if isinstance(norm, Standardizer) and norm.mean is not None and norm.std is not None:
        return norm.mean.astype(np.float32), norm.std.astype(np.float32)
    return None, None


def _metadata(model: nn.Module, name: str, pre: dict[str, Any], format: str, folded: bool,
              source: str | None) -> dict[str, Any]:
    """The sidecar's contents (the file's hash and the opset are added once known)."""
    import harkit

    missing = [k for k in ("channels", "classes", "window_len", "hop", "sampling_rate",
                           "normalizer") if k not in pre]
    if missing:
        raise ConfigError(f"preprocessing lacks {missing}; export needs a checkpoint's "
                          "preprocessing dict")
    channels = [str(c) for c in pre["channels"]]
    classes = [str(c) for c in pre["classes"]]
    window_len = int(pre["window_len"])
    for attr, value in (("n_channels", len(channels)), ("n_classes", len(classes)),
                        ("window_len", window_len)):
        if getattr(model, attr, value) != value:
            raise ConfigError(f"model {name!r} has {attr}={getattr(model, attr)}, the "
                              f"preprocessing says {value}")
    return {
        "format": format,
        "harkit_version": harkit.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "model": name,
        "source": source,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input_shape": ["batch", window_len, len(channels)],
        "output_shape": ["batch", len(classes)],
        "input_dtype": "float32",
        "output": "softmax probabilities",
        "classes": classes,
        "channels": channels,
        "units": {str(k): str(v) for k, v in dict(pre.get("units") or {}).items()},
        "window_len": window_len,
        "hop": int(pre["hop"]),
        "sampling_rate": float(pre["sampling_rate"]),
        "dataset": pre.get("dataset"),
        "normalizer_folded": folded,
        # the state is kept either way (it documents what the graph applies when folded)
        "normalizer": pre["normalizer"],
    }


def _check_windows(window_len: int, n_channels: int, shift: np.ndarray | None,
                   scale: np.ndarray | None) -> list[torch.Tensor]:
    """Deterministic random windows at batch sizes 1 and 5, in the graph's input units (raw
    when the normaliser is folded in: normalised values mapped back through it)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for n in (1, 5):
        z = torch.randn(n, window_len, n_channels, generator=g)  # (B, T, C)
        if shift is not None and scale is not None:
            z = z * torch.from_numpy(scale) + torch.from_numpy(shift)
        out.append(z)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress lines, graph dumps and warnings (torchvision missing,
    torch.jit deprecation, tracer notes on LSTM internals): whether the result is right is
    checked afterwards, and a failure's cause goes into the ExportError."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cause(e: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of the innermost cause of ``e`` (the exporters wrap the real
    reason, e.g. a guard on a data-dependent value, in generic errors)."""
    seen = {id(e)}
    while (nxt := e.__cause__ or e.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        e = nxt
    lines = [ln for ln in _ANSI.sub("", str(e)).splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {' '.join(lines[0].split())}" if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _export_onnx(wrapper: DeployableModel, name: str, meta: dict[str, Any],
                 check: list[torch.Tensor], opset: int | None
                 ) -> tuple[bytes, int, list[np.ndarray]]:
    """The serialised ONNX model (dynamic batch axis), its opset, and ONNX Runtime's outputs
    on the check windows."""
    try:
        import onnx  # noqa: F401  (the exporter needs onnx and onnxscript)
        import onnxruntime as ort
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs the packages onnx, onnxscript and onnxruntime "
                          f"({e.name} is missing): {EXPORT_INSTALL_HINT}") from None
    example = torch.cat([check[0], check[1][:1]])  # batch 2: torch.export specialises 0 and 1
    batch = torch.export.Dim("batch")
    try:
        with _quiet():
            program = torch.onnx.export(
                wrapper, (example,), None, dynamo=True, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes={"windows": {0: batch}},
                opset_version=opset, verbose=False)
        if program is None:  # pragma: no cover - only without dynamo
            raise RuntimeError("the exporter returned no program")
        proto = program.model_proto
    except Exception as e:
        raise ExportError(f"model {name!r} cannot be exported to ONNX: the exporter failed "
                          f"({_cause(e)})") from e
    opset_used = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                      0)
    if opset is not None and opset_used != opset:  # the exporter falls back without failing
        raise ExportError(f"model {name!r}: ONNX opset {opset} was asked for, but the exporter "
                          f"of torch {torch.__version__} wrote opset {opset_used}; choose "
                          f"opset {opset_used} or later")
    prop = proto.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, json.dumps(meta)
    proto.doc_string = f"harkit {meta['model']}: raw windows {meta['input_shape']} -> " \
                       f"class probabilities {meta['output_shape']}"
    try:
        data = proto.SerializeToString()
    except ValueError as e:  # protobuf refuses models over 2 GiB
        raise ExportError(f"model {name!r} is too large for one ONNX file ({e})") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        got = [session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0] for x in check]
    except Exception as e:
        raise ExportError(f"model {name!r}: the ONNX graph does not run in ONNX Runtime "
                          f"({_cause(e)})") from e
    return data, opset_used, got


def _export_torchscript(wrapper: DeployableModel, name: str, meta: dict[str, Any],
                        check: list[torch.Tensor]) -> tuple[bytes, list[np.ndarray]]:
    """The serialised traced module (metadata as extra file ``harkit.json``) and the outputs
    of the module loaded back from those bytes on the check windows."""
    example = torch.cat([check[0], check[1][:2]])  # batch 3, so a batch size baked into
    try:  # the trace shows up at batch sizes 1 and 5
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(traced, buf, _extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})
        data = buf.getvalue()
        with _quiet(), torch.no_grad():
            loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
            got = [loaded(x).numpy() for x in check]
    except Exception as e:
        raise ExportError(f"model {name!r} cannot be exported to TorchScript: tracing failed "
                          f"({_cause(e)})") from e
    return data, got


def _write_pair(path: Path, data: bytes, sidecar: Path, text: str) -> None:
    """Write the model file and its sidecar atomically: both go to temporary siblings first
    and are renamed into place only once both are complete (the sidecar first, so a model
    file never appears without it)."""
    with atomic_path(path, suffix=".part") as tmp_model, \
            atomic_path(sidecar, suffix=".part") as tmp_side:
        for tmp, payload in ((tmp_model, data), (tmp_side, text.encode("utf-8"))):
            with open(tmp, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
