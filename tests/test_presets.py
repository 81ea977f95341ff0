"""The experiment presets in configs/: each loads, names a real dataset and builds its model and
optimiser; the DeepConvLSTM paper variants have the papers' layer shapes."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from harkit.config import ExperimentConfig, load_config
from harkit.data import DATASETS
from harkit.data.skeleton import SkeletonInfo
from harkit.models import MODELS, create_model
from harkit.training.trainer import Trainer

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))

# (channels, classes) of each dataset the presets use, as the papers describe them
SHAPES = {
    "opportunity": (113, 18),  # 113 body-worn channels; 17 gestures + NULL
    "skoda": (30, 11),  # 10 right-arm accelerometers x 3 axes; 10 gestures + NULL
    "hapt": (6, 6),  # acc + gyro; 6 activities (12 with the postural transitions)
    "uci-har": (9, 6),  # body acc, gyro, total acc x 3 axes; 6 activities
}
# skeleton datasets: (layout, bodies, dims, classes, default sequence length)
SKELETONS = {
    "natops": ("natops8", 1, 3, 6, 51),
    "msr-action3d": ("msr20", 1, 3, 20, 64),
    "utkinect": ("kinect20", 1, 3, 10, 64),
    "penn-action": ("penn13", 1, 3, 15, 64),  # x, y, visibility
}


def _skeleton_shape(cfg: ExperimentConfig) -> tuple[int, int, int, dict[str, object]]:
    """(channels, classes, window, model params) of a skeleton preset."""
    layout, bodies, dims, classes, length = SKELETONS[cfg.data.dataset]
    opts = cfg.data.options
    if cfg.data.dataset == "penn-action" and opts.get("visibility", "channel") != "channel":
        dims = 2  # occluded joints interpolated or kept: x, y only
    if opts.get("subset", "all") != "all":
        classes = 8  # MSR Action3D AS1-AS3
    info = SkeletonInfo(layout, bodies, dims, valid_channel=opts.get("policy") == "pad")
    params: dict[str, object] = dict(cfg.model.params)
    if MODELS.get(cfg.model.name).tags.get("skeleton"):
        params["skeleton"] = info.to_dict()
    return info.n_channels, classes, int(opts.get("length", length)), params


def _data_shape(cfg: ExperimentConfig) -> tuple[int, int, int]:
    channels, classes = SHAPES[cfg.data.dataset]
    if cfg.data.dataset == "hapt":
        classes = int(cfg.data.options.get("activities", 6))
    if cfg.data.dataset == "uci-har":  # fixed 128-sample windows: no window setting
        assert cfg.data.window is None
        return channels, classes, 128
    assert isinstance(cfg.data.window, int), "presets state their window in samples"
    return channels, classes, cfg.data.window


def _conv_lstm_params(channels: int, classes: int, lstm_layers: int) -> int:
    """DeepConvLSTM's parameter count by hand: 4 x conv(64, 5 x 1), LSTM(128) x n, linear."""
    conv = (1 * 64 * 5 + 64) + 3 * (64 * 64 * 5 + 64)
    lstm = 4 * 128 * (64 * channels + 128) + 2 * 4 * 128
    lstm += (lstm_layers - 1) * (4 * 128 * (128 + 128) + 2 * 4 * 128)
    return conv + lstm + 128 * classes + classes


def test_there_are_presets_for_each_paper_setting() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"deepconvlstm-opportunity", "deepconvlstm-skoda", "deepconvlstm-1l-opportunity",
            "deepconvlstm-hapt"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_preset_loads_and_builds_its_model(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    known = cfg.data.dataset in SHAPES or cfg.data.dataset in SKELETONS
    assert known, f"{path.name}: no known shape for {cfg.data.dataset!r}"
    if cfg.data.dataset not in DATASETS:
        pytest.skip(f"dataset {cfg.data.dataset!r} is not registered in this checkout")
    # the source options are ones the dataset's loader accepts
    accepted = inspect.signature(DATASETS.get(cfg.data.dataset).factory).parameters
    assert set(cfg.data.options) <= set(accepted), f"{path.name}: unknown data.options"
    if cfg.data.dataset in SKELETONS:
        channels, classes, window, params = _skeleton_shape(cfg)
    else:
        (channels, classes, window), params = _data_shape(cfg), dict(cfg.model.params)
    model = create_model(cfg.model.name, channels, classes, window, **params)
    x = torch.randn(2, window, channels)  # (batch, time, channels)
    assert model.eval()(x).shape == (2, classes)
    # the Trainer accepts the optimisation settings (optimiser, schedule, batch size)
    extra = {"skeleton": params["skeleton"]} if "skeleton" in params else {}
    tiny = create_model(cfg.model.name, channels, classes, window, variant="tiny", **extra)
    trainer = Trainer(tiny, cfg.train, (torch.randn(8, window, channels),
                                        torch.arange(8) % classes), None)
    assert type(trainer.optimizer).__name__.lower() == cfg.train.optimizer
    if cfg.train.scheduler == "none":  # a constant learning rate, as in the papers
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.train.lr)


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("deepconvlstm")],
                         ids=lambda p: p.stem)
def test_deepconvlstm_presets_use_the_registered_paper_variant(path: Path) -> None:
    cfg = load_config(path)
    paper = MODELS.get(cfg.model.name).tags["variants"]["paper"]
    assert cfg.model.params == paper
    for dataset in ("opportunity", "skoda"):
        if cfg.data.dataset == dataset:  # the paper's 24-sample windows, hop 12, batch 100
            assert (cfg.data.window, cfg.data.hop, cfg.train.batch_size) == (24, 12, 100)
            assert cfg.data.label_policy == "last"


def test_ordonez_presets_train_with_rmsprop_lr_1e3_batch_100() -> None:
    for name in ("deepconvlstm-opportunity", "deepconvlstm-skoda", "deepconvlstm-hapt"):
        t = load_config(CONFIGS[0].parent / f"{name}.yaml").train
        assert (t.optimizer, t.lr, t.batch_size, t.scheduler) == ("rmsprop", 1e-3, 100, "none")
        assert t.label_smoothing == 0.0 and t.ema_decay is None and t.weight_decay == 0.0


def test_paper_variant_layer_shapes_match_ordonez_and_roggen() -> None:
    """OPPORTUNITY: 113 channels, 24-sample windows -> 8 LSTM steps of 64 * 113 features."""
    m = create_model("deepconvlstm", 113, 18, 24, variant="paper").eval()
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(64, 1, 5, 1)] + [(64, 64, 5, 1)] * 3
    assert all(c.padding == (0, 0) and c.stride == (1, 1) for c in convs)
    assert not any(isinstance(mod, (torch.nn.MaxPool2d, torch.nn.Softmax)) for mod in m.modules())
    assert tuple(m.rnn.weight_ih_l0.shape) == (4 * 128, 64 * 113)
    assert tuple(m.rnn.weight_hh_l0.shape) == (4 * 128, 128)
    assert tuple(m.rnn.weight_ih_l1.shape) == (4 * 128, 128) and m.rnn.num_layers == 2
    assert tuple(m.head.weight.shape) == (18, 128)
    # dropout 0.5 on the inputs of both LSTMs and of the classifier
    assert m.rnn_drop.p == 0.5 and m.rnn.dropout == 0.5 and m.drop.p == 0.5
    assert sum(p.numel() for p in m.parameters()) == _conv_lstm_params(113, 18, 2)
    seen: list[tuple[int, ...]] = []
    m.rnn.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    with torch.no_grad():
        m(torch.randn(3, 24, 113))
    assert seen == [(3, 8, 64 * 113)]  # 24 - 4 * (5 - 1) = 8 time steps


def test_shallow_variant_matches_bock_et_al() -> None:
    """One LSTM layer of 128 after the same convolutions; dropout 0.5 on the LSTM input only."""
    for channels, classes in ((113, 18), (30, 11)):
        deep = create_model("deepconvlstm", channels, classes, 24, variant="paper")
        shallow = create_model("deepconvlstm-1l", channels, classes, 24, variant="paper")
        assert shallow.rnn.num_layers == 1 and shallow.rnn.hidden_size == 128
        assert shallow.rnn_drop.p == 0.5 and shallow.drop.p == 0.0
        n_shallow = sum(p.numel() for p in shallow.parameters())
        assert n_shallow == _conv_lstm_params(channels, classes, 1)
        assert sum(p.numel() for p in deep.parameters()) - n_shallow == 4 * 128 * 256 + 8 * 128
    # the stored config rebuilds the same architecture without a lstm_layers argument
    cfg = shallow.get_config()
    assert "lstm_layers" not in cfg and cfg["name"] == "deepconvlstm-1l"


def test_hapt_presets_build_for_6_and_12_classes() -> None:
    for activities in (6, 12):
        m = create_model("deepconvlstm", 6, activities, 128, variant="paper")
        assert m(torch.randn(2, 128, 6)).shape == (2, activities)
        assert sum(p.numel() for p in m.parameters()) == _conv_lstm_params(6, activities, 2)
