"""Training-only augmentations on batches of normalised windows ``(batch, time, channels)``."""

from __future__ import annotations

import math
import re

import torch

from harkit.config import AugmentConfig


def xyz_groups(channels: list[str]) -> list[tuple[int, int, int]]:
    """Indices of channel triplets ``<prefix>_x, <prefix>_y, <prefix>_z`` (one 3-axis sensor).

    Example:
        >>> xyz_groups(["acc_x", "acc_y", "acc_z", "hr", "gyro_x", "gyro_y", "gyro_z"])
        [(0, 1, 2), (4, 5, 6)]
    """
    index = {c: i for i, c in enumerate(channels)}
    groups = []
    for c in channels:
        m = re.fullmatch(r"(.*)[_.\- ]x", c, flags=re.IGNORECASE)
        if not m:
            continue
        stem, sep = m.group(1), c[len(m.group(1))]
        names = [f"{stem}{sep}{a}" for a in ("x", "y", "z")]
        names_u = [f"{stem}{sep}{a}" for a in ("X", "Y", "Z")]
        for cand in (names, names_u):
            if all(n in index for n in cand):
                groups.append(tuple(index[n] for n in cand))
                break
    return groups  # type: ignore[return-value]


def random_rotations(n: int, max_deg: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` rotation matrices ``(n, 3, 3)`` from Euler angles uniform in +-``max_deg``."""
    ang = (torch.rand(n, 3, generator=generator) * 2 - 1) * math.radians(max_deg)
    c, s = torch.cos(ang), torch.sin(ang)
    one, zero = torch.ones(n), torch.zeros(n)
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1)
    return rz.view(n, 3, 3) @ ry.view(n, 3, 3) @ rx.view(n, 3, 3)


class Augmenter:
    """Applies the configured augmentations to a normalised batch.

    Rotation acts on the physical signal: each window is de-normalised, every xyz sensor
    triplet is rotated by the same random rotation (one per window, as if the device sat
    slightly differently on the body) and the window is normalised again. Scale and jitter
    act in normalised units.

    Args:
        cfg: which augmentations and how strong.
        mean, std: the normaliser's per-channel statistics (identity when None).
        groups: xyz triplets to rotate (see :func:`xyz_groups`).
    """

    def __init__(self, cfg: AugmentConfig, mean: torch.Tensor | None, std: torch.Tensor | None,
                 groups: list[tuple[int, int, int]]) -> None:
        self.cfg = cfg
        self.mean = mean
        self.std = std
        self.groups = groups

    @property
    def active(self) -> bool:
        c = self.cfg
        return c.scale > 0 or c.jitter > 0 or (c.rotate_deg > 0 and bool(self.groups))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c = self.cfg
        b, _, n_ch = x.shape
        if c.rotate_deg > 0 and self.groups:
            raw = x if self.mean is None or self.std is None else x * self.std + self.mean
            rot = random_rotations(b, c.rotate_deg, generator).transpose(1, 2)  # (B, 3, 3)
            raw = raw.clone()
            for g in self.groups:
                idx = list(g)
                raw[:, :, idx] = raw[:, :, idx] @ rot  # (B, T, 3) @ (B, 3, 3): row vectors
            x = raw if self.mean is None or self.std is None else (raw - self.mean) / self.std
        if c.scale > 0:
            x = x * (1 + c.scale * torch.randn(b, 1, n_ch, generator=generator))
        if c.jitter > 0:
            x = x + c.jitter * torch.randn(x.shape, generator=generator)
        return x
