"""The CLI end to end on a tiny run, and the Predictor's contract with training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.api import prepare_data
from harkit.cli import main
from harkit.data.transforms import Standardizer
from harkit.errors import DataFormatError
from harkit.inference import Predictor
from harkit.runs import RunDir


def _train(tiny_cfg: list[str], name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    args = ["train", "--name", name, "--no-progress"]
    for o in tiny_cfg:
        args += ["--set", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "macro F1" in out and "plots:" in out and "WALKING_UPSTAIRS" in out
    return next(p for p in Path(tiny_cfg[1].split("=", 1)[1]).iterdir() if p.name == name)


def test_cli_train_evaluate_predict(tiny_cfg: list[str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = _train(tiny_cfg, "cli", capsys)
    assert main(["evaluate", str(run)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    assert (run / "metrics_val.json").exists()

    pred = Predictor.from_run(run)
    csv = tmp_path / "samples.csv"
    rng = np.random.default_rng(0)
    sig = rng.standard_normal((300, 9)).astype(np.float32)
    cols = ["timestamp", *reversed(pred.channels)]  # extra column, different order
    rows = [",".join([str(i), *(f"{v:.6f}" for v in s[::-1])]) for i, s in enumerate(sig)]
    csv.write_text(",".join(cols) + "\n" + "\n".join(rows) + "\n")
    out_file = tmp_path / "pred.jsonl"
    assert main(["predict", str(run), str(csv), "--output", str(out_file)]) == 0
    printed = capsys.readouterr()
    assert "windows/s" in printed.err
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert [(r["start"], r["end"]) for r in lines] == [(0, 128), (64, 192), (128, 256)]
    # CSV predictions equal predictions on the same windows given directly
    windows = np.stack([sig[s : s + 128] for s in (0, 64, 128)])
    direct = pred.predict_proba(np.round(windows, 6))
    assert [r["label"] for r in lines] == [pred.classes[i] for i in direct.argmax(1)]
    np.testing.assert_allclose([r["confidence"] for r in lines], direct.max(1), rtol=1e-4)


def test_predictor_matches_evaluation(tiny_cfg: list[str]) -> None:
    import harkit

    r = harkit.train(overrides=tiny_cfg, progress=False)
    pred = Predictor.from_run(r.run_dir)
    cfg = RunDir(r.run_dir).config()
    from harkit.data import load_dataset

    raw = load_dataset("uci-har", data_dir=cfg.data.data_dir).splits["test"]
    p = pred.predict(raw.X)
    assert r.test is not None
    assert float(np.mean(p == raw.y)) == pytest.approx(r.test.accuracy)
    # the normaliser applied by the predictor is the final model's: fitted on all training
    # subjects (the refit), not on the test windows
    train_all = load_dataset("uci-har", data_dir=cfg.data.data_dir).splits["train"]
    expected = Standardizer().fit(train_all.X)
    np.testing.assert_allclose(pred.normalizer.transform(raw.X), expected.transform(raw.X),
                               rtol=1e-5, atol=1e-6)
    # the selection-phase checkpoint keeps the normaliser of its own training subjects
    best = Predictor.from_run(r.run_dir, which="best")
    np.testing.assert_allclose(best.normalizer.transform(raw.X), prepare_data(cfg).test.X,  # type: ignore[union-attr]
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expected raw windows"):
        pred.predict_proba(raw.X[:, :, :5])
    bad = raw.X[:2].copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pred.predict_proba(bad)


@pytest.mark.parametrize(("content", "message"), [
    ("a,b\n1,2\n", "missing column(s)"),
    ("", "file is empty"),
])
def test_predict_csv_errors(tiny_cfg: list[str], tmp_path: Path, content: str,
                            message: str) -> None:
    import harkit

    r = harkit.train(overrides=[*tiny_cfg, "train.epochs=1"], progress=False)
    pred = Predictor.from_run(r.run_dir)
    f = tmp_path / "in put ü.csv"
    f.write_text(content)
    with pytest.raises(DataFormatError) as e:
        pred.predict_csv(f)
    assert message in str(e.value) and str(f) in str(e.value)
    header = ",".join(pred.channels)
    good = ",".join(["0.1"] * 9)
    f.write_text(header + "\n" + (good + "\n") * 5 + ",".join(["0.1"] * 8 + ["oops"]) + "\n")
    with pytest.raises(DataFormatError, match=r"line 7: column 'total_acc_z' has 'oops'"):
        pred.predict_csv(f)
    f.write_text(header + "\n" + (good + "\n") * 5)
    with pytest.raises(DataFormatError, match="fewer than one window"):
        pred.predict_csv(f)


def test_cli_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--set", "train.nope=1"]) == 2
    assert "unknown key 'train.nope'" in capsys.readouterr().err
    assert main(["train", "--dataset", "nope", "--run-root", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "not a harkit run directory" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing half-created


def test_cli_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("lstm", "gru", "bilstm", "lstm-relu", "deepconvlstm", "harcnn"):
        assert name in out
    assert main(["datasets"]) == 0
    assert "uci-har" in capsys.readouterr().out
    for cmd in ("train", "evaluate", "predict", "models", "datasets", "cv", "tune", "runs",
                "compare", "report", "explore", "stream", "ensemble", "export", "serve"):
        assert main([cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


@pytest.mark.slow
def test_real_data_cli_tiny_run(real_data_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """One short epoch of a small model on the real UCI HAR archive, through the CLI."""
    args = ["train", "--data-dir", str(real_data_dir), "--run-root", str(tmp_path), "--name",
            "real", "--epochs", "1", "--no-progress", "--set", "model.width=16",
            "--set", "model.hidden=32", "--set", "train.batch_size=64"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2947 windows" in out
    metrics = json.loads((tmp_path / "real" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.7  # far above chance (1/6) after one epoch
