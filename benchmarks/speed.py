"""The speed suite: one command measures every registered sensor model on UCI HAR and HAPT.

Per (dataset, model), in a fresh subprocess (so its peak memory is its own):

- training throughput (windows/s) of harkit's Trainer (tensors prepared once, batches by
  index) against the REFERENCE loop of benchmarks/reference.py (per-sample Dataset over
  float64 numpy, DataLoader, Adam, ``loss.item()`` per step) on the same model class, same
  batch size and thread count. "harkit matched" runs the Trainer with the reference's
  optimisation (Adam, no scheduler, no EMA, no label smoothing, no augmentation), so the
  ratio is the cost of the data path and loop alone; "harkit recipe" runs harkit's defaults
  (AdamW, one-cycle, weight EMA, label smoothing, on-the-fly augmentation), what
  ``harkit train`` does. Contenders run interleaved (harkit, reference, recipe, harkit, ...),
  one round = one pass over ``min(steps x batch, N)`` training windows, after warm-up
  passes; the table gives the median round. Closed-form models (the ROCKET family) have no
  training steps: their fit time on all training windows is reported instead.
- time to reach 95% of the final validation macro F1 in a short ``harkit.train`` run
  (4 validation subjects carved from training, no refit; ``--epochs`` per model, or
  ``--time-budget`` seconds, after which the run stops at the end of the epoch). 'Final' is
  the last epoch of that run, not a converged model. Times are the Trainer history's
  per-epoch seconds (training + validation; checkpoint writing excluded), summed.
- inference latency at batch 1 and batch 256 (median and p99 of ``--latency-repeats``
  calls, eval mode, ``torch.inference_mode``, eager), windows/s at batch 256, forward FLOPs per
  window (harkit.perf.count_flops: LSTMs counted analytically) and the achieved GFLOP/s as a
  share of the fp32 matmul peak measured in the same run (the bf16 peak is shown too).
- memory: the subprocess's peak RSS (interpreter, torch, dataset and model included) and the
  peak RSS increase during each phase (harkit.perf.track_peak_rss: the kernel's high-water
  mark reset at the start of every timed round; the largest increase of a contender's rounds).

Peers (full mode only): aeon's MiniRocketClassifier fit + predict on UCI HAR in its own venv
(``--aeon-python``; benchmarks/rocket.py's runner), alternating with harkit's minirocket; tsai's
LSTMPlus / InceptionTimePlus through the reference loop (``--peer-python``, a venv with tsai),
or the reason they could not run.

Appends a section to BENCHMARKS.md (unless ``--no-append``) and writes
benchmarks/results/speed_<timestamp>.json.

    .venv/bin/python benchmarks/speed.py --data-dir ../shared/data \\
        --aeon-python /work/aeon-venv/bin/python --peer-python /work/peer-venv/bin/python
    .venv/bin/python benchmarks/speed.py --quick --models harcnn lstm-relu --datasets uci-har \\
        --no-append
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import append_section, machine, model_overrides, split_model

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
log = logging.getLogger("speed")
DATASETS = ["uci-har", "hapt"]
INFER_BATCH = 256
TSAI_MODELS = ["tsai.models.RNNPlus:LSTMPlus", "tsai.models.InceptionTimePlus:InceptionTimePlus"]


def _error(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def sensor_models() -> list[str]:
    """Registered models that take sensor windows (skeleton models are skipped)."""
    from harkit.models import MODELS

    return [e.name for e in MODELS.entries() if not e.tags.get("skeleton")]


# ---------------------------------------------------------------------------------------
# worker: one (dataset, model) in its own process
# ---------------------------------------------------------------------------------------

def _windows_per_epoch(n: int, batch: int) -> int:
    """Windows the Trainer trains on per pass over n windows (a final batch of 1 is dropped)."""
    full, rest = divmod(n, batch)
    return full * batch + (rest if rest >= 2 else 0)


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median_ms": 1000 * statistics.median(samples),
            "p99_ms": 1000 * float(np.percentile(samples, 99)), "n": len(samples)}


class Worker:
    """Measures one model on one dataset; ``row`` grows phase by phase and is saved after
    each, so a crash in a later phase keeps the earlier results."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.row: dict[str, Any] = {"model": spec["model"], "dataset": spec["dataset"]}
        self.out = Path(spec["out"])

    def save(self) -> None:
        self.out.write_text(json.dumps(self.row, indent=1))

    def run(self) -> None:
        from harkit.perf import peak_rss_mb

        s = self.spec
        torch.set_num_threads(s["threads"])
        self.row["threads"] = torch.get_num_threads()
        self.row["rss_at_start_mb"] = peak_rss_mb()  # before any high-water-mark reset
        self.peaks: list[float] = [peak_rss_mb()]
        try:
            self._run()
        except Exception as e:  # reported in the table; the suite goes on
            self.row["error"] = _error(e)
            self.row["traceback"] = traceback.format_exc()[-2000:]
        self.row["process_peak_rss_mb"] = max(self.peaks)
        self.save()

    def _prepare(self) -> None:
        from harkit.api import build_model, prepare_data
        from harkit.config import ExperimentConfig, apply_overrides

        s = self.spec
        t0 = time.perf_counter()
        self.cfg = apply_overrides(ExperimentConfig(), [
            f"data.dataset={s['dataset']}", f"data.data_dir={s['data_dir']}",
            *model_overrides(s["model"]), f"train.batch_size={s['batch_size']}"])
        self.data = prepare_data(self.cfg)
        self.row["load_seconds"] = time.perf_counter() - t0
        tr = self.data.train
        self.X = torch.from_numpy(np.ascontiguousarray(tr.X))
        self.y = torch.from_numpy(tr.y.astype(np.int64))
        self.build = lambda: build_model(self.cfg, self.data)
        ds = self.data.dataset
        self.row.update(channels=ds.n_channels, classes=ds.n_classes, window=ds.window_len,
                        train_windows=len(tr), val_windows=len(self.data.val),
                        val_subjects=self.data.val_subjects)

    def _run(self) -> None:
        from harkit.perf import flops_per_window

        s = self.spec
        self._prepare()
        torch.manual_seed(0)
        probe = self.build()
        self.row["parameters"] = sum(p.numel() for p in probe.parameters())
        self.row["flops_per_window"] = flops_per_window(probe, tuple(self.X.shape[1:]))
        self.row["closed_form"] = bool(getattr(probe, "closed_form", False))
        del probe
        self.save()
        model = self._closed_form_fit() if self.row["closed_form"] else self._throughput()
        self.save()
        self._inference(model)
        self.save()
        if not s["quick"]:
            self._time_to_f1()

    def _timed_rounds(self, contenders: dict[str, Callable[[], int]], rounds: int) -> None:
        """Run the contenders interleaved, ``rounds`` times each; record windows/s and the
        peak RSS increase of every round."""
        from harkit.perf import track_peak_rss

        rates: dict[str, list[float]] = {k: [] for k in contenders}
        mem: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(rounds):
            for key, fn in contenders.items():
                with track_peak_rss() as m:
                    t0 = time.perf_counter()
                    windows = fn()
                    dt = time.perf_counter() - t0
                rates[key].append(windows / dt)
                mem[key].append(m.increase_mb)
                self.peaks.append(m.peak_mb)
        for key in contenders:
            self.row[f"train_{key}_windows_per_s"] = statistics.median(rates[key])
            self.row[f"train_{key}_samples"] = rates[key]
            self.row[f"train_{key}_rss_increase_mb"] = max(mem[key])

    def _throughput(self) -> torch.nn.Module:
        """Interleaved training throughput: harkit matched, reference, harkit recipe."""
        from dataclasses import replace

        from harkit.api import _augmenter  # the augmentation `harkit train` builds
        from harkit.config import TrainConfig
        from harkit.training.trainer import Trainer
        from reference import ReferenceTrainer

        s = self.spec
        bs = s["batch_size"]
        n = min(len(self.X), s["steps"] * bs)
        w = min(len(self.X), s["warmup"] * bs)
        X, y = self.X, self.y
        matched = TrainConfig(epochs=10**6, batch_size=bs, optimizer="adam", lr=1e-3,
                              weight_decay=0.0, scheduler="none", label_smoothing=0.0,
                              ema_decay=None, seed=0)
        recipe = replace(self.cfg.train, epochs=10**6, batch_size=bs)

        def harkit(cfg: TrainConfig, augment: Any) -> tuple[Callable[[], int], torch.nn.Module]:
            torch.manual_seed(0)
            model = self.build()
            Trainer(model, cfg, (X[:w], y[:w]), None, augment).fit(stop_after=1, progress=False)
            trainer = Trainer(model, cfg, (X[:n], y[:n]), None, augment)

            def step() -> int:
                trainer.fit(stop_after=1, progress=False)
                return _windows_per_epoch(n, bs)
            return step, model

        run_matched, model = harkit(matched, None)
        from harkit.training.precision import cpu_has_fast_bf16

        run_bf16 = harkit(replace(matched, precision="bf16"), None)[0] if cpu_has_fast_bf16() \
            else None
        torch.manual_seed(0)
        ref_model = self.build()
        Xn, yn = self.data.train.X.astype(np.float64), self.data.train.y.astype(np.int64)
        ReferenceTrainer(ref_model, Xn[:w], yn[:w], bs).train_epoch()  # warm-up
        ref = ReferenceTrainer(ref_model, Xn[:n], yn[:n], bs)
        contenders: dict[str, Callable[[], int]] = {
            "harkit": run_matched, "reference": lambda: ref.train_epoch()[0],
            # the reference's per-sample data path alone (its loader, no model): the most
            # that removing it could save is its share of the reference's time
            "refdata": lambda: sum(len(yb) for _, yb in ref.loader)}
        if run_bf16 is not None:  # the same optimisation, bfloat16 autocast
            contenders["bf16"] = run_bf16
        if not s["no_recipe"]:
            contenders["recipe"] = harkit(recipe, _augmenter(self.cfg, self.data))[0]
        self.row["train_round_windows"] = n
        self._timed_rounds(contenders, s["rounds"])
        ref_rate = self.row["train_reference_windows_per_s"]
        self.row["train_reference_data_share"] = ref_rate / self.row["train_refdata_windows_per_s"]
        self.row["train_harkit_vs_reference"] = self.row["train_harkit_windows_per_s"] / ref_rate
        if run_bf16 is not None:
            self.row["train_bf16_vs_reference"] = self.row["train_bf16_windows_per_s"] / ref_rate
        return model

    def _closed_form_fit(self) -> torch.nn.Module:
        """Fit time of a closed-form model on all training windows (``rounds`` fits)."""
        from harkit.config import TrainConfig
        from harkit.training.trainer import Trainer

        models: list[torch.nn.Module] = []

        def fit() -> int:
            torch.manual_seed(0)
            model = self.build()
            Trainer(model, TrainConfig(epochs=1, batch_size=self.spec["batch_size"]),
                    (self.X, self.y), None).fit(progress=False)
            models[:] = [model]
            return len(self.X)

        self._timed_rounds({"fit": fit}, self.spec["rounds"])
        self.row["fit_seconds"] = len(self.X) / self.row["train_fit_windows_per_s"]
        return models[0]

    def _inference(self, model: torch.nn.Module) -> None:
        from harkit.inference.predictor import optimize_for_inference
        from harkit.perf import track_peak_rss

        s = self.spec
        model.eval()
        xs = {1: self.X[:1].clone(), INFER_BATCH: self.X[:INFER_BATCH].clone()}
        reps = {1: s["latency_repeats"], INFER_BATCH: max(s["latency_repeats"] // 5, 5)}
        # what harkit predict runs: a frozen TorchScript trace where it reproduces eager
        fast = optimize_for_inference(model, xs[1].shape[1], xs[1].shape[2])
        self.row["inference_path"] = "eager" if fast is model else "torchscript"
        with torch.inference_mode():
            for b, x in xs.items():
                for _ in range(s["warmup"]):
                    fast(x)
                samples = []
                with track_peak_rss() as m:
                    for _ in range(reps[b]):
                        t0 = time.perf_counter()
                        fast(x)
                        samples.append(time.perf_counter() - t0)
                self.peaks.append(m.peak_mb)
                self.row[f"latency_b{b}"] = _stats(samples)
                self.row[f"infer_b{b}_rss_increase_mb"] = m.increase_mb
        med = self.row[f"latency_b{INFER_BATCH}"]["median_ms"] / 1000
        self.row["infer_windows_per_s"] = INFER_BATCH / med
        self.row["achieved_gflops"] = self.row["flops_per_window"] * INFER_BATCH / med / 1e9
        self._inference_parallel(fast, xs[INFER_BATCH])
        self._inference_onnx(model)
        # bf16 weights, as `harkit predict --precision bf16` runs them (only where accurate)
        from harkit.inference.predictor import lower_precision
        from harkit.training.precision import cpu_has_fast_bf16

        if not cpu_has_fast_bf16():
            return
        x = xs[INFER_BATCH]
        low, why = lower_precision(model, "bf16", x.shape[1], x.shape[2])  # type: ignore[arg-type]
        if why:
            self.row["infer_bf16_skipped"] = why
            return
        self._batch_rate("bf16", lambda: low(x))

    def _batch_rate(self, key: str, call: Callable[[], object]) -> None:
        """Time ``call`` (one batch of INFER_BATCH windows) after the warm-up calls; store
        ``latency_<key>``, ``infer_<key>_windows_per_s`` and ``achieved_<key>_gflops``."""
        s = self.spec
        with torch.inference_mode():
            for _ in range(s["warmup"]):
                call()
            samples = []
            for _ in range(max(s["latency_repeats"] // 5, 5)):
                t0 = time.perf_counter()
                call()
                samples.append(time.perf_counter() - t0)
        self.row[f"latency_{key}"] = _stats(samples)
        med = self.row[f"latency_{key}"]["median_ms"] / 1000
        self.row[f"infer_{key}_windows_per_s"] = INFER_BATCH / med
        self.row[f"achieved_{key}_gflops"] = self.row["flops_per_window"] * INFER_BATCH / med / 1e9

    def _inference_parallel(self, fast: Any, x: torch.Tensor) -> None:
        """Batch 256 with the batch split across the cores, one intra-op thread per part, as
        `harkit predict --parallel batch` (`Predictor(parallel="batch")`) runs it."""
        from harkit.inference.parallel import enable

        par = enable(fast, self.spec["threads"])
        try:
            self._batch_rate("parallel", lambda: par(x))
        finally:
            torch.set_num_threads(self.spec["threads"])

    def _inference_onnx(self, model: torch.nn.Module) -> None:
        """Batch-256 windows/s of the model exported to ONNX and run by ONNX Runtime with the
        same threads, as `harkit export --format onnx` + `harkit predict model.onnx` (or
        `OnnxPredictor`) run it: the graph call alone, like the torch timings above."""
        from harkit.errors import HarkitError
        from harkit.inference.export import export_model

        try:
            from harkit.inference.onnx_predictor import OnnxPredictor
        except ImportError as e:  # pragma: no cover - onnxruntime is a dependency
            self.row["infer_onnx_skipped"] = _error(e)
            return
        s = self.spec
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            try:
                res = export_model(model, self.data.preprocessing(), path)
                self.row["onnx_export_seconds"] = res.seconds  # export and its parity check
            except HarkitError as e:
                self.row["infer_onnx_skipped"] = _error(e)
                return
            pred = OnnxPredictor(path, threads=s["threads"], batch_size=INFER_BATCH)
        feed = {pred._input: self.X[:INFER_BATCH].numpy()}
        self._batch_rate("onnx", lambda: pred.session.run([pred._output], feed))

    def _time_to_f1(self) -> None:
        from harkit.api import train
        from harkit.perf import track_peak_rss
        from harkit.training.trainer import EpochResult, Trainer

        s = self.spec
        epochs = s["epochs"]
        budget = s["time_budget"]

        def stop_on_budget(trainer: Trainer, result: EpochResult) -> None:
            if sum(h["seconds"] for h in trainer.history) >= budget:
                trainer.stopped_early = True  # ends the run after this epoch, as early stopping

        overrides = [f"data.dataset={s['dataset']}", f"data.data_dir={s['data_dir']}",
                     *model_overrides(s["model"]), f"train.epochs={epochs}", "train.refit=false",
                     f"train.batch_size={s['batch_size']}", f"train.num_threads={s['threads']}",
                     "tracking.enabled=false"]
        with tempfile.TemporaryDirectory() as tmp, track_peak_rss() as m:
            r = train(overrides=[*overrides, f"run_root={tmp}"], progress=False,
                      command=["speed.py"], callbacks=[stop_on_budget], evaluate_test=False)
        self.peaks.append(m.peak_mb)
        hist = r.history
        cum = np.cumsum([float(h["seconds"]) for h in hist]).tolist()
        f1 = [float(h["val_f1"]) for h in hist]
        final = f1[-1]
        reached = next((i for i, v in enumerate(f1) if v >= 0.95 * final), len(f1) - 1)
        self.row.update(
            f1_run={"overrides": overrides, "epochs_planned": epochs, "time_budget_s": budget,
                    "epochs_run": len(hist), "cumulative_seconds": cum, "val_f1": f1,
                    "final_val_f1": final, "epoch_reaching_95pct": reached + 1,
                    "seconds_to_95pct": cum[reached], "total_seconds": cum[-1],
                    "rss_increase_mb": m.increase_mb})


def worker_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    Worker(spec).run()
    return 0


# ---------------------------------------------------------------------------------------
# main process: workers, peers, tables
# ---------------------------------------------------------------------------------------

def run_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker subprocess; whatever it saved is returned, plus an error if it died."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps({**spec, "out": str(out)}))
        env = {**os.environ, "HARKIT_TRACKING": "0"}
        row: dict[str, Any] = {"model": spec["model"], "dataset": spec["dataset"]}
        try:
            proc = subprocess.run([sys.executable, __file__, "--worker", str(spec_path)],
                                  env=env, timeout=timeout, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or [""])[-1]
                row["error"] = f"worker exited with {proc.returncode}: {tail[:200]}"
        except subprocess.TimeoutExpired:
            row["error"] = f"worker timed out after {timeout:.0f} s"
        if out.exists():
            row = {**json.loads(out.read_text()), **row}
    return row


def run_peers(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """aeon's MiniRocket (alternating with harkit's) and tsai's models on UCI HAR."""
    from harkit.api import prepare_data
    from harkit.config import ExperimentConfig, apply_overrides
    from harkit.data import load_dataset

    rows: list[dict[str, Any]] = []
    if args.aeon_python:
        import rocket

        ds = load_dataset("uci-har", data_dir=args.data_dir)
        train, test = ds.splits["train"], ds.splits["test"]
        pre = {"dataset": ds.name, "channels": list(ds.channels), "classes": list(ds.classes),
               "units": dict(ds.units), "window_len": ds.window_len, "hop": ds.hop,
               "sampling_rate": ds.sampling_rate}
        with tempfile.TemporaryDirectory() as tmp:
            npz = Path(tmp) / "uci.npz"
            rocket.write_aeon_npz(npz, train, test)
            for r in range(args.peer_rounds):
                for impl in ("harkit", "aeon"):
                    log.info("peer: %s minirocket fit + predict (round %d)", impl, r + 1)
                    try:
                        if impl == "harkit":
                            res = [rocket.run_harkit("minirocket", train, test, pre)]
                        else:
                            res = rocket.run_aeon(args.aeon_python, npz,
                                                  ["MiniRocketClassifier"], tmp, threads)
                        rows += [{"peer": "rocket", "round": r + 1, **x} for x in res]
                    except Exception as e:
                        rows.append({"peer": "rocket", "impl": impl, "round": r + 1,
                                     "model": "minirocket", "error": _error(e)})
    if args.peer_python:
        rows += run_tsai(args, threads, prepare_data,
                         apply_overrides(ExperimentConfig(), [f"data.data_dir={args.data_dir}"]))
    return rows


def run_tsai(args: argparse.Namespace, threads: int, prepare: Any, cfg: Any
             ) -> list[dict[str, Any]]:
    """tsai's models through the reference loop in ``--peer-python``, or why not."""
    mods = sorted({spec.split(":")[0] for spec in TSAI_MODELS})
    probe = subprocess.run([args.peer_python, "-c",
                            "import torch, tsai; " + "; ".join(f"import {m}" for m in mods)
                            + "; print(torch.__version__, tsai.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"peer": "tsai", "model": m, "error": f"import failed in {args.peer_python}: "
                 f"{last[:200]}"} for m in TSAI_MODELS]
    versions = probe.stdout.strip()
    data = prepare(cfg)  # the same normalised UCI HAR training windows harkit trains on
    with tempfile.TemporaryDirectory() as tmp:
        npz, out = Path(tmp) / "train.npz", Path(tmp) / "tsai.json"
        np.savez(npz, X=data.train.X, y=data.train.y)
        proc = subprocess.run(
            [args.peer_python, str(HERE / "reference.py"), "--peer-worker", str(npz), str(out),
             "--peer-models", *TSAI_MODELS, "--batch-size", str(args.batch_size),
             "--steps", str(args.steps), "--rounds", str(args.rounds),
             "--warmup", str(args.warmup), "--threads", str(threads)],
            capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return [{"peer": "tsai", "model": m, "error": last[:200]} for m in TSAI_MODELS]
        return [{"peer": "tsai", "versions": versions, **r} for r in json.loads(out.read_text())]


def _f(row: dict[str, Any], key: str, spec: str, scale: float = 1.0) -> str:
    v = row.get(key)
    return "-" if v is None else format(v * scale, spec)


def five_x_needs(row: dict[str, Any], fp32_peak: float, bf16_peak: float | None) -> str:
    """What 5x the reference's training throughput would take: its achieved GFLOP/s (a
    training step's FLOPs taken as 3x the forward's: the backward pass computes the gradients
    of both the inputs and the weights, each about one forward), times 5, as a share of the
    machine's fp32 (and bf16) matmul peak. Over 100 % of the fp32 peak means no fp32 kernel
    can reach 5x the reference on this machine."""
    ref, flops = row.get("train_reference_windows_per_s"), row.get("flops_per_window")
    if not ref or not flops:
        return "-"
    need = 5 * ref * 3 * flops / 1e9
    bf16 = f", {100 * need / bf16_peak:.0f}% of bf16" if bf16_peak else ""
    return f"{need:,.0f} ({100 * need / fp32_peak:.0f}% of fp32{bf16})"


def tables(rows: list[dict[str, Any]], fp32_peak: float, quick: bool,
           bf16_peak: float | None = None) -> list[str]:
    """Markdown tables: training, then inference and memory."""
    lines = ["", "Training (windows/s, median round; matched = the reference's optimisation; "
             "recipe = harkit train defaults; data path alone: the reference's DataLoader "
             "iterated without a model, and the share of the reference's time that it is, the "
             "most a faster data path could save; 5x needs: 5 x the reference's achieved GFLOP/s, "
             "a step's FLOPs taken as 3 x the forward's, against the measured matmul peaks):",
             "",
             "| dataset | model | params | harkit matched | reference | harkit / reference | "
             "harkit bf16 (/ reference) | harkit recipe | reference's data path alone (share of "
             "its time) | 5x the reference needs GFLOP/s (% of "
             "peak) | ΔRSS harkit / reference (MiB) | "
             "time to 95% of final val F1 | final val F1 (last of epochs run) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r and "parameters" not in r:
            lines.append(f"| {r['dataset']} | {r['model']} | failed: {r['error']} "
                         "| | | | | | | | | |")
            continue
        f1 = r.get("f1_run")
        t95 = ("not run (--quick)" if quick else "-") if f1 is None else (
            f"{f1['seconds_to_95pct']:.1f} s (epoch {f1['epoch_reaching_95pct']} of "
            f"{f1['epochs_run']})")
        final = "-" if f1 is None else f"{f1['final_val_f1']:.4f} ({f1['total_seconds']:.0f} s)"
        if r.get("closed_form"):
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['parameters']:,} | closed-form fit "
                f"{_f(r, 'fit_seconds', '.1f')} s ({_f(r, 'train_fit_windows_per_s', ',.0f')} "
                f"win/s) | n/a | n/a | n/a | n/a | n/a | n/a "
                f"| {_f(r, 'train_fit_rss_increase_mb', ',.0f')} / - "
                f"| {t95} | {final} |")
        else:
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['parameters']:,} "
                f"| {_f(r, 'train_harkit_windows_per_s', ',.0f')} "
                f"| {_f(r, 'train_reference_windows_per_s', ',.0f')} "
                f"| {_f(r, 'train_harkit_vs_reference', '.2f')}x "
                f"| {_f(r, 'train_bf16_windows_per_s', ',.0f')} "
                f"({_f(r, 'train_bf16_vs_reference', '.2f')}x) "
                f"| {_f(r, 'train_recipe_windows_per_s', ',.0f')} "
                f"| {_f(r, 'train_refdata_windows_per_s', ',.0f')} "
                f"({_f(r, 'train_reference_data_share', '.1%')}) "
                f"| {five_x_needs(r, fp32_peak, bf16_peak)} "
                f"| {_f(r, 'train_harkit_rss_increase_mb', ',.0f')} / "
                f"{_f(r, 'train_reference_rss_increase_mb', ',.0f')} | {t95} | {final} |")
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['model']} | later phase failed: {r['error']} "
                         "| | | | | | | | | |")
    lines += ["", "Inference (fp32 as `harkit predict` runs it: a frozen TorchScript trace where "
              "it reproduces the eager logits, else eager; inference_mode; "
              f"batch {INFER_BATCH} windows/s and GFLOP/s from its median; bf16: the model's "
              "bfloat16 copy as `--precision bf16` runs it; ONNX Runtime: the model exported "
              "with `harkit export --format onnx`, fp32, same threads, batch "
              f"{INFER_BATCH}; export: the seconds `export_model` took, its ONNX Runtime "
              "parity check included; batch-parallel: the same fp32 trace with the batch split "
              "across the threads, one intra-op thread per part, as `harkit predict "
              "--parallel batch` runs it):", "",
              "| dataset | model | MFLOP/window | batch 1 median / p99 | "
              f"batch {INFER_BATCH} median / p99 | windows/s | GFLOP/s | % of fp32 peak | "
              "batch-parallel windows/s (% of fp32 peak) | "
              "bf16 windows/s (GFLOP/s) | ONNX Runtime windows/s (% of fp32 peak), export | "
              "worker peak RSS (MiB) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        b1, bn = r.get("latency_b1"), r.get(f"latency_b{INFER_BATCH}")
        if b1 is None or bn is None:
            continue
        gf = r["achieved_gflops"]
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['flops_per_window'] / 1e6:.2f} "
            f"| {b1['median_ms']:.2f} / {b1['p99_ms']:.2f} ms "
            f"| {bn['median_ms']:.1f} / {bn['p99_ms']:.1f} ms "
            f"| {r['infer_windows_per_s']:,.0f} | {gf:.1f} | {100 * gf / fp32_peak:.1f}% "
            f"| {_f(r, 'infer_parallel_windows_per_s', ',.0f')} "
            f"({_f(r, 'achieved_parallel_gflops', '.1f', 100 / fp32_peak)}%) "
            f"| {_f(r, 'infer_bf16_windows_per_s', ',.0f')} "
            f"({_f(r, 'achieved_bf16_gflops', '.1f')}) "
            f"| {_f(r, 'infer_onnx_windows_per_s', ',.0f')} "
            f"({_f(r, 'achieved_onnx_gflops', '.1f', 100 / fp32_peak)}%), "
            f"{_f(r, 'onnx_export_seconds', '.0f')} s "
            f"| {r['process_peak_rss_mb']:,.0f} |")
    return lines


def peer_lines(peers: list[dict[str, Any]], batch: int) -> list[str]:
    if not peers:
        return []
    lines = ["", "Peers (UCI HAR):", "", "| toolkit | model | measure | result |",
             "| --- | --- | --- | --- |"]
    for p in peers:
        if "error" in p:
            lines.append(f"| {p.get('impl', p['peer'])} | {p['model']} | not run | {p['error']} |")
        elif p["peer"] == "rocket":
            lines.append(f"| {p['impl']} | {p['model']} | fit + predict, round {p['round']} | "
                         f"fit {p['fit_seconds']:.1f} s, predict {p['predict_seconds']:.1f} s, "
                         f"accuracy {p['accuracy']:.2%} |")
        else:
            lines.append(f"| tsai ({p['versions']}) | {p['model']} ({p['parameters']:,} params) "
                         f"| training, reference loop, batch {batch} | "
                         f"{p['windows_per_s']:,.0f} windows/s |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("HARKIT_DATA_DIR", "../shared/data"))
    ap.add_argument("--models", nargs="*",
                    help="registered sensor models (default: all); with parameters as "
                         "harcnn[width=32]")
    ap.add_argument("--datasets", nargs="*", default=DATASETS, choices=DATASETS)
    ap.add_argument("--quick", action="store_true",
                    help="throughput and inference only, few steps; no F1 run, no peers")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps per timed round (default 40, quick 10)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="timed rounds per contender (default 3, quick 2)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps / calls")
    ap.add_argument("--latency-repeats", type=int, default=None,
                    help="batch-1 calls timed (default 200, quick 50; batch 256: a fifth)")
    ap.add_argument("--no-recipe", action="store_true", help="skip the harkit-recipe contender")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the F1 run (per model)")
    ap.add_argument("--epochs-for", nargs="*", default=[], metavar="MODEL=N",
                    help="per-model epochs of the F1 run, e.g. deepconvlstm=3")
    ap.add_argument("--time-budget", type=float, default=300.0,
                    help="seconds: the F1 run stops after the epoch that reaches this")
    ap.add_argument("--aeon-python", default=None, help="python of a venv with aeon (peers)")
    ap.add_argument("--peer-python", default=None, help="python of a venv with tsai (peers)")
    ap.add_argument("--peer-rounds", type=int, default=1, help="alternating aeon/harkit rounds")
    ap.add_argument("--worker-timeout", type=float, default=3600.0)
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    from harkit.perf import matmul_peak_gflops

    args.steps = args.steps or (10 if args.quick else 40)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.latency_repeats = args.latency_repeats or (50 if args.quick else 200)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    available = sensor_models()
    names = args.models or available
    unknown = sorted({split_model(n)[0] for n in names} - set(available))
    if unknown:
        raise SystemExit(f"--models: {unknown} are not registered sensor models; "
                         f"choose from {available}")
    epochs_for: dict[str, int] = {}
    for item in args.epochs_for:
        model, _, n = item.partition("=")
        if model not in available or not n.isdigit():
            raise SystemExit(f"--epochs-for {item!r}: expected MODEL=N with a sensor model")
        epochs_for[model] = int(n)

    started = datetime.now(timezone.utc)
    command = "python benchmarks/speed.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    log.info("matmul peaks (%d threads) ...", threads)
    peaks = {"fp32": matmul_peak_gflops(torch.float32, threads=threads),
             "bf16": matmul_peak_gflops(torch.bfloat16, threads=threads)}
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        for name in names:
            t0 = time.perf_counter()
            spec = {"model": name, "dataset": dataset, "data_dir": args.data_dir,
                    "batch_size": args.batch_size, "threads": threads, "steps": args.steps,
                    "rounds": args.rounds, "warmup": args.warmup, "quick": args.quick,
                    "latency_repeats": args.latency_repeats, "no_recipe": args.no_recipe,
                    "epochs": epochs_for.get(split_model(name)[0], args.epochs),
                    "time_budget": args.time_budget}
            row = run_worker(spec, args.worker_timeout)
            rows.append(row)
            log.info("%s / %s: %.0f s%s", dataset, name, time.perf_counter() - t0,
                     f" (error: {row['error']})" if "error" in row else "")
    peers = [] if args.quick else run_peers(args, threads)
    # the peak again at the end: a drift in machine load shows as a difference
    peaks_end = {"fp32": matmul_peak_gflops(torch.float32, threads=threads),
                 "bf16": matmul_peak_gflops(torch.bfloat16, threads=threads)}
    fp32 = max(peaks["fp32"], peaks_end["fp32"])
    for r in rows:
        if "achieved_gflops" in r:
            r["fraction_of_fp32_peak"] = r["achieved_gflops"] / fp32
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    stamp = started.strftime("%Y-%m-%d %H:%M UTC")
    result = {"date": stamp, "command": command, "machine": machine(f"{threads} torch threads"),
              "matmul_peak_gflops_start": peaks, "matmul_peak_gflops_end": peaks_end,
              "load_average_after": load, "settings": {k: v for k, v in vars(args).items()
                                                       if k != "worker"},
              "results": rows, "peers": peers}
    out = HERE / "results" / f"speed_{started.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    mode = "quick: throughput + inference only" if args.quick else "full"
    lines = [
        f"\n## Speed suite ({mode}) — {stamp}\n",
        f"- command: `{command}`",
        f"- machine: {result['machine']}; load average after: "
        f"{'n/a' if load is None else ', '.join(f'{v:.2f}' for v in load)}",
        f"- measured matmul peak ({threads} threads, 2048², best of 10): fp32 "
        f"{peaks['fp32']:.0f} GFLOP/s at start, {peaks_end['fp32']:.0f} at end; bf16 "
        f"{peaks['bf16']:.0f} / {peaks_end['bf16']:.0f} GFLOP/s. '% of fp32 peak' uses the "
        "higher fp32 figure.",
        f"- training: batch {args.batch_size}; a round = one pass over min({args.steps} x "
        f"{args.batch_size}, N) training windows after {args.warmup} warm-up steps; "
        f"{args.rounds} rounds per contender, interleaved; median shown. Reference = "
        "benchmarks/reference.py (per-sample Dataset over float64 numpy, DataLoader "
        "shuffle=True, num_workers=0, Adam, loss.item() per step), same model class.",
        "- time to 95% F1: `harkit.train` with 4 validation subjects, no refit, "
        f"{args.epochs} epochs" + (f" ({', '.join(args.epochs_for)})" if args.epochs_for else "")
        + f" or until {args.time_budget:.0f} s; 'final' = the last epoch of that short run."
        if not args.quick else "- time to 95% F1: not measured (--quick)",
        "- FLOPs: forward multiply-adds x 2 of matrix products and convolutions "
        "(harkit.perf.count_flops; LSTMs counted analytically); element-wise work is not "
        "counted, so for the ROCKET family (whose pooling is comparisons) GFLOP/s and % of peak "
        "understate the work done.",
        "- memory: each (dataset, model) runs in a fresh subprocess; 'worker peak RSS' is its "
        "whole peak (interpreter, torch, dataset, model); ΔRSS is the largest peak increase "
        "over the RSS at the start of a timed round (kernel high-water mark reset per round).",
        f"- raw results: `{out.relative_to(REPO)}`",
        *tables(rows, fp32, args.quick, max(peaks["bf16"], peaks_end["bf16"])),
        *peer_lines(peers, args.batch_size), ""]
    text = "\n".join(lines)
    if args.no_append:
        print(text)
    else:
        append_section(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
