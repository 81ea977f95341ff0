"""Training and prediction on a CUDA device (skipped where there is none; CI has none).

Run on a GPU machine with ``python -m pytest tests/test_cuda.py``; BENCHMARKS.md records when
they last ran there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import harkit
from harkit.inference.predictor import Predictor
from harkit.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_learns_and_resumes_exactly(tiny_cfg: list[str], precision: str) -> None:
    """Each precision learns the fixture on the GPU; fp32 weights are checkpointed; a run
    stopped and resumed (optimizer, scheduler, GradScaler, RNG) equals the uninterrupted one."""
    cfg = [*tiny_cfg, "train.epochs=12", "model.width=8", "model.hidden=16",
           "train.device=cuda", f"train.precision={precision}", "train.refit=false",
           "model.dropout=0"]
    full = harkit.train(overrides=[*cfg, "name=full"], progress=False)
    assert full.test is not None and full.test.accuracy > 0.9
    ck = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")
    assert all(v.dtype in (torch.float32, torch.int64) for v in ck["weights"].values())
    assert all(v.device.type == "cpu" for v in ck["weights"].values())
    if precision == "fp16":
        assert ck["trainer"].get("scaler"), "the GradScaler state is checkpointed"
    torch.backends.cudnn.deterministic = True
    part = harkit.train(overrides=[*cfg, "name=part"], progress=False, stop_after=6)
    resumed = harkit.train(resume=part.run_dir, progress=False)
    a = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")["weights"]
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")["weights"]
    for k in a:  # GPU kernels may reorder sums between runs: equal within float noise
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_cuda_checkpoint_predicts_on_cpu(tiny_cfg: list[str]) -> None:
    """A model trained on the GPU is checkpointed with CPU tensors, and the CPU Predictor's
    probabilities equal the same weights' on the GPU."""
    r = harkit.train(overrides=[*tiny_cfg, "train.device=cuda", "train.refit=false"],
                     progress=False)
    pred = Predictor.from_checkpoint(r.run_dir / "checkpoints" / "best.pt")
    x = np.random.default_rng(0).normal(size=(16, pred.window_len, len(pred.channels)))
    cpu = pred.predict_proba(x)
    xn = torch.from_numpy(pred.normalizer.transform(x)).float().cuda()
    model = pred.model.cuda()
    with torch.inference_mode():
        gpu = torch.softmax(model(xn).float(), 1).cpu().numpy()
    np.testing.assert_allclose(cpu, gpu, atol=1e-4)
