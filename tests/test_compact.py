"""TinyHAR, the compact model: size budget against DeepConvLSTM, shapes on the axes the paper
describes, and that no reshape mixes time steps."""

from __future__ import annotations

import pytest
import torch

from harkit.errors import ConfigError
from harkit.models import create_model

# (channels, classes, window): HAPT 6 and 12 activities, OPPORTUNITY, Skoda, UCI HAR
SHAPES = [(6, 6, 128), (6, 12, 128), (113, 18, 24), (30, 11, 24), (9, 6, 128)]


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_tinyhar_has_at_most_a_tenth_of_deepconvlstms_parameters(shape: tuple[int, int, int]
                                                                 ) -> None:
    tiny = create_model("tinyhar", *shape)
    for variant in (None, "paper"):
        dcl = create_model("deepconvlstm", *shape, variant=variant)
        assert _n_params(tiny) * 10 <= _n_params(dcl), (shape, _n_params(tiny), _n_params(dcl))


def test_tinyhar_layer_shapes() -> None:
    """F = 24 filters of 5 x 1 with stride 2, F* = 2F fused features, one LSTM of F*."""
    m = create_model("tinyhar", 6, 6, 128).eval()
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(24, 1, 5, 1)] + [(24, 24, 5, 1)] * 3
    assert all(c.stride == (2, 1) for c in convs)
    assert tuple(m.fusion[0].weight.shape) == (48, 6 * 24)
    assert m.rnn.num_layers == 1 and m.rnn.hidden_size == 48
    seen: dict[str, tuple[int, ...]] = {}
    m.channel_attention.register_forward_hook(
        lambda mod, inp, out: seen.__setitem__("attention", tuple(out.shape)))
    m.rnn.register_forward_hook(lambda mod, inp, out: seen.__setitem__("lstm", tuple(inp[0].shape)))
    with torch.no_grad():
        m(torch.randn(3, 128, 6))
    assert seen == {"attention": (3 * 8, 6, 24), "lstm": (3, 8, 48)}  # 128 -> 8 steps


@pytest.mark.parametrize("window", [1, 5, 24, 128, 131])
def test_tinyhar_accepts_short_and_odd_windows(window: int) -> None:
    m = create_model("tinyhar", 113, 18, window, variant="tiny").eval()
    with torch.no_grad():
        assert m(torch.randn(2, window, 113)).shape == (2, 18)


def test_no_reshape_mixes_time_steps() -> None:
    """A change at input step t reaches only the LSTM inputs whose receptive field covers t.

    Four stride-2 convolutions of kernel 5 (padding 2): LSTM step j sees input steps
    16j - 30 .. 16j + 30. The change is in one channel only, so steps j outside that range
    are untouched even though the cross-channel attention mixes channels.
    """
    torch.manual_seed(0)
    m = create_model("tinyhar", 4, 3, 128, variant="tiny").eval()
    seen: list[torch.Tensor] = []
    m.rnn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    x = torch.randn(1, 128, 4)
    for t in (3, 70, 125):
        x2 = x.clone()
        x2[0, t, 2] += 5.0
        seen.clear()
        with torch.no_grad():
            m(x)
            m(x2)
        changed = torch.nonzero((seen[0] - seen[1]).abs().sum(-1)[0] > 1e-6).flatten().tolist()
        allowed = [j for j in range(8) if abs(16 * j - t) <= 30]
        assert changed and set(changed) <= set(allowed), (t, changed, allowed)


def test_channel_attention_mixes_channels_within_a_time_step() -> None:
    """Changing one sensor channel changes the attention output of the other channels."""
    torch.manual_seed(0)
    m = create_model("tinyhar", 5, 3, 64, variant="tiny").eval()
    seen: list[torch.Tensor] = []
    m.channel_attention.register_forward_hook(lambda mod, inp, out: seen.append(out.detach()))
    x = torch.randn(1, 64, 5)
    x2 = x.clone()
    x2[0, :, 0] += 3.0  # channel 0 only, all time steps
    with torch.no_grad():
        m(x)
        m(x2)
    before, after = seen  # (T*, C, F)
    other_channels = (before[:, 1:] - after[:, 1:]).abs().amax()
    assert other_channels > 1e-4


def test_temporal_attention_gamma_is_trainable_and_starts_at_zero() -> None:
    torch.manual_seed(0)
    m = create_model("tinyhar", 6, 6, 128, variant="tiny")
    assert float(m.gamma.detach()) == 0.0
    m(torch.randn(4, 128, 6)).sum().backward()
    assert m.gamma.grad is not None and float(m.gamma.grad.abs()) > 0
    with torch.no_grad():  # with gamma != 0 the attention-weighted context changes the output
        x = torch.randn(2, 128, 6)
        m.eval()
        base = m(x)
        m.gamma.fill_(1.0)
        assert not torch.allclose(base, m(x))


@pytest.mark.parametrize("bad", [{"filters": 0}, {"stride": 0}, {"dropout": 1.0}])
def test_tinyhar_rejects_invalid_hyperparameters(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        create_model("tinyhar", 6, 6, 128, **bad)


def test_softmax_last_equals_torch_softmax() -> None:
    """TinyHAR's written-out softmax gives torch's values and gradients, large inputs too."""
    from harkit.models.tinyhar import softmax_last

    x = torch.randn(64, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for scale in (1.0, 1e3):  # 1e3: exp would overflow without the max subtracted
        torch.testing.assert_close(softmax_last(x * scale), torch.softmax(x * scale, dim=-1))
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    w = torch.randn_like(x)
    (softmax_last(a) * w).sum().backward()
    (torch.softmax(b, dim=-1) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
