"""harkit.perf: FLOP counts against hand-computed formulas, matmul peak, memory helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from harkit.models import create_model
from harkit.perf import (
    count_flops,
    flops_per_window,
    matmul_peak_gflops,
    recurrent_flops,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")

B, T, C = 3, 20, 5


def test_linear_and_conv1d_match_formulas() -> None:
    assert count_flops(nn.Linear(C, 7), torch.zeros(B, C)) == 2 * B * C * 7
    conv = nn.Conv1d(C, 8, kernel_size=3, padding=1)
    # every output position: 8 filters x (5 channels x 3 taps) multiply-adds
    assert count_flops(conv, torch.zeros(B, C, T)) == 2 * B * 8 * C * 3 * T


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_counted_per_layer_and_direction(bidirectional: bool) -> None:
    h, layers, d = 16, 2, 2 if bidirectional else 1
    lstm = nn.LSTM(C, h, num_layers=layers, batch_first=True, bidirectional=bidirectional)
    expected = 2 * 4 * h * ((C + h) + (d * h + h)) * d * T * B
    assert count_flops(lstm, torch.zeros(B, T, C)) == expected


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_projection() -> None:
    h, p = 16, 4
    lstm = nn.LSTM(C, h, num_layers=2, batch_first=True, proj_size=p)
    per_step = 2 * 4 * h * (C + p) + 2 * h * p + 2 * 4 * h * (p + p) + 2 * h * p
    assert count_flops(lstm, torch.zeros(B, T, C)) == per_step * T * B


def test_gru_and_cells_counted_once() -> None:
    h = 16
    gru = nn.GRU(C, h, batch_first=True)
    expected = 2 * 3 * h * (C + h) * T * B
    assert count_flops(gru, torch.zeros(B, T, C)) == expected
    assert recurrent_flops(gru, (torch.zeros(B, T, C),)) == expected
    assert count_flops(nn.LSTMCell(C, h), torch.zeros(B, C)) == 2 * 4 * h * (C + h) * B
    assert count_flops(nn.GRUCell(C, h), torch.zeros(B, C)) == 2 * 3 * h * (C + h) * B


def test_two_layer_lstm_on_uci_har_window_is_about_13_mflop() -> None:
    lstm = nn.LSTM(9, 64, num_layers=2, batch_first=True)
    flops = flops_per_window(lstm, (128, 9))
    assert flops == 2 * 4 * 64 * ((9 + 64) + (64 + 64)) * 128
    assert 13e6 < flops < 13.5e6


def test_model_flops_scale_with_batch_and_keep_training_mode() -> None:
    model = create_model("lstm", n_channels=C, n_classes=4, window_len=T, variant="tiny")
    model.train()
    one = flops_per_window(model, (T, C))
    assert one > 0
    assert count_flops(model, torch.zeros(4, T, C)) == 4 * one
    assert model.training


def test_matmul_peak_is_positive() -> None:
    assert matmul_peak_gflops(n=64, threads=1, repeats=2) > 0
    assert matmul_peak_gflops(torch.bfloat16, n=64, threads=1, repeats=1) > 0


_PEAK = """
import json, torch
from harkit.perf import peak_rss_mb, track_peak_rss
with track_peak_rss() as mem:
    buf = torch.ones(8 * 2**20)  # 32 MiB, touched
    del buf
print(json.dumps([peak_rss_mb(), mem.start_mb, mem.peak_mb, mem.exact, mem.increase_mb]))
"""


def test_memory_helpers() -> None:
    """Measured in a fresh process: in this one, memory freed by earlier tests may already be
    resident and be reused (glibc keeps freed heap memory up to its adaptive thresholds)."""
    import json

    out = subprocess.run([sys.executable, "-c", _PEAK], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": SRC})
    peak, start, top, exact, increase = json.loads(out.stdout.strip().splitlines()[-1])
    assert peak > 0 and top >= start > 0
    if exact:
        assert increase > 16


def test_cli_models_flops_column(capsys: pytest.CaptureFixture[str]) -> None:
    from harkit.cli import main

    assert main(["models", "--flops"]) == 0
    assert "MFLOP" in capsys.readouterr().out


_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from harkit.malloc import retain_freed_memory
    assert retain_freed_memory() and retain_freed_memory()  # idempotent
for _ in range(2):  # let glibc's adaptive threshold settle
    a = [np.ones(1_500_000) for _ in range(3)]
    del a
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a batch's buffers: three 12 MB arrays, written, then freed
    a = [np.ones(1_500_000) for _ in range(3)]
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retain_freed_memory_stops_per_batch_page_faults() -> None:
    """By default glibc hands large freed buffers back to the OS, so every batch faults its
    pages in again; with retain_freed_memory the pages stay and the loop faults (almost) none."""
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": SRC})
        return int(out.stdout.strip())

    default, retained = faults("default"), faults("retain")
    assert default > 5_000  # 36 MB per round comes back from the kernel
    assert retained < default / 20


def test_retain_freed_memory_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    import harkit.malloc as malloc

    monkeypatch.setattr(malloc, "_retained", False)

    def no_libc(name: str) -> None:
        raise OSError(f"{name}: not found")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert malloc.retain_freed_memory() is False
    monkeypatch.setattr(sys, "platform", "darwin")
    assert malloc.retain_freed_memory() is False


def test_harkit_command_retains_memory_unless_told_not_to(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The ``harkit`` console script (not ``main``, which tests call in-process) applies
    the allocator setting before running the command."""
    import harkit.cli as cli
    import harkit.malloc as malloc

    calls: list[str] = []
    monkeypatch.setattr(malloc, "retain_freed_memory", lambda: calls.append("retain") or True)
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 3)
    monkeypatch.delenv("HARKIT_RETAIN_MEMORY", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.console_main()
    assert e.value.code == 3 and calls == ["retain", "main"]
    calls.clear()
    monkeypatch.setenv("HARKIT_RETAIN_MEMORY", "0")
    with pytest.raises(SystemExit):
        cli.console_main()
    assert calls == ["main"]
