"""Where the random-kernel models' time goes, in-process: the ridge head's leave-one-out search
and the pooling, each A/B against the alternative, plus the calibration check on UTKinect.

    .venv/bin/python benchmarks/rocket_parts.py --data-dir ../shared/data --baseline-rev df82070

1. Ridge search on UCI HAR's 7352 training windows (MiniRocket features, per-channel
   standardised as `harkit train` does): ``solver="eigh"`` (one eigendecomposition) against
   ``"auto"`` (one Cholesky factorisation per alpha): time, chosen alpha, weight difference.
2. Pooling: a MiniRocket and a MultiRocket block on 256 random windows of 128 x 9, the
   current module with and without the 64-window chunks, and (``--baseline-rev``) the module
   of an earlier commit, read with ``git show``. Calls alternate; the best of ``--rounds``.
3. MiniRocket at batch 64: the convolutions' share of the block.
4. UTKinect's multirocket-hydra at alpha 0.001: the calibrated head's weight norm from float64
   features (reference) and from float32 features by each solver (and by the earlier
   module's search, with ``--baseline-rev``).
5. The comparison kernels behind the pooling: ``torch.gt`` of a (64, 42, 128) float block
   against per-row biases, written to bool or to float (PyTorch vectorises only the
   latter), and one MultiRocket longest-run (LSPV) pass, the old bool-mask form against the
   current one (same result, checked).

Appends a section to BENCHMARKS.md and writes benchmarks/results/rocket_parts_<time>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from common import append_section, machine

REPO = Path(__file__).resolve().parents[1]
THREADS = 2


def best_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def baseline_module(rev: str) -> ModuleType:
    """harkit.models.rocket as of ``rev``, without its registry side effects."""
    src = subprocess.run(["git", "show", f"{rev}:src/harkit/models/rocket.py"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    cut = src.find("_register(MiniRocket")
    if cut < 0:
        raise SystemExit(f"{rev}: rocket.py has no '_register(MiniRocket' to cut at")
    path = Path(tempfile.mkdtemp()) / f"rocket_at_{rev}.py"
    path.write_text(src[:cut])
    spec = importlib.util.spec_from_file_location(f"rocket.py at {rev}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ridge_search(data_dir: str) -> dict[str, Any]:
    from harkit.data import load_dataset
    from harkit.data.transforms import make_normalizer
    from harkit.models.rocket import MiniRocket, _column_mean, _default_alphas, ridge_loo

    train = load_dataset("uci-har", data_dir=data_dir).splits["train"]
    X = torch.from_numpy(np.ascontiguousarray(
        make_normalizer("standard").fit(train.X).transform(train.X))).float()
    y = torch.from_numpy(train.y.astype(np.int64))
    m = MiniRocket(X.shape[2], int(y.max()) + 1, X.shape[1])
    assert m.rocket is not None
    m.rocket.fit_biases(X.transpose(1, 2).contiguous(), torch.Generator().manual_seed(m.seed))
    with torch.inference_mode():
        Z = torch.cat([m._raw_features(X[i : i + 64]) for i in range(0, len(X), 64)])
    mean = _column_mean(Z)
    sd = ((Z.double() - mean) ** 2).mean(0).sqrt()
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    out: dict[str, Any] = {"shape": list(Z.shape)}
    for solver in ("eigh", "auto"):
        t0 = time.perf_counter()
        W, _, alpha, _ = ridge_loo(Z.clone(), y, int(y.max()) + 1, _default_alphas(), mean, sd,
                                   calibrate=True, solver=solver)
        out[solver] = {"seconds": time.perf_counter() - t0, "alpha": alpha}
        out[f"_{solver}_W"] = W
    We, Wa = out.pop("_eigh_W"), out.pop("_auto_W")
    out["max_weight_difference_relative"] = float((We - Wa).abs().max() / We.abs().max())
    return out


def pooling(old: ModuleType | None, rev: str | None, rounds: int) -> dict[str, Any]:
    from harkit.models import rocket as cur

    x = torch.randn(256, 9, 128, generator=torch.Generator().manual_seed(0))
    out: dict[str, Any] = {}
    for pooling_kind, per_kernel in (("ppv", 119), ("multi", 74)):
        blocks: dict[str, Any] = {}
        for name, mod in (("current", cur), (f"at {rev}", old)):
            if mod is None:
                continue
            b = mod.RocketBlock(9, 128, per_kernel, 32, pooling_kind,
                                torch.Generator().manual_seed(0))
            b.fit_biases(x, torch.Generator().manual_seed(1))
            blocks[name] = b
        if old is not None:  # the same features, bit for bit
            ref = blocks[f"at {rev}"]
            blocks["current"].load_state_dict(ref.state_dict())
            with torch.inference_mode():
                assert torch.equal(blocks["current"](x), ref(x)), "features differ"
        times: dict[str, list[float]] = {}
        with torch.inference_mode():
            for _ in range(rounds):  # alternate, so drift hits all alike
                for name, b in blocks.items():
                    times.setdefault(name, []).append(best_ms(lambda b=b: b(x), 1))
                if pooling_kind == "ppv":  # the chunks are PPV-only
                    chunk, cur.PPV_CHUNK = cur.PPV_CHUNK, 10**9
                    whole = blocks["current"]
                    times.setdefault("current, no chunks", []).append(
                        best_ms(lambda b=whole: b(x), 1))
                    cur.PPV_CHUNK = chunk
        out[pooling_kind] = {k: min(v) for k, v in times.items()}
    b = cur.RocketBlock(9, 128, 119, 32, "ppv", torch.Generator().manual_seed(0))
    x64 = x[:64]
    with torch.inference_mode():
        block = best_ms(lambda: b(x64), rounds)
        conv = best_ms(lambda: [b._conv(x64, j) for j in range(len(b.dils))], rounds)
    out["minirocket_batch64"] = {"block_ms": block, "convolutions_ms": conv}
    return out


def calibration(data_dir: str, old: ModuleType | None) -> dict[str, Any]:
    from harkit.data import load_dataset
    from harkit.models import create_model
    from harkit.models.rocket import _column_mean, _default_alphas, ridge_loo

    train = load_dataset("utkinect", data_dir=data_dir).splits["train"]
    X = torch.tensor(train.X, dtype=torch.float32)
    X = (X - X.mean((0, 1))) / X.std((0, 1)).clamp(min=1e-6)
    y = torch.tensor(train.y).long()
    m = create_model("multirocket-hydra", n_channels=X.shape[2], n_classes=int(y.max()) + 1,
                     window_len=X.shape[1])
    m.fit_init(X, y)  # biases and the hydra scaler; the features below are fit_init's
    with torch.inference_mode():
        Z = m._raw_features(X)
        assert m.hydra is not None
        Z[:, m.n_rocket :] = m.hydra.scale(Z[:, m.n_rocket :])
    center = torch.zeros(m.n_features, dtype=torch.float64)
    scale = torch.ones(m.n_features, dtype=torch.float64)
    mu = _column_mean(Z[:, : m.n_rocket])
    sd = (Z[:, : m.n_rocket].double() - mu).pow(2).mean(0).sqrt()
    center[: m.n_rocket], scale[: m.n_rocket] = mu, torch.where(sd > 1e-12, sd, 1.0)
    out = {}
    for label, feats, solver in (("float64 features, eigh (reference)", Z.double(), "eigh"),
                                 ("float32 features, eigh", Z, "eigh"),
                                 ("float32 features, cholesky", Z, "cholesky")):
        W, _, alpha, _ = ridge_loo(feats.clone(), y, int(y.max()) + 1, _default_alphas(),
                                   center, scale, calibrate=True, solver=solver)
        out[label] = {"alpha": alpha, "calibrated_weight_norm": float(W.norm())}
    if old is not None:  # the earlier module's search (float32 features)
        W, _, alpha, _ = old.ridge_loo(Z.clone(), y, int(y.max()) + 1, _default_alphas(),
                                       center, scale, calibrate=True)
        out[f"float32 features, {old.__name__}"] = {"alpha": alpha,
                                                    "calibrated_weight_norm": float(W.norm())}
    return out


def compare_kernels(rounds: int) -> dict[str, float]:
    from harkit.models.rocket import _longest_run_above

    g = torch.Generator().manual_seed(0)
    c = torch.randn(64, 42, 128, generator=g)
    b = torch.randn(42, 1, generator=g)
    to_bool = torch.empty(c.shape, dtype=torch.bool)
    to_float = torch.empty(c.shape)
    v = torch.randint(0, 13, (128, 128, 42), dtype=torch.uint8, generator=g)  # (L, B, K)
    levels = torch.arange(12, dtype=torch.uint8)

    def lspv_bool_mask() -> torch.Tensor:  # the form used until 2026-11-23
        run = torch.zeros(*v.shape[1:], len(levels), dtype=torch.uint8)
        best = torch.zeros_like(run)
        for t in range(v.shape[0]):
            run.add_(1).masked_fill_(v[t].unsqueeze(-1) <= levels, 0)
            torch.maximum(best, run, out=best)
        return best.float()

    assert torch.equal(lspv_bool_mask(), _longest_run_above(v, levels, torch.uint8))
    per_call = 200
    return {
        "gt_to_bool_us": best_ms(lambda: [torch.gt(c, b, out=to_bool)
                                          for _ in range(per_call)], rounds) * 1e3 / per_call,
        "gt_to_float_us": best_ms(lambda: [torch.gt(c, b, out=to_float)
                                           for _ in range(per_call)], rounds) * 1e3 / per_call,
        "lspv_bool_mask_ms": best_ms(lspv_bool_mask, rounds),
        "lspv_current_ms": best_ms(lambda: _longest_run_above(v, levels, torch.uint8), rounds),
    }


def section(res: dict[str, Any], cmdline: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    r, p = res["ridge"], res["pooling"]
    lines = [f"\n## Random-kernel models: ridge search and pooling, in-process — {when}\n",
             f"- command: `{cmdline}`", f"- machine: {machine(f'{THREADS} torch threads')}",
             f"- raw: `{res['file']}`\n",
             f"Ridge search on UCI HAR's MiniRocket features {tuple(r['shape'])}, default grid, "
             "calibrated:\n", "| solver | seconds | alpha |", "| --- | --- | --- |"]
    lines += [f"| {s} | {r[s]['seconds']:.1f} | {r[s]['alpha']:.4g} |" for s in ("eigh", "auto")]
    lines += ["", f"Weights: largest difference {r['max_weight_difference_relative']:.1e} of the "
              "largest weight.", "", "Pooling, 256 random windows of 128 x 9 (best of the "
              "rounds, ms):", "", "| block | " + " | ".join(p["ppv"]) + " |",
              "| --- |" + " --- |" * len(p["ppv"])]
    for kind, label in (("ppv", "MiniRocket (119 biases per kernel)"),
                        ("multi", "MultiRocket (74 per kernel, as in multirocket-hydra; 4 poolings)")):
        cells = [f"{p[kind][k]:.0f}" if k in p[kind] else "-" for k in p["ppv"]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    b = p["minirocket_batch64"]
    lines += ["", f"MiniRocket block at batch 64: {b['block_ms']:.1f} ms, of which the "
              f"convolutions {b['convolutions_ms']:.1f} ms.", "",
              "UTKinect multirocket-hydra, calibrated ridge head:", "",
              "| features, solver | alpha | weight norm |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v['alpha']:.4g} | {v['calibrated_weight_norm']:.3f} |"
              for k, v in res["calibration"].items()]
    k = res["compare_kernels"]
    lines += ["", "Comparison kernels (best of the rounds):", "",
              "| operation | bool-writing form | current form |", "| --- | --- | --- |",
              f"| `torch.gt` of a (64, 42, 128) float block against per-row biases, per call | "
              f"{k['gt_to_bool_us']:.0f} us (out=bool) | {k['gt_to_float_us']:.0f} us "
              "(out=float) |",
              f"| longest run above 12 levels, (L, B, K) = (128, 128, 42) uint8 | "
              f"{k['lspv_bool_mask_ms']:.1f} ms (bool mask, masked_fill_) | "
              f"{k['lspv_current_ms']:.1f} ms (uint8 compare, levels leading) |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("HARKIT_DATA_DIR", "../shared/data"))
    ap.add_argument("--baseline-rev", help="also time the pooling of rocket.py at this commit")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    res: dict[str, Any] = {"ridge": ridge_search(a.data_dir)}
    print(json.dumps(res["ridge"]), flush=True)
    old = baseline_module(a.baseline_rev) if a.baseline_rev else None
    res["pooling"] = pooling(old, a.baseline_rev, a.rounds)
    print(json.dumps(res["pooling"]), flush=True)
    res["calibration"] = calibration(a.data_dir, old)
    print(json.dumps(res["calibration"]), flush=True)
    res["compare_kernels"] = compare_kernels(a.rounds)
    print(json.dumps(res["compare_kernels"]), flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = REPO / "benchmarks" / "results" / f"rocket_parts_{stamp}.json"
    res["file"] = str(out.relative_to(REPO))
    out.write_text(json.dumps(res, indent=1))
    cmdline = " ".join(["python", "benchmarks/rocket_parts.py", *sys.argv[1:]])
    text = section(res, cmdline)
    print(text)
    if not a.no_append:
        append_section(text)


if __name__ == "__main__":
    main()
