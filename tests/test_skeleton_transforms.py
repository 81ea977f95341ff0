"""Per-sequence skeleton transforms and the flatten / window round trip, on synthetic skeletons."""

from __future__ import annotations

import numpy as np
import pytest

from harkit.data.skeleton import (
    LAYOUTS,
    SkeletonInfo,
    align_view,
    body_size,
    bones,
    centre,
    flatten,
    get_layout,
    joint_mask,
    motion,
    normalise_scale,
    parents,
    prepare,
    sequences_to_windows,
    unflatten,
)
from harkit.errors import ConfigError


def rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation matrix ``(3, 3)``."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def rigid_sequence(layout: str, frames: int = 6, dims: int = 3, bodies: int = 1,
                   seed: int = 0) -> np.ndarray:
    """A random body pose translated (not deformed) over time: ``(frames, bodies, joints,
    dims)``, every bone of constant length."""
    rng = np.random.default_rng(seed)
    n = get_layout(layout).n_joints
    pose = rng.normal(size=(bodies, n, dims))
    shift = np.cumsum(rng.normal(size=(frames, 1, 1, dims)), axis=0) + 5.0
    return pose[None] + shift


def standing_kinect(seed: int = 0, frames: int = 4) -> np.ndarray:
    """A kinect20 body, upright along +y, shoulders along +x, then rotated and moved at
    random (the same rotation in every frame)."""
    lay = get_layout("kinect20")
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.05, size=(lay.n_joints, 3))
    for name, p in {"hip_centre": (0, 0, 0), "spine": (0, 0.3, 0),
                    "shoulder_centre": (0, 0.6, 0), "head": (0, 0.8, 0),
                    "l_shoulder": (-0.2, 0.6, 0), "r_shoulder": (0.2, 0.6, 0)}.items():
        pose[lay.index(name)] = p
    rot = rotation(rng)
    shift = rng.normal(size=3)
    frames_ = [pose @ rot.T + shift + 0.01 * t for t in range(frames)]
    return np.stack(frames_)[:, None]


@pytest.mark.parametrize("per_frame", [False, True])
def test_centre_puts_the_centre_at_the_origin(per_frame: bool) -> None:
    lay = get_layout("ntu25")
    seq = rigid_sequence("ntu25", bodies=2)
    out = centre(seq, lay, per_frame=per_frame)
    c = out[:, 0, list(lay.centre)].mean(axis=1)  # (frames, dims)
    assert np.allclose(c[0], 0.0, atol=1e-6)
    if per_frame:
        assert np.allclose(c, 0.0, atol=1e-5)
    else:  # the body's own movement is kept
        moved = seq[:, 0, lay.centre[0]] - seq[0, 0, lay.centre[0]]
        assert np.allclose(c, moved, atol=1e-5)
    # both bodies moved by the same vector: the second body keeps its offset from the first
    assert np.allclose(out[:, 1] - out[:, 0], seq[:, 1] - seq[:, 0], atol=1e-5)


def test_centre_skips_missing_joints() -> None:
    lay = get_layout("penn13")  # centre: l_hip and r_hip
    seq = rigid_sequence("penn13", frames=3, dims=2)
    seq[0, 0, lay.index("r_hip")] = 0.0  # r_hip lost in the first frame
    seq[:, 0, lay.index("head")] = 0.0   # head never measured
    out = centre(seq, lay)
    assert np.allclose(out[0, 0, lay.index("l_hip")], 0.0, atol=1e-6)
    assert (out[:, 0, lay.index("head")] == 0).all()
    assert (out[0, 0, lay.index("r_hip")] == 0).all()
    # a centre never measured leaves the sequence as it is
    empty = seq.copy()
    empty[:, :, list(lay.centre)] = 0.0
    assert np.array_equal(centre(empty, lay), empty)


def test_centre_with_named_joints_and_errors() -> None:
    lay = get_layout("kinect20")
    seq = rigid_sequence("kinect20")
    out = centre(seq, lay, joints=["head"])
    assert np.allclose(out[0, 0, lay.index("head")], 0.0, atol=1e-6)
    with pytest.raises(ConfigError, match="no joint 'nose'"):
        centre(seq, lay, joints=["nose"])
    with pytest.raises(ValueError, match="20, dims"):
        centre(seq[:, :, :5], lay)


def test_normalise_scale_makes_the_body_size_one() -> None:
    seq = rigid_sequence("kinect20", frames=8)
    size = body_size(seq, "kinect20")
    assert size > 0
    big = normalise_scale(7.5 * seq, "kinect20")
    assert body_size(big, "kinect20") == pytest.approx(1.0)
    assert np.allclose(big, seq / size, atol=1e-5)
    # robust to missing joints: dropping joints in some frames leaves the size unchanged
    holes = seq.copy()
    holes[1, 0, :5] = 0.0
    holes[4, 0, 10:] = 0.0
    assert body_size(holes, "kinect20") == pytest.approx(size)
    out = normalise_scale(holes, "kinect20")
    assert (out[1, 0, :5] == 0).all()
    # nothing measurable: unchanged
    assert np.array_equal(normalise_scale(np.zeros((2, 1, 20, 3)), "kinect20"),
                          np.zeros((2, 1, 20, 3)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_align_view_puts_the_shoulder_line_on_x(seed: int) -> None:
    lay = get_layout("kinect20")
    seq = centre(standing_kinect(seed), lay)
    out = align_view(seq, lay)
    line = out[0, 0, lay.index("r_shoulder")] - out[0, 0, lay.index("l_shoulder")]
    assert line[0] > 0 and np.allclose(line[1:], 0.0, atol=1e-5)
    spine = out[0, 0, lay.index("shoulder_centre")] - out[0, 0, lay.index("hip_centre")]
    assert spine[1] > 0 and abs(spine[2]) < 1e-5
    # a rotation: distances and the origin are kept
    assert body_size(out, lay) == pytest.approx(body_size(seq, lay), rel=1e-5)
    assert np.allclose(out[0, 0, lay.index("hip_centre")], 0.0, atol=1e-6)
    # the same rotation for every frame: each frame's shoulders lie along x as well
    lines = out[:, 0, lay.index("r_shoulder")] - out[:, 0, lay.index("l_shoulder")]
    assert np.allclose(lines[:, 1:], 0.0, atol=1e-5)


def test_align_view_uses_the_first_frame_with_the_joints_and_keeps_zeros() -> None:
    lay = get_layout("kinect20")
    seq = centre(standing_kinect(3), lay)
    seq[0, 0, lay.index("l_shoulder")] = 0.0  # frame 0 cannot be used
    out = align_view(seq, lay)
    assert (out[0, 0, lay.index("l_shoulder")] == 0).all()
    line = out[1, 0, lay.index("r_shoulder")] - out[1, 0, lay.index("l_shoulder")]
    assert np.allclose(line[1:], 0.0, atol=1e-5)


def test_align_view_errors() -> None:
    with pytest.raises(ConfigError, match="3D"):
        align_view(rigid_sequence("coco18", dims=2), "coco18")
    with pytest.raises(ConfigError, match="natops8"):
        align_view(rigid_sequence("natops8"), "natops8")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_bones_invert_by_summing_along_the_tree(layout: str) -> None:
    lay = get_layout(layout)
    par = parents(lay)
    assert len(par) == lay.n_joints
    seq = rigid_sequence(layout, frames=3, bodies=2)
    b = bones(seq, lay)
    assert b.shape == seq.shape
    roots = [j for j, p in enumerate(par) if p < 0]
    assert roots and all((b[:, :, r] == 0).all() for r in roots)
    # rebuild every joint from the roots' positions plus the bones on its path
    rebuilt = np.zeros_like(seq)
    done = set(roots)
    rebuilt[:, :, roots] = seq[:, :, roots]
    while len(done) < lay.n_joints:
        ready = [j for j in range(lay.n_joints) if j not in done and par[j] in done]
        assert ready, f"{layout}: the parents do not form a tree"
        for j in ready:
            rebuilt[:, :, j] = rebuilt[:, :, par[j]] + b[:, :, j]
            done.add(j)
    assert np.allclose(rebuilt, seq, atol=1e-5)


def test_bones_of_a_missing_joint_are_zero() -> None:
    lay = get_layout("kinect20")
    seq = rigid_sequence("kinect20")
    seq[2, 0, lay.index("l_elbow")] = 0.0
    b = bones(seq, lay)
    assert (b[2, 0, lay.index("l_elbow")] == 0).all()   # the elbow's own bone
    assert (b[2, 0, lay.index("l_wrist")] == 0).all()   # the bone hanging from it


def test_motion_sums_back_to_the_sequence() -> None:
    seq = rigid_sequence("coco18", frames=7, dims=2)
    m = motion(seq)
    assert m.shape == seq.shape and (m[-1] == 0).all()
    rebuilt = np.concatenate([seq[:1], seq[:1] + np.cumsum(m[:-1], axis=0)])
    assert np.allclose(rebuilt, seq, atol=1e-5)
    seq[3, 0, 4] = 0.0  # a joint lost in frame 3: no motion into or out of it
    m = motion(seq)
    assert (m[2, 0, 4] == 0).all() and (m[3, 0, 4] == 0).all()


def test_prepare_chains_the_transforms_without_mutating() -> None:
    seq = standing_kinect(5)
    before = seq.copy()
    out = prepare(seq, "kinect20", align=True)
    assert np.array_equal(seq, before)
    manual = align_view(normalise_scale(centre(seq, "kinect20"), "kinect20"), "kinect20")
    assert np.allclose(out, manual, atol=1e-6)
    assert body_size(out, "kinect20") == pytest.approx(1.0)
    assert np.array_equal(prepare(seq, "kinect20", centre=False, scale=False), seq)


def test_joint_mask() -> None:
    seq = np.ones((2, 1, 3, 2))
    seq[0, 0, 1] = 0.0
    seq[1, 0, 2, 0] = np.nan
    assert joint_mask(seq).tolist() == [[[True, False, True]], [[True, True, False]]]


def test_unflatten_inverts_flatten_with_named_channels() -> None:
    info = SkeletonInfo("ntu25", bodies=2, dims=3)
    rng = np.random.default_rng(0)
    seqs = rng.normal(size=(4, 9, 2, 25, 3)).astype(np.float32)  # (N, T, M, J, D)
    flat = flatten(seqs)
    assert flat.shape == (4, 9, info.n_coords)
    assert np.array_equal(unflatten(flat, info), seqs)
    names = info.channel_names()
    lay = get_layout("ntu25")
    for m, j, d in [(0, 0, 0), (1, 7, 2), (0, 24, 1)]:
        c = names.index(f"b{m}.{lay.joints[j]}.{'xyz'[d]}")
        assert np.array_equal(flat[:, :, c], seqs[:, :, m, j, d])


@pytest.mark.parametrize("policy", ["pad", "resample"])
def test_frames_stay_in_order_through_windows(policy: str) -> None:
    """Values encode (frame, body, joint, dim): windowing then unflattening must give every
    frame back at its own time step, never mixed with another axis."""
    info = SkeletonInfo("coco18", bodies=2, dims=2)
    t = np.arange(7)[:, None, None, None]
    m = np.arange(2)[None, :, None, None]
    j = np.arange(18)[None, None, :, None]
    d = np.arange(2)[None, None, None, :]
    seq = (1000.0 * t + 100.0 * m + 2.0 * j + d + 1).astype(np.float32)  # (7, 2, 18, 2)
    short = seq[:4]
    w = sequences_to_windows([seq, short], 7, policy)
    back = unflatten(w, SkeletonInfo("coco18", bodies=2, dims=2,
                                     valid_channel=policy == "pad"))
    assert back.shape == (2, 7, 2, 18, 2)
    assert np.array_equal(back[0], seq)
    if policy == "pad":
        assert np.array_equal(back[1, :4], short) and (back[1, 4:] == short[-1]).all()
        assert w[1, :, -1].tolist() == [1, 1, 1, 1, 0, 0, 0]
    else:  # 4 frames stretched onto 7 steps: frame index 0, 0.5, 1, ... 3
        frame = (back[1, :, 0, 0, 0] - 1) / 1000.0
        assert np.allclose(frame, np.linspace(0, 3, 7), atol=1e-4)
        assert np.allclose(back[1, :, :, :, :] - 1000.0 * frame[:, None, None, None],
                           seq[0], atol=1e-3)
    assert info.n_channels == w.shape[-1] - (policy == "pad")
