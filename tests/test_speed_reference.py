"""benchmarks/reference.py: the reference loop trains, and its peer worker reports errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from harkit.models import create_model
from reference import ReferenceTrainer, WindowDataset, peer_worker


class TinyPeer(nn.Module):
    """A stand-in peer model with tsai's constructor and (batch, channels, time) input."""

    def __init__(self, c_in: int, c_out: int, seq_len: int) -> None:
        super().__init__()
        self.fc = nn.Linear(c_in * seq_len, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))  # (B, C, T) -> (B, C*T)


def _data(n: int = 40, t: int = 16, c: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, t, c)), rng.integers(0, 4, size=n)


def test_dataset_returns_float32_windows_and_int64_labels() -> None:
    X, y = _data()
    xb, yb = WindowDataset(X, y)[3]
    assert xb.dtype == torch.float32 and xb.shape == (16, 3)
    assert yb.dtype == torch.int64


def test_reference_loop_trains_a_tiny_model() -> None:
    X, y = _data()
    torch.manual_seed(0)
    model = create_model("lstm", n_channels=3, n_classes=4, window_len=16, variant="tiny")
    trainer = ReferenceTrainer(model, X, y, batch_size=8, lr=1e-2)
    seen, first = trainer.train_epoch()
    assert seen == 40
    for _ in range(10):
        _, last = trainer.train_epoch()
    assert last < first


def test_peer_worker_times_models_and_reports_failures(tmp_path: Path) -> None:
    X, y = _data()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "out.json"
    peer_worker(str(tmp_path / "d.npz"), str(out),
                [f"{__name__}:TinyPeer", "no_such_module:Model"], batch_size=8, steps=2,
                rounds=1, warmup=1, threads=1)
    ok, bad = json.loads(out.read_text())
    assert ok["windows_per_s"] > 0 and ok["parameters"] == 3 * 16 * 4 + 4
    assert "ModuleNotFoundError" in bad["error"]
