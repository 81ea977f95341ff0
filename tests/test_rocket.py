"""MiniRocket, MultiRocket, Hydra and MultiRocket-Hydra: the papers' properties, the closed-form
ridge head against scikit-learn, checkpoints, and training through harkit's own pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import harkit
from harkit.models import create_model, model_from_config, rocket
from harkit.models.rocket import (
    KERNEL_LEN,
    N_KERNELS,
    HydraBlock,
    RocketBlock,
    fit_dilations,
    minirocket_weights,
    ridge_loo,
)
from harkit.runs import RunDir
from harkit.training.checkpoint import load_checkpoint, save_checkpoint

NAMES = ["minirocket", "multirocket", "hydra", "multirocket-hydra"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _data(n: int = 60, T: int = 40, C: int = 5, K: int = 4, seed: int = 0
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent windows (B, T, C): a class-specific frequency plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    t = torch.arange(T, dtype=torch.float32)
    X = 0.3 * torch.randn(n, T, C, generator=g)
    X += torch.sin(2 * torch.pi * (y[:, None].float() + 1) * t / T)[:, :, None]
    return X, y


def _flat_state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_minirocket_kernels_follow_the_paper() -> None:
    w = minirocket_weights()
    assert w.shape == (84, 9) and set(w.unique().tolist()) == {-1.0, 2.0}
    assert torch.all((w == 2).sum(1) == 3) and torch.all(w.sum(1) == 0)
    assert len({tuple(r.tolist()) for r in w}) == 84  # all C(9, 3) placements of the 2s
    m = create_model("minirocket", n_channels=12, n_classes=3, window_len=128)
    block = m.rocket
    assert block is not None and block.dils == sorted(set(block.dils)) and block.dils[0] == 1
    assert block.dils[-1] * (KERNEL_LEN - 1) <= 127  # the largest kernel span fits the window
    assert 84 * sum(block.per_dil) == m.n_features == 84 * (10_000 // 84)
    kernels = {tuple(r.tolist()) for r in w}
    for j in range(len(block.dils)):
        wj = getattr(block, f"weight{j}")  # (84, C, 9)
        used = (wj != 0).any(2)  # channels each kernel sums
        n_used = used.sum(1)
        assert n_used.min() >= 1 and n_used.max() <= 9
        rows = {tuple(wj[k, used[k].nonzero()[0, 0]].tolist()) for k in range(84)}
        assert rows == kernels  # every kernel once per dilation
        # the kernels see the same weights on each of their channels
        assert all(torch.equal(wj[k, c], wj[k, used[k].nonzero()[0, 0]])
                   for k in range(84) for c in used[k].nonzero()[:, 0])
    # paper: 10,000 features -> 119 per kernel spread over at most 32 dilations
    dil, per = fit_dilations(128, 119, 32)
    assert sum(per) == 119 and dil[0] == 1 and all(p > 0 for p in per)


def _reference_features(block: RocketBlock, x: torch.Tensor) -> torch.Tensor:
    """The pooling operators straight from the papers' definitions, one bias at a time."""
    ppv, lspv, mpv, mipv = [], [], [], []
    start = 0
    for j, d in enumerate(block.dils):
        nf = block.per_dil[j]
        p = (KERNEL_LEN - 1) * d // 2
        c = F.conv1d(x, getattr(block, f"weight{j}"), dilation=d, padding=p)
        b = block.biases[start : start + 84 * nf].view(84, nf)
        start += 84 * nf
        for s in range(len(x)):
            for k in range(84):
                ck = c[s, k] if k < 42 else c[s, k, p : block.length - p]  # padded half first
                for i in range(nf):
                    z = ck - b[k, i]
                    pos = z > 0
                    n = int(pos.sum())
                    ppv.append(n / len(ck))
                    mpv.append(float(z[pos].mean()) if n else 0.0)
                    mipv.append(float(pos.nonzero().float().mean()) if n else -1.0)
                    best = run = 0
                    for v in pos.tolist():
                        run = run + 1 if v else 0
                        best = max(best, run)
                    lspv.append(float(best))
    # (operator, dilation, sample, kernel, bias) -> (sample, operator, dilation, kernel, bias)
    out = []
    for feats in (ppv, lspv, mpv, mipv):
        per_dil, at = [], 0
        for j in range(len(block.dils)):
            size = len(x) * 84 * block.per_dil[j]
            per_dil.append(torch.tensor(feats[at : at + size]).view(len(x), -1))
            at += size
        out.append(torch.cat(per_dil, 1))
    return torch.cat(out, 1)


def test_multirocket_pooling_matches_the_definitions() -> None:
    g = torch.Generator().manual_seed(1)
    block = RocketBlock(3, 30, per_kernel=3, max_dilations=3, pooling="multi", gen=g)
    x = torch.randn(6, 3, 30, generator=g)
    block.fit_biases(x, g)
    got = block(x[:3])
    ref = _reference_features(block, x[:3])
    torch.testing.assert_close(got, ref.float(), rtol=1e-4, atol=1e-4)
    ppv = got[:, : block.n_per_pool]
    assert ppv.min() >= 0 and ppv.max() <= 1
    # MiniRocket's PPV-only block computes the same PPV
    mini = RocketBlock(3, 30, per_kernel=3, max_dilations=3, pooling="ppv",
                       gen=torch.Generator().manual_seed(1))
    mini.load_state_dict(block.state_dict())
    torch.testing.assert_close(mini(x[:3]), ppv)


@pytest.mark.parametrize("pooling", ["multi", "ppv"])
def test_captured_pooling_matches_the_definitions(pooling: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The ops a trace captures (per-bias comparisons, the unrolled run loop) and those of
    an ONNX export (the run loop as one scan) give the definitions' features too, with runs
    cut by the end of the series."""
    g = torch.Generator().manual_seed(3)
    block = RocketBlock(2, 37, per_kernel=4, max_dilations=2, pooling=pooling, gen=g)
    x = torch.randn(5, 2, 37, generator=g)
    block.fit_biases(x, g)
    x[0, :, 20:] = 100.0  # a run above every bias up to the last sample
    ref = _reference_features(block, x[:3])
    want = ref.float() if pooling == "multi" else ref[:, : block.n_per_pool].float()
    eager = block(x[:3])
    monkeypatch.setattr(rocket, "_capturing", lambda: True)
    traced = block(x[:3])
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    exported = block(x[:3])
    for got in (eager, traced, exported):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(traced, eager, rtol=0, atol=1e-6)
    torch.testing.assert_close(exported, eager, rtol=0, atol=1e-6)


@pytest.mark.parametrize("length", [1, 2, 9, 129])
def test_the_captured_run_forms_equal_the_eager_loop(length: int) -> None:
    g = torch.Generator().manual_seed(length)
    v = torch.randint(0, 4, (length, 3, 2), generator=g, dtype=torch.uint8)
    levels = torch.arange(4, dtype=torch.uint8)
    loop = rocket._longest_run_above(v, levels, torch.uint8)
    assert torch.equal(rocket._longest_run_onnx(v, levels), loop)
    assert torch.equal(rocket._longest_run_unrolled(v, levels), loop)
    runs = [[max(len(r) for r in "".join("1" if t > 0 else " " for t in v[:, b, k].tolist())
                 .split(" ")) for k in range(2)] for b in range(3)]
    assert loop[..., 0].tolist() == runs


def test_checkpoints_with_the_old_border_buffers_still_load() -> None:
    """Blocks saved before the pooling sliced the borders carried border / n_valid / offset
    buffers per dilation: such a state dict loads strictly and gives the same features."""
    g = torch.Generator().manual_seed(2)
    block = RocketBlock(3, 30, per_kernel=3, max_dilations=3, pooling="ppv", gen=g)
    x = torch.randn(6, 3, 30, generator=g)
    block.fit_biases(x, g)
    state = block.state_dict()
    for j in range(len(block.dils)):
        state[f"border{j}"] = torch.zeros(84, 30, dtype=torch.bool)
        state[f"n_valid{j}"] = torch.ones(84, 1)
        state[f"offset{j}"] = torch.zeros(84, 1)
    fresh = RocketBlock(3, 30, per_kernel=3, max_dilations=3, pooling="ppv",
                        gen=torch.Generator().manual_seed(9))
    fresh.load_state_dict(state)  # strict
    assert torch.equal(fresh(x), block(x))
    with pytest.raises(RuntimeError, match="Unexpected"):
        fresh.load_state_dict({**block.state_dict(), "bogus": torch.zeros(1)})


def test_biases_are_quantiles_of_training_convolutions() -> None:
    X, y = _data(n=40)
    m = create_model("minirocket", 5, 4, 40, num_features=84 * 6, max_dilations=3)
    assert torch.all(m.rocket.biases == 0)  # type: ignore[union-attr]
    m.fit_init(X, y)
    block = m.rocket
    assert block is not None
    xc = X.transpose(1, 2)
    start = 0
    for j, d in enumerate(block.dils):
        nf = block.per_dil[j]
        c = F.conv1d(xc, getattr(block, f"weight{j}"), dilation=d, padding=4 * d)  # (N, 84, T)
        b = block.biases[start : start + 84 * nf].view(84, nf)
        start += 84 * nf
        lo, hi = c.amin((0, 2)), c.amax((0, 2))
        assert torch.all(b >= lo[:, None] - 1e-5) and torch.all(b <= hi[:, None] + 1e-5)
        assert torch.all(b[:, 1:] >= b[:, :-1])  # ascending per kernel
        # each kernel's biases are quantiles of one training window's output
        for k in range(0, 84, 17):
            found = False
            for s in range(len(X)):
                q = torch.quantile(c[s, k].double(), torch.linspace(0, 1, 2001, dtype=torch.float64))
                if torch.all((b[k].double()[:, None] - q).abs().min(1).values <
                             1e-2 * (q[-1] - q[0]) + 1e-6):
                    found = True
                    break
            assert found, (j, k)
    # training PPVs then spread over (0, 1) rather than sitting at 0 or 1
    f = m.features(X)
    assert 0.2 < float(f.mean()) < 0.8


def test_hydra_counts_each_time_step_once() -> None:
    g = torch.Generator().manual_seed(0)
    block = HydraBlock(4, 33, k=4, g=6, max_channels=8, gen=g)
    x = torch.randn(5, 4, 33, generator=g)
    f = block(x).view(5, len(block.dils), 2, 2, block.h, block.k)  # (B, dil, rep, max/min, h, k)
    mins = f[:, :, :, 1].sum(-1)  # how often some kernel of the group was the minimum
    assert torch.all(mins[:, :, 0] == 33) and torch.all(mins[:, :, 1] == 32)
    assert block.weight.abs().sum(-1).sub(1).abs().max() < 1e-5  # normalised kernels
    assert block.weight.mean(-1).abs().max() < 1e-6
    assert block.dils == [1, 2, 4]  # 2^0 .. 2^floor(log2(32 / 8))
    scaled = block.scale(block(x))
    assert torch.all(scaled[block(x) <= 0] == 0)  # the sparse scaler keeps zeros at zero


@pytest.mark.parametrize(("n", "p", "n_classes"), [(60, 25, 3), (40, 120, 4), (50, 30, 2)])
def test_ridge_head_matches_sklearn_ridge_classifier_cv(n: int, p: int, n_classes: int) -> None:
    from sklearn.linear_model import RidgeClassifierCV

    rng = np.random.default_rng(n + p)
    y = np.arange(n) % n_classes
    Z = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.standard_normal(p)
    Z[:, :5] += y[:, None] * 0.7  # some signal
    alphas = np.logspace(-3, 3, 10)
    ref = RidgeClassifierCV(alphas=alphas).fit(Z, y)
    W, b, alpha, logits = ridge_loo(torch.tensor(Z, dtype=torch.float64), torch.tensor(y),
                                    n_classes, alphas.tolist())
    assert alpha == pytest.approx(ref.alpha_)
    ours = (torch.tensor(Z) @ W.double().T + b.double()).numpy()
    dec = ref.decision_function(Z)
    if n_classes == 2:
        np.testing.assert_allclose(ours[:, 1] - ours[:, 0], dec, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_allclose(ours, dec, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.argmax(1), ref.predict(Z))
    np.testing.assert_allclose(logits.numpy(), ours, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("calibrate", [False, True])
@pytest.mark.parametrize(("n", "p", "n_classes"), [(40, 120, 4), (30, 90, 2)])
def test_cholesky_grid_search_equals_the_eigendecomposition(n: int, p: int, n_classes: int,
                                                            calibrate: bool) -> None:
    """n <= p: one Cholesky factorisation per alpha picks the same alpha and head as the
    eigendecomposition, which scikit-learn also uses."""
    rng = np.random.default_rng(n + p)
    y = np.arange(n) % n_classes
    Z = rng.standard_normal((n, p)) + 0.6 * np.eye(n_classes)[y] @ rng.standard_normal((n_classes, p))
    alphas = np.logspace(-3, 3, 10).tolist()
    chol = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, alphas, solver="cholesky",
                     calibrate=calibrate)
    eig = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, alphas, solver="eigh",
                    calibrate=calibrate)
    auto = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, alphas, calibrate=calibrate)
    assert chol[2] == eig[2] == auto[2]
    assert 1e-3 < chol[2] < 1e3  # an interior alpha: the search really compared scores
    for a, b, c in zip(chol, eig, auto, strict=True):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
            assert torch.equal(a, c)  # "auto" took the Cholesky path


def test_cholesky_search_deflates_the_centring_null_direction(
        caplog: pytest.LogCaptureFixture) -> None:
    """The centred features' Gram matrix has the constant vector as an exact null vector,
    which float32 summation leaves slightly below zero, where alpha 1e-6 does not lift it.
    The search deflates that direction, so it factorises and gives the exact answer."""
    from harkit.models.rocket import _loo_grid_cholesky

    rng = np.random.default_rng(0)
    n, p = 60, 200
    # deterministic: an exact float64 Gram matrix, then that direction pushed to -0.5
    Zc = torch.tensor(rng.standard_normal((n, p)))
    Zc -= Zc.mean(0)
    G = Zc @ Zc.T
    u = torch.full((n, 1), n ** -0.5, dtype=torch.float64)
    bad = G - 0.5 * (u @ u.T)
    assert torch.linalg.eigvalsh(bad)[0] < -0.4
    y = torch.arange(n) % 3
    Tc = -torch.ones(n, 3, dtype=torch.float64)
    Tc[torch.arange(n), y] = 1.0
    Tc -= Tc.mean(0)
    alphas = [1e-6, 1.0, 1e3]
    got, exact = _loo_grid_cholesky(bad, Tc, alphas), _loo_grid_cholesky(G, Tc, alphas)
    assert got is not None and exact is not None
    assert got[0] == exact[0]
    for a, b in zip(got[1:], exact[1:], strict=True):  # (leverages: float32 inverse)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # end to end: float32 features far from zero against the float64 computation
    Z = torch.tensor((rng.standard_normal((n, p)) * 1e3 + 1e4).astype(np.float32))
    alphas = [1e-6, 1.0, 1e3, 1e6, 1e9]
    with caplog.at_level("INFO", logger="harkit.models.rocket"):
        chol = ridge_loo(Z.clone(), y, 3, alphas, solver="cholesky")
    assert "eigendecomposition instead" not in caplog.text  # no fallback
    eig = ridge_loo(Z.double(), y, 3, alphas, solver="eigh")
    torch.testing.assert_close(chol[0], eig[0], rtol=1e-3, atol=1e-9)
    torch.testing.assert_close(chol[3], eig[3], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("solver", ["cholesky", "eigh"])
def test_float32_features_give_the_float64_calibrated_head(solver: str) -> None:
    """n << p and features far from standardised (as Hydra's are): from float32 features the
    leave-one-out search gives the calibrated head that the float64 computation does, by
    either solver. (Before the centring's null direction was deflated, the eigendecomposition
    of the float32-summed Gram matrix picked alpha 1000 here, its weights off by 6e-5, and
    on UTKinect's multirocket-hydra a temperature 10x too large.)"""
    rng = np.random.default_rng(1)
    n, p = 100, 5000
    y = np.arange(n) % 3
    Z = (rng.standard_normal((n, p)) * 30.0 + 5.0
         + 9.0 * np.eye(3)[y] @ rng.standard_normal((3, p))).astype(np.float32)
    alphas = [1e-3, 1.0, 1e3]
    ref = ridge_loo(torch.tensor(Z).double(), torch.tensor(y), 3, alphas, solver="eigh",
                    calibrate=True)
    got = ridge_loo(torch.tensor(Z), torch.tensor(y), 3, alphas, solver=solver,
                    calibrate=True)
    # (alphas 0.001 and 1 give the same head to 1e-7 here, and which of the two wins the
    # leave-one-out contest is a rounding matter, so only the head is compared)
    scale = float(ref[0].abs().max())
    assert float((got[0] - ref[0]).abs().max()) < 1e-5 * scale  # weights incl. temperature
    torch.testing.assert_close(got[3], ref[3], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("calibrate", [False, True])
def test_one_small_alpha_on_float32_features_factorises(calibrate: bool) -> None:
    """One given alpha too small to lift the float32 Gram matrix's null direction above zero
    (a plain Cholesky factorisation raised here): deflated, it solves, and gives the float64
    head."""
    rng = np.random.default_rng(0)
    n, p = 60, 200
    Z = torch.tensor((rng.standard_normal((n, p)) * 1e3 + 1e4).astype(np.float32))
    y = torch.arange(n) % 3
    got = ridge_loo(Z.clone(), y, 3, [1e-6], calibrate=calibrate)
    ref = ridge_loo(Z.double(), y, 3, [1e-6], solver="eigh", calibrate=calibrate)
    assert got[2] == ref[2] == 1e-6
    scale = float(ref[0].abs().max())
    assert float((got[0] - ref[0]).abs().max()) < 1e-4 * scale
    assert torch.equal(got[3].argmax(1), ref[3].argmax(1))


def test_cholesky_search_falls_back_when_the_float32_gram_is_indefinite(
        caplog: pytest.LogCaptureFixture) -> None:
    """Rank-deficient float32 features (rank 10 of 60 windows): many near-zero eigenvalues
    of the float32 Gram matrix are below zero, the factorisation fails for alpha 1e-6, and the
    eigendecomposition (which clamps them) decides."""
    from harkit.models.rocket import _gram, _loo_grid_cholesky

    rng = np.random.default_rng(0)
    n, p, k = 60, 200, 10
    low_rank = rng.standard_normal((n, k)) @ rng.standard_normal((k, p)) * 30
    Z = torch.tensor(low_rank.astype(np.float32))
    y = torch.arange(n) % 3
    Zc = Z - Z.mean(0)
    assert (torch.linalg.eigvalsh(_gram(Zc)) < -1e-3).sum() > 1  # as the test requires
    assert _loo_grid_cholesky(_gram(Zc), torch.zeros(n, 3, dtype=torch.float64),
                              [1e-6, 1.0]) is None
    alphas = [1e-6, 1.0, 1e3]
    with caplog.at_level("INFO", logger="harkit.models.rocket"):
        chol = ridge_loo(Z.clone(), y, 3, alphas, solver="cholesky")
    assert "eigendecomposition instead" in caplog.text
    eig = ridge_loo(Z.clone(), y, 3, alphas, solver="eigh")
    assert chol[2] == eig[2]
    torch.testing.assert_close(chol[0], eig[0])


def test_inverse_diagonal_is_checked_against_float64(caplog: pytest.LogCaptureFixture) -> None:
    """The float32 triangular inverse is accurate on a matrix with condition number 1e12;
    where it misses the tolerance (tol 0 forces that) the float64 inverse replaces it."""
    from harkit.models.rocket import _inverse_diagonal

    rng = np.random.default_rng(0)
    n = 80
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    L = torch.linalg.cholesky(torch.tensor((U * np.logspace(0, 12, n)) @ U.T))
    ref = torch.cholesky_inverse(L).diagonal()
    torch.testing.assert_close(_inverse_diagonal(L), ref, rtol=1e-5, atol=0)
    with caplog.at_level("INFO", logger="harkit.models.rocket"):
        exact = _inverse_diagonal(L, tol=0.0)
    assert "redoing it in float64" in caplog.text
    torch.testing.assert_close(exact, ref, rtol=1e-9, atol=0)


def test_bad_ridge_solver_is_refused() -> None:
    Z, y = torch.randn(20, 5, dtype=torch.float64), torch.arange(20) % 2
    with pytest.raises(ValueError, match="solver"):
        ridge_loo(Z, y, 2, [1.0, 2.0], solver="qr")
    with pytest.raises(ValueError, match="n <= p"):
        ridge_loo(Z, y, 2, [1.0, 2.0], solver="cholesky")


@pytest.mark.parametrize(("n", "p", "n_classes"), [(60, 25, 3), (40, 120, 4), (50, 30, 2)])
def test_ridge_with_one_alpha_matches_sklearn_ridge_classifier(n: int, p: int,
                                                                n_classes: int) -> None:
    """One alpha takes the Cholesky path (no eigendecomposition): same solution as sklearn."""
    from sklearn.linear_model import RidgeClassifier

    rng = np.random.default_rng(n * p)
    y = np.arange(n) % n_classes
    Z = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.standard_normal(p)
    Z[:, :5] += y[:, None] * 0.7
    ref = RidgeClassifier(alpha=2.5).fit(Z, y)
    W, b, alpha, logits = ridge_loo(torch.tensor(Z, dtype=torch.float64), torch.tensor(y),
                                    n_classes, [2.5])
    assert alpha == 2.5
    ours = (torch.tensor(Z) @ W.double().T + b.double()).numpy()
    dec = ref.decision_function(Z)
    got = ours[:, 1] - ours[:, 0] if n_classes == 2 else ours
    np.testing.assert_allclose(got, dec, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits.numpy(), ours, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("n", "p", "n_classes"), [(60, 25, 3), (40, 120, 4), (50, 30, 2)])
def test_one_alpha_calibration_equals_the_eigendecomposition_path(n: int, p: int,
                                                                  n_classes: int) -> None:
    """The Cholesky path's leave-one-out leverages give the same calibrated head as the
    eigendecomposition path does for the same alpha."""
    rng = np.random.default_rng(n + 7 * p)
    y = np.arange(n) % n_classes
    Z = rng.standard_normal((n, p))
    Z[np.arange(n), y] += 3.0  # class k lifts feature k
    one = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, [3.0], calibrate=True)
    # a second, absurd alpha loses the leave-one-out contest: the eigen path must pick 3.0
    eig = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, [3.0, 1e12], calibrate=True)
    assert one[2] == eig[2] == 3.0
    for a, b in zip(one, eig, strict=True):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_fit_init_folds_the_standardisation_into_the_head(name: str) -> None:
    X, y = _data()
    m = create_model(name, 5, 4, 40, variant="tiny").eval()
    logits = m.fit_init(X, y)
    assert logits is not None and m.closed_form
    with torch.no_grad():
        torch.testing.assert_close(m(X), logits, rtol=1e-3, atol=1e-3)
    assert float((m(X).argmax(1) == y).float().mean()) > 0.9
    assert [n for n, _ in m.named_parameters()] == ["head.weight", "head.bias"]


@pytest.mark.parametrize("name", NAMES)
def test_seed_determines_the_model_and_checkpoints_carry_it(name: str, tmp_path: Path) -> None:
    X, y = _data()
    a = create_model(name, 5, 4, 40, variant="tiny", seed=3)
    b = create_model(name, 5, 4, 40, variant="tiny", seed=3)
    c = create_model(name, 5, 4, 40, variant="tiny", seed=4)
    a.fit_init(X, y)
    b.fit_init(X, y)
    c.fit_init(X, y)
    sa, sb, sc = _flat_state(a), _flat_state(b), _flat_state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if k.endswith(("weight", "biases")))
    assert any(k.endswith("biases") or k.endswith("weight0") or k == "hydra.weight" for k in sa)
    # buffers and head survive a checkpoint round trip into a freshly built model
    save_checkpoint(tmp_path / "m.pt", {"weights": a.state_dict(), "config": a.get_config()})
    ck = load_checkpoint(tmp_path / "m.pt")
    r = model_from_config(ck["config"])
    assert any(not torch.equal(v, _flat_state(r)[k]) for k, v in sa.items())  # not fitted yet
    r.load_state_dict(ck["weights"])
    with torch.no_grad():
        torch.testing.assert_close(r.eval()(X), a.eval()(X))


def test_batches_give_the_same_features_as_one_window() -> None:
    X, y = _data(n=9)
    m = create_model("multirocket-hydra", 5, 4, 40, variant="tiny").eval()
    m.fit_init(X, y)
    with torch.no_grad():
        full = m.features(X)
        torch.testing.assert_close(torch.cat([m.features(X[i : i + 1]) for i in range(9)]), full)


def test_minirocket_works_through_large_batches_in_chunks_and_exports_whole() -> None:
    """Batches over PPV_CHUNK are computed in chunks: the same features as one window at a
    time; a trace (as ONNX export takes it) records the unchunked graph, so it serves any
    batch size."""
    from harkit.models.rocket import PPV_CHUNK

    X, y = _data(n=PPV_CHUNK + 11)
    m = create_model("minirocket", 5, 4, 40, variant="tiny").eval()
    m.fit_init(X, y)
    with torch.no_grad():
        full = m.features(X)
        one = torch.cat([m.features(X[i : i + 1]) for i in range(len(X))])
        torch.testing.assert_close(full, one)
        traced = torch.jit.trace(m, X[:PPV_CHUNK + 5], check_trace=False)
        torch.testing.assert_close(traced(X), m(X))  # a larger batch than traced with
        torch.testing.assert_close(traced(X[:3]), m(X[:3]))


def _cfg(tiny_cfg: list[str], name: str) -> list[str]:
    keep = [o for o in tiny_cfg if not o.startswith("model.")]  # harcnn's sizes
    return [*keep, f"model.name={name}", "model.num_features=336", "model.max_dilations=4"]


def test_minirocket_trains_through_the_pipeline(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=[*_cfg(tiny_cfg, "minirocket"), "train.epochs=25"], progress=False)
    assert r.finished and r.test is not None and r.test.accuracy > 0.9
    assert len(r.history) == 1 and r.best_epoch == 1  # the closed-form fit is one epoch
    h = r.history[0]
    assert h["val_f1"] == h["val_f1"] and h["train_acc"] > 0.9  # validated, not NaN
    run = RunDir(r.run_dir)
    info = run.info()
    assert info["refit_epochs"] == 1 and info["refit_subjects"] == [1, 2, 3, 4, 5, 6]
    assert len(run.read_history("refit_history.csv")) == 1
    for ck in ("best.pt", "last.pt", "refit_last.pt"):
        assert (r.run_dir / "checkpoints" / ck).is_file()
    final = load_checkpoint(r.run_dir / "checkpoints" / "refit_last.pt")
    sel = load_checkpoint(r.run_dir / "checkpoints" / "last.pt")
    assert final["trainer"]["ema"] is None
    # the refit fitted its own biases on all training subjects
    assert not torch.equal(final["weights"]["rocket.biases"], sel["weights"]["rocket.biases"])
    p = harkit.Predictor.from_run(r.run_dir)
    assert p._forward is p.model  # predicted eagerly: a trace is no faster for this family
    from harkit.data import load_dataset

    ds = load_dataset("uci-har", data_dir=str(Path(tiny_cfg[0].split("=", 1)[1])))
    test = ds.splits["test"]
    acc = float((p.predict(test.X) == test.y).mean())
    assert acc == pytest.approx(r.test.accuracy)
    # resuming a finished run does not refit: same weights, same test score
    again = harkit.train(resume=r.run_dir, progress=False)
    assert again.finished and again.test is not None and again.test.accuracy == r.test.accuracy
    after = load_checkpoint(r.run_dir / "checkpoints" / "refit_last.pt")
    assert all(torch.equal(after["weights"][k], v) for k, v in final["weights"].items())


def test_sgd_head_trains_by_epochs_and_resumes_without_refitting(tiny_cfg: list[str]) -> None:
    cfg = [*_cfg(tiny_cfg, "minirocket"), "model.head=sgd", "train.epochs=3",
           "train.refit=false", "train.lr=1e-2"]
    full = harkit.train(overrides=[*cfg, "name=full"], progress=False)
    assert len(full.history) == 3 and full.test is not None and full.test.accuracy > 0.8
    part = harkit.train(overrides=[*cfg, "name=part"], progress=False, stop_after=1)
    assert not part.finished
    resumed = harkit.train(resume=part.run_dir, progress=False)
    a = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")["weights"]
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.test.accuracy == resumed.test.accuracy  # type: ignore[union-attr]
    assert float((a["feat_scale"] != 1).float().mean()) > 0.9  # standardised for SGD


@pytest.mark.parametrize("name", ["multirocket", "hydra", "multirocket-hydra"])
def test_other_models_train_through_the_pipeline(tiny_cfg: list[str], name: str) -> None:
    keep = [o for o in tiny_cfg if not o.startswith("model.")]
    params = (["model.k=4", "model.g=8"] if "hydra" in name else []) + (
        ["model.num_features=672", "model.max_dilations=4"] if "multi" in name else [])
    r = harkit.train(overrides=[*keep, f"model.name={name}", *params], progress=False)
    assert r.finished and r.test is not None and r.test.accuracy > 0.85
    assert len(r.history) == 1


def test_bad_rocket_parameters_are_config_errors() -> None:
    from harkit.errors import ConfigError

    with pytest.raises(ConfigError, match="head must be"):
        create_model("minirocket", 3, 2, 64, head="lbfgs")
    with pytest.raises(ConfigError, match="shorter than the kernel"):
        create_model("multirocket", 3, 2, 8)
    with pytest.raises(ConfigError, match="alphas"):
        create_model("hydra", 3, 2, 64, alphas=[0.0])
    assert N_KERNELS == 84


@pytest.mark.parametrize("low", [0, -3])
def test_float32_eigendecomposition_agrees(low: int) -> None:
    """The opt-in float32 eigendecomposition agrees with float64 for moderate alphas and,
    since the centring's null direction is deflated, over the default grid down to 1e-3 too
    (before, it chose 0.001 where float64 chose 215 on this problem with 2 threads)."""
    rng = np.random.default_rng(3)
    n, p, k = 300, 500, 4
    y = np.arange(n) % k
    Z = rng.standard_normal((n, p)) + 0.5 * np.eye(k)[y] @ rng.standard_normal((k, p))
    alphas = np.logspace(low, 3, 7 if low == 0 else 10).tolist()
    W64, b64, a64, _ = ridge_loo(torch.tensor(Z), torch.tensor(y), k, alphas, solver="eigh")
    W32, b32, a32, _ = ridge_loo(torch.tensor(Z), torch.tensor(y), k, alphas, solver="eigh",
                                 float32_from=1)
    assert a32 == a64
    d64 = torch.tensor(Z) @ W64.double().T + b64.double()
    d32 = torch.tensor(Z) @ W32.double().T + b32.double()
    torch.testing.assert_close(d32, d64, rtol=1e-3, atol=1e-3)
    assert torch.equal(d32.argmax(1), d64.argmax(1))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_calibration_scales_the_head_to_fit_leave_one_out_probabilities(n_classes: int) -> None:
    rng = np.random.default_rng(5)
    n, p = 200, 80
    means = 0.8 * rng.standard_normal((n_classes, p))
    y = np.arange(n) % n_classes
    Z = rng.standard_normal((n, p)) + means[y]
    Zt = torch.tensor(rng.standard_normal((n, p)) + means[y])  # held out, same classes
    alphas = np.logspace(-3, 3, 10).tolist()
    W0, b0, a0, l0 = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, alphas)
    W1, b1, a1, l1 = ridge_loo(torch.tensor(Z), torch.tensor(y), n_classes, alphas, calibrate=True)
    assert a1 == a0
    tau = float((W1 / W0).flatten()[0])
    torch.testing.assert_close(W1, W0 * tau)
    torch.testing.assert_close(b1, b0 * tau)
    torch.testing.assert_close(l1, l0 * tau)
    assert torch.equal(l1.argmax(1), l0.argmax(1))
    # raw ridge decisions (targets +-1) are far too timid as logits: the temperature is > 1
    # and the held-out cross-entropy drops
    assert tau > 1.5
    yt = torch.tensor(y)
    ce0 = torch.nn.functional.cross_entropy(Zt @ W0.double().T + b0.double(), yt)
    ce1 = torch.nn.functional.cross_entropy(Zt @ W1.double().T + b1.double(), yt)
    assert ce1 < ce0
