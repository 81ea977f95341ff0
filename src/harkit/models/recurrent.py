"""Many-to-one recurrent classifiers: LSTM, GRU, BiLSTM and the classic ReLU-projection LSTM."""

from __future__ import annotations

import torch
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel, init_recurrent


class RecurrentClassifier(HarModel):
    """Stacked LSTM/GRU over time; the final hidden state(s) feed a linear classifier.

    Args:
        n_channels, n_classes, window_len: data contract (input ``(batch, time, channels)``).
        cell: ``"lstm"`` or ``"gru"``.
        hidden: units per layer and direction.
        layers: stacked recurrent layers.
        dropout: dropout between layers and before the classifier.
        bidirectional: run a backward pass too and concatenate both final states.
    """

    def __init__(self, n_channels: int, n_classes: int, window_len: int, cell: str = "lstm",
                 hidden: int = 128, layers: int = 2, dropout: float = 0.2,
                 bidirectional: bool = False) -> None:
        super().__init__(n_channels, n_classes, window_len, cell=cell, hidden=hidden,
                         layers=layers, dropout=dropout, bidirectional=bidirectional)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(n_channels, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)  # x: (B, T, C), batch_first keeps time on axis 1
        h = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        if self.rnn.bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=1)  # top layer, forward and backward: (B, 2H)
        else:
            last = h[-1]  # (B, H)
        return self.head(self.drop(last))


class ReluLSTM(HarModel):
    """The classic TensorFlow UCI HAR model: ReLU input projection, 2 stacked LSTMs, linear.

    Args:
        hidden: projection width and LSTM units.
        layers: stacked LSTMs (2 in the original).
        dropout: dropout before the classifier.
    """

    def __init__(self, n_channels: int, n_classes: int, window_len: int, hidden: int = 32,
                 layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__(n_channels, n_classes, window_len, hidden=hidden, layers=layers,
                         dropout=dropout)
        self.proj = nn.Linear(n_channels, hidden)  # applied per time step: (B, T, C) -> (B, T, H)
        self.rnn = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(torch.relu(self.proj(x)))  # (B, T, H)
        return self.head(self.drop(out[:, -1]))  # many-to-one: last time step


def _recurrent(cell: str, bidirectional: bool, name: str) -> type[RecurrentClassifier]:
    cls = type(name, (RecurrentClassifier,), {"registry_name": name})

    def __init__(self: RecurrentClassifier, n_channels: int, n_classes: int, window_len: int,
                 hidden: int = 128, layers: int = 2, dropout: float = 0.2) -> None:
        RecurrentClassifier.__init__(self, n_channels, n_classes, window_len, cell=cell,
                                     hidden=hidden, layers=layers, dropout=dropout,
                                     bidirectional=bidirectional)
        self.hparams = {"hidden": hidden, "layers": layers, "dropout": dropout}

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


TINY_RNN = {"hidden": 8, "layers": 1}
LSTM = MODELS.register("lstm", description="stacked LSTM, many-to-one (hidden, layers, dropout)",
                       variants={"tiny": TINY_RNN})(_recurrent("lstm", False, "lstm"))
GRU = MODELS.register("gru", description="stacked GRU, many-to-one (hidden, layers, dropout)",
                      variants={"tiny": TINY_RNN})(_recurrent("gru", False, "gru"))
BiLSTM = MODELS.register("bilstm", description="bidirectional stacked LSTM (hidden, layers, "
                         "dropout)", variants={"tiny": TINY_RNN})(_recurrent("lstm", True, "bilstm"))
ReluLSTM.registry_name = "lstm-relu"
MODELS.register("lstm-relu", description="ReLU input projection + 2 stacked LSTMs (classic "
                "TensorFlow UCI HAR model)", variants={"tiny": {"hidden": 8}})(ReluLSTM)
