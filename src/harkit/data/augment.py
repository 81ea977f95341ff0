"""Training-only augmentations on batches of normalised windows ``(batch, time, channels)``.

Sensor windows get rotations of their xyz triplets, per-channel gains and jitter; skeleton
windows (a dataset with a :class:`~harkit.data.skeleton.SkeletonInfo`) get transforms of the
whole skeleton's coordinates instead (see :class:`Augmenter`).
"""

from __future__ import annotations

import math
import re

import torch

from harkit.config import AugmentConfig
from harkit.data.skeleton import SkeletonInfo, unflatten
from harkit.errors import ConfigError

COORDINATE_DIMS = ("x", "y", "z")
SKELETON_ONLY = ("shear", "shift", "joint_dropout", "time_crop")


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


def random_rotations_2d(n: int, max_deg: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` rotation matrices ``(n, 2, 2)`` of the x-y plane (about z), angles uniform in
    +-``max_deg``."""
    ang = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_deg)
    c, s = torch.cos(ang), torch.sin(ang)
    return torch.stack([c, -s, s, c], 1).view(n, 2, 2)


def _check(cfg: AugmentConfig) -> None:
    for name in ("scale", "jitter", "rotate_deg", "shear", "shift"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"train.augment.{name}={getattr(cfg, name)}: expected >= 0")
    for name in ("joint_dropout", "time_crop"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"train.augment.{name}={getattr(cfg, name)}: expected a "
                              "fraction in [0, 1)")


class Augmenter:
    """Applies the configured augmentations to a normalised batch (training batches only).

    Sensor windows: rotation acts on the physical signal: each window is de-normalised, every
    xyz sensor triplet is rotated by the same random rotation (one per window, as if the
    device sat slightly differently on the body) and the window is normalised again. Scale
    and jitter act in normalised units.

    Skeleton windows (``skeleton`` given): each sequence is de-normalised and unflattened to
    ``(time, bodies, joints, dims)``; then, with one random draw per sequence, a
    ``time_crop`` (a random part of the valid frames stretched back to their length), one
    linear map of the coordinates about the body centre (the mean of the layout's centre
    joints over the sequence) made of an isotropic ``scale``, a ``shear`` and a rotation
    (3D: Euler angles within +-``rotate_deg``; 2D: about z), a ``shift`` (in units of each
    coordinate's std) and ``joint_dropout`` (each joint of each frame set to 0, confidence
    included, as a missed detection); re-normalised, plus ``jitter`` on the coordinates.
    Geometric transforms act on the dims named x, y, z only (a confidence is left alone);
    padded frames, the ``valid`` channel and absent joints (all values 0) are not changed.

    Args:
        cfg: which augmentations and how strong.
        mean, std: the normaliser's per-channel statistics (identity when None).
        groups: xyz triplets to rotate (see :func:`xyz_groups`; sensor windows).
        skeleton: how skeleton windows unflatten (None for sensor windows).

    Raises:
        ConfigError: a value out of range, or a skeleton-only option on sensor windows.
    """

    def __init__(self, cfg: AugmentConfig, mean: torch.Tensor | None, std: torch.Tensor | None,
                 groups: list[tuple[int, int, int]], skeleton: SkeletonInfo | None = None
                 ) -> None:
        _check(cfg)
        if skeleton is None:
            for name in SKELETON_ONLY:
                if getattr(cfg, name) > 0:
                    raise ConfigError(f"train.augment.{name} applies to skeleton datasets "
                                      "only; this dataset has sensor channels")
        self.cfg = cfg
        self.mean = mean
        self.std = std
        self.groups = groups
        self.skeleton = skeleton
        self.coord_dims: list[int] = []
        if skeleton is not None:
            self.coord_dims = [i for i, n in enumerate(skeleton.names_of_dims())
                               if n.lower() in COORDINATE_DIMS]

    @property
    def active(self) -> bool:
        c = self.cfg
        if self.skeleton is not None:
            geometric = bool(self.coord_dims) and (
                c.scale > 0 or c.shear > 0 or c.shift > 0
                or (c.rotate_deg > 0 and len(self.coord_dims) >= 2))
            return geometric or c.jitter > 0 or c.joint_dropout > 0 or c.time_crop > 0
        return c.scale > 0 or c.jitter > 0 or (c.rotate_deg > 0 and bool(self.groups))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.skeleton is not None:
            return self._skeleton(x, self.skeleton, generator)
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

    def _skeleton(self, x: torch.Tensor, info: SkeletonInfo,
                  generator: torch.Generator) -> torch.Tensor:
        """The skeleton augmentations of a normalised batch ``(B, T, C)``."""
        c = self.cfg
        b, t, _ = x.shape
        mean, std = self.mean, self.std
        if mean is None or std is None:
            mean, std = torch.zeros(x.shape[2]), torch.ones(x.shape[2])
        raw = x * std + mean  # physical units
        coords = unflatten(raw, info).clone()  # (B, T, C) -> (B, T, M, J, D)
        if info.valid_channel:
            valid = x[..., -1] > 0.5  # (B, T)
        else:
            valid = torch.ones(b, t, dtype=torch.bool)
        if c.time_crop > 0:
            coords = self._time_crop(coords, valid.sum(1), generator)
        # (B, T, M, J): missing joints / bodies are all zero (up to the normaliser's rounding)
        tol = 1e-5 * unflatten(std, info).abs()  # (M, J, D)
        present = (coords.abs() > tol).any(-1)
        cd = self.coord_dims
        if cd and (c.scale > 0 or c.shear > 0 or c.shift > 0 or c.rotate_deg > 0):
            coords[..., cd] = self._affine(coords[..., cd], present & valid[:, :, None, None],
                                           info, generator)  # (B, T, M, J, K)
        coords = coords * present[..., None]  # absent joints stay absent
        if c.joint_dropout > 0:
            keep = torch.rand(coords.shape[:4], generator=generator) >= c.joint_dropout
            coords = coords * keep[..., None]  # (B, T, M, J, D)
        raw = torch.cat([coords.reshape(b, t, -1), raw[..., info.n_coords:]], dim=2)
        out = (raw - mean) / std
        if c.jitter > 0 and cd:
            dim_of_channel = torch.arange(info.n_coords) % info.dims
            on = torch.zeros(x.shape[2], dtype=x.dtype)
            on[: info.n_coords] = torch.isin(dim_of_channel, torch.tensor(cd)).to(x.dtype)
            out = out + c.jitter * torch.randn(x.shape, generator=generator) * on
        out = torch.where(valid[..., None], out, x)  # padded frames as they were
        out[..., info.n_coords:] = x[..., info.n_coords:]  # the valid channel, exactly
        return out

    def _time_crop(self, coords: torch.Tensor, lengths: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
        """Crop each sequence's valid frames ``lengths`` ``(B,)`` to a random fraction in
        ``[1 - time_crop, 1]`` at a random start and stretch the crop back over them (linear
        interpolation); ``coords`` is ``(B, T, M, J, D)``, padded frames are kept."""
        b, t = coords.shape[:2]
        n = lengths.to(coords.dtype)  # (B,)
        kept = (n * (1 - self.cfg.time_crop * torch.rand(b, generator=generator))).clamp_min(1)
        start = (n - kept) * torch.rand(b, generator=generator)  # (B,)
        steps = torch.arange(t, dtype=coords.dtype)  # (T,)
        rate = (kept - 1) / (n - 1).clamp_min(1)  # source frames per output frame
        pos = start[:, None] + steps[None, :] * rate[:, None]  # (B, T) source positions
        pos = torch.minimum(pos, (n - 1).clamp_min(0)[:, None])
        lo = pos.floor().long()  # (B, T)
        hi = torch.minimum(lo + 1, (lengths - 1).clamp_min(0)[:, None])
        frac = (pos - lo.to(coords.dtype))[:, :, None]  # (B, T, 1)
        flat = coords.reshape(b, t, -1)  # (B, T, M, J, D) -> (B, T, M*J*D)
        f = flat.shape[2]
        a = flat.gather(1, lo[:, :, None].expand(b, t, f))
        z = flat.gather(1, hi[:, :, None].expand(b, t, f))
        out = a + (z - a) * frac  # (B, T, M*J*D)
        in_range = steps[None, :, None] < n[:, None, None]  # (B, T, 1)
        return torch.where(in_range, out, flat).reshape(coords.shape)

    def _affine(self, p: torch.Tensor, real: torch.Tensor, info: SkeletonInfo,
                generator: torch.Generator) -> torch.Tensor:
        """Scale, shear, rotate (about the body centre) and shift coordinates ``p``
        ``(B, T, M, J, K)``; ``real`` ``(B, T, M, J)`` marks the entries the centre is the
        mean of."""
        c = self.cfg
        b, k = p.shape[0], p.shape[-1]
        centre_idx = list(info.get_layout.centre)
        w = real[:, :, :, centre_idx].to(p.dtype)[..., None]  # (B, T, M, Jc, 1)
        centre = ((p[:, :, :, centre_idx] * w).sum((1, 2, 3))
                  / w.sum((1, 2, 3)).clamp_min(1))  # (B, K)
        lin = torch.eye(k).expand(b, k, k).clone()  # (B, K, K), acting on column vectors
        if c.shear > 0:
            off = (torch.rand(b, k, k, generator=generator) * 2 - 1) * c.shear
            lin = lin + off * (1 - torch.eye(k))
        if c.rotate_deg > 0 and k == 3:
            lin = random_rotations(b, c.rotate_deg, generator) @ lin
        elif c.rotate_deg > 0 and k == 2:
            lin = random_rotations_2d(b, c.rotate_deg, generator) @ lin
        if c.scale > 0:
            lin = lin * (1 + c.scale * torch.randn(b, 1, 1, generator=generator))
        offset = centre
        if c.shift > 0:
            spread = torch.ones(k)
            if self.std is not None:  # each coordinate's std, averaged over joints and bodies
                per_dim = self.std[: info.n_coords].reshape(-1, info.dims)  # (M*J, D)
                spread = per_dim[:, self.coord_dims].mean(0)  # (K,)
            offset = offset + (torch.rand(b, k, generator=generator) * 2 - 1) * c.shift * spread
        centred = p - centre[:, None, None, None, :]  # (B, T, M, J, K)
        # row vectors: p' = p @ lin^T, one matrix per sequence
        moved = torch.einsum("btmjk,blk->btmjl", centred, lin)
        return moved + offset[:, None, None, None, :]
