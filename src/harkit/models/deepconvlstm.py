"""DeepConvLSTM (Ordóñez & Roggen, Sensors 2016) and its one-LSTM-layer variant (Bock et al.,
ISWC 2021).

Registered names and variants:

- ``deepconvlstm``: 4 temporal convolutions (64 filters, kernel 5), 2 LSTMs (128), linear.
  Variants: ``paper`` (the paper's settings, including dropout 0.5 on the inputs of every
  dense layer, i.e. of both LSTMs and of the classifier) and ``tiny`` (for tests).
- ``deepconvlstm-1l``: the same convolutions followed by a single LSTM of 128 units with
  dropout 0.5 on its input (Bock, Hölzemann, Moeller & Van Laerhoven 2021, "Improving Deep
  Learning for HAR with Shallow LSTMs"). Variants: ``paper`` and ``tiny``.
"""

from __future__ import annotations

import torch
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel, init_recurrent


class DeepConvLSTM(HarModel):
    """4 temporal convolutions (64 filters, kernel 5, ReLU, no padding), 2 LSTMs (128), linear.

    Input ``(batch, time, channels)``; output ``(batch, n_classes)`` logits (the paper's
    softmax lives in the loss). Convolutions run along time only, per channel, as in the paper
    (2D kernels of 5 x 1 over a (time, channel) image, no pooling); the feature maps of all
    channels then feed the LSTMs, one vector of ``filters * channels`` per remaining time step
    (``window_len - conv_layers * (kernel - 1)`` steps: 8 for the paper's 24-sample windows).
    The classifier reads the LSTM output at the last time step.

    Args:
        filters: filters per convolution (64).
        kernel: temporal kernel size (5).
        conv_layers: number of convolutions (4).
        hidden: LSTM units (128).
        lstm_layers: stacked LSTMs (2).
        dropout: dropout on the classifier's input (0.5).
        rnn_dropout: dropout on the input of every LSTM layer: on the convolutional features
            and, with 2 or more layers, between LSTM layers. The paper applies 0.5 to the
            inputs of every dense layer (its LSTMs and the classifier); the default 0.0 keeps
            harkit's earlier behaviour (dropout before the classifier only).
    """

    registry_name = "deepconvlstm"

    def __init__(self, n_channels: int, n_classes: int, window_len: int, filters: int = 64,
                 kernel: int = 5, conv_layers: int = 4, hidden: int = 128, lstm_layers: int = 2,
                 dropout: float = 0.5, rnn_dropout: float = 0.0) -> None:
        super().__init__(n_channels, n_classes, window_len, filters=filters, kernel=kernel,
                         conv_layers=conv_layers, hidden=hidden, lstm_layers=lstm_layers,
                         dropout=dropout, rnn_dropout=rnn_dropout)
        if window_len - conv_layers * (kernel - 1) < 1:
            raise ValueError(
                f"window_len={window_len} is too short for {conv_layers} convolutions of kernel "
                f"{kernel} without padding (needs > {conv_layers * (kernel - 1)})"
            )
        for name, p in (("dropout", dropout), ("rnn_dropout", rnn_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        convs: list[nn.Module] = []
        for i in range(conv_layers):
            convs += [nn.Conv2d(1 if i == 0 else filters, filters, (kernel, 1)), nn.ReLU()]
        # channels-last filters: oneDNN runs the (kernel x 1) convolutions faster with the
        # filter axis innermost (1.2-1.26x for inference at batch 256 here; the same logits)
        self.convs = nn.Sequential(*convs).to(  # type: ignore[call-overload]
            memory_format=torch.channels_last)
        self.rnn_drop = nn.Dropout(rnn_dropout)
        # nn.LSTM's own dropout acts between stacked layers, i.e. on the inputs of layers 2..n.
        self.rnn = nn.LSTM(filters * n_channels, hidden, num_layers=lstm_layers, batch_first=True,
                           dropout=rnn_dropout if lstm_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = self.convs(x.unsqueeze(1))  # (B, T, C) -> (B, 1, T, C) -> (B, F, T', C)
        h = h.permute(0, 2, 1, 3).reshape(b, h.shape[2], -1)  # (B, F, T', C) -> (B, T', F*C)
        out, _ = self.rnn(self.rnn_drop(h))  # (B, T', H)
        return self.head(self.drop(out[:, -1]))  # last time step: (B, H) -> (B, n_classes)


# Ordóñez & Roggen 2016: 4 x conv(64, 5 x 1), 2 x LSTM(128), dropout 0.5 on the inputs of every
# dense layer (both LSTMs and the softmax classifier).
PAPER = {"filters": 64, "kernel": 5, "conv_layers": 4, "hidden": 128, "lstm_layers": 2,
         "dropout": 0.5, "rnn_dropout": 0.5}

MODELS.register("deepconvlstm", description="DeepConvLSTM (Ordóñez & Roggen 2016): 4 conv "
                "64 k5, 2 LSTM 128, linear (variants: paper, tiny)",
                variants={"paper": PAPER,
                          "tiny": {"filters": 4, "hidden": 8, "lstm_layers": 1}})(DeepConvLSTM)


@MODELS.register("deepconvlstm-1l", description="DeepConvLSTM with one LSTM layer (Bock et al. "
                 "2021): 4 conv 64 k5, 1 LSTM 128, linear (variants: paper, tiny)",
                 variants={"paper": {"filters": 64, "kernel": 5, "conv_layers": 4, "hidden": 128,
                                     "rnn_dropout": 0.5, "dropout": 0.0},
                           "tiny": {"filters": 4, "hidden": 8}})
class ShallowDeepConvLSTM(DeepConvLSTM):
    """DeepConvLSTM with a single LSTM layer (Bock et al., ISWC 2021).

    Input ``(batch, time, channels)``; output ``(batch, n_classes)`` logits. Bock et al. keep
    the four 64-filter, kernel-5 temporal convolutions without padding and replace the two
    LSTM layers by one; their reference configuration uses 128 hidden units (they also report
    256, 512 and 1024), dropout 0.5 on the LSTM's input and no dropout before the classifier.
    With one layer the LSTM's input weights shrink from ``4H(F*C + H)`` + ``4H * 2H`` to
    ``4H(F*C + H)``.

    Args:
        filters, kernel, conv_layers: as :class:`DeepConvLSTM` (64, 5, 4).
        hidden: LSTM units (128).
        dropout: dropout on the classifier's input (0.0).
        rnn_dropout: dropout on the LSTM's input, i.e. the convolutional features (0.5).
    """

    registry_name = "deepconvlstm-1l"

    def __init__(self, n_channels: int, n_classes: int, window_len: int, filters: int = 64,
                 kernel: int = 5, conv_layers: int = 4, hidden: int = 128, dropout: float = 0.0,
                 rnn_dropout: float = 0.5) -> None:
        super().__init__(n_channels, n_classes, window_len, filters=filters, kernel=kernel,
                         conv_layers=conv_layers, hidden=hidden, lstm_layers=1, dropout=dropout,
                         rnn_dropout=rnn_dropout)
        # lstm_layers is fixed by the architecture: keep it out of the stored config so a
        # checkpoint rebuilds through this class's signature.
        self.hparams.pop("lstm_layers")
