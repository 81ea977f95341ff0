"""Many-to-one recurrent classifiers: LSTM, GRU, BiLSTM and the classic ReLU-projection LSTM."""

from __future__ import annotations

import torch
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel, init_recurrent


class RecurrentClassifier(HarModel):
    """Stacked recurrent layers over time; the final hidden state(s) feed a linear classifier.

    Subclasses choose the cell (``_cell``: ``"lstm"`` or ``"gru"``) and direction
    (``_bidirectional``); the registered names are ``lstm``, ``gru`` and ``bilstm``.

    Args:
        n_channels, n_classes, window_len: data contract (input ``(batch, time, channels)``).
        hidden: units per layer and direction.
        layers: stacked recurrent layers.
        dropout: dropout between layers and before the classifier.
    """

    _cell = "lstm"
    _bidirectional = False

    def __init__(self, n_channels: int, n_classes: int, window_len: int, hidden: int = 128,
                 layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__(n_channels, n_classes, window_len, hidden=hidden, layers=layers,
                         dropout=dropout)
        rnn = nn.LSTM if self._cell == "lstm" else nn.GRU
        self.rnn = rnn(n_channels, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0, bidirectional=self._bidirectional)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * (2 if self._bidirectional else 1), n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)  # x: (B, T, C), batch_first keeps time on axis 1
        h = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        if self._bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=1)  # top layer, forward and backward: (B, 2H)
        else:
            last = h[-1]  # (B, H)
        return self.head(self.drop(last))


TINY_RNN = {"hidden": 8, "layers": 1}


@MODELS.register("lstm", description="stacked LSTM, many-to-one (hidden, layers, dropout)",
                 variants={"tiny": TINY_RNN})
class LSTMClassifier(RecurrentClassifier):
    registry_name = "lstm"


@MODELS.register("gru", description="stacked GRU, many-to-one (hidden, layers, dropout)",
                 variants={"tiny": TINY_RNN})
class GRUClassifier(RecurrentClassifier):
    registry_name = "gru"
    _cell = "gru"


@MODELS.register("bilstm", description="bidirectional stacked LSTM (hidden, layers, dropout)",
                 variants={"tiny": TINY_RNN})
class BiLSTMClassifier(RecurrentClassifier):
    registry_name = "bilstm"
    _bidirectional = True


@MODELS.register("lstm-relu", description="ReLU input projection + 2 stacked LSTMs (classic "
                 "TensorFlow UCI HAR model)", variants={"tiny": {"hidden": 8}})
class ReluLSTM(HarModel):
    """The classic TensorFlow UCI HAR model: ReLU input projection, 2 stacked LSTMs, linear.

    Args:
        hidden: projection width and LSTM units.
        layers: stacked LSTMs (2 in the original).
        dropout: dropout before the classifier.
    """

    registry_name = "lstm-relu"

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
