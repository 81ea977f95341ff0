"""Random-convolution-kernel classifiers: MiniRocket, MultiRocket, Hydra and MultiRocket-Hydra.

Written from the papers:

- MiniRocket (Dempster, Schmidt & Webb, KDD 2021): the 84 length-9 kernels with weights -1 and
  2 (three 2s), exponentially spaced dilations, "same" zero padding for half of the
  (dilation, kernel) pairs, biases drawn from quantiles of the convolution output of random
  training windows, one feature per bias: the proportion of positive values (PPV).
  Multivariate: each (dilation, kernel) pair convolves the sum of a random subset of channels.
- MultiRocket (Tan, Dempster, Bergmeir & Webb, DMKD 2022): the same kernels on the windows and on
  their first differences, four pooling operators per bias: PPV, the mean of the positive
  values (MPV), the mean index of the positive values (MIPV) and the longest stretch of positive
  values (LSPV).
- Hydra (Dempster, Schmidt & Webb, DMKD 2023): groups of random normal kernels compete at every
  time step; each kernel counts how often it is the group's maximum (summing the maximal
  responses) and minimum, on the windows and their first differences, at dilations 2^i.
  Multivariate: each group convolves the sum of a random subset of channels. The counts are
  "sparse-scaled" (square root, standardised where non-zero) before the linear classifier.

Every model maps ``(batch, time, channels)`` windows to ``(batch, n_classes)`` logits. The fixed
kernels, channel choices, dilations, biases and scalers are buffers (they are in the state dict,
hence in checkpoints); the only parameters are the linear head. :meth:`fit_init` sets the biases
from the training windows and, with ``head="ridge"`` (the papers' classifier), fits the head in
closed form: ridge regression on standardised features, the regularisation chosen by efficient
leave-one-out cross-validation over a log grid (as scikit-learn's ``RidgeClassifierCV``), the
standardisation folded into the head's weights. The Trainer then does no gradient steps
(``closed_form``). With ``head="sgd"`` the head trains with the normal epochs on features
standardised by buffers fitted in :meth:`fit_init`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel
from harkit.models.skeleton import SkeletonStreams, resolve_skeleton

log = logging.getLogger(__name__)

KERNEL_LEN = 9
N_KERNELS = 84  # C(9, 3): positions of the three 2s
GOLDEN = (math.sqrt(5) + 1) / 2
# ridge_loo's "auto" solver: a grid of at most this many alphas is searched by one Cholesky
# factorisation per alpha rather than one eigendecomposition (see ridge_loo)
CHOLESKY_GRID_MAX = 10
# RocketBlock: PPV-only features are computed this many series at a time
PPV_CHUNK = 64


def minirocket_weights() -> torch.Tensor:
    """The 84 MiniRocket kernels ``(84, 9)``: weight -1 everywhere and 2 at three positions."""
    w = torch.full((N_KERNELS, KERNEL_LEN), -1.0)
    for i, idx in enumerate(itertools.combinations(range(KERNEL_LEN), 3)):
        w[i, list(idx)] = 2.0
    return w


def fit_dilations(length: int, per_kernel: int, max_dilations: int) -> tuple[list[int], list[int]]:
    """Dilations ``floor(2^e)`` for ``e`` evenly spaced in ``[0, log2((length - 1) / 8)]`` and
    how many features (biases) each dilation gets, ``per_kernel`` in all per kernel."""
    n = min(per_kernel, max_dilations)
    max_exp = math.log2(max(length - 1, 1) / (KERNEL_LEN - 1))
    raw = np.floor(np.logspace(0, max(max_exp, 0.0), n, base=2)).astype(np.int64)
    dil, counts = np.unique(raw, return_counts=True)
    per = np.floor(counts * (per_kernel / n)).astype(np.int64)
    i = 0
    while per.sum() < per_kernel:  # hand the remainder out from the smallest dilation up
        per[i % len(per)] += 1
        i += 1
    return [int(d) for d in dil], [int(p) for p in per]


def _quantiles(n: int) -> torch.Tensor:
    """Low-discrepancy quantiles ``frac(i * golden ratio)``, ``i = 1..n``."""
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return torch.remainder(i * GOLDEN, 1.0)


def _interp_quantile(c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Row-wise linear-interpolation quantiles: ``c`` ``(R, T)``, ``q`` ``(R, m)`` in [0, 1]."""
    s = c.sort(dim=-1).values
    pos = q.to(s.dtype) * (s.shape[-1] - 1)
    lo = pos.floor().long().clamp(0, s.shape[-1] - 1)
    hi = (lo + 1).clamp(max=s.shape[-1] - 1)
    frac = pos - lo.to(s.dtype)
    a, b = s.gather(-1, lo), s.gather(-1, hi)
    return a + frac * (b - a)


def _above(h: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``out[..., j] = sum(h[..., j + 1:])`` for histograms ``h`` over ``nf + 1`` bins, as one
    small matmul with ``upper[i, j] = (i > j)`` (cheaper than flip + cumsum)."""
    return h @ upper


def _choose_channels(n_channels: int, n_rows: int, gen: torch.Generator) -> torch.Tensor:
    """A 0/1 mask ``(n_rows, n_channels)``: each row picks ``floor(2^U(0, log2(min(C, 9) + 1)))``
    distinct channels at random (MiniRocket's multivariate scheme)."""
    top = math.log2(min(n_channels, KERNEL_LEN) + 1)
    mask = torch.zeros(n_rows, n_channels)
    u = torch.rand(n_rows, generator=gen, dtype=torch.float64)
    for r in range(n_rows):
        k = min(max(int(2 ** (u[r].item() * top)), 1), n_channels)
        mask[r, torch.randperm(n_channels, generator=gen)[:k]] = 1.0
    return mask


class RocketBlock(nn.Module):
    """MiniRocket kernels over one representation of ``(B, C, L)`` series.

    Per dilation the 84 kernels are stored with the zero-padded ("same") half first; the other
    half is pooled over only the positions where the kernel fits inside the series. Features
    are ordered
    (pooling operator, dilation, kernel, bias) with each kernel's biases ascending.

    Args:
        n_channels, length: the series this block sees.
        per_kernel: biases (features per pooling operator) per kernel.
        max_dilations: at most this many dilations.
        pooling: ``"ppv"`` (MiniRocket) or ``"multi"`` (MultiRocket: PPV, LSPV, MPV, MIPV).
        gen: generator for the channel combinations.
    """

    biases: torch.Tensor
    positions: torch.Tensor

    def __init__(self, n_channels: int, length: int, per_kernel: int, max_dilations: int,
                 pooling: str, gen: torch.Generator) -> None:
        super().__init__()
        if length < KERNEL_LEN:
            raise ValueError(f"series of {length} samples are shorter than the kernel length 9")
        if pooling not in ("ppv", "multi"):
            raise ValueError(f"pooling must be 'ppv' or 'multi', got {pooling!r}")
        self.length = length
        self.pooling = pooling
        self.dils, self.per_dil = fit_dilations(length, per_kernel, max_dilations)
        self.n_per_pool = N_KERNELS * sum(self.per_dil)
        self.n_features = self.n_per_pool * (4 if pooling == "multi" else 1)
        base = minirocket_weights()
        self.register_buffer("dilations", torch.tensor(self.dils))
        for j in range(len(self.dils)):
            # MiniRocket pads kernel k at dilation index j when (j + k) is even.
            padded = [k for k in range(N_KERNELS) if (j + k) % 2 == 0]
            order = padded + [k for k in range(N_KERNELS) if (j + k) % 2 == 1]
            mask = _choose_channels(n_channels, N_KERNELS, gen)  # (84, C)
            w = base[order][:, None, :] * mask[:, :, None]  # (84, C, 9)
            self.register_buffer(f"weight{j}", w)
            nf = self.per_dil[j]
            upper = (torch.arange(nf + 1)[:, None] > torch.arange(nf)[None, :]).float()
            self.register_buffer(f"upper{j}", upper, persistent=False)
        self.register_buffer("biases", torch.zeros(self.n_per_pool))
        self.register_buffer("positions", torch.arange(length, dtype=torch.float32))
        # run lengths fit in uint8 up to 255 samples, bias levels up to 255 biases per kernel
        self.run_dtype = torch.uint8 if length < 255 else torch.int32
        self.level_dtype = torch.uint8 if max(self.per_dil) < 255 else torch.int32
        self.register_load_state_dict_pre_hook(_drop_border_buffers)

    def _conv(self, x: torch.Tensor, j: int) -> torch.Tensor:
        """Convolution outputs ``(B, 84, L)`` at dilation index ``j`` (zero padded)."""
        d = self.dils[j]
        return F.conv1d(x, getattr(self, f"weight{j}"), dilation=d,
                        padding=(KERNEL_LEN - 1) * d // 2)

    @torch.no_grad()
    def fit_biases(self, x: torch.Tensor, gen: torch.Generator) -> None:
        """Biases from quantiles of the (padded) convolution output of one random training
        series per (dilation, kernel); ``x`` ``(N, C, L)``."""
        q = _quantiles(self.n_per_pool)
        out = []
        start = 0
        for j, d in enumerate(self.dils):
            nf = self.per_dil[j]
            pick = torch.randint(len(x), (N_KERNELS,), generator=gen).to(x.device)
            xs = x[pick]  # (84, C, L): one series per kernel
            w = getattr(self, f"weight{j}")
            # (1, 84*C, L) grouped by kernel -> (1, 84, L): each kernel on its own series
            c = F.conv1d(xs.reshape(1, -1, self.length), w, dilation=d,
                         padding=(KERNEL_LEN - 1) * d // 2, groups=N_KERNELS)[0]
            qj = q[start : start + N_KERNELS * nf].view(N_KERNELS, nf).to(c.device)
            out.append(_interp_quantile(c.double(), qj).sort(-1).values.float().flatten())
            start += N_KERNELS * nf
        self.biases.copy_(torch.cat(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, n_features)`` of ``(B, C, L)`` series.

        PPV-only blocks work through large batches ``PPV_CHUNK`` series at a time, so each
        compare-and-count pass stays in cache (MiniRocket at batch 256: 111 ms against 144 ms
        in one piece, benchmarks/rocket_parts.py; MultiRocket's extra pooling gains
        nothing). Not while tracing or exporting, where the batch size must stay symbolic."""
        if self.pooling == "ppv" and not _capturing() and x.shape[0] > PPV_CHUNK:
            return torch.cat([self._features(x[i : i + PPV_CHUNK])
                              for i in range(0, len(x), PPV_CHUNK)])
        return self._features(x)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        ppv: list[torch.Tensor] = []
        mpv: list[torch.Tensor] = []
        mipv: list[torch.Tensor] = []
        lspv: list[torch.Tensor] = []
        multi = self.pooling == "multi"
        half = N_KERNELS // 2
        start = 0
        for j, d in enumerate(self.dils):
            nf = self.per_dil[j]
            raw = self._conv(x, j)  # (B, 84, L)
            b = self.biases[start : start + N_KERNELS * nf].view(N_KERNELS, nf)
            start += N_KERNELS * nf
            p = (KERNEL_LEN - 1) * d // 2
            # the zero-padded half sees every position, the other half only those where the
            # kernel fits inside the series: pooled over those positions alone (a view, so the
            # border values are never touched)
            parts = [self._pool(raw[:, :half], b[:half], j, multi),
                     self._pool(raw[:, half:, p : self.length - p], b[half:], j, multi)]
            ppv.append(torch.cat([q[0] for q in parts], 1).flatten(1))
            if multi:
                lspv.append(torch.cat([q[1] for q in parts], 1).flatten(1))
                mpv.append(torch.cat([q[2] for q in parts], 1).flatten(1))
                mipv.append(torch.cat([q[3] for q in parts], 1).flatten(1))
        if not multi:
            return torch.cat(ppv, 1)
        return torch.cat([*ppv, *lspv, *mpv, *mipv], 1)

    def _pool(self, c: torch.Tensor, b: torch.Tensor, j: int, multi: bool
              ) -> list[torch.Tensor]:
        """Pooled features ``(B, K, nf)`` of convolution outputs ``c`` ``(B, K, T)`` against
        each kernel's ascending biases ``b`` ``(K, nf)``: ``[PPV]``, or with ``multi``
        ``[PPV, LSPV, MPV, MIPV]``."""
        nf = b.shape[1]
        n = c.shape[2]
        # The comparisons write float 0/1 into a float buffer: PyTorch's CPU kernel for a
        # float-valued comparison is vectorised, the one writing bool is not (about 5x
        # slower on a (64, 42, 128) block). Counts up to 2^24 are exact in float32.
        # A traced or exported graph gets the plain functional ops (same values).
        capture = _capturing()
        # the eager comparisons' output buffer (not needed while capturing)
        hit = c if capture else torch.empty(c.shape, dtype=c.dtype, device=c.device)
        if not multi:  # PPV: count c > bias_i per bias (a compare and a row sum each)
            if capture:
                cols = [(c > b[:, i, None]).to(c.dtype).sum(-1) for i in range(nf)]
                return [torch.stack(cols, -1) / n]
            count = c.new_empty(c.shape[0], c.shape[1], nf)
            for i in range(nf):
                torch.gt(c, b[:, i, None], out=hit)
                torch.sum(hit, -1, out=count[:, :, i])
            return [count / n]
        # v[b, k, t] = number of biases of kernel k strictly below c[b, k, t], so
        # c > bias_i  <=>  v > i: one compare-and-add per bias (a few dozen biases per
        # kernel at most: several times faster than a binary search per value), then the
        # pooled sums per level from histograms of v.
        acc = torch.zeros(c.shape, dtype=c.dtype, device=c.device)
        for i in range(nf):
            if capture:
                acc = acc + (c > b[:, i, None]).to(c.dtype)
            else:
                torch.gt(c, b[:, i, None], out=hit)
                acc += hit
        v = acc.long()
        upper = getattr(self, f"upper{j}")
        zeros = c.new_zeros(c.shape[0], c.shape[1], nf + 1)
        ones = c.new_ones(()).expand(v.shape)
        count = _above(zeros.scatter_add(2, v, ones), upper)  # (B, K, nf): values > bias
        # bin 0 (values below every bias) is never summed
        csum = _above(zeros.scatter_add(2, v, c), upper)
        tsum = _above(zeros.scatter_add(2, v, self.positions[:n].expand(v.shape)), upper)
        some = count > 0
        safe = count.clamp(min=1)
        mpv = torch.where(some, (csum - b * count) / safe, 0.0)
        mipv = torch.where(some, tsum / safe, -1.0)
        # (B, K, T) -> (T, B, K) small ints: the longest run of v > level, per level
        vt = v.permute(2, 0, 1).to(self.level_dtype).contiguous()
        levels = torch.arange(nf, device=v.device, dtype=self.level_dtype)
        return [count / n, _longest_run_above(vt, levels, self.run_dtype), mpv, mipv]


def _capturing() -> bool:
    """True while a graph is being captured (TorchScript trace, ONNX export, torch.compile)."""
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
                or torch.compiler.is_compiling())


def _drop_border_buffers(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                        *args: Any) -> None:
    """Checkpoints written before 2026-11-23 carry per-dilation ``border``, ``n_valid`` and
    ``offset`` buffers that the pooling no longer needs (they follow from the dilation):
    dropped on load, so those checkpoints still load strictly."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = key[len(prefix):]
        if name.rstrip("0123456789") in ("border", "n_valid", "offset"):
            del state_dict[key]


def _longest_run_above(v: torch.Tensor, levels: torch.Tensor, dtype: torch.dtype
                       ) -> torch.Tensor:
    """Longest stretch of consecutive steps with ``v > level``, for every level: ``v``
    ``(L, B, K)`` small integers, ``levels`` ``(nf,)`` -> float ``(B, K, nf)``.

    One pass over time on ``(nf, B, K)`` counters, so the ``(L, B, K, nf)`` indicator tensor
    is never built. Each step compares into a buffer of the counters' own integer type:
    PyTorch's CPU comparison writing bool is not vectorised, this one is (with the levels
    as the leading axis, about 6x faster than a bool mask and ``masked_fill_``). A traced
    graph gets the plain functional ops, an ONNX export :func:`_longest_run_onnx` (same
    values).

    Example:
        >>> v = torch.tensor([1, 2, 2, 0, 2], dtype=torch.uint8).view(5, 1, 1)
        >>> _longest_run_above(v, torch.arange(2, dtype=torch.uint8), torch.uint8).tolist()
        [[[3.0, 2.0]]]
    """
    if torch.onnx.is_in_onnx_export():
        return _longest_run_onnx(v, levels)
    if _capturing():
        return _longest_run_unrolled(v, levels)
    lv = levels.to(dtype).view(-1, 1, 1)  # (nf, 1, 1)
    run = torch.zeros(len(levels), *v.shape[1:], dtype=dtype, device=v.device)  # (nf, B, K)
    best = torch.zeros_like(run)
    v = v.to(dtype)
    above = torch.empty_like(run)
    for t in range(v.shape[0]):
        torch.gt(v[t], lv, out=above)
        run.add_(1).mul_(above)  # reset where not above
        torch.maximum(best, run, out=best)
    return best.permute(1, 2, 0).float()  # (nf, B, K) -> (B, K, nf)


_Carry = tuple[torch.Tensor, torch.Tensor]


def _run_step(lv: torch.Tensor) -> Callable[[_Carry, torch.Tensor], _Carry]:
    """One time step of the longest-run recurrence in functional ops, against levels ``lv``
    ``(nf, 1, 1)``: carry ``(run, best)`` ``(nf, B, K)`` floats and the step's ``v[t]``
    ``(B, K)`` -> the next carry."""
    def step(carry: _Carry, vt: torch.Tensor) -> _Carry:
        run, best = carry
        run = (run + 1) * (vt > lv).float()  # reset where not above
        return run, torch.maximum(best, run)
    return step


def _longest_run_unrolled(v: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """:func:`_longest_run_above` in plain functional ops, for a traced graph (the loop
    unrolls into it)."""
    step = _run_step(levels.float().view(-1, 1, 1))
    zeros = torch.zeros(len(levels), *v.shape[1:], device=v.device)  # (nf, B, K)
    carry = (zeros, zeros)
    for t in range(v.shape[0]):
        carry = step(carry, v[t].float())
    return carry[1].permute(1, 2, 0)


def _longest_run_onnx(v: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """:func:`_longest_run_above` for an ONNX export: the same recurrence as one scan
    (``torch``'s ``scan`` higher-order op, an ONNX ``Scan`` node) instead of a Python loop
    that unrolls into ``4 L`` nodes per call: about 30,000 nodes for MultiRocket on 128
    samples, which took the exporter more than 15 minutes (MultiRocket-Hydra; 90 s with the
    scan). ``scan`` is still private in torch 2.13; without it the loop unrolls as before.

    Example:
        >>> v = torch.tensor([1, 2, 2, 0, 2], dtype=torch.uint8).view(5, 1, 1)
        >>> _longest_run_onnx(v, torch.arange(2, dtype=torch.uint8)).tolist()
        [[[3.0, 2.0]]]
    """
    try:
        from torch._higher_order_ops.scan import scan
    except ImportError:  # pragma: no cover - a torch without it: the unrolled loop
        return _longest_run_unrolled(v, levels)
    step = _run_step(levels.float().view(-1, 1, 1))
    zeros = torch.zeros(len(levels), *v.shape[1:], device=v.device)  # (nf, B, K)
    # scan needs a per-step output too: a dummy one
    (_, best), _ = scan(lambda c, vt: (step(c, vt), vt.new_zeros(1)), (zeros, zeros.clone()),
                        v.float(), dim=0)
    return best.permute(1, 2, 0)


class HydraBlock(nn.Module):
    """Hydra: ``g`` groups of ``k`` competing random kernels on ``(B, C, L)`` series and their
    first differences (half the groups each), at dilations ``2^0 .. 2^floor(log2((L-1)/8))``.

    Features per (dilation, representation, group, kernel): the sum of the kernel's responses
    where it is the group's maximum, and how often it is the group's minimum. ``scale`` applies
    the sparse scaler fitted by :meth:`fit_scaler` (square root of the clamped counts,
    standardised where non-zero).
    """

    weight: torch.Tensor
    channels: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor

    def __init__(self, n_channels: int, length: int, k: int, g: int, max_channels: int,
                 gen: torch.Generator) -> None:
        super().__init__()
        if length < KERNEL_LEN:
            raise ValueError(f"series of {length} samples are shorter than the kernel length 9")
        if k < 1 or g < 1:
            raise ValueError(f"hydra needs k >= 1 kernels in g >= 1 groups, got k={k}, g={g}")
        self.k = k
        self.div = min(2, g)  # representations: the series and (if g > 1) its differences
        self.h = g // self.div  # groups per representation
        max_exp = math.log2((length - 1) / (KERNEL_LEN - 1))
        self.dils = [2**i for i in range(int(max(max_exp, 0.0)) + 1)]
        nd = len(self.dils)
        w = torch.randn(nd, self.div, k * self.h, 1, KERNEL_LEN, generator=gen)
        w = w - w.mean(-1, keepdim=True)
        w = w / w.abs().sum(-1, keepdim=True)
        per = 1 if n_channels == 1 else int(np.clip(n_channels // 2, 2, max_channels))
        idx = torch.randint(n_channels, (nd, self.div, self.h, per), generator=gen)
        self.register_buffer("dilations", torch.tensor(self.dils))
        self.register_buffer("weight", w)
        self.register_buffer("channels", idx)
        self.n_features = nd * self.div * 2 * self.h * k
        self.register_buffer("mu", torch.zeros(self.n_features))
        self.register_buffer("sigma", torch.ones(self.n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unscaled counts ``(B, n_features)`` of ``(B, C, L)`` series."""
        reps = [x, x[..., 1:] - x[..., :-1]][: self.div]
        out = []
        for j, d in enumerate(self.dils):
            for r, z in enumerate(reps):
                # (B, C, L') -> (B, h, per, L') -> summed channels (B, h, L')
                zs = z[:, self.channels[j, r]].sum(2)
                c = F.conv1d(zs, self.weight[j, r], dilation=d, padding=(KERNEL_LEN - 1) * d // 2,
                             groups=self.h)
                c = c.view(c.shape[0], self.h, self.k, -1)  # (B, h, k, L')
                max_v, max_i = c.max(2)
                min_i = c.min(2).indices  # several times faster than argmin on CPU
                zeros = c.new_zeros(c.shape[0], self.h, self.k)
                out.append(zeros.scatter_add(2, max_i, max_v))
                out.append(zeros.scatter_add(2, min_i, torch.ones_like(max_v)))
        return torch.cat(out, 1).flatten(1)

    def scale(self, f: torch.Tensor) -> torch.Tensor:
        s = f.clamp(min=0).sqrt()
        return (s - self.mu) * (s != 0) / self.sigma

    @torch.no_grad()
    def fit_scaler(self, f: torch.Tensor, exponent: int = 4) -> None:
        """Fit the sparse scaler on training counts ``(N, n_features)``."""
        s = f.double().clamp(min=0).sqrt()
        eps = (s == 0).double().mean(0) ** exponent + 1e-8
        self.mu.copy_(s.mean(0).float())
        std = s.std(0) if len(s) > 1 else torch.zeros_like(eps)
        self.sigma.copy_((std + eps).float())


def ridge_loo(Z: torch.Tensor, y: torch.Tensor, n_classes: int, alphas: Sequence[float],
              center: torch.Tensor | None = None, scale: torch.Tensor | None = None,
              float32_from: int | None = None, calibrate: bool = False,
              solver: str = "auto",
              ) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Ridge classifier with the regularisation chosen by leave-one-out cross-validation.

    Targets are +1 for the window's class and -1 elsewhere (one column for two classes); the
    intercept is not penalised. The alpha with the smallest mean squared leave-one-out residual
    ``(y_i - f_i) / (1 - H_ii)`` wins (the first on ties), as in scikit-learn's
    RidgeClassifierCV. The residuals are exact for every alpha of the grid, computed one of
    two ways (``solver``):

    - ``"eigh"``: one eigendecomposition, of the ``n x n`` Gram matrix when ``n <= p``, else of
      the ``p x p`` covariance, then every alpha almost for free.
    - ``"cholesky"`` (``n <= p`` only): per alpha, a Cholesky factorisation of
      ``Z Z^T + alpha I`` and a triangular inverse for the hat matrix diagonal. At n = 7352 one
      alpha took about 2.3 s here and the float64 eigendecomposition 37-42 s (the default
      grid of 10, calibrated: 31.5 s against 44.3 s in benchmarks/rocket_parts.py), so a grid
      of up to ``CHOLESKY_GRID_MAX`` alphas (the default grid has 10) is cheaper this way. If a
      factorisation fails (a Gram matrix summed in float32 can be slightly indefinite, which
      the smallest alphas do not cure), the search falls back to ``"eigh"``.
    - ``"auto"`` (default): ``"cholesky"`` for ``n <= p`` and at most ``CHOLESKY_GRID_MAX``
      alphas, else ``"eigh"``.

    With one alpha there is nothing to choose, and unless ``solver="eigh"`` the head is one
    Cholesky solve (the triangular inverse only when calibrating), of the Gram matrix for
    ``n <= p``, else of the covariance.

    Args:
        Z: features ``(n, p)``; modified in place (centred and scaled).
        y: class indices ``(n,)``.
        n_classes: number of logits.
        alphas: the grid.
        center, scale: per-feature standardisation ``(p,)`` applied before the fit (the
            returned weights act on the unstandardised features).
        float32_from: eigendecompose in float32 (LAPACK divide and conquer, about twice as
            fast as float64) when the decomposed matrix has at least this many rows; None
            (default): always float64, as scikit-learn's RidgeClassifierCV does (it converts
            float32 features to float64 because float32 "can be numerically unstable for this
            estimator"): the eigenvalue errors (about 1e-7 of the largest) can make the
            leave-one-out scores of the smallest alphas unreliable. (On a 300 x 500 synthetic
            problem float32 chose alpha 0.001 where float64 chose 215 until the centring's null
            direction was deflated; since then both choose 215.)
        calibrate: scale the returned weights, bias and logits by one temperature fitted to
            the leave-one-out predictions (the cross-entropy of each training window's
            prediction by the model fitted without it), so that a softmax of the ridge
            decision values gives calibrated probabilities, e.g. for averaging with other
            models in an ensemble. Predicted classes do not change.
        solver: ``"auto"``, ``"eigh"`` or ``"cholesky"`` (see above); all give the same alpha
            and head up to rounding.

    Returns:
        ``(weight (n_classes, p), bias (n_classes,), alpha, training logits (n, n_classes))``.
    """
    if solver not in ("auto", "eigh", "cholesky"):
        raise ValueError(f"solver must be 'auto', 'eigh' or 'cholesky', got {solver!r}")
    n, p = Z.shape
    if solver == "cholesky" and n > p:
        raise ValueError(f"solver 'cholesky' needs n <= p (the Gram matrix), got {n} x {p}")
    dev = Z.device
    ycol = y.to(dev)
    T = -torch.ones(n, n_classes, dtype=torch.float64, device=dev)
    T[torch.arange(n, device=dev), ycol] = 1.0
    if n_classes == 2:
        T = T[:, 1:]
    t_mean = T.mean(0)
    Tc = T - t_mean
    shift = torch.zeros(p, dtype=torch.float64, device=dev) if center is None else center.double()
    mult = torch.ones(p, dtype=torch.float64, device=dev) if scale is None else scale.double()
    Z.sub_(shift.to(Z.dtype)).div_(mult.to(Z.dtype))
    z_mean = _column_mean(Z)
    Z.sub_(z_mean.to(Z.dtype))
    gram = n <= p
    if gram:
        G = _gram(Z)  # (n, n) float64
    else:
        G = (Z.T @ Z).double() if Z.dtype == torch.float64 else _gram(Z.T.contiguous())
    if len(alphas) == 1 and not gram:
        # One alpha: nothing to choose, so no eigendecomposition, the same solution.
        alpha = float(alphas[0])
        W, fitted, h = _ridge_cholesky(Z, G, Tc, alpha, leverages=calibrate)
        loo = None if h is None else (Tc - fitted) / (1.0 - h - 1.0 / n)[:, None]
        tau = _loo_temperature(loo, Tc, t_mean, ycol, n_classes)
        return _ridge_output(W, fitted, mult, shift, z_mean, t_mean, n_classes, alpha, tau)
    if gram and solver != "eigh" and (len(alphas) == 1 or solver == "cholesky"
                                      or len(alphas) <= CHOLESKY_GRID_MAX):
        # (one alpha: no leverages needed unless calibrating, so one factorisation and solve;
        # at n = 7352 about a tenth of the eigendecomposition's time)
        found = _loo_grid_cholesky(G, Tc, alphas, leverages=len(alphas) > 1 or calibrate)
        if found is not None:
            alpha, dual, fitted, best_loo = found
            del G
            tau = _loo_temperature(best_loo if calibrate else None, Tc, t_mean, ycol, n_classes)
            return _ridge_output(_t_matmul(Z, dual), fitted, mult, shift, z_mean, t_mean,
                                 n_classes, alpha, tau)
        log.info("ridge: Z Z^T + alpha I is not positive definite in floating point for the "
                 "smallest alphas; searching the grid by eigendecomposition instead")
    mu = 0.0
    if gram:  # deflate the centring's null direction, as the Cholesky search does
        mu = _deflation(G)
        G.add_(mu / n)
    lam, Q = _eigh(G, float32_from is not None and len(G) >= float32_from)
    del G
    lam = lam.clamp(min=0)
    if gram:
        U = Q  # eigenvectors of Z Z^T
        UtT = U.T @ Tc
    else:
        U = Z.double() @ Q  # (n, p): Z V, columns scaled by sqrt(lam)
        UtT = U.T @ Tc
    U2 = U * U
    best: tuple[float, float] | None = None
    best_loo = Tc
    for a in alphas:
        if gram:
            f = lam / (lam + a)  # shrinkage of each eigendirection of the fit
            fitted = U @ (f[:, None] * UtT)
            h = U2 @ f
        else:
            g = 1.0 / (lam + a)
            fitted = U @ (g[:, None] * UtT)
            h = U2 @ g
        # the unpenalised intercept, less the deflated direction's share (0 when not gram)
        h = h + 1.0 / n - mu / ((mu + a) * n)
        loo = (Tc - fitted) / (1.0 - h)[:, None]
        score = float((loo * loo).mean())
        if best is None or score < best[0]:
            best = (score, float(a))
            best_loo = loo
    assert best is not None
    alpha = best[1]
    if gram:
        dual = U @ ((1.0 / (lam + alpha))[:, None] * UtT)  # (n, K)
        W = _t_matmul(Z, dual)  # Z^T dual: (p, K)
        fitted = U @ ((lam / (lam + alpha))[:, None] * UtT)
    else:
        W = Q @ ((1.0 / (lam + alpha))[:, None] * UtT)
        fitted = U @ ((1.0 / (lam + alpha))[:, None] * UtT)
    tau = _loo_temperature(best_loo if calibrate else None, Tc, t_mean, ycol, n_classes)
    return _ridge_output(W, fitted, mult, shift, z_mean, t_mean, n_classes, alpha, tau)


def _ridge_cholesky(Z: torch.Tensor, G: torch.Tensor, Tc: torch.Tensor, alpha: float,
                    leverages: bool = False,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Ridge weights ``(p, K)``, fitted values ``(n, K)`` and, with ``leverages``, the hat
    matrix diagonal ``(n,)`` (intercept excluded) for one ``alpha``, by a Cholesky
    factorisation of the regularised covariance matrix ``G = Z^T Z`` (float64; ``n > p``).
    For ``n <= p`` see :func:`_loo_grid_cholesky`."""
    A = G.clone()
    A.diagonal().add_(alpha)
    L = torch.linalg.cholesky(A)
    del A
    W = torch.cholesky_solve(_t_matmul(Z, Tc), L)  # (Z^T Z + a I)^-1 Z^T T: (p, K)
    h = None
    if leverages:  # h_i = z_i^T (Z^T Z + a I)^-1 z_i
        Zd = Z.double()
        h = (Zd * torch.cholesky_solve(Zd.T, L).T).sum(1)
    return W, Z.double() @ W, h


def _loo_grid_cholesky(G: torch.Tensor, Tc: torch.Tensor, alphas: Sequence[float],
                       leverages: bool = True,
                       ) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The leave-one-out grid search on the Gram matrix ``G`` ``(n, n)`` (float64) by one
    Cholesky factorisation per alpha: the winning alpha and its dual coefficients
    ``(G + a I)^-1 Tc``, fitted values and leave-one-out residuals; None when a factorisation
    fails (a Gram matrix summed in float32 can have eigenvalues slightly below zero, which the
    smallest alphas do not lift), so that the caller can fall back to the eigendecomposition,
    which clamps them to zero. The smallest alpha is tried first, so a failure costs one
    factorisation. Without ``leverages`` (one alpha, nothing to choose, no calibration) the
    triangular inverse is skipped and the residuals returned are the plain ones.

    The centred features make the constant vector ``u = 1 / sqrt(n)`` an exact null vector of
    ``G``, which summing in float32 leaves at about +-1e-3 (UCI HAR's MiniRocket features: -0.005,
    the next eigenvalue 0.74), enough to break the factorisation for alpha 0.001. The targets
    are centred too, so that direction is solved separately: ``G + mu u u^T`` is factorised
    instead (``mu`` the mean eigenvalue), which changes neither the dual coefficients nor the
    fitted values, and the hat diagonal is corrected for it exactly."""
    if not leverages and len(alphas) != 1:
        raise ValueError("without leverages there is no leave-one-out choice: give one alpha")
    n = len(G)
    mu = _deflation(G)
    order = sorted(range(len(alphas)), key=lambda i: alphas[i])
    best: tuple[float, int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    for i in order:
        a = float(alphas[i])
        A = G + mu / n  # + mu u u^T
        A.diagonal().add_(a)
        L, info = torch.linalg.cholesky_ex(A)
        del A
        if int(info) != 0:
            return None
        dual = torch.cholesky_solve(Tc, L)
        fitted = Tc - a * dual  # G (G + a I)^-1 T = T - a (G + a I)^-1 T
        if not leverages:
            return a, dual, fitted, Tc - fitted
        # diag(G (G + a I)^-1) = 1 - a diag((G + a I)^-1), where the u direction adds
        # 1 / (a n) to diag((G + a I)^-1) and 1 / ((mu + a) n) to the deflated one; plus 1 / n
        # for the unpenalised intercept
        h = 1.0 - a * _inverse_diagonal(L) + a / ((mu + a) * n)
        del L
        loo = (Tc - fitted) / (1.0 - h)[:, None]
        score = float((loo * loo).mean())
        # the smallest score wins; on ties the alpha listed first, as in the eigh path
        if best is None or (score, i) < (best[0], best[1]):
            best = (score, i, dual, fitted, loo)
    assert best is not None
    return float(alphas[best[1]]), best[2], best[3], best[4]


def _deflation(G: torch.Tensor) -> float:
    """The eigenvalue ``mu`` given to the constant direction ``u`` of a centred Gram matrix
    ``G`` (``G + mu u u^T``): its mean eigenvalue, at least 1. Both leave-one-out searches
    use it: ``u`` is an exact null vector of ``G`` whose float32 rounding (about +-1e-3)
    would otherwise dominate the smallest alphas' leverages; the targets are centred, so
    the fit does not change, and the leverages are corrected by ``mu / ((mu + a) n)``."""
    return float(G.diagonal().mean().clamp(min=1.0))


def _inverse_diagonal(L: torch.Tensor, n_check: int = 16, tol: float = 1e-5) -> torch.Tensor:
    """``diag((L L^T)^-1)`` (float64) from a lower Cholesky factor (float64): the column sums
    of squares of ``L^-1``.

    On CPU the triangular inverse is LAPACK's trtri through SciPy, in float32 (0.8-1.3 s at
    n = 7352 here against 1.4-3.5 s in float64; on UCI HAR's MiniRocket Gram matrices its
    relative error was below 1e-6 for every alpha from 0.001 to 1000). It is checked: the
    exact float64 values of ``n_check`` evenly spaced entries, by triangular solves, must
    agree within ``tol`` (relative), else the inverse is redone in float64.
    """
    n = len(L)
    if L.device.type == "cpu":
        try:
            from scipy.linalg import lapack
        except ImportError:  # pragma: no cover - scipy comes with scikit-learn
            lapack = None
        if lapack is not None:
            Linv32, info = lapack.strtri(L.numpy().astype(np.float32), lower=1)
            if info == 0:
                Li = torch.from_numpy(Linv32)
                d = (Li * Li).sum(0, dtype=torch.float64)
                idx = torch.linspace(0, n - 1, min(n_check, n)).round().long().unique()
                E = torch.zeros(n, len(idx), dtype=L.dtype)
                E[idx, torch.arange(len(idx))] = 1.0
                exact = torch.linalg.solve_triangular(L, E, upper=False).square().sum(0)
                if bool(((d[idx] - exact).abs() <= tol * exact).all()):
                    return d
                log.info("ridge: float32 triangular inverse off by more than %.0e; redoing it "
                         "in float64", tol)
            Linv, info = lapack.dtrtri(L.numpy(), lower=1)
            if info == 0:
                return torch.from_numpy((Linv * Linv).sum(0))
    return torch.cholesky_inverse(L).diagonal().clone()


def _ridge_output(W: torch.Tensor, fitted: torch.Tensor, mult: torch.Tensor,
                  shift: torch.Tensor, z_mean: torch.Tensor, t_mean: torch.Tensor,
                  n_classes: int, alpha: float, tau: float = 1.0,
                  ) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Weights, bias and training logits on the unstandardised features (scaled by ``tau``)."""
    # undo the standardisation: logits = ((f - shift) / mult - z_mean) W + t_mean
    W = W / mult[:, None]
    b = t_mean - (shift / mult + z_mean) @ (W * mult[:, None])
    logits = fitted + t_mean
    W, b, logits = W * tau, b * tau, logits * tau
    if n_classes == 2:  # one decision column d -> logits (-d/2, d/2)
        W = torch.cat([-W / 2, W / 2], 1)
        b = torch.cat([-b / 2, b / 2])
        logits = torch.cat([-logits / 2, logits / 2], 1)
    return W.T.float(), b.float(), alpha, logits.float()


def _loo_temperature(loo: torch.Tensor | None, Tc: torch.Tensor, t_mean: torch.Tensor,
                     y: torch.Tensor, n_classes: int) -> float:
    """The temperature ``t`` minimising the mean cross-entropy of ``softmax(t * logits)``,
    where the logits are the leave-one-out decision values ``Tc - loo + t_mean`` ``(n, K)``
    (the targets minus the leave-one-out residuals ``loo``; one column ``d`` for two classes,
    read as logits ``(-d/2, d/2)``); 1 (no calibration) when ``loo`` is None."""
    if loo is None:
        return 1.0
    from scipy.optimize import minimize_scalar

    decision = Tc - loo + t_mean

    z = torch.cat([-decision / 2, decision / 2], 1) if n_classes == 2 else decision
    z = z.double().cpu()
    yy = y.cpu()

    def nll(log_t: float) -> float:
        lp = torch.log_softmax(z * math.exp(log_t), 1)
        return float(-lp[torch.arange(len(yy)), yy].mean())

    res = minimize_scalar(nll, bounds=(math.log(1e-2), math.log(1e4)), method="bounded")
    return float(math.exp(res.x))


def _eigh(G: torch.Tensor, float32: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of a symmetric float64 matrix (float64 results). On CPU through
    SciPy (which scikit-learn brings): LAPACK's MRRR driver in float64, about twice as fast
    here as torch's default; divide and conquer in float32 when ``float32``."""
    if G.device.type == "cpu":
        try:
            from scipy.linalg import eigh
        except ImportError:  # pragma: no cover - scipy comes with scikit-learn
            eigh = None
        if eigh is not None and float32:
            g32 = G.numpy().astype(np.float32)
            lam, Q = eigh(g32, driver="evd", overwrite_a=True, check_finite=False)
            return torch.from_numpy(lam).double(), torch.from_numpy(Q).double()
        if eigh is not None:
            lam, Q = eigh(G.numpy(), driver="evr", overwrite_a=True, check_finite=False)
            return torch.from_numpy(lam), torch.from_numpy(Q)
    if float32:
        lam, Q = torch.linalg.eigh(G.float())
        return lam.double(), Q.double()
    return torch.linalg.eigh(G)


def _column_mean(Z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Column means in float64 without copying ``Z`` to float64."""
    s = torch.zeros(Z.shape[1], dtype=torch.float64, device=Z.device)
    for i in range(0, len(Z), chunk):
        s += Z[i : i + chunk].double().sum(0)
    return s / max(len(Z), 1)


def _gram(Z: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """``Z @ Z.T`` in float64 from float32 blocks, computing only the upper block triangle."""
    n = len(Z)
    G = torch.empty(n, n, dtype=torch.float64, device=Z.device)
    for i in range(0, n, block):
        for j in range(i, n, block):
            g = (Z[i : i + block] @ Z[j : j + block].T).double()
            G[i : i + block, j : j + block] = g
            if j != i:
                G[j : j + block, i : i + block] = g.T
    return G


def _t_matmul(Z: torch.Tensor, A: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``Z.T @ A`` in float64, chunked over the rows of ``Z``."""
    out = torch.zeros(Z.shape[1], A.shape[1], dtype=torch.float64, device=Z.device)
    for i in range(0, len(Z), chunk):
        out += Z[i : i + chunk].double().T @ A[i : i + chunk]
    return out


def _default_alphas() -> list[float]:
    return [float(a) for a in np.logspace(-3, 3, 10)]


def _input_streams(n_channels: int, skeleton: dict[str, Any] | None, streams: str
                   ) -> tuple[SkeletonStreams | None, int, dict[str, Any] | None]:
    """The ``streams`` transform of a random-kernel model (None for ``joint``), the number of
    channels its kernels see, and the skeleton as stored in the model's config.

    Raises:
        ValueError: derived streams asked for on windows without a skeleton.
    """
    info = resolve_skeleton(skeleton, n_channels)
    if streams == "joint":
        return None, n_channels, None if info is None else info.to_dict()
    if info is None:
        raise ValueError(f"streams={streams!r} needs a skeleton dataset (derived "
                         "streams are computed from its joints); sensor windows take "
                         "streams='joint'")
    mod = SkeletonStreams(info, streams)
    return mod, mod.n_channels, info.to_dict()


class _RocketModel(HarModel):
    """Shared machinery: (skeleton streams) -> features -> (standardise for SGD) -> Linear;
    data-dependent init."""

    stream: SkeletonStreams | None
    rocket: RocketBlock | None
    rocket_diff: RocketBlock | None
    hydra: HydraBlock | None
    feat_shift: torch.Tensor
    feat_scale: torch.Tensor
    # The Predictor runs these eagerly: a TorchScript trace measured no faster (MiniRocket,
    # Hydra, MultiRocket within +-10 % at batch 256) and MultiRocket's took ~25 s to build.
    trace_for_inference = False

    def _setup(self, head: str, alphas: list[float] | None, batch_size: int, seed: int,
               calibrate: bool) -> None:
        if head not in ("ridge", "sgd"):
            raise ValueError(f"head must be 'ridge' or 'sgd', got {head!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.head_kind = head
        self.closed_form = head == "ridge"
        self.alphas = list(alphas) if alphas is not None else _default_alphas()
        if not self.alphas or any(a <= 0 for a in self.alphas):
            raise ValueError(f"alphas must be positive, got {self.alphas}")
        self.batch_size = batch_size
        self.seed = seed
        self.calibrate = calibrate
        n_rocket = sum(b.n_features for b in (self.rocket, self.rocket_diff) if b is not None)
        n_hydra = 0 if self.hydra is None else self.hydra.n_features
        self.n_rocket, self.n_features = n_rocket, n_rocket + n_hydra
        self.head = nn.Linear(self.n_features, self.n_classes)
        self.register_buffer("feat_shift", torch.zeros(self.n_features))
        self.register_buffer("feat_scale", torch.ones(self.n_features))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, n_features)`` of windows ``(B, time, channels)``."""
        return self._scale_hydra(self._raw_features(x))

    def _raw_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.stream is not None:
            x = self.stream(x)  # (B, T, C) -> (B, T, C * len(streams) [+ valid])
        xc = x.transpose(1, 2).contiguous()  # (B, T, C) -> (B, C, T)
        parts = []
        if self.rocket is not None:
            parts.append(self.rocket(xc))
        if self.rocket_diff is not None:
            parts.append(self.rocket_diff(xc[..., 1:] - xc[..., :-1]))
        if self.hydra is not None:
            parts.append(self.hydra(xc))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def _scale_hydra(self, f: torch.Tensor) -> torch.Tensor:
        if self.hydra is None:
            return f
        h = self.hydra.scale(f[:, self.n_rocket :])
        return h if self.n_rocket == 0 else torch.cat([f[:, : self.n_rocket], h], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if not self.closed_form:
            f = (f - self.feat_shift) / self.feat_scale
        return self.head(f)

    @torch.no_grad()
    def fit_init(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Fit biases (and the hydra scaler) on training windows ``X`` ``(N, T, C)``; with the
        ridge head also fit the head and return the training logits."""
        dev = self.head.weight.device
        gen = torch.Generator().manual_seed(self.seed)
        xs = X.to(dev, torch.float32)
        if self.stream is not None:  # skeleton windows: small enough to transform at once
            self.stream.fit(xs)
            xs = self.stream(xs)
        xc = xs.transpose(1, 2).contiguous()  # (N, T, C) -> (N, C, T)
        del xs
        if self.rocket is not None:
            self.rocket.fit_biases(xc, gen)
        if self.rocket_diff is not None:
            self.rocket_diff.fit_biases(xc[..., 1:] - xc[..., :-1], gen)
        del xc
        n = len(X)
        Z = torch.empty(n, self.n_features, device=dev)
        for i in range(0, n, self.batch_size):
            Z[i : i + self.batch_size] = self._raw_features(X[i : i + self.batch_size].to(dev))
        if self.hydra is not None:
            self.hydra.fit_scaler(Z[:, self.n_rocket :])
            for i in range(0, n, self.batch_size):
                sl = Z[i : i + self.batch_size, self.n_rocket :]
                sl.copy_(self.hydra.scale(sl))
        # the MiniRocket / MultiRocket features are standardised, the sparse-scaled Hydra ones not
        center = torch.zeros(self.n_features, dtype=torch.float64, device=dev)
        scale = torch.ones(self.n_features, dtype=torch.float64, device=dev)
        if self.n_rocket:
            m = _column_mean(Z[:, : self.n_rocket])
            var = torch.zeros_like(m)
            for i in range(0, n, 4096):
                var += ((Z[i : i + 4096, : self.n_rocket].double() - m) ** 2).sum(0)
            sd = (var / max(n, 1)).sqrt()
            center[: self.n_rocket] = m
            scale[: self.n_rocket] = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        if not self.closed_form:
            self.feat_shift.copy_(center.float())
            self.feat_scale.copy_(scale.float())
            return None
        W, b, alpha, logits = ridge_loo(Z, y, self.n_classes, self.alphas, center, scale,
                                        calibrate=self.calibrate)
        self.head.weight.copy_(W)
        self.head.bias.copy_(b)
        self.ridge_alpha = alpha
        log.info("%s: ridge head on %d windows x %d features, alpha %.4g chosen by "
                 "leave-one-out", self.registry_name, n, self.n_features, alpha)
        return logits


class MiniRocket(_RocketModel):
    """MiniRocket (Dempster et al., KDD 2021): PPV of 84 fixed kernels at many dilations and
    biases; ridge head fitted in closed form (or trained by SGD with ``head="sgd"``).

    Args:
        num_features: about this many features (84 kernels x biases per kernel).
        max_dilations: at most this many dilations per kernel.
        head: ``"ridge"`` (closed form, leave-one-out alpha) or ``"sgd"`` (trained by epochs).
        alphas: the ridge grid (default ``logspace(-3, 3, 10)``).
        seed: channel combinations and the training windows the biases come from.
        batch_size: windows per feature batch in :meth:`fit_init` (64: the per-batch
            intermediates stay in cache; about 1.3x the throughput of 256 on UCI HAR here).
        calibrate: scale the ridge head by a temperature fitted on its leave-one-out
            predictions, so its softmax gives calibrated probabilities (see
            :func:`ridge_loo`); classes are unaffected.
        skeleton: the dataset's ``SkeletonInfo.to_dict()`` (given by the pipeline on skeleton
            datasets; None on sensor data).
        streams: what the kernels see on skeleton windows, ``+``-joined: ``joint`` (the
            coordinates, the default), ``bone``, ``motion`` and ``limb`` vectors of every
            joint and ``ends``, the vectors between the skeleton's extremities (see
            :class:`~harkit.models.skeleton.SkeletonStreams`), e.g. ``joint+bone+motion``
            or ``joint+limb+ends``.
    """

    registry_name = "minirocket"

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 num_features: int = 10_000, max_dilations: int = 32, head: str = "ridge",
                 alphas: list[float] | None = None, seed: int = 0,
                 batch_size: int = 64, calibrate: bool = True,
                 skeleton: dict[str, Any] | None = None, streams: str = "joint") -> None:
        stream, width, skeleton = _input_streams(n_channels, skeleton, streams)
        super().__init__(n_channels, n_classes, window_len, num_features=num_features,
                         max_dilations=max_dilations, head=head, alphas=alphas, seed=seed,
                         batch_size=batch_size, calibrate=calibrate, skeleton=skeleton,
                         streams=streams)
        self.stream = stream
        gen = torch.Generator().manual_seed(seed)
        per_kernel = max(num_features // N_KERNELS, 1)
        self.rocket = RocketBlock(width, window_len, per_kernel, max_dilations, "ppv", gen)
        self.rocket_diff = None
        self.hydra = None
        self._setup(head, alphas, batch_size, seed, calibrate)


class MultiRocket(_RocketModel):
    """MultiRocket (Tan et al., DMKD 2022): MiniRocket kernels on the windows and their first
    differences, four pooling operators (PPV, LSPV, MPV, MIPV) per bias.

    Args:
        num_features: about this many features in all (2 representations x 4 operators).
        max_dilations, head, alphas, seed, batch_size, calibrate, skeleton, streams: as
            :class:`MiniRocket`.
    """

    registry_name = "multirocket"

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 num_features: int = 50_000, max_dilations: int = 32, head: str = "ridge",
                 alphas: list[float] | None = None, seed: int = 0,
                 batch_size: int = 128, calibrate: bool = True,
                 skeleton: dict[str, Any] | None = None, streams: str = "joint") -> None:
        stream, width, skeleton = _input_streams(n_channels, skeleton, streams)
        super().__init__(n_channels, n_classes, window_len, num_features=num_features,
                         max_dilations=max_dilations, head=head, alphas=alphas, seed=seed,
                         batch_size=batch_size, calibrate=calibrate, skeleton=skeleton,
                         streams=streams)
        self.stream = stream
        gen = torch.Generator().manual_seed(seed)
        per_kernel = max(num_features // (8 * N_KERNELS), 1)
        self.rocket = RocketBlock(width, window_len, per_kernel, max_dilations, "multi", gen)
        self.rocket_diff = RocketBlock(width, window_len - 1, per_kernel, max_dilations,
                                       "multi", gen)
        self.hydra = None
        self._setup(head, alphas, batch_size, seed, calibrate)


class Hydra(_RocketModel):
    """Hydra (Dempster et al., DMKD 2023): counts of competing random kernels, sparse-scaled.

    Args:
        k: kernels per group.
        g: groups per dilation (half on the windows, half on their differences).
        max_channels: channels summed per group at most (multivariate).
        head, alphas, seed, batch_size, calibrate, skeleton, streams: as
            :class:`MiniRocket`.
    """

    registry_name = "hydra"

    def __init__(self, n_channels: int, n_classes: int, window_len: int, k: int = 8,
                 g: int = 64, max_channels: int = 8, head: str = "ridge",
                 alphas: list[float] | None = None, seed: int = 0,
                 batch_size: int = 256, calibrate: bool = True,
                 skeleton: dict[str, Any] | None = None, streams: str = "joint") -> None:
        stream, width, skeleton = _input_streams(n_channels, skeleton, streams)
        super().__init__(n_channels, n_classes, window_len, k=k, g=g, max_channels=max_channels,
                         head=head, alphas=alphas, seed=seed, batch_size=batch_size,
                         calibrate=calibrate, skeleton=skeleton, streams=streams)
        self.stream = stream
        gen = torch.Generator().manual_seed(seed)
        self.rocket = None
        self.rocket_diff = None
        self.hydra = HydraBlock(width, window_len, k, g, max_channels, gen)
        self._setup(head, alphas, batch_size, seed, calibrate)


class MultiRocketHydra(_RocketModel):
    """MultiRocket features (standardised) concatenated with Hydra features (sparse-scaled)
    under one ridge head, like aeon's MultiRocketHydraClassifier.

    Args:
        num_features: MultiRocket's feature budget.
        k, g, max_channels: Hydra's settings.
        max_dilations, head, alphas, seed, batch_size, calibrate, skeleton, streams: as
            :class:`MiniRocket`.
    """

    registry_name = "multirocket-hydra"

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 num_features: int = 50_000, max_dilations: int = 32, k: int = 8, g: int = 64,
                 max_channels: int = 8, head: str = "ridge", alphas: list[float] | None = None,
                 seed: int = 0, batch_size: int = 128, calibrate: bool = True,
                 skeleton: dict[str, Any] | None = None, streams: str = "joint") -> None:
        stream, width, skeleton = _input_streams(n_channels, skeleton, streams)
        super().__init__(n_channels, n_classes, window_len, num_features=num_features,
                         max_dilations=max_dilations, k=k, g=g, max_channels=max_channels,
                         head=head, alphas=alphas, seed=seed, batch_size=batch_size,
                         calibrate=calibrate, skeleton=skeleton, streams=streams)
        self.stream = stream
        gen = torch.Generator().manual_seed(seed)
        per_kernel = max(num_features // (8 * N_KERNELS), 1)
        self.rocket = RocketBlock(width, window_len, per_kernel, max_dilations, "multi", gen)
        self.rocket_diff = RocketBlock(width, window_len - 1, per_kernel, max_dilations,
                                       "multi", gen)
        self.hydra = HydraBlock(width, window_len, k, g, max_channels, gen)
        self._setup(head, alphas, batch_size, seed, calibrate)


def _register(cls: type[_RocketModel], name: str, description: str,
              tiny: dict[str, Any]) -> None:
    MODELS.register(name, description=description, variants={"tiny": tiny},
                    layout=True)(cls)


_register(MiniRocket, "minirocket", "MiniRocket: 84 fixed kernels, PPV features, closed-form "
          "ridge head (num_features, max_dilations, head, seed)",
          {"num_features": 168, "max_dilations": 4})
_register(MultiRocket, "multirocket", "MultiRocket: MiniRocket kernels on series and "
          "differences, 4 pooling operators, closed-form ridge head (num_features, head, seed)",
          {"num_features": 672, "max_dilations": 4, "batch_size": 64})
_register(Hydra, "hydra", "Hydra: competing random kernel groups, sparse-scaled counts, "
          "closed-form ridge head (k, g, head, seed)", {"k": 4, "g": 4})
_register(MultiRocketHydra, "multirocket-hydra", "MultiRocket + Hydra features under one "
          "closed-form ridge head (num_features, k, g, head, seed)",
          {"num_features": 672, "max_dilations": 4, "k": 4, "g": 4, "batch_size": 64})
