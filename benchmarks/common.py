"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import os
import platform
from itertools import accumulate
from pathlib import Path


def machine(threads: str | None = None) -> str:
    """CPU model, cores, Python and torch versions, and the threads used (``threads``, else
    torch's current setting)."""
    import torch

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = threads or f"{torch.get_num_threads()} torch threads"
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {threads}")


def append_section(text: str) -> None:
    """Append a dated results section to BENCHMARKS.md and print it."""
    with open(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", "a", encoding="utf-8") as f:
        f.write(text)
    print(text)


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` outside square brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def split_model(spec: str) -> tuple[str, dict[str, str]]:
    """``"harcnn[width=32,hidden=64]"`` -> ``("harcnn", {"width": "32", "hidden": "64"})``; a
    value may hold a bracketed list (``stgcn[widths=[16,32]]``).

    Raises:
        ValueError: the brackets do not close at the end, or a setting has no ``key=value``.
    """
    name, bracket, rest = spec.partition("[")
    if not bracket:
        return name, {}
    body = rest[:-1]
    depths = list(accumulate((ch == "[") - (ch == "]") for ch in body))
    if not rest.endswith("]") or min(depths, default=0) < 0 or (depths and depths[-1]):
        raise ValueError(f"model spec {spec!r}: expected NAME[key=value,...] with balanced "
                         "brackets")
    params: dict[str, str] = {}
    for part in _split_top(body, ",") if body else []:
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"model spec {spec!r}: {part!r} is not key=value")
        params[key] = value
    return name, params


def model_overrides(spec: str) -> list[str]:
    """Config overrides for a model spec such as ``harcnn[width=32]``: a plain key is a model
    parameter, a dotted one any setting of that run
    (``stgcn[data.options.length=32,train.epochs=50]``)."""
    name, params = split_model(spec)
    return [f"model.name={name}",
            *(f"{k}={v}" if "." in k else f"model.{k}={v}" for k, v in params.items())]


def split_ensemble(spec: str) -> list[str]:
    """Members of an ensemble spec joined by ``+`` outside brackets:
    ``"minirocket[streams=joint+bone]+hydra"`` -> ``["minirocket[streams=joint+bone]", "hydra"]``."""
    return _split_top(spec, "+")
