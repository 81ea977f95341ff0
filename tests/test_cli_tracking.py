"""The issue-5 commands through the CLI entry point: explore, runs, compare, report."""

from __future__ import annotations

from pathlib import Path

import pytest

import harkit
from harkit.cli import main


@pytest.fixture
def two_runs(tiny_cfg: list[str]) -> tuple[Path, Path]:
    a = harkit.train(overrides=[*tiny_cfg, "name=a"], progress=False)
    b = harkit.train(overrides=[*tiny_cfg, "name=b", "train.lr=0.01"], progress=False)
    return a.run_dir, b.run_dir


def test_runs_compare_report(two_runs: tuple[Path, Path], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables at full width
    a, b = two_runs
    assert main(["runs", "--run-root", str(a.parent)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 runs" in out and " a " in out and " b " in out
    assert main(["compare", str(a), str(b), "--output", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "train.lr" in out  # the config field that differs
    assert (tmp_path / "cmp" / "learning_curves.png").stat().st_size > 5000
    assert (tmp_path / "cmp" / "comparison.json").exists()
    assert main(["report", str(a), "--n-worst", "2"]) == 0
    assert (a / "report.html").stat().st_size > 10_000
    assert main(["compare", str(a)]) == 2  # one run is not a comparison
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a harkit run directory" in capsys.readouterr().err


def test_explore(uci_fixture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                 ) -> None:
    out_dir = tmp_path / "ex"
    assert main(["explore", "uci-har", "--data-dir", str(uci_fixture_dir), "--output",
                 str(out_dir), "--max-windows", "100", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "uci-har" in out and "train" in out
    assert (out_dir / "embedding.png").exists() and (out_dir / "summary.json").exists()
    assert main(["explore", "no-such-dataset"]) == 2
    assert "no-such-dataset" in capsys.readouterr().err
