"""MLflow tracking: a real ``mlflow server`` on a loopback port, runs read back by the client."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import harkit
from harkit.data import load_dataset
from harkit.inference import Predictor
from harkit.runs import RunDir

mlflow = pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server (SQLite backend, proxied artifacts) on a free port."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n"
                                   + (root / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tracking on for this test; MLflow's process-wide tracking URI restored after it."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("HARKIT_TRACKING", "1")
    previous = utils._tracking_uri  # None: unset, MLflow's default for the working directory
    yield
    mlflow.set_tracking_uri(previous)


def _client(uri: str) -> object:
    return mlflow.MlflowClient(tracking_uri=uri)


@pytest.mark.slow
def test_run_is_tracked_on_a_real_server(tiny_cfg: list[str], mlflow_server: str,
                                         tracked: None, uci_fixture_dir: Path) -> None:
    r = harkit.train(overrides=[*tiny_cfg, f"tracking.uri={mlflow_server}",
                                "tracking.experiment=harkit-test", "name=tracked"],
                     progress=False)
    info = RunDir(r.run_dir).info()
    run_id = info["mlflow_run_id"]
    assert info["mlflow_tracking_uri"] == mlflow_server
    client = _client(mlflow_server)
    run = client.get_run(run_id)  # type: ignore[attr-defined]
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "harkit-test"  # type: ignore[attr-defined]
    # params: the full resolved config, flattened
    cfg = RunDir(r.run_dir).config()
    p = run.data.params
    assert p["model.name"] == "harcnn" and p["data.dataset"] == "uci-har"
    assert p["train.epochs"] == "3" and p["model.params.width"] == "4"
    assert p["data.val_subjects"] == str(cfg.data.val_subjects)
    # tags
    t = run.data.tags
    assert t["harkit.dataset"] == "uci-har" and t["harkit.model"] == "harcnn"
    assert t["harkit.status"] == "finished" and t["mlflow.runName"] == "tracked"
    assert t["harkit.run_dir"] == str(r.run_dir.resolve())
    assert str(cfg.data.val_subjects) in t["harkit.split"]
    assert "harkit.git_commit" in t  # harkit runs from its git checkout in the tests
    # per-epoch metrics, stepped by epoch, equal to the run's history
    hist = client.get_metric_history(run_id, "train_loss")  # type: ignore[attr-defined]
    assert [m.step for m in hist] == [1, 2, 3]
    assert [m.value for m in hist] == pytest.approx([h["train_loss"] for h in r.history])
    refit = client.get_metric_history(run_id, "refit_train_loss")  # type: ignore[attr-defined]
    assert [m.step for m in refit] == [1, 2, 3]
    # final scores equal metrics.json
    assert r.test is not None
    m = run.data.metrics
    assert m["test_accuracy"] == pytest.approx(r.test.accuracy)
    assert m["test_macro_f1"] == pytest.approx(r.test.macro_f1)
    assert m["val_macro_f1"] == pytest.approx(r.val.macro_f1)
    assert m["test_f1.WALKING"] == pytest.approx(r.test.per_class["WALKING"]["f1"])
    # artifacts: the run's files and plots, the confusion matrix as JSON; no checkpoints
    names = {a.path for a in client.list_artifacts(run_id)}  # type: ignore[attr-defined]
    assert {"config.yaml", "metrics.json", "history.csv", "confusion_matrix.json",
            "plots"} <= names
    assert "checkpoints" not in names
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}  # type: ignore[attr-defined]
    assert {"plots/learning_curves.png", "plots/confusion_matrix.png"} <= plots
    mlflow.set_tracking_uri(mlflow_server)
    cm = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/confusion_matrix.json")
    assert cm["confusion"] == r.test.confusion
    # the model: pyfunc, with a signature and an input example, predicting on raw windows
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    sig = model.metadata.signature
    assert tuple(sig.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 128, 9)
    assert "label" in sig.outputs.input_names()
    windows = load_dataset("uci-har", data_dir=uci_fixture_dir).splits["test"].X[:7]
    out = model.predict(windows.astype(np.float32))
    local = Predictor.from_run(r.run_dir)
    assert list(out["label"]) == [local.classes[i] for i in local.predict(windows)]
    np.testing.assert_allclose(out["p_WALKING"].to_numpy(),
                               local.predict_proba(windows)[:, 0], rtol=1e-5, atol=1e-6)
    example = mlflow.models.Model.load(f"runs:/{run_id}/model").load_input_example(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    assert np.asarray(example).shape == (2, 128, 9)


@pytest.mark.slow
def test_cross_validation_nests_its_folds(tiny_cfg: list[str], mlflow_server: str,
                                          tracked: None) -> None:
    from harkit.cv import cross_validate

    r = cross_validate(overrides=[*tiny_cfg, f"tracking.uri={mlflow_server}",
                                  "tracking.experiment=harkit-cv-test", "name=cvrun",
                                  "train.refit=false"],
                       protocol="kfold", folds=2, progress=False)
    client = _client(mlflow_server)
    exp = client.get_experiment_by_name("harkit-cv-test")  # type: ignore[attr-defined]
    runs = client.search_runs([exp.experiment_id])  # type: ignore[attr-defined]
    parent = [x for x in runs if x.data.tags.get("harkit.kind") == "cv"]
    assert len(parent) == 1
    pid = parent[0].info.run_id
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == pid]
    assert sorted(x.info.run_name for x in children) == ["fold01", "fold02"]
    pm = parent[0].data.metrics
    assert pm["accuracy_mean"] == pytest.approx(r.summary["accuracy"]["mean"])
    assert pm["pooled_accuracy"] == pytest.approx(r.pooled.accuracy)
    assert parent[0].info.status == "FINISHED"


@pytest.mark.slow
def test_resumed_run_continues_its_mlflow_run(tiny_cfg: list[str], tmp_path: Path,
                                              tracked: None) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    part = harkit.train(overrides=[*tiny_cfg, f"tracking.uri={uri}"], progress=False,
                        stop_after=2)
    run_id = RunDir(part.run_dir).info()["mlflow_run_id"]
    client = _client(uri)
    assert client.get_run(run_id).info.status == "KILLED"  # type: ignore[attr-defined]
    assert client.get_run(run_id).data.tags["harkit.status"] == "stopped"  # type: ignore[attr-defined]
    done = harkit.train(resume=part.run_dir, progress=False, overrides=["train.epochs=4"])
    assert RunDir(done.run_dir).info()["mlflow_run_id"] == run_id
    run = client.get_run(run_id)  # type: ignore[attr-defined]
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]  # type: ignore[attr-defined]
    assert steps == [1, 2, 3, 4]
    assert run.data.params["train.epochs"] == "3"  # params are immutable in MLflow...
    assert run.data.tags["harkit.changed.train.epochs"] == "4"  # ...so the change is a tag
    assert len(client.search_runs([run.info.experiment_id])) == 1  # type: ignore[attr-defined]


def test_runs_left_running_by_dead_processes_are_closed_by_the_next_run(
        tiny_cfg: list[str], tmp_path: Path, tracked: None) -> None:
    """A SIGKILL during the final logging leaves a complete run folder behind an MLflow run
    marked RUNNING. The next run in the store marks such runs KILLED, but not a run whose
    folder a live process holds, nor a group run (cross-validation, tuning)."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = [*tiny_cfg, f"tracking.uri={uri}"]
    dead = harkit.train(overrides=[*cfg, "name=dead"], progress=False)
    live = harkit.train(overrides=[*cfg, "name=live"], progress=False)
    client = _client(uri)
    ids = {n: RunDir(r.run_dir).info()["mlflow_run_id"] for n, r in
           (("dead", dead), ("live", live))}
    exp = client.get_run(ids["dead"]).info.experiment_id  # type: ignore[attr-defined]
    group = client.create_run(exp, tags={  # type: ignore[attr-defined]
        "harkit.kind": "cv", "harkit.run_dir": str(tmp_path)}).info.run_id
    for run_id in ids.values():  # what a process killed in its last MLflow calls leaves
        client.update_run(run_id, status="RUNNING")  # type: ignore[attr-defined]
    holder = subprocess.Popen(  # another process holds the live run's folder
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(live.run_dir)!r}, os.O_RDONLY)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        harkit.train(overrides=[*cfg, "name=next"], progress=False)
        status = {n: client.get_run(i).info.status for n, i in ids.items()}  # type: ignore[attr-defined]
    finally:
        holder.kill()
        holder.wait()
    assert status == {"dead": "KILLED", "live": "RUNNING"}
    dead_run = client.get_run(ids["dead"])  # type: ignore[attr-defined]
    assert dead_run.data.tags["harkit.status"] == "finished"  # the folder's own status
    assert dead_run.data.metrics["test_accuracy"] >= 0  # what was logged stays
    assert client.get_run(group).info.status == "RUNNING"  # type: ignore[attr-defined]
    # the folder is still a run: resuming a killed run reopens the same MLflow run
    assert RunDir(dead.run_dir).info()["status"] == "finished"


def test_tracking_off(tiny_cfg: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                      ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARKIT_TRACKING", "1")
    r = harkit.train(overrides=[*tiny_cfg, "tracking.enabled=false"], progress=False)
    assert "mlflow_run_id" not in RunDir(r.run_dir).info()
    monkeypatch.setenv("HARKIT_TRACKING", "0")
    r = harkit.train(overrides=tiny_cfg, progress=False)
    assert "mlflow_run_id" not in RunDir(r.run_dir).info()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_default_store_is_mlflow_db_in_the_working_directory(
        tiny_cfg: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracked: None
) -> None:
    """With no URI anywhere, runs go where `mlflow ui` started in the same folder looks."""
    monkeypatch.chdir(tmp_path)
    r = harkit.train(overrides=[*tiny_cfg, "tracking.log_model=false"], progress=False)
    info = RunDir(r.run_dir).info()
    assert info["mlflow_tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = _client(info["mlflow_tracking_uri"]).get_run(info["mlflow_run_id"])  # type: ignore[attr-defined]
    assert run.data.metrics["test_accuracy"] == pytest.approx(r.test.accuracy)  # type: ignore[union-attr]


def test_without_mlflow_installed_training_works_and_says_how(
        tiny_cfg: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        tracked: None) -> None:
    import harkit.tracking as tracking

    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    monkeypatch.setattr(tracking, "_warned_missing", False)
    with caplog.at_level(logging.WARNING, logger="harkit"):
        r = harkit.train(overrides=tiny_cfg, progress=False)
    assert r.finished and "mlflow_run_id" not in RunDir(r.run_dir).info()
    assert 'pip install "harkit[mlflow]"' in caplog.text


def test_a_failing_tracker_warns_and_training_goes_on(
        tiny_cfg: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        tracked: None) -> None:
    """The store disappears mid-run: one warning, and the run still finishes."""
    from harkit.tracking import mlflow_tracker

    calls = {"n": 0}
    real = mlflow_tracker.MlflowTracker.log_epoch.__wrapped__  # type: ignore[attr-defined]

    def flaky(self: mlflow_tracker.MlflowTracker, *a: object, **k: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            self.run_id = "0" * 32  # a run the store does not know: a real MlflowException
        real(self, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(mlflow_tracker.MlflowTracker, "log_epoch", mlflow_tracker._guarded(flaky))
    try:
        with caplog.at_level(logging.WARNING, logger="harkit"):
            r = harkit.train(overrides=[*tiny_cfg, f"tracking.uri=sqlite:///{tmp_path}/s.db"],
                             progress=False)
    finally:
        mp.undo()
    assert r.finished and r.test is not None
    assert caplog.text.count("MLflow tracking failed") == 1
    assert calls["n"] == 2  # switched off after the failure


def test_unreachable_store_is_a_clear_error(tiny_cfg: list[str], tracked: None) -> None:
    from harkit.errors import HarkitError

    with pytest.raises(HarkitError, match="tracking"):
        harkit.train(overrides=[*tiny_cfg, "tracking.uri=nosuchscheme://x"], progress=False)


@pytest.mark.slow
def test_cli_flags(tiny_cfg: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str], tracked: None) -> None:
    from harkit.cli import main

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    sets = [a for o in tiny_cfg for a in ("--set", o)]
    assert main(["train", *sets, "--tracking-uri", uri, "--set", "tracking.log_model=false",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"at {uri}" in out and "mlflow ui" in out
    assert main(["train", *sets, "--no-track", "--no-progress"]) == 0
    assert "MLflow run" not in capsys.readouterr().out
    assert os.path.exists(tmp_path / "cli.db")
