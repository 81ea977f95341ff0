"""DeepConvLSTM (Ordóñez & Roggen, Sensors 2016)."""

from __future__ import annotations

import torch
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel, init_recurrent


class DeepConvLSTM(HarModel):
    """4 temporal convolutions (64 filters, kernel 5, ReLU, no padding), 2 LSTMs (128), linear.

    Convolutions run along time only, per channel, as in the paper (2D kernels of 5 x 1 over
    a (time, channel) image); their feature maps of all channels then feed the LSTMs.
    The classifier reads the LSTM output at the last time step and returns logits.

    Args:
        filters: filters per convolution (64).
        kernel: temporal kernel size (5).
        conv_layers: number of convolutions (4).
        hidden: LSTM units (128).
        lstm_layers: stacked LSTMs (2).
        dropout: dropout before the classifier (0.5).
    """

    registry_name = "deepconvlstm"

    def __init__(self, n_channels: int, n_classes: int, window_len: int, filters: int = 64,
                 kernel: int = 5, conv_layers: int = 4, hidden: int = 128, lstm_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__(n_channels, n_classes, window_len, filters=filters, kernel=kernel,
                         conv_layers=conv_layers, hidden=hidden, lstm_layers=lstm_layers,
                         dropout=dropout)
        if window_len - conv_layers * (kernel - 1) < 1:
            raise ValueError(
                f"window_len={window_len} is too short for {conv_layers} convolutions of kernel "
                f"{kernel} without padding (needs > {conv_layers * (kernel - 1)})"
            )
        convs: list[nn.Module] = []
        for i in range(conv_layers):
            convs += [nn.Conv2d(1 if i == 0 else filters, filters, (kernel, 1)), nn.ReLU()]
        self.convs = nn.Sequential(*convs)
        self.rnn = nn.LSTM(filters * n_channels, hidden, num_layers=lstm_layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = self.convs(x.unsqueeze(1))  # (B, T, C) -> (B, 1, T, C) -> (B, F, T', C)
        h = h.permute(0, 2, 1, 3).reshape(b, h.shape[2], -1)  # (B, F, T', C) -> (B, T', F*C)
        out, _ = self.rnn(h)  # (B, T', H)
        return self.head(self.drop(out[:, -1]))


MODELS.register("deepconvlstm", description="DeepConvLSTM (Ordóñez & Roggen 2016): 4 conv "
                "64 k5, 2 LSTM 128, linear", variants={"tiny": {"filters": 4, "hidden": 8,
                                                                 "lstm_layers": 1}})(DeepConvLSTM)
