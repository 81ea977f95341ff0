"""harkit export: ONNX / TorchScript graphs with the normaliser folded in match the PyTorch
Predictor; refused models say why; the sidecar, atomic writes, and the torch-free
OnnxPredictor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import harkit
from harkit.data.skeleton import SkeletonInfo
from harkit.data.transforms import Standardizer, normalizer_from_state
from harkit.errors import ConfigError, DataFormatError
from harkit.inference import Predictor
from harkit.inference import export as export_mod
from harkit.inference.export import (
    EXPORT_SUPPORT,
    FORMATS,
    ExportError,
    export_model,
    export_run,
)
from harkit.inference.onnx_predictor import OnnxPredictor
from harkit.models import MODELS, HarModel, create_model, list_models
from tests.conftest import UCI_CHANNELS, fixture_windows

# torch.jit.load / save say that TorchScript is deprecated (torch 2.13); it is still what
# --format torchscript writes
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")

T, K = 24, 4  # window length, classes
CHANNELS = ["acc_x", "acc_y", "acc_z"]
CLASSES = ["walk", "sit", "stand", "lie"]
# raw units far from N(0, 1), so a missing or wrong normaliser shows in the probabilities
MEAN = np.array([0.5, -9.8, 2.0])
STD = np.array([0.3, 2.0, 5.0])
TOL = 1e-4


def _raw(n: int, seed: int, n_channels: int = 3) -> np.ndarray:
    """Raw windows ``(n, T, C)`` in sensor units."""
    rng = np.random.default_rng(seed)
    mean, std = (MEAN, STD) if n_channels == 3 else (0.0, 1.0)
    return rng.normal(mean, std, (n, T, n_channels)).astype(np.float32)


def _fitted(name: str, skeleton: SkeletonInfo | None = None, **params: Any
            ) -> tuple[HarModel, dict[str, Any]]:
    """A tiny ``name`` with a Standardizer fitted on raw windows, its data-dependent init run
    and (unless closed-form) three Adam steps, so no parameter keeps its initial value (the
    TinyHAR gamma starts at 0, BatchNorm statistics at 0 / 1); plus its preprocessing."""
    n_ch = 3 if skeleton is None else skeleton.n_channels
    X = _raw(32, seed=1, n_channels=n_ch)
    if skeleton is not None and skeleton.valid_channel:
        X[..., -1] = (np.arange(T) < T - 4).astype(np.float32)  # the last 4 frames padded
    y = torch.from_numpy(np.random.default_rng(2).integers(0, K, len(X)))
    norm = Standardizer().fit(X)
    torch.manual_seed(0)
    extra = {} if skeleton is None else {"skeleton": skeleton.to_dict()}
    model = create_model(name, n_channels=n_ch, n_classes=K, window_len=T, variant="tiny",
                         **extra, **params)
    Xn = torch.from_numpy(norm.transform(X))
    model.fit_init(Xn, y)
    if not model.closed_form:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(Xn), y).backward()
            opt.step()
    model.eval()
    channels = CHANNELS if skeleton is None else [f"c{i}" for i in range(n_ch)]
    pre = {"dataset": "synthetic", "channels": channels, "classes": CLASSES,
           "units": {c: "m/s^2" for c in channels}, "window_len": T, "hop": T // 2,
           "sampling_rate": 50.0, "normalizer": norm.state_dict()}
    return model, pre


def _exported_proba(path: Path, fmt: str, X: np.ndarray) -> np.ndarray:
    """Probabilities of the exported file: ONNX through OnnxPredictor (ONNX Runtime),
    TorchScript loaded back with torch.jit."""
    if fmt == "onnx":
        return OnnxPredictor(path, threads=1).predict_proba(X)
    module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def _assert_parity(model: HarModel, pre: dict[str, Any], path: Path, fmt: str,
                   n_channels: int = 3) -> None:
    """The exported file gives the PyTorch Predictor's probabilities on raw windows at batch
    sizes 1 and 7 (the graph was traced at another batch size: the axis is dynamic), and for
    the random-kernel models 70, above the 64 windows they work through at a time in eager
    mode."""
    ref = Predictor(model, normalizer_from_state(pre["normalizer"]), pre, batch_size=80)
    sizes = [(1, 10), (7, 11)] + ([(70, 12)] if hasattr(model, "rocket") else [])
    for n, seed in sizes:
        X = _raw(n, seed, n_channels)
        expected = ref.predict_proba(X)
        got = _exported_proba(path, fmt, X)
        assert got.shape == (n, K)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)  # probabilities, not logits


# --------------------------------------------------------------------------------------------
# the support table, against reality


def test_support_table_covers_every_registered_model() -> None:
    assert sorted(EXPORT_SUPPORT) == sorted(list_models())
    for name, formats in EXPORT_SUPPORT.items():
        assert sorted(formats) == sorted(FORMATS), name
        assert all(v == "ok" or len(v) > 20 for v in formats.values()), name  # a real reason


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list_models())
def test_support_table_holds(name: str, fmt: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Each "ok" exports and matches the Predictor; each reason is refused by name and the
    export really fails when the table is bypassed."""
    model, pre = _fitted(name)
    out = tmp_path / f"model.{fmt}"
    reason = EXPORT_SUPPORT[name][fmt]
    if reason != "ok":
        with pytest.raises(ExportError, match=f"{name!r} cannot be exported"):
            export_model(model, pre, out, fmt)
        monkeypatch.setitem(EXPORT_SUPPORT[name], fmt, "ok")
        with pytest.raises(ExportError):
            export_model(model, pre, out, fmt)
        assert list(tmp_path.iterdir()) == []
        return
    res = export_model(model, pre, out, fmt)
    assert res.path == out and res.sidecar.exists() and res.max_abs_diff <= TOL
    _assert_parity(model, pre, out, fmt)


SKELETON = [n for n in list_models() if MODELS.get(n).tags.get("skeleton")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("name", "params"), [
    *((n, {}) for n in SKELETON),
    ("minirocket", {"streams": "joint+bone+motion"}),
    ("multirocket-hydra", {"streams": "bone+motion"})], ids=lambda v: str(v or "-"))
def test_skeleton_models_export_with_a_joint_layout(name: str, params: dict[str, Any], fmt: str,
                                                    tmp_path: Path) -> None:
    """Skeleton models, and the random-kernel models reading bone / motion streams, on
    skeleton windows (NATOPS 8-joint layout with its bones and body parts, 2 bodies, padded
    frames): the valid-frame mask and the body / joint reshapes survive export."""
    info = SkeletonInfo("natops8", bodies=2, dims=3, valid_channel=True)
    model, pre = _fitted(name, info, **params)
    path = export_model(model, pre, tmp_path / f"m.{fmt}", fmt).path
    ref = Predictor(model, normalizer_from_state(pre["normalizer"]), pre, batch_size=8)
    X = _raw(7, 12, info.n_channels)
    X[..., -1] = (np.arange(T) < np.arange(7)[:, None] + 10).astype(np.float32)  # (7, T)
    np.testing.assert_allclose(_exported_proba(path, fmt, X), ref.predict_proba(X),
                               rtol=0, atol=TOL)


# --------------------------------------------------------------------------------------------
# refusals


class _BranchOnData(HarModel):
    """Python control flow on a tensor value: the exporter cannot keep both branches."""

    registry_name = "test-branch-on-data"

    def __init__(self) -> None:
        super().__init__(3, K, T)
        self.lin = nn.Linear(3, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x.mean(1))  # (B, C) -> (B, K)
        return h if bool(x.mean() > 0) else -h


class _NumpyFeatures(HarModel):
    """Features computed in numpy: a trace records them as constants."""

    registry_name = "test-numpy-features"

    def __init__(self) -> None:
        super().__init__(3, K, T)
        self.lin = nn.Linear(3, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = np.abs(x.detach().numpy()).mean(axis=1)  # (B, T, C) -> (B, C)
        return self.lin(torch.from_numpy(f))


def _pre() -> dict[str, Any]:
    return {"channels": CHANNELS, "classes": CLASSES, "window_len": T, "hop": T,
            "sampling_rate": 50.0, "normalizer": Standardizer().fit(_raw(8, 0)).state_dict()}


@pytest.mark.parametrize(("model", "fmt", "why"), [
    (_BranchOnData(), "onnx", "data-dependent"),
    (_BranchOnData(), "torchscript", "does not reproduce the PyTorch model"),
    (_NumpyFeatures(), "torchscript", "batch size is baked into the graph"),
], ids=["branch-onnx", "branch-torchscript", "numpy-torchscript"])
def test_unexportable_models_are_refused_with_the_reason(model: HarModel, fmt: str, why: str,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "m.bin"
    with pytest.raises(ExportError, match=why) as info:
        export_model(model.eval(), _pre(), out, fmt)
    assert repr(model.registry_name) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_table_reasons_formats_and_opsets_are_checked(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXPORT_SUPPORT["harcnn"], "onnx", "uses an operator ONNX lacks")
    model, pre = _fitted("harcnn")
    with pytest.raises(ExportError, match="'harcnn' cannot be exported to onnx: uses an operator"):
        export_model(model, pre, tmp_path / "m.onnx", "onnx")
    with pytest.raises(ConfigError, match="expected one of onnx, torchscript"):
        export_model(model, pre, tmp_path / "m.tflite", "tflite")
    with pytest.raises(ConfigError, match="applies to ONNX exports only"):
        export_model(model, pre, tmp_path / "m.pt", "torchscript", opset=18)
    # an opset the exporter cannot write is refused, not silently replaced
    monkeypatch.setitem(EXPORT_SUPPORT["harcnn"], "onnx", "ok")
    with pytest.raises(ExportError, match="opset 13 was asked for"):
        export_model(model, pre, tmp_path / "m.onnx", "onnx", opset=13)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# the sidecar and atomic writes


@pytest.mark.parametrize("fmt", FORMATS)
def test_sidecar_has_everything_a_device_needs(fmt: str, tmp_path: Path) -> None:
    import hashlib

    model, pre = _fitted("lstm")
    res = export_model(model, pre, tmp_path / "har.bin", fmt)
    assert res.sidecar == tmp_path / "har.bin.json"
    meta = json.loads(res.sidecar.read_text())
    assert meta == res.metadata
    assert meta["format"] == fmt and meta["model"] == "lstm"
    assert (meta["classes"], meta["channels"]) == (CLASSES, CHANNELS)
    assert (meta["window_len"], meta["hop"], meta["sampling_rate"]) == (T, T // 2, 50.0)
    assert meta["units"] == {c: "m/s^2" for c in CHANNELS}
    assert meta["normalizer_folded"] is True and meta["normalizer"] == pre["normalizer"]
    assert meta["harkit_version"] == harkit.__version__
    assert (meta["input_name"], meta["output_name"]) == ("windows", "probabilities")
    assert meta["input_shape"] == ["batch", T, 3] and meta["output_shape"] == ["batch", K]
    assert meta["file"] == "har.bin"
    assert meta["sha256"] == hashlib.sha256(res.path.read_bytes()).hexdigest()
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(res.path))
        assert meta["opset"] == res.opset and meta["opset"] >= 17
        assert [i.name for i in proto.graph.input] == ["windows"]
        assert [o.name for o in proto.graph.output] == ["probabilities"]
        batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.dim_value  # a named, dynamic batch axis
        embedded = json.loads({p.key: p.value for p in proto.metadata_props}["harkit"])
    else:
        assert meta["opset"] is None
        files = {"harkit.json": ""}
        torch.jit.load(str(res.path), _extra_files=files)
        embedded = json.loads(files["harkit.json"])
    assert embedded["classes"] == CLASSES and embedded["channels"] == CHANNELS


def test_unfolded_export_leaves_the_normaliser_to_the_predictor(tmp_path: Path) -> None:
    model, pre = _fitted("harcnn")
    res = export_model(model, pre, tmp_path / "m.onnx", "onnx", fold_preprocessing=False)
    assert res.metadata["normalizer_folded"] is False
    _assert_parity(model, pre, res.path, "onnx")  # OnnxPredictor normalises from the sidecar
    # the graph itself takes normalised windows
    import onnxruntime as ort

    X = _raw(2, 3)
    session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    Xn = normalizer_from_state(pre["normalizer"]).transform(X)
    ref = Predictor(model, normalizer_from_state(pre["normalizer"]), pre, batch_size=8)
    np.testing.assert_allclose(session.run(None, {"windows": Xn})[0], ref.predict_proba(X),
                               atol=TOL)


def test_failed_write_leaves_old_files_and_no_partial_ones(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    model, pre = _fitted("harcnn")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old model")
    (tmp_path / "m.onnx.json").write_text("old sidecar")
    calls = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the model file is complete, the sidecar is being written
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        export_model(model, pre, out, "onnx")
    assert out.read_bytes() == b"old model"
    assert (tmp_path / "m.onnx.json").read_text() == "old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]
    # a refused export leaves the old pair alone too
    monkeypatch.undo()
    with pytest.raises(ExportError):
        export_model(_BranchOnData().eval(), _pre(), out, "onnx")
    assert out.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


# --------------------------------------------------------------------------------------------
# OnnxPredictor


def test_onnx_predictor_runs_without_torch(tmp_path: Path) -> None:
    """A fresh interpreter imports the ONNX predictor, predicts windows and a CSV, and never
    loads torch; its probabilities are the PyTorch Predictor's."""
    model, pre = _fitted("harcnn")
    path = export_model(model, pre, tmp_path / "harcnn.onnx", "onnx").path
    X = _raw(5, 20)
    np.save(tmp_path / "X.npy", X)
    signal = _raw(1, 21)[0].repeat(3, axis=0)  # (3T, C)
    csv = tmp_path / "samples.csv"
    csv.write_text("time," + ",".join(reversed(CHANNELS)) + "\n" + "".join(
        f"{i}," + ",".join(f"{v:.7g}" for v in row[::-1]) + "\n" for i, row in enumerate(signal)))
    code = f"""
import json, sys
import numpy as np
from harkit.inference.onnx_predictor import OnnxPredictor
p = OnnxPredictor({str(path)!r}, threads=1)
np.save({str(tmp_path / "P.npy")!r}, p.predict_proba(np.load({str(tmp_path / "X.npy")!r})))
rows = p.predict_csv({str(csv)!r})
json.dump([[r.start, r.end, r.label, r.probabilities] for r in rows],
          open({str(tmp_path / "rows.json")!r}, "w"))
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, loaded
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = Predictor(model, normalizer_from_state(pre["normalizer"]), pre, batch_size=8)
    np.testing.assert_allclose(np.load(tmp_path / "P.npy"), ref.predict_proba(X), atol=TOL)
    rows = json.loads((tmp_path / "rows.json").read_text())
    expected = ref.predict_csv(csv)
    assert [(r[0], r[1], r[2]) for r in rows] == [(e.start, e.end, e.label) for e in expected]
    np.testing.assert_allclose([r[3] for r in rows], [e.probabilities for e in expected],
                               atol=TOL)


def test_onnx_predictor_refuses_bad_inputs_and_files(tmp_path: Path) -> None:
    model, pre = _fitted("lstm")
    res = export_model(model, pre, tmp_path / "m.onnx", "onnx")
    p = OnnxPredictor(res.path)
    assert (p.classes, p.channels, p.window_len, p.hop, p.sampling_rate) == (
        CLASSES, CHANNELS, T, T // 2, 50.0)
    assert p.predict_proba(np.empty((0, T, 3))).shape == (0, K)
    assert p.predict(_raw(3, 5)).shape == (3,)
    with pytest.raises(ValueError, match=r"expected raw windows \(N, 24, 3\)"):
        p.predict_proba(np.zeros((2, T, 4)))
    with pytest.raises(ValueError, match="NaN"):
        p.predict_proba(np.full((1, T, 3), np.nan))
    # a model file that is not the one the sidecar describes
    res.path.write_bytes(res.path.read_bytes() + b"\0")
    with pytest.raises(DataFormatError, match="sha256"):
        OnnxPredictor(res.path)
    # a TorchScript sidecar, and a missing one
    ts = export_model(model, pre, tmp_path / "m.pt", "torchscript")
    ts.path.rename(tmp_path / "x.onnx")
    ts.sidecar.rename(tmp_path / "x.onnx.json")
    with pytest.raises(DataFormatError, match="'torchscript' export"):
        OnnxPredictor(tmp_path / "x.onnx")
    (tmp_path / "x.onnx.json").unlink()
    with pytest.raises(DataFormatError, match="sidecar not found"):
        OnnxPredictor(tmp_path / "x.onnx")


# --------------------------------------------------------------------------------------------
# end to end: a trained run


def test_export_run_end_to_end(tiny_cfg: list[str], tmp_path: Path) -> None:
    """Train a tiny run, export its final model to ONNX (default path) and its best one to
    TorchScript; both predict a CSV of raw samples as the Predictor does."""
    run = harkit.train(overrides=[*tiny_cfg, "train.epochs=2", "name=export"],
                       progress=False).run_dir
    res = export_run(run)
    assert res.path == Path(run) / "export" / "model.onnx" and res.format == "onnx"
    assert res.metadata["source"].endswith("refit_last.pt")
    X = fixture_windows(n_subjects_train=1, n_subjects_test=1, per_subject=6, seed=3)["test"][0]
    csv = tmp_path / "rec.csv"
    signal = X.reshape(-1, X.shape[2])  # six windows back to back: (6 * 128, 9)
    csv.write_text(",".join(UCI_CHANNELS) + "\n" + "".join(
        ",".join(f"{v:.7g}" for v in row) + "\n" for row in signal))
    ref = Predictor.from_run(run)
    onnx_rows, ref_rows = OnnxPredictor(res.path).predict_csv(csv), ref.predict_csv(csv)
    assert len(onnx_rows) == len(ref_rows) == 11  # hop 64 over 768 samples
    assert [r.label for r in onnx_rows] == [r.label for r in ref_rows]
    np.testing.assert_allclose([r.probabilities for r in onnx_rows],
                               [r.probabilities for r in ref_rows], atol=TOL)

    # harkit predict and harkit stream on the .onnx file: ONNX Runtime, torch never imported
    code = f"""
import sys
from harkit.cli import main
assert main(["predict", {str(res.path)!r}, {str(csv)!r}, "--output",
             {str(tmp_path / "pred.csv")!r}]) == 0
assert main(["stream", {str(res.path)!r}, {str(csv)!r}, "--output",
             {str(tmp_path / "events.jsonl")!r}]) == 0
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, loaded
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pred = (tmp_path / "pred.csv").read_text().splitlines()[1:]
    assert [line.split(",")[2] for line in pred] == [r.label for r in ref_rows]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["label"] for e in events] == [r.label for r in ref_rows]

    best = export_run(run, tmp_path / "best.pt", format="torchscript", which="best")
    assert best.metadata["source"].endswith("best.pt")
    ref_best = Predictor.from_run(run, "best")
    assert ref_best.channels == UCI_CHANNELS == best.metadata["channels"]
    np.testing.assert_allclose(_exported_proba(best.path, "torchscript", X[:3]),
                               ref_best.predict_proba(X[:3]), atol=TOL)
