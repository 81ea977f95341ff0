"""The contract every registered model meets (parametrized over the whole registry)."""

from __future__ import annotations

import io

import pytest
import torch

from harkit.errors import ConfigError
from harkit.models import MODELS, HarModel, create_model, list_models, model_from_config

ALL = list_models()


def test_registry_lists_the_required_models() -> None:
    assert {"lstm", "gru", "bilstm", "lstm-relu", "deepconvlstm", "harcnn"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_model_has_a_tiny_variant(name: str) -> None:
    assert "tiny" in MODELS.get(name).tags.get("variants", {}), f"{name} lacks a tiny variant"


@pytest.mark.parametrize("name", ALL)
def test_model_contract(name: str) -> None:
    torch.manual_seed(0)
    m = create_model(name, n_channels=5, n_classes=4, window_len=40, variant="tiny")
    assert (m.n_channels, m.n_classes, m.window_len) == (5, 4, 40)
    _check_contract(m, torch.randn(3, 40, 5))  # (batch, time, channels)


SKELETON = [n for n in ALL if MODELS.get(n).tags.get("skeleton")]


@pytest.mark.parametrize("name", SKELETON)
def test_skeleton_model_contract(name: str) -> None:
    """Skeleton models meet the contract on skeleton windows too (2 bodies, padded frames)."""
    from harkit.data.skeleton import SkeletonInfo

    info = SkeletonInfo("ntu25", bodies=2, dims=3, valid_channel=True)
    torch.manual_seed(0)
    m = create_model(name, n_channels=info.n_channels, n_classes=4, window_len=40,
                     variant="tiny", skeleton=info.to_dict())
    x = torch.randn(3, 40, info.n_channels)  # (batch, time, bodies*joints*dims + valid)
    x[..., -1] = (torch.arange(40) < 30).float()  # the last 10 frames are padding
    _check_contract(m, x)


def _check_contract(m: HarModel, x: torch.Tensor) -> None:
    out = m(x)
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    # logits, not probabilities: rows do not sum to 1
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))
    out.sum().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"no gradient for {pname}"
    # save -> load through the config gives the same outputs
    m.eval()
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = model_from_config(m.get_config())
    m2.load_state_dict(torch.load(buf, weights_only=True))
    m2.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x))
        # batch independence in eval mode: one window alone gives the same logits
        torch.testing.assert_close(m(x[1:2]), m(x)[1:2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_model_rejects_unknown_parameter(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown parameter"):
        create_model(name, 9, 6, 128, not_a_param=1)


def test_deepconvlstm_architecture_matches_the_paper() -> None:
    m = create_model("deepconvlstm", n_channels=113, n_classes=18, window_len=24)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64] * 4
    assert all(c.kernel_size == (5, 1) for c in convs)
    assert m.rnn.hidden_size == 128 and m.rnn.num_layers == 2
    assert not any(isinstance(mod, torch.nn.Softmax) for mod in m.modules())
    with pytest.raises(ConfigError, match="too short"):
        create_model("deepconvlstm", 9, 6, window_len=16)


def test_deepconvlstm_reshape_keeps_time_axis() -> None:
    """Perturbing input time step t changes the LSTM input only at steps t-16..t."""
    torch.manual_seed(0)
    m = create_model("deepconvlstm", 3, 2, 64, variant="tiny").eval()
    captured: list[torch.Tensor] = []
    m.rnn.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    x = torch.randn(1, 64, 3)
    x2 = x.clone()
    x2[0, 40, 1] += 5.0
    with torch.no_grad():
        m(x)
        m(x2)
    diff = (captured[0] - captured[1]).abs().sum(-1)[0]  # (T',)
    changed = torch.nonzero(diff > 1e-6).flatten().tolist()
    assert changed and min(changed) >= 40 - 16 and max(changed) <= 40


def test_recurrent_many_to_one_reads_the_end_of_the_window() -> None:
    torch.manual_seed(0)
    for name in ("lstm", "gru", "lstm-relu"):
        m = create_model(name, 3, 2, 50, variant="tiny").eval()
        x = torch.randn(1, 50, 3)
        x2 = x.clone()
        x2[0, -1] += 3.0
        with torch.no_grad():
            assert not torch.allclose(m(x), m(x2)), name


def test_lstm_forget_gate_bias_initialised_to_one() -> None:
    m = create_model("lstm", 9, 6, 128, hidden=16, layers=1)
    b = m.rnn.bias_ih_l0.detach()
    assert torch.all(b[16:32] == 1.0) and torch.all(b[:16] == 0.0)


@pytest.mark.parametrize("name", ALL)
def test_inference_fast_path_matches_eager(name: str) -> None:
    """The Predictor's frozen TorchScript graph gives the eager model's logits."""
    from harkit.inference.predictor import optimize_for_inference

    torch.manual_seed(0)
    m = create_model(name, n_channels=6, n_classes=3, window_len=64, variant="tiny").eval()
    fast = optimize_for_inference(m, 64, 6)
    x = torch.randn(5, 64, 6)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), m(x), rtol=1e-4, atol=1e-5)
    if name == "harcnn":
        assert isinstance(fast, torch.jit.ScriptModule)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize(("layers", "window", "batch"), [(1, 37, 5), (2, 128, 7), (3, 20, 1),
                                                         (2, 16, 2)])
def test_gru_inference_module_gives_the_models_logits(layers: int, window: int,
                                                      batch: int) -> None:
    """The GRU's wavefront inference forward (scripted, as harkit predict runs it) equals the
    trained model in eval mode: any depth, windows that are not a multiple of its time chunk,
    batch 1 (PyTorch's GRU path) and larger batches (the wavefront)."""
    from harkit.inference.predictor import optimize_for_inference
    from harkit.models.recurrent import GRUInference

    torch.manual_seed(layers)
    model = create_model("gru", 5, 4, window, hidden=12, layers=layers).eval()
    with torch.no_grad():  # trained-looking weights, not the recurrent init
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(batch, window, 5)
    fast = optimize_for_inference(model, window, 5)
    assert isinstance(fast, torch.jit.ScriptModule)
    for fwd in (fast, torch.jit.script(GRUInference(model.rnn, model.head, chunk=7))):
        with torch.inference_mode():
            torch.testing.assert_close(fwd(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unidirectional"):
        GRUInference(torch.nn.GRU(5, 4, bidirectional=True, batch_first=True), model.head)
