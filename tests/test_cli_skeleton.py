"""The CLI with skeleton datasets and models: listing, training on real NATOPS, predicting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.cli import main
from harkit.data import load_dataset
from harkit.runs import RunDir


def _rows(out: str) -> dict[str, list[str]]:
    """The cells of each table row of Rich output, by the row's first cell."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) > 2 and cells[0]:
            rows[cells[0]] = cells
    return rows


def test_datasets_and_models_show_what_is_skeleton(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    rows = _rows(capsys.readouterr().out)
    for name in ("natops", "msr-action3d", "penn-action", "ntu", "openpose", "mhad-pose"):
        assert rows[name][1] == "skeleton", rows.get(name)
    assert rows["utkinect"][1] == "skeleton (continuous)"
    assert rows["uci-har"][1] == "wearable"
    assert main(["models"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert {n: rows[n][1] for n in ("stgcn", "pose-lstm", "two-stream-rnn", "lstm")} == {
        "stgcn": "skeleton", "pose-lstm": "skeleton", "two-stream-rnn": "skeleton",
        "lstm": "sensor"}


def test_train_and_predict_stgcn_on_natops(real_data_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    assert main(["train", "--dataset", "natops", "--model", "stgcn", "--data-dir",
                 str(real_data_dir), "--epochs", "2", "--set", "model.variant=tiny",
                 "--set", "train.num_threads=1", "--set", "train.batch_size=32",
                 "--run-root", str(runs), "--name", "natops-stgcn", "--no-progress"]) == 0
    assert "macro F1" in capsys.readouterr().out
    run = runs / "natops-stgcn"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(metrics["classes"]) == 6
    assert RunDir(run).info()["status"] == "finished"
    assert (run / "plots" / "skeleton_examples.png").exists()

    # three raw test cases, one after the other, as a CSV of frames (51 rows each)
    test = load_dataset("natops", data_dir=real_data_dir).splits["test"]
    cases = [0, 50, 100]
    frames = np.concatenate([test.X[i] for i in cases])  # (3 * 51, 24)
    channels = load_dataset("natops", data_dir=real_data_dir).channels
    csv = tmp_path / "gestures.csv"
    csv.write_text(",".join(channels) + "\n" + "".join(
        ",".join(f"{v:.9g}" for v in row) + "\n" for row in frames))  # float32 exactly
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run), str(csv), "--output", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["start"], r["end"]) for r in lines] == [(0, 51), (51, 102), (102, 153)]
    # each window is one test case: predicted as the run's evaluation predicted it
    saved = np.load(run / "test_predictions.npz")
    assert [r["label"] for r in lines] == [metrics["classes"][saved["y_pred"][i]]
                                           for i in cases]
