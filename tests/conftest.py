"""Shared fixtures: the real dataset mirror, a private cache, and UCI-HAR-format fixture files."""

from __future__ import annotations

import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# MLflow tracking is off in tests (fixtures of every scope included) unless a test switches it
# on with its own store; no test may write ./mlflow.db.
os.environ["HARKIT_TRACKING"] = "0"
os.environ.pop("MLFLOW_TRACKING_URI", None)

UCI_CHANNELS = [f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz"]
UCI_CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING",
               "LAYING"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                   request: pytest.FixtureRequest) -> None:
    """Every test gets a session-wide private cache; HARKIT_DATA_DIR is unset unless asked for;
    MLflow tracking is off unless a test switches it on (with its own store under tmp_path)."""
    cache = tmp_path_factory.getbasetemp() / "harkit-cache"
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(cache))
    monkeypatch.delenv("HARKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("HARKIT_TRACKING", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``../shared/data`` (or $HARKIT_TEST_DATA_DIR). Missing data fails in CI, skips elsewhere."""
    d = Path(os.environ.get("HARKIT_TEST_DATA_DIR", SHARED_DATA))
    if not (d / "uci-har").exists():
        msg = f"real datasets not found at {d} (set HARKIT_TEST_DATA_DIR)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def fixture_windows(n_subjects_train: int = 6, n_subjects_test: int = 2, per_subject: int = 24,
                    seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Class-dependent synthetic windows: {split: (X (N,128,9), y 1..6, subjects)}."""
    rng = np.random.default_rng(seed)
    t = np.arange(128) / 50.0
    out = {}
    subj = 1
    for split, n_subj in (("train", n_subjects_train), ("test", n_subjects_test)):
        Xs, ys, ss = [], [], []
        for _ in range(n_subj):
            for i in range(per_subject):
                k = i % 6
                freq = 0.5 + k
                base = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))[:, None]
                x = 0.3 * base * np.ones((1, 9)) + 0.05 * rng.standard_normal((128, 9))
                x[:, 3 + k] += 1.0  # class-specific offset (posture-like)
                Xs.append(x)
                ys.append(k + 1)
                ss.append(subj)
            subj += 1
        out[split] = (np.stack(Xs).astype(np.float32), np.array(ys), np.array(ss))
    return out


def write_uci_fixture(root: Path, zipped: bool = True, **kw: int) -> Path:
    """Write a small dataset in the exact official ``UCI HAR Dataset`` layout.

    Returns the archive path (zipped) or the folder containing ``UCI HAR Dataset/``.
    """
    data = fixture_windows(**kw)
    files: dict[str, str] = {
        "activity_labels.txt": "".join(f"{i + 1} {c}\n" for i, c in enumerate(UCI_CLASSES)),
        "README.txt": "fixture\n",
    }
    for split, (X, y, s) in data.items():
        files[f"{split}/y_{split}.txt"] = "".join(f"{v}\n" for v in y)
        files[f"{split}/subject_{split}.txt"] = "".join(f"{v}\n" for v in s)
        for c, ch in enumerate(UCI_CHANNELS):
            lines = (" ".join(f"{v: .7e}" for v in row) for row in X[:, :, c])
            files[f"{split}/Inertial Signals/{ch}_{split}.txt"] = "".join(
                "  " + ln + "\n" for ln in lines)
    root.mkdir(parents=True, exist_ok=True)
    if zipped:
        path = root / "UCI HAR Dataset.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, text in files.items():
                zf.writestr(f"UCI HAR Dataset/{rel}", text)
        return path
    for rel, text in files.items():
        p = root / "UCI HAR Dataset" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def uci_fixture_dir(tmp_path: Path) -> Path:
    """A data directory holding a small zipped UCI HAR fixture at ``uci-har/``."""
    write_uci_fixture(tmp_path / "data" / "uci-har")
    return tmp_path / "data"


@pytest.fixture
def tiny_cfg(uci_fixture_dir: Path, tmp_path: Path) -> list[str]:
    """Overrides for a fast run on the fixture with a tiny model."""
    return [f"data.data_dir={uci_fixture_dir}", f"run_root={tmp_path / 'runs'}",
            "data.n_val_subjects=2", "train.epochs=3", "train.batch_size=32",
            "model.width=4", "model.hidden=8", "train.num_threads=1"]


# Debian's Chromium, driven by Playwright (no browser download), for the browser tests.
CHROMIUM = os.environ.get("HARKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def sync_playwright() -> Any:
    """Playwright's sync API, when it and Debian's Chromium are installed; skipped otherwise
    (failed in CI, where both must be installed). Module-scoped, so a skip comes before the
    run a test would render is trained."""
    reason = ""
    try:
        from playwright.sync_api import sync_playwright as api
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
    if not reason and not Path(CHROMIUM).exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return api


class BrowserPage:
    """A headless Chromium page with every request URL and every console / page error."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture
def chromium_page(sync_playwright: Any) -> Iterator[BrowserPage]:
    """A fresh page of Debian's Chromium (skipped / failed as :func:`sync_playwright` says)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield BrowserPage(browser.new_page())
        finally:
            browser.close()


def train_tiny_run(root: Path) -> Path:
    """One short run (1 epoch, no refit, no tracking) of the tiny harcnn on the UCI-format
    fixture written under ``root`` (window 128, hop 64, 50 Hz), for module-scoped fixtures
    (which run before the per-test cache fixture: set HARKIT_CACHE_DIR around the call)."""
    import harkit

    write_uci_fixture(root / "data" / "uci-har")
    r = harkit.train(overrides=[
        f"data.data_dir={root / 'data'}", f"run_root={root / 'runs'}",
        "data.n_val_subjects=2", "train.epochs=1", "model.width=4", "model.hidden=8",
        "train.num_threads=1", "train.refit=false", "tracking.enabled=false"], progress=False)
    return r.run_dir


@contextmanager
def serve_in_thread(app: Any, ws_max_size: int = 1 << 20, http: Any = None) -> Iterator[int]:
    """Serve ``app`` with a real uvicorn server on a free port of 127.0.0.1 (in a thread);
    yield the port. ``http``: uvicorn's HTTP protocol (a name or class); by default the one
    ``harkit serve`` runs, with its default header deadline."""
    import uvicorn

    from harkit.serve.protocol import http_protocol

    http = http_protocol(10.0) if http is None else http

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="auto", http=http,
                                           ws_max_size=ws_max_size))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
