"""Skeleton models (pose-lstm, two-stream-rnn, stgcn) and skeleton-aware training: the
skeleton normaliser, skeleton augmentations, and training through ``harkit.train``."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import harkit
from harkit.config import AugmentConfig, TrainConfig
from harkit.data import DATASETS, WindowedDataset
from harkit.data.augment import Augmenter
from harkit.data.skeleton import LAYOUTS, Layout, SkeletonInfo, skeleton_dataset, unflatten
from harkit.data.transforms import (
    SkeletonStandardizer,
    Standardizer,
    make_normalizer,
    normalizer_from_state,
)
from harkit.errors import ConfigError
from harkit.models import MODELS, create_model, list_models, model_from_config
from harkit.models.skeleton import (
    body_parts,
    chain_order,
    hop_distance,
    normalized_adjacency,
    partition_adjacency,
    traversal_order,
)
from harkit.registry import Entry
from harkit.training.trainer import Trainer

SKELETON_MODELS = [n for n in list_models() if MODELS.get(n).tags.get("skeleton")]


def test_the_skeleton_models_are_registered_with_the_tag() -> None:
    assert {"pose-lstm", "two-stream-rnn", "stgcn"} <= set(SKELETON_MODELS)
    assert not MODELS.get("lstm").tags.get("skeleton")


def _windows(info: SkeletonInfo, n: int = 3, t: int = 24, seed: int = 0) -> torch.Tensor:
    """Random skeleton windows ``(n, t, channels)``; with a valid channel, window i has
    ``t - 5 * i`` valid frames followed by padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, info.n_channels, generator=g)
    if info.valid_channel:
        for i in range(n):
            x[i, :, -1] = (torch.arange(t) < t - 5 * i).float()
    return x


def _model(name: str, info: SkeletonInfo | None, n_classes: int = 4, t: int = 24,
           **params: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    c = 6 if info is None else info.n_channels
    return create_model(name, c, n_classes, t, variant="tiny",
                        skeleton=None if info is None else info.to_dict(), **params).eval()


CASES = [SkeletonInfo("coco18", bodies=1, dims=2),
         SkeletonInfo("coco18", bodies=1, dims=3, dim_names=("x", "y", "c"), valid_channel=True),
         SkeletonInfo("ntu25", bodies=2, dims=3, valid_channel=True),
         SkeletonInfo("natops8", bodies=1, dims=3),
         SkeletonInfo("penn13", bodies=1, dims=2, valid_channel=True)]  # penn13 has cycles


@pytest.mark.parametrize("name", SKELETON_MODELS)
@pytest.mark.parametrize("info", CASES, ids=lambda i: f"{i.layout}-{i.bodies}b-{i.dims}d"
                         f"{'-valid' if i.valid_channel else ''}")
def test_skeleton_model_shapes(name: str, info: SkeletonInfo) -> None:
    m = _model(name, info)
    out = m(_windows(info))
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    # the layout is stored in full, so the checkpoint rebuilds without the layout registry
    cfg = m.get_config()
    assert isinstance(cfg["skeleton"]["layout"], dict)
    m2 = model_from_config(cfg).eval()
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m2(_windows(info)), out)


@pytest.mark.parametrize("name", SKELETON_MODELS)
def test_padding_frames_do_not_change_the_output(name: str) -> None:
    info = SkeletonInfo("ntu25", bodies=2, dims=3, valid_channel=True)
    m = _model(name, info)
    x = _windows(info)
    garbage = x.clone()
    pad = garbage[..., -1] == 0  # (B, T)
    garbage[..., :-1][pad] = 100 * torch.randn(int(pad.sum()), info.n_coords)
    with torch.no_grad():
        torch.testing.assert_close(m(garbage), m(x), rtol=1e-5, atol=1e-5)
        # ...while the valid frames do count
        changed = x.clone()
        changed[2, 3, :-1] += 5.0
        assert not torch.allclose(m(changed)[2], m(x)[2])


@pytest.mark.parametrize("name", SKELETON_MODELS)
def test_bodies_are_pooled_symmetrically(name: str) -> None:
    info = SkeletonInfo("coco18", bodies=2, dims=2)
    m = _model(name, info)
    x = _windows(info)
    per_body = info.n_coords // 2
    swapped = torch.cat([x[..., per_body:], x[..., :per_body]], dim=2)
    with torch.no_grad():
        torch.testing.assert_close(m(swapped), m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SKELETON_MODELS)
@pytest.mark.parametrize("skeleton", [True, False])
def test_reversing_time_changes_the_output(name: str, skeleton: bool) -> None:
    info = SkeletonInfo("natops8", bodies=1, dims=3) if skeleton else None
    m = _model(name, info)
    t = torch.linspace(0, 1, 24)[None, :, None]
    x = torch.sin(6 * t + torch.arange(24 if skeleton else 6)[None, None, :])  # (1, T, C)
    with torch.no_grad():
        assert not torch.allclose(m(x), m(x.flip(1)), atol=1e-4)


def _capture_input(module: torch.nn.Module, m: torch.nn.Module, x: torch.Tensor,
                   x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    got: list[torch.Tensor] = []
    h = module.register_forward_hook(lambda mod, inp, out: got.append(inp[0].detach()))
    with torch.no_grad():
        m(x)
        m(x2)
    h.remove()
    return got[0], got[1]


def _perturbed(info: SkeletonInfo, frame: int, joint: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = _windows(info, n=1)
    x2 = x.clone()
    start = joint * info.dims
    x2[0, frame, start : start + info.dims] += 3.0
    return x, x2


def test_recurrent_streams_keep_frames_and_joints_in_place() -> None:
    """A change at frame 7, joint 2 reaches the recurrent inputs at frame 7 only (temporal
    LSTMs) and at the clip holding frame 7 and the steps visiting joint 2 only (spatial)."""
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    x, x2 = _perturbed(info, frame=7, joint=2)
    m = _model("pose-lstm", info)
    a, b = _capture_input(m.rnn, m, x, x2)  # (1, T, H)
    assert torch.nonzero((a - b).abs().sum(-1)[0] > 0).flatten().tolist() == [7]

    m = _model("two-stream-rnn", info, temporal="stacked", clip_len=4)
    a, b = _capture_input(m.temporal_rnn, m, x, x2)  # (1, T, J*D)
    diff = (a - b).abs()[0].view(24, 8, 3).sum(-1)  # (T, J)
    assert torch.nonzero(diff > 0).tolist() == [[7, 2]]
    a, b = _capture_input(m.spatial_rnn, m, x, x2)  # (clips, S, L*D)
    diff = (a - b).abs().view(6, -1, 4, 3).sum(-1)  # (clips, S, L)
    order = traversal_order(LAYOUTS["natops8"])
    expected = [[1, s, 3] for s, j in enumerate(order) if j == 2]  # clip 1, frame 7 % 4
    assert torch.nonzero(diff > 0).tolist() == expected


def test_hierarchical_stream_feeds_each_part_its_own_joints() -> None:
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    m = _model("two-stream-rnn", info, temporal="hierarchical", streams="temporal")
    x, x2 = _perturbed(info, frame=5, joint=1)  # r_hand_tip: part right_arm (index 1)
    for i, rnn in enumerate(m.part_rnns):
        a, b = _capture_input(rnn, m, x, x2)
        changed = torch.nonzero((a - b).abs().sum(-1)[0] > 0).flatten().tolist()
        assert changed == ([5] if i == 1 else []), i


def test_stgcn_temporal_convolution_is_local_in_time() -> None:
    """The first unit's output changes only within +-4 frames (kernel 9) of a changed frame."""
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    m = _model("stgcn", info)
    x, x2 = _perturbed(info, frame=12, joint=0)
    got: list[torch.Tensor] = []
    m.blocks[0].register_forward_hook(lambda mod, inp, out: got.append(out.detach()))
    with torch.no_grad():
        m(x)
        m(x2)
    diff = (got[0] - got[1]).abs().sum((1, 3))[0]  # (N, C, T, V) -> (T,)
    changed = torch.nonzero(diff > 1e-6).flatten().tolist()
    assert changed and min(changed) >= 12 - 4 and max(changed) <= 12 + 4


@pytest.mark.parametrize("streams", ["both", "temporal", "spatial"])
@pytest.mark.parametrize(("temporal", "spatial"), [("stacked", "chain"),
                                                   ("hierarchical", "traversal")])
@pytest.mark.parametrize("fusion", ["logprob", "logits"])
def test_two_stream_options(streams: str, temporal: str, spatial: str, fusion: str) -> None:
    info = SkeletonInfo("coco18", bodies=2, dims=3, dim_names=("x", "y", "c"),
                        valid_channel=True)
    m = _model("two-stream-rnn", info, streams=streams, temporal=temporal, spatial=spatial,
               fusion=fusion).train()
    out = m(_windows(info))
    assert out.shape == (3, 4)
    out.sum().backward()
    names = {n.split(".")[0] for n, _ in m.named_parameters()}
    assert ("spatial_rnn" in names) == (streams != "temporal")
    assert ("temporal_rnn" in names) == (streams != "spatial")
    assert all(p.grad is not None for p in m.parameters())
    if streams == "both":  # the fusion of the two heads' scores, nothing more
        m.eval()
        heads: list[torch.Tensor] = []
        for head in (m.temporal_head, m.spatial_head):
            head.register_forward_hook(lambda mod, inp, o: heads.append(o.detach()))
        with torch.no_grad():
            fused = m(_windows(info))
        zt, zs = heads
        if fusion == "logprob":  # a product of the streams' probabilities, in log space
            zt, zs = torch.log_softmax(zt, 1), torch.log_softmax(zs, 1)
        torch.testing.assert_close(fused, 0.5 * zt + 0.5 * zs)


def test_sensor_input_without_a_skeleton() -> None:
    for name in SKELETON_MODELS:
        m = _model(name, None)
        assert m.get_config()["skeleton"] is None
        assert m(torch.randn(2, 24, 6)).shape == (2, 4)
    stgcn = _model("stgcn", None)
    assert stgcn.data_bn.num_features == 6  # one node holding the 6 channels
    ts = _model("two-stream-rnn", None)
    assert ts.order.tolist() == list(range(6))  # the spatial stream runs over the channels
    assert ts.parts == [tuple(range(6))]


def test_a_skeleton_that_does_not_fit_the_input_names_the_field() -> None:
    info = SkeletonInfo("coco18", bodies=1, dims=2)
    with pytest.raises(ConfigError, match=r"skeleton.*n_channels=35"):
        create_model("stgcn", 35, 3, 24, skeleton=info.to_dict())
    with pytest.raises(ConfigError, match="temporal='deep'"):
        create_model("two-stream-rnn", 36, 3, 24, skeleton=info.to_dict(), temporal="deep")


def test_traversal_order_on_small_trees() -> None:
    tree = Layout("t", ("root", "a", "b", "c", "d"), ((0, 1), (1, 2), (1, 3), (0, 4)))
    assert traversal_order(tree) == [0, 1, 2, 1, 3, 1, 0, 4, 0]
    # a centre that is not joint 0; every bone is walked twice, so neighbours share a bone
    mid = Layout("m", ("a", "b", "c"), ((0, 1), (1, 2)), centre=(1,))
    assert traversal_order(mid) == [1, 0, 1, 2, 1]
    for lay in LAYOUTS.values():
        order = traversal_order(lay)
        assert set(order) == set(range(lay.n_joints)), lay.name
        bones = {frozenset(e) for e in lay.edges}
        steps = [frozenset(p) for p in itertools.pairwise(order)]
        assert sum(s in bones for s in steps) == 2 * len(_spanning(lay)), lay.name
    # natops8 is two arms without a bone between them: one walk per arm, from its elbow
    nat = LAYOUTS["natops8"]
    assert [nat.joints[j] for j in traversal_order(nat)][:7] == [
        "l_elbow", "l_wrist", "l_hand_tip", "l_wrist", "l_thumb", "l_wrist", "l_elbow"]


def _spanning(lay: Layout) -> list[tuple[int, int]]:
    """Edges of a spanning forest (union-find), to count the bones a traversal walks."""
    parent = list(range(lay.n_joints))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    out = []
    for a, b in lay.edges:
        if root(a) != root(b):
            parent[root(a)] = root(b)
            out.append((a, b))
    return out


def test_parts_and_chains_cover_every_joint() -> None:
    for lay in LAYOUTS.values():
        parts = body_parts(lay)
        assert sorted({j for p in parts for j in p}) == list(range(lay.n_joints)), lay.name
        assert sorted(set(chain_order(lay))) == list(range(lay.n_joints)), lay.name
    partial = Layout("p", ("a", "b", "c", "d"), ((0, 1), (1, 2), (2, 3)), {"arm": (1, 2)})
    assert body_parts(partial) == [(1, 2), (0, 3)]  # the uncovered joints form one more part
    assert body_parts(Layout("n", ("a", "b"), ())) == [(0, 1)]


@pytest.mark.parametrize("strategy", ["uniform", "distance", "spatial"])
def test_stgcn_partitions_sum_to_the_normalised_adjacency(strategy: str) -> None:
    for lay in LAYOUTS.values():
        p = partition_adjacency(lay, strategy)
        assert p.shape == ({"uniform": 1, "distance": 2, "spatial": 3}[strategy],
                           lay.n_joints, lay.n_joints)
        np.testing.assert_allclose(p.sum(0), normalized_adjacency(lay), atol=1e-7)
        norm = normalized_adjacency(lay)
        np.testing.assert_allclose(norm, norm.T, atol=1e-7)
        a = lay.adjacency()
        deg = a.sum(1)
        np.testing.assert_allclose(norm, a / np.sqrt(deg[:, None] * deg[None, :]), atol=1e-6)


def test_spatial_partition_groups() -> None:
    # chain c - a - b with centre c: for root a, c is centripetal and b centrifugal
    lay = Layout("t", ("c", "a", "b"), ((0, 1), (1, 2)), centre=(0,))
    assert hop_distance(lay).tolist() == [0, 1, 2]
    root, centripetal, centrifugal = partition_adjacency(lay, "spatial")
    assert np.count_nonzero(root - np.diag(np.diag(root))) == 0
    assert centripetal[0, 1] > 0 and centripetal[2, 1] == 0
    assert centrifugal[2, 1] > 0 and centrifugal[0, 1] == 0
    assert centrifugal[1, 0] > 0  # a is farther from the centre than c


# ------------------------------------------------------------------------------------------
# normalisation


def _skeleton_batch(info: SkeletonInfo, n: int = 6, t: int = 20, seed: int = 0) -> np.ndarray:
    """Plausible skeleton windows: a random pose per window, offset far from the origin and
    moving a little; window i has ``t - 2 * i`` valid frames (when padded)."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 0.3, (n, 1, info.bodies, info.n_joints, info.dims))
    drift = np.linspace(0, 0.2, t)[None, :, None, None, None] * rng.normal(size=(n, 1, 1, 1, 1))
    seq = pose + drift + np.array([2.0, 1.0, 3.0][: info.dims])
    x = seq.reshape(n, t, -1)
    if info.valid_channel:
        valid = (np.arange(t)[None, :] < (t - 2 * np.arange(n))[:, None]).astype(float)
        x = np.concatenate([x, valid[..., None]], axis=2)
    return x.astype(np.float32)


def test_skeleton_normaliser_is_one_affine_map_per_dim() -> None:
    info = SkeletonInfo("coco18", bodies=2, dims=3, valid_channel=True)
    x = _skeleton_batch(info)
    assert x[2, -1, -1] == 0
    x[2, -1, :-1] = 1e6  # a padded frame: must not count
    x[1, :, info.n_coords // 2 : info.n_coords] = 0  # an absent second body: must not count
    norm = make_normalizer("standard", info).fit(x)
    assert isinstance(norm, SkeletonStandardizer)
    mean = norm.mean.reshape(-1)  # type: ignore[union-attr]
    std = norm.std.reshape(-1)  # type: ignore[union-attr]
    assert mean[-1] == 0 and std[-1] == 1  # the valid channel is left as is
    per_dim_mean = mean[:-1].reshape(-1, 3)
    assert np.allclose(per_dim_mean, per_dim_mean[0]) and np.allclose(
        std[:-1].reshape(-1, 3), std[:3])
    coords = unflatten(x, info)
    real = np.any(coords != 0, -1) & (x[..., -1] > 0.5)[:, :, None, None]
    np.testing.assert_allclose(per_dim_mean[0], coords[real].mean(0), rtol=1e-5)
    out = norm.transform(x)
    np.testing.assert_array_equal(out[..., -1], x[..., -1])
    # bone vectors are only rescaled per axis, the same for every joint
    bones = unflatten(out, info)[..., 1, :] - unflatten(out, info)[..., 0, :]
    np.testing.assert_allclose(bones, (coords[..., 1, :] - coords[..., 0, :]) / std[:3],
                               rtol=1e-4, atol=1e-4)
    again = normalizer_from_state(norm.state_dict())
    assert isinstance(again, SkeletonStandardizer) and norm.state_dict()["kind"] == "skeleton"
    np.testing.assert_array_equal(again.transform(x), out)


def test_normaliser_kinds_for_skeleton_and_sensor_data() -> None:
    info = SkeletonInfo("natops8", dims=3)
    assert isinstance(make_normalizer("skeleton", info), SkeletonStandardizer)
    assert type(make_normalizer("standard")) is Standardizer
    with pytest.raises(ConfigError, match=re.escape("data.normalize='minmax'")):
        make_normalizer("minmax", info)
    with pytest.raises(ConfigError, match=re.escape("data.normalize='skeleton'")):
        make_normalizer("skeleton")
    assert make_normalizer("none", info).state_dict()["kind"] == "none"


# ------------------------------------------------------------------------------------------
# augmentation


def _augmenter(info: SkeletonInfo, x: np.ndarray, **cfg: float) -> Augmenter:
    base = {"scale": 0.0, "jitter": 0.0, "rotate_deg": 0.0}
    norm = SkeletonStandardizer(info).fit(x)
    assert norm.mean is not None and norm.std is not None
    return Augmenter(AugmentConfig(**{**base, **cfg}), torch.from_numpy(norm.mean),
                     torch.from_numpy(norm.std), [], info)


def _raw(aug: Augmenter, x: torch.Tensor, info: SkeletonInfo) -> torch.Tensor:
    assert aug.mean is not None and aug.std is not None
    return unflatten(x * aug.std + aug.mean, info)  # (B, T, M, J, D) in physical units


def _bone_lengths(seq: torch.Tensor, lay: Layout, dims: list[int]) -> torch.Tensor:
    a = torch.tensor([e[0] for e in lay.edges])
    b = torch.tensor([e[1] for e in lay.edges])
    return (seq[..., b, :][..., dims] - seq[..., a, :][..., dims]).norm(dim=-1)


@pytest.mark.parametrize("info", [SkeletonInfo("ntu25", bodies=2, dims=3, valid_channel=True),
                                  SkeletonInfo("coco18", dims=3, dim_names=("x", "y", "c"),
                                               valid_channel=True)],
                         ids=["3d", "2d-confidence"])
def test_rotation_keeps_bone_lengths(info: SkeletonInfo) -> None:
    x_np = _skeleton_batch(info)
    aug = _augmenter(info, x_np, rotate_deg=40.0)
    assert aug.active
    x = torch.from_numpy(aug_normalise(aug, x_np))
    out = aug(x, torch.Generator().manual_seed(1))
    before, after = _raw(aug, x, info), _raw(aug, out, info)
    coord = [0, 1] if info.dim_names else [0, 1, 2]
    lay = info.get_layout
    valid = x[..., -1] > 0.5
    torch.testing.assert_close(_bone_lengths(after, lay, coord)[valid],
                               _bone_lengths(before, lay, coord)[valid], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(after[valid], before[valid], atol=1e-3)  # it did rotate
    # padding, the valid channel and a confidence are not touched
    torch.testing.assert_close(out[~valid], x[~valid])
    torch.testing.assert_close(out[..., -1], x[..., -1])
    if info.dim_names == ("x", "y", "c"):
        torch.testing.assert_close(after[..., 2], before[..., 2])


def aug_normalise(aug: Augmenter, x: np.ndarray) -> np.ndarray:
    assert aug.mean is not None and aug.std is not None
    return ((x - aug.mean.numpy()) / aug.std.numpy()).astype(np.float32)


def test_missing_joints_and_absent_bodies_stay_missing() -> None:
    info = SkeletonInfo("coco18", bodies=2, dims=3, dim_names=("x", "y", "c"))
    x_np = _skeleton_batch(info)
    seq = x_np.reshape(6, 20, 2, 18, 3)
    seq[0, :, 1] = 0  # window 0 has one person
    seq[1, 4, 0, 7] = 0  # a missed detection
    aug = _augmenter(info, x_np, rotate_deg=30, scale=0.2, shear=0.3, shift=0.5, jitter=0.0)
    x = torch.from_numpy(aug_normalise(aug, x_np))
    after = _raw(aug, aug(x, torch.Generator().manual_seed(0)), info)
    assert after[0, :, 1].abs().max() < 1e-4 and after[1, 4, 0, 7].abs().max() < 1e-4
    assert after[1, 4, 0, 6].abs().max() > 0.1


def test_skeleton_augmentation_is_deterministic_per_seed() -> None:
    info = SkeletonInfo("ntu25", bodies=1, dims=3, valid_channel=True)
    x_np = _skeleton_batch(info)
    aug = _augmenter(info, x_np, rotate_deg=15, scale=0.1, jitter=0.05, shear=0.2, shift=0.3,
                     joint_dropout=0.1, time_crop=0.3)
    x = torch.from_numpy(aug_normalise(aug, x_np))
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    assert torch.isfinite(a).all()
    valid = x[..., -1] > 0.5
    torch.testing.assert_close(a[~valid], x[~valid], rtol=0, atol=0)


def test_shift_moves_every_joint_alike_and_dropout_zeroes_joints() -> None:
    info = SkeletonInfo("ntu25", bodies=1, dims=3)
    x_np = _skeleton_batch(info)
    aug = _augmenter(info, x_np, shift=0.5)
    x = torch.from_numpy(aug_normalise(aug, x_np))
    before, after = _raw(aug, x, info), _raw(aug, aug(x, torch.Generator().manual_seed(0)),
                                            info)
    moved = after - before  # (B, T, M, J, D): one offset per sequence
    torch.testing.assert_close(moved, moved[:, :1, :, :1].expand_as(moved), rtol=0, atol=1e-4)
    assert moved.abs().max() > 0.01

    drop = _augmenter(info, x_np, joint_dropout=0.3)
    after = _raw(drop, drop(x, torch.Generator().manual_seed(0)), info)
    zero = (after.abs() < 1e-5).all(-1)  # (B, T, M, J)
    assert 0.2 < zero.float().mean() < 0.4
    torch.testing.assert_close(after[~zero], before[~zero], rtol=1e-4, atol=1e-4)


def test_time_crop_stretches_a_part_of_the_valid_frames() -> None:
    info = SkeletonInfo("natops8", bodies=1, dims=3, valid_channel=True)
    t = 20
    ramp = np.broadcast_to(np.arange(t, dtype=np.float32)[None, :, None], (4, t, info.n_coords))
    lengths = [20, 16, 12, 8]
    valid = (np.arange(t)[None, :] < np.array(lengths)[:, None]).astype(np.float32)
    x_np = np.concatenate([ramp + 1.0, valid[..., None]], axis=2)  # coordinate = frame + 1
    aug = Augmenter(AugmentConfig(scale=0, jitter=0, rotate_deg=0, time_crop=0.5), None, None,
                    [], info)
    x = torch.from_numpy(x_np)
    out = aug(x, torch.Generator().manual_seed(0))
    for i, n in enumerate(lengths):
        v = out[i, :n, 0]
        assert (v[1:] - v[:-1] >= -1e-6).all()  # order kept
        assert v[0] >= 1.0 - 1e-6 and v[-1] <= n + 1e-6  # within the valid frames
        assert v[-1] - v[0] >= 0.5 * (n - 1) - 1e-4  # at least half of them kept
        torch.testing.assert_close(out[i, n:], x[i, n:])  # padding unchanged
    assert not torch.allclose(out, x)


def test_skeleton_options_are_refused_on_sensor_data() -> None:
    with pytest.raises(ConfigError, match=re.escape("train.augment.shear")):
        Augmenter(AugmentConfig(shear=0.1), None, None, [])
    with pytest.raises(ConfigError, match=re.escape("train.augment.joint_dropout")):
        Augmenter(AugmentConfig(joint_dropout=1.5), None, None, [],
                  SkeletonInfo("natops8", dims=3))


def test_the_trainer_augments_training_batches_only() -> None:
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    x_np = _skeleton_batch(info, n=8)
    aug = _augmenter(info, x_np, rotate_deg=30)
    x = torch.from_numpy(aug_normalise(aug, x_np))
    y = torch.arange(8) % 2
    calls: list[bool] = []
    model = _model("stgcn", info, n_classes=2, t=20)

    def spy(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        calls.append(model.training)
        return aug(xb, g)

    trainer = Trainer(model, TrainConfig(epochs=2, batch_size=4, ema_decay=None), (x, y),
                      (x, y), augment=spy)
    trainer.fit(progress=False)
    assert calls and all(calls) and len(calls) == 2 * trainer.steps_per_epoch
    n = len(calls)
    trainer.evaluate(x, y)  # validation / prediction: no augmentation
    assert len(calls) == n


# ------------------------------------------------------------------------------------------
# training through harkit.train


def synthetic_skeleton_dataset(data_dir: Any = None, seed: int = 0) -> WindowedDataset:
    """Two classes on natops8: the right hand rises (class 0) or falls (class 1) over a
    sequence of 14-24 frames, padded to 24; 6 training and 2 test subjects."""
    rng = np.random.default_rng(seed)
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    rest = rng.normal(0, 0.2, (8, 3)) + np.array([0.0, 1.0, 2.5])
    right = [1, 3, 5, 7]  # r_hand_tip, r_elbow, r_wrist, r_thumb
    splits: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}
    subject = 1
    for split, n_subjects in (("train", 6), ("test", 2)):
        seqs, ys, ss = [], [], []
        for _ in range(n_subjects):
            for k in range(8):
                label = k % 2
                n = int(rng.integers(14, 25))
                seq = np.repeat(rest[None, None], n, axis=0) + rng.normal(0, 0.05, (n, 1, 8, 3))
                lift = np.linspace(0, 0.6, n) * (1 if label == 0 else -1)
                seq[:, 0, right, 1] += lift[:, None]
                seqs.append(seq.astype(np.float32))
                ys.append(label)
                ss.append(subject)
            subject += 1
        splits[split] = (seqs, np.array(ys), np.array(ss))
    return skeleton_dataset("synthetic-skeleton", ["rise", "fall"], info, splits, length=24,
                            policy="pad", sampling_rate=20.0)


@pytest.fixture
def skeleton_source(monkeypatch: pytest.MonkeyPatch) -> str:
    name = "synthetic-skeleton"
    monkeypatch.setitem(DATASETS._entries, name, Entry(name, synthetic_skeleton_dataset,
                                                       "test skeletons", {}))
    return name


def test_prepare_data_and_build_model_use_the_skeleton(skeleton_source: str) -> None:
    from harkit.api import _augmenter as api_augmenter
    from harkit.api import build_model, prepare_data
    from harkit.config import ExperimentConfig, apply_overrides

    cfg = apply_overrides(ExperimentConfig(), [f"data.dataset={skeleton_source}", "data.n_val_subjects=2",
                                "model.name=stgcn", "model.widths=[8]"])
    data = prepare_data(cfg)
    assert isinstance(data.normalizer, SkeletonStandardizer)
    assert data.preprocessing()["normalizer"]["kind"] == "skeleton"
    model = build_model(cfg, data)
    assert model.get_config()["skeleton"]["valid_channel"] is True
    aug = api_augmenter(cfg, data)
    assert aug is not None and aug.skeleton is not None and aug.groups == []
    sensor = apply_overrides(cfg, ["model.name=lstm", "model.params={}"])
    assert "skeleton" not in build_model(sensor, data).get_config()


@pytest.mark.parametrize(("name", "params"), [
    ("stgcn", "{widths: [16, 16]}"),
    ("two-stream-rnn", "{hidden: 16, layers: 1, part_hidden: 8, clip_len: 6}"),
    ("pose-lstm", "{hidden: 16}"),
])
def test_a_skeleton_model_learns_through_train(skeleton_source: str, tmp_path: Path,
                                               name: str, params: str) -> None:
    from harkit.inference import Predictor

    r = harkit.train(overrides=[
        f"data.dataset={skeleton_source}", "data.n_val_subjects=2", f"model.name={name}",
        f"model.params={params}", "train.epochs=12", "train.batch_size=8", "train.lr=0.01",
        "train.num_threads=1", "train.augment.rotate_deg=10", "train.augment.shift=0.1",
        "train.augment.time_crop=0.1", f"run_root={tmp_path / 'runs'}"], progress=False)
    assert r.finished and r.test is not None
    assert r.test.accuracy >= 0.9, r.test.accuracy
    # the final checkpoint reloads on its own and gives the same test predictions
    p = Predictor.from_run(r.run_dir)
    assert p.model.get_config()["skeleton"]["layout"]["name"] == "natops8"
    ds = synthetic_skeleton_dataset()
    acc = float((p.predict(ds.splits["test"].X) == ds.splits["test"].y).mean())
    assert acc == pytest.approx(r.test.accuracy)
    again = harkit.evaluate(r.run_dir)
    assert again.accuracy == pytest.approx(r.test.accuracy)


def test_a_skeleton_run_reports_skeleton_plots(skeleton_source: str, tmp_path: Path) -> None:
    from PIL import Image

    r = harkit.train(overrides=[
        f"data.dataset={skeleton_source}", "data.n_val_subjects=2", "model.name=stgcn",
        "model.variant=tiny", "train.epochs=2", "train.batch_size=8", "train.num_threads=1",
        f"run_root={tmp_path / 'runs'}"], progress=False)
    plots = r.run_dir / "plots"
    png, gif = plots / "skeleton_examples.png", plots / "skeleton_example.gif"
    assert png.stat().st_size > 1000 and gif.stat().st_size > 1000
    saved = np.load(r.run_dir / "test_predictions.npz")
    classes = synthetic_skeleton_dataset().classes
    with Image.open(png) as im:
        headings = im.text["Description"].splitlines()
    # one row per class: the first test window of each, headed by its true and predicted class
    assert len(headings) == 2
    for heading, c in zip(headings, range(2), strict=True):
        m = re.fullmatch(r"test window (\d+), true: (\w+) \| predicted: (\w+)", heading)
        assert m is not None, heading
        i = int(m.group(1))
        assert i == int(np.flatnonzero(saved["y_true"] == c)[0])
        assert m.group(2) == classes[c] == classes[saved["y_true"][i]]
        assert m.group(3) == classes[saved["y_pred"][i]]
    with Image.open(gif) as im:  # the first example's valid frames (14..24 of the 24)
        assert im.format == "GIF" and 14 <= im.n_frames <= 24
    png.unlink()  # harkit evaluate redraws them
    harkit.evaluate(r.run_dir)
    assert png.exists()


def _stgcn_inputs(layout: str, inputs: str
                  ) -> tuple[torch.nn.Module, SkeletonInfo, torch.Tensor, torch.Tensor]:
    """A tiny ST-GCN reading ``inputs``, which runs on random windows ``(2, 10, C)``, the
    windows as frames ``(2, 10, J, 3)`` and its stacked input features of them."""
    info = SkeletonInfo(layout, bodies=1, dims=3)
    m = create_model("stgcn", info.n_channels, 3, 10, variant="tiny",
                     skeleton=info.to_dict(), inputs=inputs).eval()
    x = torch.randn(2, 10, info.n_channels)
    assert m(x).shape == (2, 3)
    frames = x.view(2, 10, info.n_joints, 3)
    return m, info, frames, m._inputs(frames, None)


def test_stgcn_bone_and_motion_inputs() -> None:
    from harkit.data.skeleton import parents

    m, info, frames, feats = _stgcn_inputs("natops8", "joint+bone+motion")  # (N, T, J, 9)
    par = parents("natops8")
    torch.testing.assert_close(feats[..., :3], frames)
    for j, p in enumerate(par):
        want = frames[:, :, j] - frames[:, :, p] if p >= 0 else torch.zeros_like(frames[:, :, j])
        torch.testing.assert_close(feats[:, :, j, 3:6], want)
    torch.testing.assert_close(feats[:, :-1, :, 6:], frames[:, 1:] - frames[:, :-1])
    assert torch.all(feats[:, -1, :, 6:] == 0)
    # with padding, motion stops at the last valid frame
    mask = torch.ones(2, 10)
    mask[:, 7:] = 0
    fm = m._inputs(frames * mask[:, :, None, None], mask)
    assert torch.all(fm[:, 6:, :, 6:] == 0)
    with pytest.raises(ConfigError, match="inputs"):
        create_model("stgcn", info.n_channels, 3, 10, skeleton=info.to_dict(), inputs="joint+x")


# ------------------------------------------------------------------------------------------
# bone and motion streams for the flat-channel (random-kernel) models


def test_skeleton_streams_add_bone_and_motion_channels() -> None:
    from harkit.data.skeleton import parents
    from harkit.models.skeleton import SkeletonStreams

    info = SkeletonInfo("natops8", bodies=2, dims=3, valid_channel=True)
    x = _windows(info, n=3, t=12)  # window i: 12 - 5 i valid frames, then padding
    st = SkeletonStreams(info, "joint+bone+motion")
    out = st(x)
    assert out.shape == (3, 12, 2 * 8 * 9 + 1) == (3, 12, st.n_channels)
    torch.testing.assert_close(out[..., -1], x[..., -1])  # the valid channel, last
    coords = unflatten(x, info) * x[..., -1, None, None, None]  # (B, T, M, J, D), padding 0
    per = out[..., :-1].reshape(3, 12, 2, 8, 9)
    torch.testing.assert_close(per[..., :3], coords)
    par = parents("natops8")
    for j, p in enumerate(par):
        want = coords[:, :, :, j] - coords[:, :, :, p] if p >= 0 else 0 * coords[:, :, :, j]
        torch.testing.assert_close(per[:, :, :, j, 3:6], want)
    torch.testing.assert_close(per[1, :6, ..., 6:], coords[1, 1:7] - coords[1, :6])
    assert torch.all(per[1, 6:, ..., 6:] == 0)  # motion stops at the last valid frame (6)
    # fitted: the derived streams have unit std per dim over the valid frames, joints as given
    st.fit(x)
    assert torch.all(st.scale[:3] == 1) and not torch.allclose(st.scale[3:], torch.ones(6))
    scaled = st(x)[..., :-1].reshape(3, 12, 2, 8, 9)[x[..., -1] > 0.5]
    torch.testing.assert_close(scaled[..., 3:].reshape(-1, 6).std(0, correction=0),
                               torch.ones(6), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scaled[..., :3], per[x[..., -1] > 0.5][..., :3])
    with pytest.raises(ValueError, match="streams='joint\\+hand'"):
        SkeletonStreams(info, "joint+hand")


def test_skeleton_streams_limb_and_ends_channels() -> None:
    from harkit.data.skeleton import extremities, get_layout, part_roots
    from harkit.models.skeleton import SkeletonStreams

    lay = get_layout("msr20")
    ends = extremities(lay)
    assert [lay.joints[j] for j in ends] == ["l_hand", "r_hand", "l_foot", "r_foot", "head"]
    root = part_roots(lay)
    assert lay.joints[root[lay.index("l_wrist")]] == "l_shoulder"
    assert lay.joints[root[lay.index("r_ankle")]] == "r_hip"
    assert root[lay.index("hip_centre")] == -1  # a part's root has no root of its own
    pairs = [(a, b) for i, a in enumerate(ends) for b in ends[i + 1 :]]
    info = SkeletonInfo("msr20", bodies=2, dims=3, valid_channel=True)
    x = _windows(info, n=3, t=12)
    st = SkeletonStreams(info, "limb+joint+ends")
    out = st(x)
    # per body: 20 joints x (limb, joint) x 3 dims, then 10 extremity pairs x 3 dims
    assert out.shape == (3, 12, 2 * (20 * 6 + 10 * 3) + 1) == (3, 12, st.n_channels)
    torch.testing.assert_close(out[..., -1], x[..., -1])
    coords = unflatten(x, info) * x[..., -1, None, None, None]  # (B, T, M, J, D), padding 0
    per = out[..., :-1].reshape(3, 12, 2, 150)
    joints = per[..., :120].reshape(3, 12, 2, 20, 6)
    torch.testing.assert_close(joints[..., 3:], coords)  # the order given: limb, then joint
    for j, r in enumerate(root):
        want = coords[:, :, :, j] - coords[:, :, :, r] if r >= 0 else 0 * coords[:, :, :, j]
        torch.testing.assert_close(joints[:, :, :, j, :3], want)
    vec = per[..., 120:].reshape(3, 12, 2, 10, 3)
    for k, (a, b) in enumerate(pairs):  # body 1 is not body 0: each body's own extremities
        torch.testing.assert_close(vec[:, :, :, k], coords[:, :, :, a] - coords[:, :, :, b])
    assert torch.all(vec[1, 7:] == 0)  # padded frames stay zero
    # fitted: every derived block has unit std per dim over the valid frames, joints unscaled
    st.fit(x)
    assert st.order == ["limb", "joint", "ends"] and st.scale.shape == (9,)
    assert torch.all(st.scale[3:6] == 1) and torch.all(st.scale[6:] != 1)
    valid = x[..., -1] > 0.5
    scaled = st(x)[..., :-1].reshape(3, 12, 2, 150)[valid]  # (valid frames, M, 150)
    ends_scaled = scaled[..., 120:].reshape(-1, 3)
    torch.testing.assert_close(ends_scaled.std(0, correction=0), torch.ones(3), rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(ValueError, match="fewer than two extremities"):
        SkeletonStreams(SkeletonInfo({"name": "one", "joints": ["a", "b", "c"],
                                      "edges": [["a", "b"], ["b", "c"], ["c", "a"]]},
                                     dims=2), "joint+ends")


def test_stgcn_limb_input_and_no_ends() -> None:
    from harkit.data.skeleton import part_roots

    _, info, frames, feats = _stgcn_inputs("msr20", "joint+limb")
    r = part_roots("msr20")[12]  # r_hand -> r_shoulder
    torch.testing.assert_close(feats[:, :, 12, 3:], frames[:, :, 12] - frames[:, :, r])
    # ends are pairs of joints, not a feature of every joint: flat-channel models only
    with pytest.raises(ConfigError, match=r"inputs='joint\+ends'"):
        create_model("stgcn", info.n_channels, 3, 10, skeleton=info.to_dict(),
                     inputs="joint+ends")


def test_stgcn_adaptive_graph_links_joints_no_bone_links() -> None:
    from harkit.data.skeleton import get_layout
    from harkit.models.skeleton import STGCNBlock

    lay = get_layout("msr20")
    lh, rh = lay.index("l_hand"), lay.index("r_hand")
    parts = torch.from_numpy(partition_adjacency(lay))
    assert torch.all(parts[:, lh, rh] == 0)  # the hands are far apart in the bone graph
    torch.manual_seed(0)
    block = STGCNBlock(3, 4, parts, kernel=1, stride=1, dropout=0.0, residual=False,
                       adaptive=True).eval()
    x = torch.randn(1, 3, 5, lay.n_joints)
    moved = x.clone()
    moved[..., lh] += 1.0

    def r_hand_response() -> torch.Tensor:
        return (block(moved) - block(x))[..., rh]

    # learnt from zero: at first the graph is the skeleton's, the right hand blind to the left
    assert torch.all(block.adapt == 0) and torch.all(r_hand_response() == 0)
    out = block(x).sum()
    out.backward()
    assert block.adapt is not None and block.adapt.grad is not None
    assert torch.any(block.adapt.grad[:, lh, rh] != 0)  # training can open the edge ...
    with torch.no_grad():
        block.adapt[0, lh, rh] = 1.0
    assert torch.any(r_hand_response() != 0)  # ... and then the left hand reaches the right
    # through the model: off by default (old checkpoints keep their keys), same output at init
    info = SkeletonInfo("msr20", bodies=1, dims=3)
    w = torch.randn(2, 10, info.n_channels)
    plain = _model("stgcn", info, t=10, widths=[8, 16]).eval()
    adaptive = _model("stgcn", info, t=10, widths=[8, 16], adaptive=True).eval()
    assert not any("adapt" in k for k in plain.state_dict())
    assert {k for k in adaptive.state_dict() if "adapt" in k} == {"blocks.0.adapt",
                                                                  "blocks.1.adapt"}
    torch.testing.assert_close(adaptive(w), plain(w), rtol=0, atol=0)


def test_random_kernel_streams_need_a_skeleton() -> None:
    info = SkeletonInfo("natops8", bodies=1, dims=3)
    with pytest.raises(ConfigError, match="needs a skeleton dataset"):
        create_model("minirocket", 9, 3, 32, variant="tiny", streams="joint+bone")
    with pytest.raises(ConfigError, match="streams="):
        create_model("hydra", info.n_channels, 3, 32, variant="tiny", skeleton=info.to_dict(),
                     streams="bone+bone")
    # the default reads the windows as given: the same features as without a skeleton
    x = torch.randn(5, 32, info.n_channels)
    plain = create_model("minirocket", info.n_channels, 3, 32, variant="tiny")
    sk = create_model("minirocket", info.n_channels, 3, 32, variant="tiny",
                      skeleton=info.to_dict())
    plain.fit_init(x, torch.tensor([0, 1, 2, 0, 1]))
    sk.fit_init(x, torch.tensor([0, 1, 2, 0, 1]))
    torch.testing.assert_close(sk.features(x), plain.features(x), rtol=0, atol=0)


@pytest.mark.parametrize(("name", "streams"), [("minirocket", "joint+bone+motion"),
                                               ("multirocket-hydra", "joint+bone+motion"),
                                               ("minirocket", "joint+ends")])
def test_random_kernel_models_learn_from_skeleton_streams_through_train(
        skeleton_source: str, tmp_path: Path, name: str, streams: str) -> None:
    from harkit.inference import Predictor

    r = harkit.train(overrides=[
        f"data.dataset={skeleton_source}", "data.n_val_subjects=2", f"model.name={name}",
        "model.variant=tiny", f"model.params.streams={streams}",
        "train.num_threads=1", f"run_root={tmp_path / 'runs'}"], progress=False)
    assert r.finished and r.test is not None and r.test.accuracy >= 0.9, r.test
    p = Predictor.from_run(r.run_dir)
    cfg = p.model.get_config()
    assert cfg["streams"] == streams and cfg["skeleton"]["layout"]["name"] == "natops8"
    # the fitted stream scales travel in the checkpoint
    scale = p.model.state_dict()["stream.scale"]
    assert scale.shape == (3 * len(streams.split("+")),)
    assert torch.all(scale[:3] == 1) and torch.all(scale[3:] != 1)
    ds = synthetic_skeleton_dataset()
    acc = float((p.predict(ds.splits["test"].X) == ds.splits["test"].y).mean())
    assert acc == pytest.approx(r.test.accuracy)
