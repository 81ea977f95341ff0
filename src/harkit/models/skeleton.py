"""Skeleton action recognition models: ``pose-lstm``, ``two-stream-rnn`` and ``stgcn``.

Every model takes the flattened sensor-style windows ``(batch, time, channels)`` that a
skeleton :class:`~harkit.data.dataset.WindowedDataset` holds and unflattens them internally
to ``(batch, time, bodies, joints, dims)`` with the ``skeleton`` hyperparameter (a
:meth:`SkeletonInfo.to_dict <harkit.data.skeleton.SkeletonInfo.to_dict>` dict; the layout is
stored in full, so a checkpoint rebuilds without the layout registry). Shared conventions:

* **valid channel**: when the skeleton has one (sequences padded to the window length), the
  padded frames are zeroed on input and every model reads only the valid frames (the last
  valid step of a recurrent model, a masked mean over time otherwise), so whatever the padding
  holds cannot change the logits. Valid frames are a prefix of the window (as
  :func:`~harkit.data.skeleton.sequences_to_windows` pads).
* **bodies**: every body goes through the same network (shared weights); the per-body
  features are averaged before the classifier (two-person actions of NTU RGB+D included).
* **sensor data** (``skeleton=None``): the models still train on plain channels; each
  docstring says how it reads them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from harkit.data.skeleton import (
    Layout,
    SkeletonInfo,
    extremities,
    get_layout,
    parents,
    part_roots,
    unflatten,
)
from harkit.models import MODELS
from harkit.models.base import HarModel, init_recurrent


def sensor_skeleton(n_channels: int, as_joints: bool = True) -> SkeletonInfo:
    """The skeleton a model assumes for sensor windows: one body and no bones, with the
    channels as ``n_channels`` one-dimensional joints (``as_joints``) or as the ``n_channels``
    dims of a single joint."""
    n = n_channels if as_joints else 1
    layout = {"name": "channels", "joints": [f"ch{i}" for i in range(n)], "edges": [],
              "parts": {}, "centre": [0]}
    return SkeletonInfo(layout, bodies=1, dims=1 if as_joints else n_channels)


def resolve_skeleton(skeleton: dict[str, Any] | SkeletonInfo | None,
                     n_channels: int) -> SkeletonInfo | None:
    """``skeleton`` as a SkeletonInfo with its layout in full (None stays None), checked
    against the input width.

    Raises:
        ValueError: the skeleton's ``bodies * joints * dims (+1 valid)`` is not ``n_channels``.
    """
    if skeleton is None:
        return None
    info = skeleton if isinstance(skeleton, SkeletonInfo) else SkeletonInfo.from_dict(skeleton)
    info = replace(info, layout=get_layout(info.layout).to_dict())
    if info.n_channels != n_channels:
        raise ValueError(
            f"skeleton: {info.bodies} bodies x {info.n_joints} joints x {info.dims} dims"
            f"{' + valid' if info.valid_channel else ''} = {info.n_channels} channels, but the "
            f"input has n_channels={n_channels}")
    return info


class SkeletonModel(HarModel):
    """Base of the skeleton models: resolves the ``skeleton`` argument (the dataset's
    ``SkeletonInfo.to_dict()``, or None on sensor data) into :attr:`info`, the skeleton the
    model reads its windows with, and stores it in the config with its layout in full, so a
    checkpoint rebuilds without the layout registry.

    Subclasses call ``super().__init__(n_channels, n_classes, window_len, skeleton,
    **hparams)`` with their other constructor arguments as ``hparams``.
    """

    # On sensor data (skeleton=None): the channels as one-dimensional joints without bones
    # (True) or as the values of one joint (False; see :func:`sensor_skeleton`).
    sensor_as_joints: bool = True

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 skeleton: dict[str, Any] | SkeletonInfo | None, **hparams: Any) -> None:
        info = resolve_skeleton(skeleton, n_channels)
        super().__init__(n_channels, n_classes, window_len,
                         skeleton=None if info is None else info.to_dict(), **hparams)
        self.info = info or sensor_skeleton(n_channels, self.sensor_as_joints)


def split_input(x: torch.Tensor, info: SkeletonInfo) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(B, T, C)`` -> coordinates ``(B, T, M, J, D)`` with padded frames zeroed, and the
    valid-frame mask ``(B, T)`` (None without a valid channel)."""
    coords = unflatten(x, info)  # (B, T, C) -> (B, T, M, J, D)
    if not info.valid_channel:
        return coords, None
    mask = (x[..., -1] > 0.5).to(x.dtype)  # (B, T)
    return coords * mask[:, :, None, None, None], mask


def per_body(coords: torch.Tensor, mask: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Bodies into the batch: ``(B, T, M, J, D)`` -> ``(B*M, T, J, D)``, mask ``(B, T)`` ->
    ``(B*M, T)`` (body index minor, so ``view(B, M, ...)`` undoes it)."""
    b, t, m, j, d = coords.shape
    x = coords.permute(0, 2, 1, 3, 4).reshape(b * m, t, j, d)  # (B, T, M, J, D) -> (B*M, T, J, D)
    if mask is None:
        return x, None
    return x, mask[:, None, :].expand(b, m, t).reshape(b * m, t)  # (B, T) -> (B*M, T)


def last_valid(out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The output at the last valid step: ``(N, T, H)`` -> ``(N, H)`` (the last step without
    a mask). A causal RNN's output there has seen the valid frames only."""
    if mask is None:
        return out[:, -1]
    steps = torch.arange(out.shape[1], device=out.device, dtype=mask.dtype)
    idx = (mask * steps).amax(dim=1).long()  # (N,): index of the last valid frame
    return out.gather(1, idx[:, None, None].expand(-1, 1, out.shape[2])).squeeze(1)  # (N, H)


def masked_time_mean(h: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean of ``h`` over its time axis ``dim`` counting valid steps only; ``mask`` is
    ``(N, T)`` and broadcast to ``h`` with the time axis at ``dim``."""
    if mask is None:
        return h.mean(dim=dim)
    shape = [1] * h.dim()
    shape[0], shape[dim] = mask.shape[0], mask.shape[1]
    w = mask.reshape(shape)
    return (h * w).sum(dim=dim) / w.sum(dim=dim).clamp_min(1.0)


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


# --------------------------------------------------------------------------------------------
# pose-lstm


class PoseLSTM(SkeletonModel):
    """Keypoint LSTM, as used on OpenPose keypoints of Berkeley MHAD: each frame's joints
    are flattened (18 COCO joints x (x, y) = 36 inputs there), projected by a ReLU layer,
    fed to two stacked LSTMs (34 units), and the output at the last (valid) frame goes to a
    linear classifier.

    Input ``(batch, time, channels)`` (any layout: ``bodies * joints * dims`` [+ valid]);
    output ``(batch, n_classes)`` logits. With ``skeleton=None`` it is a plain LSTM with a
    ReLU input projection over the sensor channels.

    Args:
        skeleton: the dataset's ``SkeletonInfo.to_dict()`` (None for sensor data).
        hidden: projection width and LSTM units.
        layers: stacked LSTMs.
        dropout: dropout between the LSTMs and before the classifier.

    Example:
        >>> sk = SkeletonInfo("coco18", bodies=1, dims=2).to_dict()
        >>> m = PoseLSTM(n_channels=36, n_classes=6, window_len=32, skeleton=sk)
        >>> m(torch.zeros(2, 32, 36)).shape
        torch.Size([2, 6])
    """

    registry_name = "pose-lstm"

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 skeleton: dict[str, Any] | None = None, hidden: int = 34, layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__(n_channels, n_classes, window_len, skeleton, hidden=hidden,
                         layers=layers, dropout=dropout)
        _check_positive(hidden=hidden, layers=layers)
        _check_dropout(dropout)
        per_frame = self.info.n_joints * self.info.dims
        self.proj = nn.Linear(per_frame, hidden)  # per frame: (N, T, J*D) -> (N, T, H)
        self.rnn = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        coords, mask = split_input(x, self.info)  # (B, T, M, J, D), (B, T)
        frames, mask = per_body(coords, mask)  # (B*M, T, J, D), (B*M, T)
        frames = frames.flatten(2)  # (B*M, T, J, D) -> (B*M, T, J*D)
        out, _ = self.rnn(torch.relu(self.proj(frames)))  # (B*M, T, H)
        h = last_valid(out, mask).reshape(b, self.info.bodies, -1).mean(1)  # (B, M, H) -> (B, H)
        return self.head(self.drop(h))


MODELS.register("pose-lstm", description="keypoint LSTM (Berkeley MHAD OpenPose): ReLU "
                "projection + stacked LSTM over per-frame joints (skeleton, hidden, layers)",
                skeleton=True, variants={"tiny": {"hidden": 8, "layers": 1}})(PoseLSTM)


# --------------------------------------------------------------------------------------------
# two-stream-rnn


def traversal_order(layout: Layout) -> list[int]:
    """Joint sequence of a depth-first traversal of the bone graph from the centre joint,
    revisiting each joint on the way back from every child (Wang & Wang 2017), so that
    neighbouring steps are always joined by a bone. A tree of ``n`` joints gives
    ``2n - 1`` steps; joints unreachable from the centre start further traversals (in
    centre, then index order); children are taken in the order of ``layout.edges``.

    Example:
        >>> lay = Layout("t", ("root", "a", "b", "c"), ((0, 1), (1, 2), (0, 3)))
        >>> traversal_order(lay)
        [0, 1, 2, 1, 0, 3, 0]
    """
    adj = layout.neighbours()
    seen: set[int] = set()
    order: list[int] = []
    stack: list[tuple[int, int]] = []  # (joint, next neighbour to try): iterative DFS
    for root in [*layout.centre, *range(layout.n_joints)]:
        if root in seen:
            continue
        seen.add(root)
        order.append(root)
        stack.append((root, 0))
        while stack:
            j, k = stack.pop()
            while k < len(adj[j]) and adj[j][k] in seen:
                k += 1
            if k == len(adj[j]):
                if stack:
                    order.append(stack[-1][0])  # back to the parent
                continue
            child = adj[j][k]
            stack.append((j, k + 1))
            seen.add(child)
            order.append(child)
            stack.append((child, 0))
    return order


def body_parts(layout: Layout) -> list[tuple[int, ...]]:
    """The layout's body parts in order, plus one part of any joints no part holds (the
    whole body as one part when the layout declares none)."""
    parts = [tuple(p) for p in layout.parts.values()]
    covered = {j for p in parts for j in p}
    rest = tuple(j for j in range(layout.n_joints) if j not in covered)
    return [*parts, rest] if rest else parts


def chain_order(layout: Layout) -> list[int]:
    """Joint sequence of the concatenated body-part chains (:func:`body_parts` order)."""
    return [j for p in body_parts(layout) for j in p]


TEMPORAL_KINDS = ("stacked", "hierarchical")
SPATIAL_KINDS = ("chain", "traversal")
STREAMS = ("both", "temporal", "spatial")
FUSIONS = ("logprob", "logits")


class TwoStreamRNN(SkeletonModel):
    """Two-stream RNN (Wang & Wang, CVPR 2017, "Modeling Temporal Dynamics and Spatial
    Configurations of Actions Using Two-Stream Recurrent Neural Networks").

    * Temporal stream: ``temporal="stacked"``: stacked LSTMs over each frame's concatenated
      joints; ``"hierarchical"``: one LSTM per body part (``layout.parts``, plus a part of
      any uncovered joints) over that part's joints, their per-frame outputs concatenated and
      fed to a body-level LSTM. The last valid step is classified.
    * Spatial stream: the window is cut into clips of ``clip_len`` frames; in each clip the
      joints are taken as a sequence in ``spatial="chain"`` order (the body-part chains one
      after another) or ``"traversal"`` order (:func:`traversal_order`), each step's input
      being that joint's coordinates over the clip's frames; an LSTM runs over the joint
      sequence and its last output is averaged over the clips holding valid frames.
    * Fusion: ``fusion="logprob"`` (default) returns ``w * log_softmax(temporal) + (1 - w) *
      log_softmax(spatial)`` with ``w = temporal_weight``: the paper's weighted fusion of the
      two streams' class scores taken in log space (a product of the streams' probabilities,
      which the loss's own softmax renormalises; no probabilities leave the model);
      ``"logits"`` returns the weighted sum of the raw logits. ``streams`` selects one stream
      alone (its logits are returned unchanged).

    The paper's 3D rotation augmentation is ``train.augment.rotate_deg`` on a skeleton
    dataset. Input ``(batch, time, channels)``, output ``(batch, n_classes)`` logits. With
    ``skeleton=None`` the channels are ``C`` one-dimensional joints without bones: the
    temporal stream is an LSTM over the channels (hierarchical: one part), the spatial stream
    an LSTM over the sequence of channels, each step a channel's values over a clip.

    Args:
        skeleton: the dataset's ``SkeletonInfo.to_dict()`` (None for sensor data).
        temporal: ``stacked`` or ``hierarchical``.
        spatial: ``chain`` or ``traversal``.
        streams: ``both``, ``temporal`` or ``spatial``.
        hidden: LSTM units of the stacked / body-level temporal LSTM and the spatial LSTM.
        layers: stacked LSTM layers in each stream (body level for ``hierarchical``).
        part_hidden: units of each body-part LSTM (``hierarchical``).
        clip_len: frames per spatial clip (the window's last clip is zero-padded).
        fusion: ``logprob`` or ``logits``.
        temporal_weight: ``w``, the temporal stream's weight in the fusion (spatial: 1 - w).
        dropout: dropout between stacked LSTMs and before each classifier.
    """

    registry_name = "two-stream-rnn"
    order: torch.Tensor  # buffer: joint index of each spatial step

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 skeleton: dict[str, Any] | None = None, temporal: str = "hierarchical",
                 spatial: str = "traversal", streams: str = "both", hidden: int = 64,
                 layers: int = 2, part_hidden: int = 32, clip_len: int = 10,
                 fusion: str = "logprob", temporal_weight: float = 0.5,
                 dropout: float = 0.2) -> None:
        super().__init__(n_channels, n_classes, window_len, skeleton, temporal=temporal,
                         spatial=spatial, streams=streams, hidden=hidden, layers=layers,
                         part_hidden=part_hidden, clip_len=clip_len, fusion=fusion,
                         temporal_weight=temporal_weight, dropout=dropout)
        for name, value, allowed in (("temporal", temporal, TEMPORAL_KINDS),
                                     ("spatial", spatial, SPATIAL_KINDS),
                                     ("streams", streams, STREAMS), ("fusion", fusion, FUSIONS)):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}: expected one of {allowed}")
        _check_positive(hidden=hidden, layers=layers, part_hidden=part_hidden,
                        clip_len=clip_len)
        _check_dropout(dropout)
        if not 0.0 <= temporal_weight <= 1.0:
            raise ValueError(f"temporal_weight must be in [0, 1], got {temporal_weight!r}")
        layout = self.info.get_layout
        d = self.info.dims
        rnn_drop = dropout if layers > 1 else 0.0
        self.use_temporal = streams in ("both", "temporal")
        self.use_spatial = streams in ("both", "spatial")
        self.hierarchical = temporal == "hierarchical"
        self.fusion = fusion
        self.temporal_weight = temporal_weight
        self.drop = nn.Dropout(dropout)
        if self.use_temporal:
            if self.hierarchical:
                self.parts = body_parts(layout)
                for i, p in enumerate(self.parts):
                    self.register_buffer(f"part{i}", torch.tensor(p, dtype=torch.long),
                                         persistent=False)
                self.part_rnns = nn.ModuleList(
                    nn.LSTM(len(p) * d, part_hidden, batch_first=True) for p in self.parts)
                body_in = part_hidden * len(self.parts)
            else:
                body_in = layout.n_joints * d
            self.temporal_rnn = nn.LSTM(body_in, hidden, num_layers=layers, batch_first=True,
                                        dropout=rnn_drop)
            self.temporal_head = nn.Linear(hidden, n_classes)
        if self.use_spatial:
            order = traversal_order(layout) if spatial == "traversal" else chain_order(layout)
            self.register_buffer("order", torch.tensor(order, dtype=torch.long),
                                 persistent=False)
            self.clip_len = clip_len
            self.spatial_rnn = nn.LSTM(clip_len * d, hidden, num_layers=layers,
                                       batch_first=True, dropout=rnn_drop)
            self.spatial_head = nn.Linear(hidden, n_classes)
        init_recurrent(self)

    def _temporal(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``(N, T, J, D)`` -> body-level features ``(N, H)``."""
        if self.hierarchical:
            outs = []
            for i, rnn in enumerate(self.part_rnns):
                idx: torch.Tensor = getattr(self, f"part{i}")
                part = frames.index_select(2, idx).flatten(2)  # (N, T, P, D) -> (N, T, P*D)
                outs.append(rnn(part)[0])  # (N, T, Hp)
            seq = torch.cat(outs, dim=2)  # (N, T, parts*Hp)
        else:
            seq = frames.flatten(2)  # (N, T, J, D) -> (N, T, J*D)
        out, _ = self.temporal_rnn(seq)  # (N, T, H)
        return last_valid(out, mask)

    def _spatial(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``(N, T, J, D)`` -> features ``(N, H)`` averaged over the valid clips."""
        n, t, j, d = frames.shape
        k = -(-t // self.clip_len)  # clips, the last one zero-padded
        pad = k * self.clip_len - t
        if pad:
            frames = torch.cat([frames, frames.new_zeros(n, pad, j, d)], dim=1)
        clips = frames.reshape(n, k, self.clip_len, j, d)  # (N, K*L, J, D) -> (N, K, L, J, D)
        seq = clips.index_select(3, self.order)  # joints in traversal order: (N, K, L, S, D)
        s = seq.shape[3]
        # one step per joint, its values over the clip's frames: (N, K, L, S, D) ->
        # (N, K, S, L, D) -> (N*K, S, L*D)
        seq = seq.permute(0, 1, 3, 2, 4).reshape(n * k, s, self.clip_len * d)
        out, _ = self.spatial_rnn(seq)  # (N*K, S, H)
        per_clip = out[:, -1].reshape(n, k, -1)  # (N*K, H) -> (N, K, H)
        if mask is None:
            return per_clip.mean(1)
        if pad:
            mask = torch.cat([mask, mask.new_zeros(n, pad)], dim=1)
        clip_valid = mask.reshape(n, k, self.clip_len)[:, :, 0]  # (N, K): clip starts on a valid frame
        return masked_time_mean(per_clip, clip_valid, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m = x.shape[0], self.info.bodies
        coords, mask = split_input(x, self.info)  # (B, T, M, J, D), (B, T)
        frames, mask = per_body(coords, mask)  # (B*M, T, J, D), (B*M, T)
        scores = []
        if self.use_temporal:
            h = self._temporal(frames, mask).reshape(b, m, -1).mean(1)  # (B*M, H) -> (B, H)
            scores.append(self.temporal_head(self.drop(h)))
        if self.use_spatial:
            h = self._spatial(frames, mask).reshape(b, m, -1).mean(1)  # (B*M, H) -> (B, H)
            scores.append(self.spatial_head(self.drop(h)))
        if len(scores) == 1:
            return scores[0]
        zt, zs = scores
        if self.fusion == "logprob":
            zt, zs = torch.log_softmax(zt, dim=1), torch.log_softmax(zs, dim=1)
        return self.temporal_weight * zt + (1.0 - self.temporal_weight) * zs


MODELS.register("two-stream-rnn", description="two-stream RNN (Wang & Wang 2017): "
                "temporal (stacked | hierarchical) + spatial (chain | traversal) LSTMs, fused "
                "scores", skeleton=True,
                variants={"tiny": {"hidden": 8, "layers": 1, "part_hidden": 4,
                                   "clip_len": 4}})(TwoStreamRNN)


# --------------------------------------------------------------------------------------------
# stgcn


PARTITIONS = ("uniform", "distance", "spatial")
# per-joint input features (ST-GCN's ``inputs``, stacked as extra dims of every joint)
INPUTS = ("joint", "bone", "motion", "limb")
# what the flat-channel models (the random-kernel family) can read: the per-joint features
# plus ``ends``, the vectors between every pair of the skeleton's extremities
FLAT_STREAMS = (*INPUTS, "ends")


def parse_streams(streams: str, name: str = "inputs",
                  allowed: tuple[str, ...] = INPUTS) -> list[str]:
    """``"joint+bone"`` -> ``["joint", "bone"]``, checked against ``allowed`` (default
    :data:`INPUTS`).

    Raises:
        ValueError: an unknown or repeated member.
    """
    out = streams.split("+")
    if any(st not in allowed for st in out) or len(set(out)) != len(out):
        raise ValueError(f"{name}={streams!r}: expected distinct members of {allowed} "
                         "joined by '+'")
    return out


def stack_streams(x: torch.Tensor, mask: torch.Tensor | None, streams: list[str],
                  parent: torch.Tensor, has_parent: torch.Tensor,
                  root: torch.Tensor | None = None,
                  has_root: torch.Tensor | None = None) -> torch.Tensor:
    """Per-joint features of frames ``x`` ``(N, T, J, D)`` stacked on the last axis,
    ``(N, T, J, D * len(streams))``: ``joint`` is ``x``; ``bone`` each joint minus its
    ``parent`` (zero where ``has_parent`` is False); ``limb`` each joint minus its body
    part's ``root`` (:func:`~harkit.data.skeleton.part_roots`: a hand relative to its
    shoulder; zero where ``has_root`` is False); ``motion`` the next frame minus this one
    where both are valid (``mask`` ``(N, T)``), else zero.

    Example:
        >>> x = torch.arange(6.0).view(1, 3, 2, 1)     # 3 frames, joint 1's parent is 0
        >>> par, has = torch.tensor([0, 0]), torch.tensor([False, True])
        >>> stack_streams(x, None, ["bone", "motion"], par, has)[0].tolist()
        [[[0.0, 2.0], [1.0, 2.0]], [[0.0, 2.0], [1.0, 2.0]], [[0.0, 0.0], [1.0, 0.0]]]
    """
    if streams == ["joint"]:
        return x
    out = []
    for st in streams:
        if st == "joint":
            out.append(x)
        elif st == "bone":  # (N, T, J, D): joint minus its parent, roots zero
            out.append((x - x[:, :, parent]) * has_parent[:, None])
        elif st == "limb":  # (N, T, J, D): joint minus its part's root, roots zero
            if root is None or has_root is None:
                raise ValueError("the limb stream needs each joint's part root (root, has_root)")
            out.append((x - x[:, :, root]) * has_root[:, None])
        else:  # motion: x[t + 1] - x[t] where both frames are valid, else zero
            mo = torch.zeros_like(x)
            mo[:, :-1] = x[:, 1:] - x[:, :-1]
            if mask is not None:
                both = mask[:, 1:] * mask[:, :-1]  # (N, T - 1)
                mo[:, :-1] = mo[:, :-1] * both[:, :, None, None]
            out.append(mo)
    return torch.cat(out, dim=3)


class JointRefs(nn.Module):
    """The layout's reference joints as (non-persistent) buffers: each joint's ``parent`` in
    the bone tree and its body part's ``root``, with masks for joints that have none; the
    arguments :func:`stack_streams` takes."""

    parent: torch.Tensor
    has_parent: torch.Tensor
    root: torch.Tensor
    has_root: torch.Tensor

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        par, root = torch.tensor(parents(layout)), torch.tensor(part_roots(layout))
        self.register_buffer("parent", par.clamp_min(0), persistent=False)
        self.register_buffer("has_parent", par >= 0, persistent=False)
        self.register_buffer("root", root.clamp_min(0), persistent=False)
        self.register_buffer("has_root", root >= 0, persistent=False)

    def stack(self, x: torch.Tensor, mask: torch.Tensor | None, streams: list[str]
              ) -> torch.Tensor:
        """:func:`stack_streams` of ``x`` ``(N, T, J, D)`` with this layout's references."""
        return stack_streams(x, mask, streams, self.parent, self.has_parent, self.root,
                             self.has_root)


class SkeletonStreams(nn.Module):
    """Skeleton windows ``(B, T, C)`` -> the same windows with derived features as extra
    channels, for models that read flat channels (the random-kernel family). Per body: the
    per-joint streams (:data:`INPUTS`: ``joint``, ``bone``, ``motion``, ``limb``; see
    :func:`stack_streams`), ``joints * dims`` channels each, then with ``ends`` the vector
    between every pair of the layout's :func:`~harkit.data.skeleton.extremities` (hand to
    hand, hand to head, foot to hand, ...), ``pairs * dims`` channels; plus the valid channel
    where the skeleton has one (padded frames zero). Computed inside the model from the
    normalised coordinates, so a checkpoint takes the same joint windows as the dataset holds.

    Each derived stream is divided by its standard deviation per coordinate dim over the
    training windows (:meth:`fit`; valid frames only), so it enters the random channel
    combinations at the joints' scale (the joints are already standardised per dim by the
    pipeline, with one mean and scale for every joint, so differences of joints keep their
    geometry). MiniRocket's kernels sum to zero, so a per-channel offset would not matter;
    a scale does.

    Args:
        info: the windows' skeleton.
        streams: ``+``-joined members of :data:`FLAT_STREAMS`, e.g. ``joint+bone+motion`` or
            ``joint+limb+ends``.

    Example:
        >>> sk = SkeletonInfo("natops8", bodies=1, dims=3)
        >>> SkeletonStreams(sk, "joint+bone")(torch.zeros(2, 10, 24)).shape
        torch.Size([2, 10, 48])
        >>> SkeletonStreams(SkeletonInfo("msr20", dims=3), "joint+ends").n_channels  # 60 + 10 x 3
        90
    """

    end_a: torch.Tensor
    end_b: torch.Tensor
    scale: torch.Tensor

    def __init__(self, info: SkeletonInfo, streams: str) -> None:
        super().__init__()
        self.info = info
        self.streams = parse_streams(streams, "streams", FLAT_STREAMS)
        layout = info.get_layout
        # the scale buffer and the channels follow this order: per-joint streams, then ends
        self.joint_streams = [st for st in self.streams if st != "ends"]
        self.refs = JointRefs(layout)
        ends = extremities(layout)
        pairs = [(a, b) for i, a in enumerate(ends) for b in ends[i + 1 :]]
        if "ends" in self.streams and not pairs:
            raise ValueError(f"streams={streams!r}: layout {layout.name!r} has fewer than two "
                             "extremities (joints with one bone), so no 'ends' vectors")
        self.register_buffer("end_a", torch.tensor([p[0] for p in pairs], dtype=torch.long),
                             persistent=False)
        self.register_buffer("end_b", torch.tensor([p[1] for p in pairs], dtype=torch.long),
                             persistent=False)
        self.register_buffer("scale", torch.ones(len(self.streams) * info.dims))
        per_body = info.n_joints * info.dims * len(self.joint_streams)
        if "ends" in self.streams:
            per_body += len(pairs) * info.dims
        self.n_channels = info.bodies * per_body + int(info.valid_channel)

    @property
    def order(self) -> list[str]:
        """The streams in the order of the channels and the scale: per-joint, then ends."""
        return self.joint_streams + (["ends"] if "ends" in self.streams else [])

    def _parts(self, x: torch.Tensor
               ) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """Each body's features in :attr:`order`, ``(B*M, T, items, dims * streams)`` blocks
        (joints for the per-joint streams, pairs for ends), the mask ``(B, T)`` and the
        bodies' mask ``(B*M, T)``."""
        coords, mask = split_input(x, self.info)  # (B, T, M, J, D), (B, T)
        frames, body_mask = per_body(coords, mask)  # (B*M, T, J, D), (B*M, T)
        parts = []
        if self.joint_streams:
            parts.append(self.refs.stack(frames, body_mask, self.joint_streams))
        if "ends" in self.streams:  # (B*M, T, P, D): extremity a minus extremity b
            parts.append(frames[:, :, self.end_a] - frames[:, :, self.end_b])
        return parts, mask, body_mask

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """The derived streams' standard deviation per dim over training windows ``x``."""
        parts, _, body_mask = self._parts(x)
        sds = []
        for p in parts:
            if body_mask is not None:  # (B*M, T, ...) -> valid frames only
                p = p[body_mask > 0.5]
            vals = p.reshape(-1, p.shape[-1])
            if len(vals) < 2:
                return
            sds.append(vals.double().std(0, correction=0).float())
        sd = torch.cat(sds)
        d = self.info.dims
        scale = torch.where(sd > 1e-8, sd, torch.ones_like(sd))
        for i, st in enumerate(self.order):
            if st == "joint":
                scale[i * d : (i + 1) * d] = 1.0
        self.scale.copy_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m = x.shape[0], self.info.bodies
        parts, mask, _ = self._parts(x)
        flat, at = [], 0
        for p in parts:
            w = p.shape[-1]
            p = p / self.scale[at : at + w]
            at += w
            flat.append(p.reshape(b, m, p.shape[1], -1))  # (B*M, T, I, D') -> (B, M, T, I*D')
        out = torch.cat(flat, 3).permute(0, 2, 1, 3).flatten(2)  # -> (B, T, M * features)
        if mask is None:
            return out
        return torch.cat([out, mask[:, :, None]], 2)


def hop_distance(layout: Layout) -> np.ndarray:
    """Bone hops from each joint to the nearest centre joint ``(joints,)`` (inf where no
    path leads to a centre joint)."""
    adj = layout.neighbours()
    dist = np.full(layout.n_joints, np.inf)
    frontier = list(dict.fromkeys(layout.centre))
    dist[frontier] = 0
    while frontier:
        nxt = []
        for j in frontier:
            for k in adj[j]:
                if np.isinf(dist[k]):
                    dist[k] = dist[j] + 1
                    nxt.append(k)
        frontier = nxt
    return dist


def normalized_adjacency(layout: Layout) -> np.ndarray:
    """``Λ^-1/2 (A + I) Λ^-1/2`` (Yan et al. 2018, eq. 9), ``Λ`` the degrees of ``A + I``."""
    a = layout.adjacency(self_loops=True).astype(np.float64)
    inv_sqrt = 1.0 / np.sqrt(a.sum(1))
    return (inv_sqrt[:, None] * a * inv_sqrt[None, :]).astype(np.float32)


def partition_adjacency(layout: Layout, strategy: str = "spatial") -> np.ndarray:
    """The normalised adjacency split into partitions ``(K, joints, joints)`` that sum to
    :func:`normalized_adjacency`. Entry ``[k, i, j]`` weights joint ``i``'s features in
    joint ``j``'s update (the root).

    Strategies (Yan et al. 2018, sec. 3.4): ``uniform`` (K=1, all neighbours alike),
    ``distance`` (K=2: the root itself, its neighbours at one hop), ``spatial`` (K=3: the
    root, its centripetal neighbours, nearer to the body centre than the root, and its
    centrifugal ones, the others). The distance to the centre is counted in bone hops to
    ``layout.centre`` (the paper uses the skeleton's mean position, which a layout alone does
    not have).

    Example:
        >>> lay = Layout("t", ("c", "a", "b"), ((0, 1), (1, 2)))
        >>> p = partition_adjacency(lay)
        >>> p.shape, bool(np.allclose(p.sum(0), normalized_adjacency(lay)))
        ((3, 3, 3), True)
    """
    norm = normalized_adjacency(layout)
    eye = np.eye(layout.n_joints, dtype=bool)
    if strategy == "uniform":
        return norm[None]
    if strategy == "distance":
        return np.stack([np.where(eye, norm, 0), np.where(eye, 0, norm)]).astype(np.float32)
    if strategy != "spatial":
        raise ValueError(f"partition={strategy!r}: expected one of {PARTITIONS}")
    dist = hop_distance(layout)
    d_nb, d_root = dist[:, None], dist[None, :]  # neighbour i (rows), root j (columns)
    centripetal = ~eye & (d_nb < d_root)
    centrifugal = ~eye & ~(d_nb < d_root)
    return np.stack([np.where(eye, norm, 0), np.where(centripetal, norm, 0),
                     np.where(centrifugal, norm, 0)]).astype(np.float32)


class STGCNBlock(nn.Module):
    """One spatial-temporal graph convolution unit: ``(N, C, T, V) -> (N, C', T', V)``.

    Spatial graph convolution (1x1 convolution to ``K * C'`` features, aggregated over each
    partition's adjacency times its learnable edge importance, summed over partitions), batch
    norm, ReLU, temporal convolution (``kernel x 1``, stride ``stride``), batch norm, dropout,
    residual, ReLU.

    With ``adaptive`` each partition also gets a free ``(V, V)`` matrix, learnt from zero
    and added to the masked adjacency (the ``B_k`` of Shi et al., CVPR 2019, "Two-Stream
    Adaptive Graph Convolutional Networks"): the edge importance can only reweight the bones,
    this can connect any two joints, e.g. the two hands of a clapping action.
    """

    A: torch.Tensor  # buffer: partitioned normalised adjacency (K, V, V)

    def __init__(self, c_in: int, c_out: int, partitions: torch.Tensor, kernel: int,
                 stride: int, dropout: float, residual: bool, adaptive: bool = False) -> None:
        super().__init__()
        k, v, _ = partitions.shape
        self.register_buffer("A", partitions.clone(), persistent=False)
        self.importance = nn.Parameter(torch.ones(k, v, v))
        self.adapt = nn.Parameter(torch.zeros(k, v, v)) if adaptive else None
        self.gcn = nn.Conv2d(c_in, k * c_out, kernel_size=1)
        self.gcn_bn = nn.BatchNorm2d(c_out)
        self.tcn = nn.Sequential(
            nn.Conv2d(c_out, c_out, (kernel, 1), (stride, 1), (kernel // 2, 0)),
            nn.BatchNorm2d(c_out), nn.Dropout(dropout))
        self.residual: nn.Module | None
        if not residual:
            self.residual = None
        elif c_in == c_out and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)),
                                          nn.BatchNorm2d(c_out))
        self.k, self.c_out = k, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        y = self.gcn(x).view(n, self.k, self.c_out, t, v)  # (N, K*C', T, V) -> (N, K, C', T, V)
        # sum over partitions k and source joints v: (N, K, C', T, V) x (K, V, W) -> (N, C', T, W)
        adj = self.A * self.importance
        if self.adapt is not None:
            adj = adj + self.adapt
        y = torch.einsum("nkctv,kvw->nctw", y, adj)
        y = self.tcn(torch.relu(self.gcn_bn(y)))  # (N, C', T', V)
        if self.residual is not None:
            y = y + self.residual(x)
        return torch.relu(y)


class STGCN(SkeletonModel):
    """ST-GCN (Yan, Xiong & Lin, AAAI 2018, "Spatial Temporal Graph Convolutional Networks
    for Skeleton-Based Action Recognition").

    Input batch norm over the ``joints * dims`` values of each frame (shared by the bodies),
    a stack of :class:`STGCNBlock` units (partitioned normalised adjacency with learnable edge
    importance, temporal kernel 9, residuals; stride 2 wherever the width grows, as in the
    paper), global average pooling over the valid frames and the joints, then the mean over
    bodies and a linear classifier. The paper's widths are 64 x 4, 128 x 3, 256 x 3; the
    default here halves them (32 x 4, 64 x 3, 128 x 3: about a quarter of the parameters).

    Padded frames (valid channel) are zeroed at the input and after every unit, so the
    temporal convolutions see them as zero padding and the pooling skips them.

    Input ``(batch, time, channels)``, output ``(batch, n_classes)`` logits. With
    ``skeleton=None`` the channels are the ``C`` values of one joint (a one-node, identity
    graph): the network is a residual temporal CNN over the channels whose first graph
    convolution mixes the channels (reading them as ``C`` bone-less joints instead would let
    the shared filters see each channel alone, blind to which one it is).

    Args:
        skeleton: the dataset's ``SkeletonInfo.to_dict()`` (None for sensor data).
        widths: output channels of each unit.
        partition: ``uniform``, ``distance`` or ``spatial`` (see :func:`partition_adjacency`).
        kernel: temporal kernel size (9 in the paper).
        dropout: dropout after each temporal convolution.
        inputs: the input features of each joint, ``+``-joined: ``joint`` (coordinates),
            ``bone`` (joint minus its parent in the layout's bone tree, zero at the root),
            ``limb`` (joint minus its body part's root: a hand relative to its shoulder) and
            ``motion`` (the next valid frame minus this one, zero at the last valid frame),
            computed inside the model from the normalised coordinates and stacked as extra
            dims, e.g. ``joint+bone`` (the joint and bone streams of later ST-GCN work, fused
            early in one network).
        adaptive: add a learnt joint-to-joint matrix per partition to every unit's graph (see
            :class:`STGCNBlock`), so the network can relate joints that no bone links.
    """

    registry_name = "stgcn"
    sensor_as_joints = False

    def __init__(self, n_channels: int, n_classes: int, window_len: int,
                 skeleton: dict[str, Any] | None = None, widths: list[int] | None = None,
                 partition: str = "spatial", kernel: int = 9, dropout: float = 0.0,
                 inputs: str = "joint", adaptive: bool = False) -> None:
        widths = list(widths) if widths is not None else [32, 32, 32, 32, 64, 64, 64, 128,
                                                          128, 128]
        super().__init__(n_channels, n_classes, window_len, skeleton, widths=widths,
                         partition=partition, kernel=kernel, dropout=dropout, inputs=inputs,
                         adaptive=adaptive)
        self.inputs = parse_streams(inputs)
        if not widths:
            raise ValueError("widths must name at least one unit")
        _check_positive(kernel=kernel, **{f"widths[{i}]": w for i, w in enumerate(widths)})
        _check_dropout(dropout)
        if partition not in PARTITIONS:
            raise ValueError(f"partition={partition!r}: expected one of {PARTITIONS}")
        layout = self.info.get_layout
        j, d = self.info.n_joints, self.info.dims * len(self.inputs)
        parts = torch.from_numpy(partition_adjacency(layout, partition))
        self.refs = JointRefs(layout)
        self.data_bn = nn.BatchNorm1d(j * d)
        blocks = []
        self.strides: list[int] = []
        c_in = d
        for i, w in enumerate(widths):
            stride = 2 if i > 0 and w > widths[i - 1] else 1
            blocks.append(STGCNBlock(c_in, w, parts, kernel, stride, dropout, residual=i > 0,
                                     adaptive=adaptive))
            self.strides.append(stride)
            c_in = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m = x.shape[0], self.info.bodies
        coords, mask = split_input(x, self.info)  # (B, T, M, J, D), (B, T)
        frames, mask = per_body(coords, mask)  # (B*M, T, J, D), (B*M, T)
        frames = self._inputs(frames, mask)  # (N, T, J, D) -> (N, T, J, D * len(inputs))
        n, t, j, d = frames.shape
        h = self.data_bn(frames.reshape(n, t, j * d).transpose(1, 2))  # (N, J*D, T)
        h = h.view(n, j, d, t).permute(0, 2, 3, 1)  # (N, J, D, T) -> (N, D, T, J)
        if mask is not None:
            h = h * mask[:, None, :, None]
        for block, stride in zip(self.blocks, self.strides, strict=True):
            h = block(h)  # (N, C, T, V) -> (N, C', ceil(T / stride), V)
            if mask is not None:
                if stride > 1:
                    mask = mask[:, ::stride]  # output step t' is centred on input step stride*t'
                h = h * mask[:, None, :, None]
        h = masked_time_mean(h.mean(3), mask, dim=2)  # (N, C, T', V) -> (N, C, T') -> (N, C)
        return self.head(h.reshape(b, m, -1).mean(1))  # (B*M, C) -> (B, M, C) -> (B, C)

    def _inputs(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The per-joint input features stacked on the last axis of ``(N, T, J, D)``."""
        return self.refs.stack(x, mask, self.inputs)


MODELS.register("stgcn", description="ST-GCN (Yan et al. 2018): partitioned graph convs with "
                "edge importance + temporal convs (skeleton, widths, partition)", skeleton=True,
                variants={"tiny": {"widths": [8, 16]}})(STGCN)
