"""harkit's MiniRocket / MultiRocket-Hydra against aeon's, side by side on UCI HAR.

Trains and tests on the official split (7352 / 2947 windows of 128 x 9), 2 CPU threads each:

- harkit: the registered model through harkit's own Trainer (fit_init: biases and the
  closed-form ridge head), fitted on all training windows normalised per channel as
  `harkit train` does, then predicted through `harkit.Predictor` (traced fast path).
- aeon: MiniRocketClassifier / MultiRocketHydraClassifier (random_state=0, n_jobs=2) on the
  same raw arrays, run by a separate interpreter (`--aeon-python`, a venv with aeon) in a
  subprocess, so aeon never enters harkit's environment. That venv needs torch for aeon's
  Hydra: `python3.11 -m venv /work/aeon-venv && /work/aeon-venv/bin/pip install aeon
  torch==2.13.0`.

    .venv/bin/python benchmarks/rocket.py --data-dir ../shared/data \\
        --aeon-python /work/aeon-venv/bin/python

The two implementations alternate (harkit, aeon, harkit, aeon, ... per model, ``--repeat``
rounds), so a change in machine load hits both alike; the table reports each one's median.

Writes benchmarks/results/rocket.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import machine

REPO = Path(__file__).resolve().parents[1]
THREADS = 2
PAIRS = {"minirocket": "MiniRocketClassifier", "multirocket-hydra": "MultiRocketHydraClassifier"}


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro"))}


def aeon_worker(npz: str, out: str, names: list[str], threads: int = THREADS) -> None:
    """Runs inside the aeon interpreter: fit and predict each classifier, write JSON."""
    import aeon
    from aeon.classification import convolution_based as cb

    d = np.load(npz)
    results = []
    for name in names:
        clf = getattr(cb, name)(random_state=0, n_jobs=threads)
        t0 = time.perf_counter()
        clf.fit(d["X_train"], d["y_train"])
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = clf.predict(d["X_test"])
        results.append({"impl": f"aeon {aeon.__version__}", "model": name, "fit_seconds": fit,
                        "predict_seconds": time.perf_counter() - t0, **_scores(d["y_test"], pred)})
        print(json.dumps(results[-1]), flush=True)
    Path(out).write_text(json.dumps(results))


def run_harkit(name: str, train: Any, test: Any, preprocessing: dict[str, Any]) -> dict[str, Any]:
    import torch

    from harkit.config import TrainConfig
    from harkit.data.transforms import make_normalizer
    from harkit.inference import Predictor
    from harkit.models import create_model
    from harkit.training.trainer import Trainer, seed_everything

    seed_everything(0)
    t0 = time.perf_counter()
    norm = make_normalizer("standard").fit(train.X)
    X = torch.from_numpy(np.ascontiguousarray(norm.transform(train.X)))
    y = torch.from_numpy(train.y.astype(np.int64))
    model = create_model(name, n_channels=X.shape[2], n_classes=int(train.y.max()) + 1,
                         window_len=X.shape[1])
    trainer = Trainer(model, TrainConfig(epochs=1, num_threads=THREADS), (X, y), None)
    trainer.fit(progress=False)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred_obj = Predictor(model, norm, {**preprocessing, "normalizer": norm.state_dict()})
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = pred_obj.predict(test.X)
    predict = time.perf_counter() - t0
    return {"impl": "harkit", "model": name, "fit_seconds": fit, "predict_seconds": predict,
            "predictor_build_seconds": build,
            "traced": isinstance(pred_obj._forward, torch.jit.ScriptModule),
            "ridge_alpha": getattr(model, "ridge_alpha", None), "n_features": model.n_features,
            **_scores(test.y, pred)}


def write_aeon_npz(path: Path, train: Any, test: Any) -> None:
    """Save the raw train / test windows in aeon's layout for :func:`run_aeon`."""
    # aeon's layout (N, channels, time); the raw windows, as a user would pass them
    np.savez(path, X_train=train.X.transpose(0, 2, 1).astype(np.float64),
             y_train=train.y, X_test=test.X.transpose(0, 2, 1).astype(np.float64),
             y_test=test.y)


def run_aeon(python: str, npz: Path, names: list[str], tmp: str,
             threads: int = THREADS) -> list[dict[str, Any]]:
    """Fit and predict aeon's ``names`` in a subprocess of the aeon interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = Path(tmp) / "aeon.json"
    subprocess.run([python, __file__, "--aeon-worker", str(npz), str(out),
                    "--aeon-names", *names, "--aeon-threads", str(threads)], check=True, env=env)
    return list(json.loads(out.read_text()))


def _median(xs: list[float]) -> float:
    return float(np.median(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("HARKIT_DATA_DIR", "../shared/data"))
    ap.add_argument("--aeon-python", default=None, help="python of a venv with aeon installed")
    ap.add_argument("--models", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--repeat", type=int, default=1, help="alternating rounds per model")
    ap.add_argument("--skip-aeon", action="store_true")
    ap.add_argument("--skip-harkit", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rocket.json"))
    ap.add_argument("--aeon-worker", nargs=2, metavar=("NPZ", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--aeon-names", nargs="*", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--aeon-threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.aeon_worker:
        aeon_worker(*args.aeon_worker, args.aeon_names, args.aeon_threads)
        return

    import torch

    from harkit.data import load_dataset

    torch.set_num_threads(THREADS)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ds = load_dataset("uci-har", data_dir=args.data_dir)
    train, test = ds.splits["train"], ds.splits["test"]
    pre = {"dataset": ds.name, "channels": list(ds.channels), "classes": list(ds.classes),
           "units": dict(ds.units), "window_len": ds.window_len, "hop": ds.hop,
           "sampling_rate": ds.sampling_rate}
    results: list[dict[str, Any]] = []

    def save(rs: list[dict[str, Any]]) -> None:  # after every result: a crash keeps the rest
        payload = {"started": started, "machine": machine(f"{THREADS} threads per implementation"),
                   "results": rs,
                   "data": f"UCI HAR official split: train {train.X.shape}, test {test.X.shape}"}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "uci.npz"
        write_aeon_npz(npz, train, test)
        for name in args.models:
            for r in range(args.repeat):
                if not args.skip_harkit:
                    print(f"harkit {name} (round {r + 1}) ...", flush=True)
                    results.append({**run_harkit(name, train, test, pre), "round": r + 1})
                    print(json.dumps(results[-1]), flush=True)
                    save(results)
                if not args.skip_aeon:
                    if not args.aeon_python:
                        raise SystemExit("--aeon-python is required (or --skip-aeon)")
                    results += [{**a, "round": r + 1}
                                for a in run_aeon(args.aeon_python, npz, [PAIRS[name]], tmp)]
                    save(results)
    save(results)
    print("\n| implementation | model | test accuracy | macro F1 | fit (median) | fits | "
          "predict, 2947 windows (median) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["impl"], r["model"]), []).append(r)
    for (impl, model), rs in groups.items():
        fits = ", ".join(f"{r['fit_seconds']:.1f}" for r in rs)
        print(f"| {impl} | {model} | {rs[0]['accuracy']:.2%} | {rs[0]['macro_f1']:.4f} | "
              f"{_median([r['fit_seconds'] for r in rs]):.1f} s | {fits} | "
              f"{_median([r['predict_seconds'] for r in rs]):.1f} s |")


if __name__ == "__main__":
    sys.exit(main())
