"""Trainer: exact resume, early stopping, optimisers and schedules, atomic checksummed checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import harkit
from harkit.errors import CheckpointError, ConfigError
from harkit.runs import RunDir
from harkit.training.checkpoint import load_checkpoint, save_checkpoint


def _assert_same(a: object, b: object, where: str) -> None:
    """Recursive exact equality of nested dicts / lists / tensors."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=where)
    else:
        assert a == b, where


@pytest.mark.parametrize(("scheduler", "ema"), [("onecycle", "0.99"), ("plateau", "null")])
def test_resume_equals_uninterrupted(tiny_cfg: list[str], scheduler: str, ema: str) -> None:
    """Training 4 epochs equals training 2, stopping, and resuming for 2 more (bit for bit)."""
    cfg = [*tiny_cfg, "train.epochs=4", f"train.scheduler={scheduler}", f"train.ema_decay={ema}"]
    full = harkit.train(overrides=[*cfg, "name=full"], progress=False)
    part = harkit.train(overrides=[*cfg, "name=part"], progress=False, stop_after=2)
    assert not part.finished and part.test is None and len(part.history) == 2
    assert RunDir(part.run_dir).info()["status"] == "stopped"
    resumed = harkit.train(resume=part.run_dir, progress=False)
    assert resumed.finished and resumed.run_dir == part.run_dir
    again = harkit.train(resume=part.run_dir, progress=False)  # resuming a finished run
    assert again.finished and again.test is not None
    assert again.test.confusion == resumed.test.confusion  # type: ignore[union-attr]
    for ck in ("last.pt", "refit_last.pt"):
        a_ck = load_checkpoint(full.run_dir / "checkpoints" / ck)
        b_ck = load_checkpoint(resumed.run_dir / "checkpoints" / ck)
        for part_name in ("model", "ema", "optimizer"):
            a, b = a_ck["trainer"][part_name], b_ck["trainer"][part_name]
            if a is None:
                assert b is None and ema == "null"
                continue
            _assert_same(a, b, f"{ck}:{part_name}")
        _assert_same(a_ck["weights"], b_ck["weights"], f"{ck}:weights")
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in full.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert full.test is not None and resumed.test is not None
    assert full.test.confusion == resumed.test.confusion


def test_resume_inside_the_refit_phase(tiny_cfg: list[str]) -> None:
    """Stopping during the final fit on all subjects and resuming gives the same final model."""
    cfg = [*tiny_cfg, "train.epochs=3"]
    full = harkit.train(overrides=[*cfg, "name=full"], progress=False)
    part = harkit.train(overrides=[*cfg, "name=part"], progress=False, stop_after=4)
    info = RunDir(part.run_dir).info()
    assert not part.finished and info["selection_done"] and info["refit_epochs"] == 1
    resumed = harkit.train(resume=part.run_dir, progress=False)
    assert resumed.finished
    _assert_same(load_checkpoint(full.run_dir / "checkpoints" / "refit_last.pt")["weights"],
                 load_checkpoint(resumed.run_dir / "checkpoints" / "refit_last.pt")["weights"],
                 "final weights")
    assert full.test is not None and resumed.test is not None
    assert full.test.accuracy == resumed.test.accuracy


def test_refit_uses_all_training_subjects_and_its_own_normaliser(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=tiny_cfg, progress=False)
    info = RunDir(r.run_dir).info()
    assert info["refit_subjects"] == [1, 2, 3, 4, 5, 6] and info["refit_epochs"] == 3
    by_best = harkit.train(overrides=[*tiny_cfg, "train.select=best"], progress=False)
    assert RunDir(by_best.run_dir).info()["refit_epochs"] == by_best.best_epoch
    final = load_checkpoint(r.run_dir / "checkpoints" / "refit_last.pt")
    best = load_checkpoint(r.run_dir / "checkpoints" / "best.pt")
    assert final["preprocessing"]["val_subjects"] == []
    assert final["preprocessing"]["normalizer"]["mean"] != best["preprocessing"]["normalizer"]["mean"]
    refit_hist = RunDir(r.run_dir).read_history("refit_history.csv")
    assert len(refit_hist) == 3 and all(h["val_f1"] != h["val_f1"] for h in refit_hist)  # NaN
    assert harkit.Predictor.from_run(r.run_dir).normalizer.state_dict() == final["preprocessing"][
        "normalizer"]
    no_refit = harkit.train(overrides=[*tiny_cfg, "train.refit=false"], progress=False)
    assert not (no_refit.run_dir / "checkpoints" / "refit_last.pt").exists()
    again = harkit.train(resume=no_refit.run_dir, progress=False)  # a finished run, no refit
    assert again.finished and again.test is not None and no_refit.test is not None
    assert again.test.accuracy == no_refit.test.accuracy


def test_run_directory_contents(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=[*tiny_cfg, "name=contents"], progress=False)
    d = r.run_dir
    for rel in ("config.yaml", "command.txt", "run.json", "history.csv", "metrics.json",
                "metrics_val.json", "checkpoints/best.pt", "checkpoints/last.pt",
                "plots/learning_curves.png", "plots/confusion_matrix.png"):
        assert (d / rel).is_file(), rel
    assert (d / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(d.parent.glob(".*partial*")) and not list(d.rglob("*.tmp"))
    cfg = RunDir(d).config()
    assert cfg.data.val_subjects is not None and len(cfg.data.val_subjects) == 2
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["split"] == "test" and len(metrics["confusion"]) == 6
    assert metrics["n_windows"] == 48
    best = load_checkpoint(d / "checkpoints" / "best.pt")
    pre = best["preprocessing"]
    assert pre["channels"][0] == "body_acc_x" and pre["classes"][0] == "WALKING"
    assert pre["normalizer"]["kind"] == "standard" and pre["window_len"] == 128
    assert best["trainer"]["epoch"] == r.best_epoch
    assert {"optimizer", "scheduler", "rng", "history"} <= set(best["trainer"])
    assert RunDir(d).info()["status"] == "finished"


def test_learns_the_fixture(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=[*tiny_cfg, "train.epochs=15", "model.width=8",
                                "model.hidden=16"], progress=False)
    assert r.test is not None and r.test.accuracy > 0.9


def test_early_stopping(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=[*tiny_cfg, "train.epochs=30", "train.early_stopping=2",
                                "train.scheduler=none", "train.lr=1e-9"], progress=False)
    assert r.finished and len(r.history) < 30
    assert RunDir(r.run_dir).info()["stopped_early"] is True


@pytest.mark.parametrize(("optimizer", "scheduler"), [
    ("adam", "step"), ("adamw", "cosine"), ("rmsprop", "plateau"), ("adamw", "none"),
])
def test_optimisers_and_schedules(tiny_cfg: list[str], optimizer: str, scheduler: str) -> None:
    r = harkit.train(overrides=[*tiny_cfg, f"train.optimizer={optimizer}",
                                f"train.scheduler={scheduler}", "train.epochs=2",
                                "train.class_weights=true", "train.grad_clip=1.0",
                                "train.step_size=1"], progress=False)
    assert len(r.history) == 2 and all(h["train_loss"] > 0 for h in r.history)
    if scheduler == "step":
        assert r.history[1]["lr"] < r.history[0]["lr"]


def test_bad_training_config(tiny_cfg: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"train\.optimizer='sgdx'"):
        harkit.train(overrides=[*tiny_cfg, "train.optimizer=sgdx"], progress=False)
    with pytest.raises(ConfigError, match="model 'harcnn': unknown parameter"):
        harkit.train(overrides=[*tiny_cfg, "model.depth=3"], progress=False)


def test_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.pt"
    save_checkpoint(p, {"x": torch.arange(1000)})
    assert torch.equal(load_checkpoint(p)["x"], torch.arange(1000))
    data = p.read_bytes()
    p.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(p)
    p.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(p)
    p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a harkit checkpoint"):
        load_checkpoint(p)


def test_resume_falls_back_to_best_when_last_and_previous_are_corrupt(
        tiny_cfg: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """Both last checkpoints truncated: the resume says so for each and continues from
    best.pt (here epoch 1 or 2), still ending with every epoch in the history."""
    part = harkit.train(overrides=[*tiny_cfg, "train.epochs=3"], progress=False, stop_after=2)
    for name in ("last.pt", "last.prev.pt"):
        ck = part.run_dir / "checkpoints" / name
        ck.write_bytes(ck.read_bytes()[:200])
    with caplog.at_level("WARNING"):
        r = harkit.train(resume=part.run_dir, progress=False)
    assert r.finished and len(r.history) == 3
    assert "last.pt" in caplog.text and "last.prev.pt" in caplog.text


def test_last_batch_of_one_window_is_dropped(tiny_cfg: list[str]) -> None:
    """96 training windows with batch 95 leave a batch of 1, which BatchNorm cannot train on."""
    r = harkit.train(overrides=[*tiny_cfg, "train.batch_size=95", "train.epochs=2"],
                     progress=False)
    assert r.finished and len(r.history) == 2
