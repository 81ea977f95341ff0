"""Training from windows that do not fit in memory, and what lazy windows cost.

``big``: a synthetic continuous dataset whose *windowed* size (a hop of one sample, so every
window overlaps the next in all but one sample) exceeds the machine's RAM while its raw samples
are a few hundred MB on disk. The samples go once into a window cache file; the Trainer trains
a model for a bounded number of steps from the memory-mapped WindowView (batches drawn from
anywhere in the file) under an address-space limit, and the windows/s and peak memory are
printed. Materialising the windows would need the whole windowed size.

``throughput``: the Trainer's training throughput for harcnn on UCI HAR shaped windows (128
samples x 9 channels, 50 % overlap, 7350 windows) from the materialised tensor, an in-memory
WindowView and a memory-mapped one; the three runs must end with identical weights.

    # quick check (small: about 40 MB raw, 5 GB of windows)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/larger_than_ram.py big --raw-mb 40 --steps 50
    # the full run: 300 MB of samples, ~40 GB of windows (> 24 GiB RAM), 8 GiB address space
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/larger_than_ram.py big --raw-mb 300 \\
        --steps 500 --limit-gib 8
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/larger_than_ram.py throughput --repeats 3
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine
from harkit.config import TrainConfig
from harkit.data.lazywindows import (
    LazyWindowSet,
    WindowView,
    fit_normalizer,
    lazy_recording_windows,
)
from harkit.data.recording import Recording, RecordingDataset
from harkit.data.transforms import Standardizer
from harkit.models import create_model
from harkit.training.trainer import Trainer

CHANNELS = [f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz"]
CLASSES = ["walking", "upstairs", "downstairs", "sitting", "standing", "laying"]
GiB = 1 << 30


def synthetic(n_samples: int, n_subjects: int, window: int, hop: int,
              seed: int = 0) -> RecordingDataset:
    """One continuous recording per subject, ``n_samples`` in all: class-dependent sines and
    offsets plus noise, in activity segments of 10 s at 50 Hz."""
    rng = np.random.default_rng(seed)
    per = n_samples // n_subjects
    t = np.arange(per, dtype=np.float32) / 50.0
    recs = []
    for s in range(1, n_subjects + 1):
        labels = np.repeat(rng.integers(0, len(CLASSES), per // 500 + 1), 500)[:per]
        freq = (0.5 + labels).astype(np.float32)
        signal = rng.standard_normal((per, len(CHANNELS)), dtype=np.float32)
        signal *= 0.1
        signal += 0.3 * np.sin(2 * np.pi * freq * t)[:, None]
        signal[np.arange(per), 3 + labels] += 1.0  # a posture-like offset per class
        recs.append(Recording(signal, labels.astype(np.int64), s, f"subject{s:02d}"))
    return RecordingDataset("synthetic-big", CHANNELS, CLASSES, 50.0, recs, window, hop,
                            test_subjects=[n_subjects])


def memory_status() -> dict[str, int]:
    """Bytes of this process's peak RSS and current anonymous / file-backed resident memory."""
    out = {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile", "VmSize"):
            out[key] = int(value.split()[0]) * 1024
    return out


def ram_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _gb(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def big(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.limit_gib:
        limit = int(args.limit_gib * GiB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(f"address space limited to {args.limit_gib} GiB")
    window, hop, n_ch = 128, 1, len(CHANNELS)
    n_samples = int(args.raw_mb * (1 << 20)) // (4 * n_ch)
    ds = synthetic(n_samples, args.subjects, window, hop)
    raw = sum(r.signal.nbytes for r in ds.recordings)
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as tmp:
        t0 = time.perf_counter()
        lazy = lazy_recording_windows(ds, "mmap", directory=Path(tmp))
        build = time.perf_counter() - t0
        del ds  # from here on the samples live in the cache file only
        gc.collect()
        train, test = lazy.splits["train"], lazy.splits["test"]
        assert isinstance(train, LazyWindowSet) and isinstance(test, LazyWindowSet)
        view = train.view
        n_windows = len(view) + len(test)
        windowed = n_windows * window * n_ch * 4
        print(f"{machine(f'{args.threads} torch threads')}; RAM {_gb(ram_bytes())}")
        print(f"raw samples {raw / 2**20:.0f} MiB on disk; {n_windows} windows of {window} x "
              f"{n_ch} (hop {hop}) = {_gb(windowed)} if materialised; the view holds "
              f"{_gb(view.nbytes)}; cache built in {build:.1f} s")
        # the normaliser from a strided subset of windows (fit_normalizer on the whole view
        # is exact but reads every window twice)
        subset = view.select(np.arange(0, len(view), max(1, len(view) // 20000)))
        t0 = time.perf_counter()
        norm = fit_normalizer(Standardizer(), subset)
        print(f"normaliser fitted on {len(subset)} windows in {time.perf_counter() - t0:.1f} s")
        X = view.normalized(norm)
        y = torch.from_numpy(view.y)
        model = create_model("harcnn", n_channels=n_ch, n_classes=len(CLASSES),
                             window_len=window)
        cfg = TrainConfig(epochs=1, batch_size=args.batch_size, scheduler="none",
                          num_threads=args.threads)
        trainer = Trainer(model, cfg, (X, y), None)  # type: ignore[arg-type]
        trainer.steps_per_epoch = args.steps  # a bounded number of steps over the full perm
        t0 = time.perf_counter()
        trainer.fit(progress=False)
        seconds = time.perf_counter() - t0
        val = test.view.normalized(norm)
        val = val.select(np.arange(0, len(val), max(1, len(val) // 2048)))
        _, acc, f1 = trainer.evaluate(val, torch.from_numpy(val.y))  # type: ignore[arg-type]
        mem = memory_status()
        print(f"trained {args.steps} steps of {args.batch_size} windows drawn from all "
              f"{len(view)} in {seconds:.1f} s: {args.steps * args.batch_size / seconds:.0f} "
              f"windows/s; train loss {trainer.history[0]['train_loss']:.3f}; {len(val)} test "
              f"windows: accuracy {acc:.3f}, macro F1 {f1:.3f}")
        print(f"peak RSS {_gb(mem['peak_rss'])} (now: anonymous {_gb(mem.get('RssAnon', 0))}, "
              f"file-backed {_gb(mem.get('RssFile', 0))}, address space "
              f"{_gb(mem.get('VmSize', 0))}) vs {_gb(windowed)} of windows")


def throughput(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    window, hop = 128, 64
    per_subject = 350  # training windows: 21 subjects x 350 = 7350, as UCI HAR's
    ds = synthetic(22 * (per_subject * hop + window), 22, window, hop)  # subject 22: test
    eager = ds.to_windows()
    norm = Standardizer().fit(eager.splits["train"].X)
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as tmp:
        views: dict[str, WindowView] = {}
        for mode in ("memory", "mmap"):
            lw = lazy_recording_windows(ds, mode, directory=Path(tmp)).splits["train"]
            assert isinstance(lw, LazyWindowSet)
            views[mode] = lw.view.normalized(norm)
        X = torch.from_numpy(norm.transform(eager.splits["train"].X))
        y = torch.from_numpy(eager.splits["train"].y)
        sources: dict[str, torch.Tensor | WindowView] = {
            "materialised tensor": X, "WindowView in memory": views["memory"],
            "WindowView memory-mapped": views["mmap"]}
        print(f"{machine(f'{args.threads} torch threads')}; a shared machine: other jobs ran "
              "at the same time")
        print(f"harcnn, {len(X)} windows of {window} x {X.shape[2]}, batch {args.batch_size}, "
              f"{args.epochs} epoch(s) per run, median of {args.repeats} interleaved runs")
        times: dict[str, list[float]] = {k: [] for k in sources}
        gathers: dict[str, list[float]] = {k: [] for k in sources}
        weights: dict[str, dict[str, torch.Tensor]] = {}
        for _ in range(args.repeats):
            for name, src in sources.items():
                torch.manual_seed(0)
                model = create_model("harcnn", n_channels=X.shape[2], n_classes=len(CLASSES),
                                     window_len=window)
                cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                                  num_threads=args.threads)
                trainer = Trainer(model, cfg, (src, y), None)  # type: ignore[arg-type]
                t0 = time.perf_counter()
                trainer.fit(progress=False)
                times[name].append(time.perf_counter() - t0)
                weights[name] = trainer.model.state_dict()
                perm = torch.randperm(len(X))
                t0 = time.perf_counter()
                for i in range(0, len(X), args.batch_size):
                    src[perm[i : i + args.batch_size]]
                gathers[name].append(time.perf_counter() - t0)
        ref = weights["materialised tensor"]
        same = all(torch.equal(ref[k], w[k]) for w in weights.values() for k in ref)
        print("| windows from | training windows/s | batch gathers alone, windows/s |")
        print("| --- | ---: | ---: |")
        for name in sources:
            t, g = statistics.median(times[name]), statistics.median(gathers[name])
            print(f"| {name} | {len(X) * args.epochs / t:,.0f} | {len(X) / g:,.0f} |")
        print(f"identical weights after training from all three: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("big", help="train from a memory-mapped dataset larger than RAM")
    b.add_argument("--raw-mb", type=float, default=300.0, help="raw samples in MiB")
    b.add_argument("--subjects", type=int, default=10)
    b.add_argument("--steps", type=int, default=500)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--limit-gib", type=float, default=8.0,
                   help="RLIMIT_AS for the whole process (0: none)")
    t = sub.add_parser("throughput", help="materialised vs in-memory vs memory-mapped")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=64)
    for p in (b, t):
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--cache-dir", default=None,
                       help="where the temporary window cache goes (default: the system's)")
    args = parser.parse_args()
    big(args) if args.cmd == "big" else throughput(args)


if __name__ == "__main__":
    main()
