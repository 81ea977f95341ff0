"""Mixed precision and compiled training, low-precision inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import harkit
from harkit.errors import ConfigError
from harkit.inference.predictor import Predictor, lower_precision
from harkit.models import create_model
from harkit.runs import RunDir
from harkit.training.checkpoint import load_checkpoint
from harkit.training.precision import autocast


def test_bf16_training_learns_and_resumes_exactly(tiny_cfg: list[str]) -> None:
    """bf16 autocast trains to the fp32 model's accuracy on the fixture; the weights and the
    optimiser stay fp32, and stopping and resuming gives the uninterrupted run bit for bit."""
    cfg = [*tiny_cfg, "train.epochs=15", "model.width=8", "model.hidden=16",
           "train.precision=bf16", "train.refit=false"]
    full = harkit.train(overrides=[*cfg, "name=full"], progress=False)
    assert full.test is not None and full.test.accuracy > 0.9
    ck = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")
    assert all(v.dtype in (torch.float32, torch.int64) for v in ck["weights"].values())
    part = harkit.train(overrides=[*cfg, "name=part"], progress=False, stop_after=7)
    resumed = harkit.train(resume=part.run_dir, progress=False)
    a = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")["weights"]
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")["weights"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert RunDir(resumed.run_dir).config().train.precision == "bf16"


def test_bf16_autocast_changes_the_arithmetic() -> None:
    """The context really lowers matmul precision (so the option is not a silent no-op)."""
    a = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    with autocast("cpu", "bf16"):
        low = a @ a
    with autocast("cpu", "fp32"):
        full = a @ a
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert not torch.equal(low.float(), full)


def test_precision_errors(tiny_cfg: list[str]) -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        harkit.train(overrides=[*tiny_cfg, "train.precision=fp16"], progress=False)
    with pytest.raises(ConfigError, match=r"train\.precision='half'"):
        harkit.train(overrides=[*tiny_cfg, "train.precision=half"], progress=False)


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny_cfg: list[str]) -> None:
    """torch.compile changes the kernels, not the model: the same run within float noise
    (without dropout, whose masks inductor draws from its own random stream)."""
    cfg = [*tiny_cfg, "train.epochs=2", "train.refit=false", "train.ema_decay=null",
           "model.dropout=0"]
    eager = harkit.train(overrides=[*cfg, "name=eager"], progress=False)
    compiled = harkit.train(overrides=[*cfg, "name=compiled", "train.compile=true"],
                            progress=False)
    a = load_checkpoint(eager.run_dir / "checkpoints" / "last.pt")["weights"]
    b = load_checkpoint(compiled.run_dir / "checkpoints" / "last.pt")["weights"]
    assert a.keys() == b.keys()  # no "_orig_mod." prefixes in the checkpoint
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4, msg=k)


@pytest.mark.parametrize(("name", "precision"), [
    ("harcnn", "bf16"), ("lstm", "bf16"), ("gru", "int8"), ("lstm", "int8"),
])
def test_lower_precision_inference_stays_close(name: str, precision: str) -> None:
    model = create_model(name, 6, 4, 32, variant="tiny").eval()
    low, why = lower_precision(model, precision, 32, 6)
    assert why == "" and low is not model
    x = torch.randn(16, 32, 6, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        p_low = torch.softmax(low(x).float(), 1)
        p = torch.softmax(model(x), 1)
    assert float((p_low - p).abs().max()) <= 0.02
    if precision == "int8":  # the recurrent / linear weights really are int8 now
        assert any("quantized" in type(m).__module__ for m in low.modules())


def test_lower_precision_falls_back_when_inaccurate() -> None:
    model = create_model("harcnn", 6, 4, 32, variant="tiny").eval()
    low, why = lower_precision(model, "bf16", 32, 6, tol=0.0)
    assert low is model and "changes probabilities" in why
    with pytest.raises(ConfigError, match="precision='fp8'"):
        lower_precision(model, "fp8", 32, 6)


def test_predictor_precision(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=[*tiny_cfg, "train.epochs=2", "train.refit=false"],
                     progress=False)
    fp32 = Predictor.from_run(r.run_dir)
    bf16 = Predictor.from_run(r.run_dir, precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, fp32.window_len, len(fp32.channels))).astype(np.float32)
    np.testing.assert_allclose(bf16.predict_proba(X), fp32.predict_proba(X), atol=0.02)
