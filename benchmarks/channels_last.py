"""(k x 1) convolutions with channels-last filters against the default layout, interleaved.

For TinyHAR and DeepConvLSTM (``--models``), both copies have the same weights; each is
traced and frozen as `harkit predict` runs it, then called on the same random windows,
alternating, ``--rounds`` times per layout. Medians are printed, so a drift in machine speed
hits both layouts alike.

    .venv/bin/python benchmarks/channels_last.py --threads 2 --models tinyhar deepconvlstm
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from harkit.models.deepconvlstm import DeepConvLSTM
from harkit.models.tinyhar import TinyHAR

MODELS = {"tinyhar": TinyHAR, "deepconvlstm": DeepConvLSTM}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--models", nargs="+", default=["tinyhar"], choices=sorted(MODELS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for model, (channels, shape) in ((m, s) for m in a.models for s in (
            (9, "uci-har shape (128 x 9)"), (6, "hapt shape (128 x 6)"))):
        name = f"{model}, {shape}"
        x = torch.randn(a.batch, 128, channels)
        models = {}
        for layout in ("channels_last", "contiguous"):
            torch.manual_seed(0)
            m = MODELS[model](channels, 6, 128).eval()
            if layout == "contiguous":
                m.convs.to(memory_format=torch.contiguous_format)
            with torch.inference_mode():
                models[layout] = torch.jit.freeze(torch.jit.trace(m, x))
                for _ in range(5):
                    models[layout](x)
        times: dict[str, list[float]] = {k: [] for k in models}
        with torch.inference_mode():
            same = torch.allclose(models["channels_last"](x), models["contiguous"](x), atol=1e-5)
            for _ in range(a.rounds):
                for layout, m in models.items():
                    t0 = time.perf_counter()
                    m(x)
                    times[layout].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{name}, batch {a.batch}, {a.threads} threads: channels-last "
              f"{med['channels_last']:.1f} ms, contiguous {med['contiguous']:.1f} ms "
              f"({med['contiguous'] / med['channels_last']:.2f}x), same logits: {same}")


if __name__ == "__main__":
    main()
