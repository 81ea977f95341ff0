"""The reference training loop: a model trained the way popular HAR repositories train it.

What those repositories do, and this module does the same:

- the windows stay a float64 numpy array; a per-sample ``torch.utils.data.Dataset`` returns
  ``torch.tensor(x[i], dtype=torch.float32), torch.tensor(y[i])`` for each window;
- a ``DataLoader(batch_size, shuffle=True)`` with the default ``num_workers=0`` collates
  the batches (one Python call and two tensor copies per window);
- default torch threads, ``Adam``, ``CrossEntropyLoss``, and ``loss.item()`` every step.

Only torch and numpy are imported, so the loop also runs in another interpreter (a venv with
another toolkit installed): ``python reference.py --peer-worker ...`` times the models named
``module:Class`` (built as ``Class(c_in, c_out, seq_len)``, input ``(batch, channels, time)``,
the tsai convention) with this loop and writes JSON. ``benchmarks/speed.py`` uses both.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """One window per item, converted from a float64 numpy array on every access."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.X[i], dtype=torch.float32), torch.tensor(self.y[i])


def make_loader(X: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0) -> DataLoader[Any]:
    """The usual shuffled loader over ``X`` (kept float64, as loaded) and labels ``y``."""
    return DataLoader(WindowDataset(np.asarray(X, dtype=np.float64), np.asarray(y)),
                      batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


class ReferenceTrainer:
    """Adam + CrossEntropyLoss over a :func:`make_loader` loader, one epoch per call."""

    def __init__(self, model: nn.Module, X: np.ndarray, y: np.ndarray, batch_size: int,
                 lr: float = 1e-3, seed: int = 0) -> None:
        self.model = model
        self.loader = make_loader(X, y, batch_size, seed)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.criterion = nn.CrossEntropyLoss()

    def train_epoch(self) -> tuple[int, float]:
        """One pass over the loader; returns (windows seen, mean loss per step)."""
        self.model.train()
        seen, total, steps = 0, 0.0, 0
        for xb, yb in self.loader:
            self.optimizer.zero_grad()
            out = self.model(xb)
            loss = self.criterion(out, yb)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            seen += len(yb)
            steps += 1
        return seen, total / max(steps, 1)


def peer_worker(npz: str, out: str, specs: list[str], batch_size: int, steps: int,
                rounds: int, warmup: int, threads: int | None) -> None:
    """Time each ``module:Class`` model with the reference loop on ``npz``'s ``X`` (N, T, C)
    and ``y``; write one JSON row per model (an error row for one that fails)."""
    if threads:
        torch.set_num_threads(threads)
    d = np.load(npz)
    X = np.ascontiguousarray(d["X"].transpose(0, 2, 1))  # (N, T, C) -> (N, C, T), tsai layout
    y = d["y"].astype(np.int64)
    n = min(len(X), steps * batch_size)
    c_in, c_out, seq_len = X.shape[1], int(y.max()) + 1, X.shape[2]
    rows: list[dict[str, Any]] = []
    for spec in specs:
        row: dict[str, Any] = {"model": spec}
        try:
            module, cls = spec.split(":")
            torch.manual_seed(0)
            model = getattr(importlib.import_module(module), cls)(c_in, c_out, seq_len)
            row["parameters"] = sum(p.numel() for p in model.parameters())
            ReferenceTrainer(model, X[: warmup * batch_size], y[: warmup * batch_size],
                             batch_size).train_epoch()
            trainer = ReferenceTrainer(model, X[:n], y[:n], batch_size)
            rates = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                seen, _ = trainer.train_epoch()
                rates.append(seen / (time.perf_counter() - t0))
            row.update(windows_per_s=statistics.median(rates), samples=rates,
                       threads=torch.get_num_threads(), torch=torch.__version__)
        except Exception as e:  # one failing peer model is reported, not fatal
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        rows.append(row)
    Path(out).write_text(json.dumps(rows, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer-worker", nargs=2, metavar=("NPZ", "OUT"), required=True)
    ap.add_argument("--peer-models", nargs="+", required=True, help="module:Class ...")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    peer_worker(*args.peer_worker, args.peer_models, args.batch_size, args.steps, args.rounds,
                args.warmup, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
