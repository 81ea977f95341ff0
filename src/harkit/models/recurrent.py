"""Many-to-one recurrent classifiers: LSTM, GRU, BiLSTM and the classic ReLU-projection LSTM."""

from __future__ import annotations

from typing import List  # noqa: UP035  (TorchScript reads List[...] annotations)

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

    def inference_module(self) -> nn.Module:
        """The same logits from :class:`GRUInference` (a copy of the weights), which
        ``harkit.inference.optimize_for_inference`` scripts and checks against this model."""
        assert isinstance(self.rnn, nn.GRU)
        return GRUInference(self.rnn, self.head, min_batch=2)


class GRUInference(nn.Module):
    """Inference-only forward of a unidirectional, batch-first GRU classifier: the logits of
    ``head`` applied to the top layer's last hidden state, as :class:`GRUClassifier` computes
    them in eval mode, with fewer and larger kernels than PyTorch's CPU GRU.

    PyTorch's CPU GRU runs every layer over the whole sequence in turn: it projects all
    inputs at once (a ``(T*B, 3H)`` tensor of 50 MB for 256 UCI HAR windows, written to fresh
    pages on every call), then per step one product and six element-wise kernels on strided
    slices, and stacks every output. Here the layers advance together step by step (the
    wavefront), only the first layer's input projection is batched (over ``chunk`` steps, so
    it stays in cache), the hidden-to-hidden biases of the reset and update gates are folded
    into the input biases and their sum comes straight out of ``addmm``, and no output
    sequence is kept. The arithmetic is the GRU's (Cho et al. 2014, PyTorch's gate order
    r, z, n): ``r, z = sigmoid(W_i[rz] x + W_h[rz] h + b)``, ``n = tanh(W_in x + b_in + r *
    (W_hn h + b_hn))``, ``h' = n + z * (h - n)``, equal to ``nn.GRU`` within float rounding.
    On 2 threads of the Xeon in BENCHMARKS.md it ran 256 UCI HAR windows in 65 ms where the
    traced ``nn.GRU`` took 104 ms (`benchmarks/inference_paths.py`).
    """

    def __init__(self, rnn: nn.GRU, head: nn.Linear, chunk: int = 16,
                 min_batch: int = 0) -> None:
        super().__init__()
        if rnn.bidirectional or not rnn.batch_first or rnn.proj_size or not rnn.bias:
            raise ValueError("GRUInference takes a unidirectional batch-first GRU with biases")
        H, L = rnn.hidden_size, rnn.num_layers
        self.hidden, self.layers, self.chunk, self.min_batch = H, L, chunk, min_batch
        self.rnn = rnn  # batches below min_batch: PyTorch's GRU (less per-step overhead)

        def weight(name: str) -> torch.Tensor:
            return getattr(rnn, name).detach()

        # b_ih + b_hh for the r and z gates; b_ih alone for n (b_hn sits inside r * (...))
        biases = []
        for i in range(L):
            b = weight(f"bias_ih_l{i}").clone()
            b[: 2 * H] += weight(f"bias_hh_l{i}")[: 2 * H]
            biases.append(b)
        self.w_ih: List[torch.Tensor] = [  # noqa: UP006
            weight(f"weight_ih_l{i}").t().contiguous() for i in range(L)]
        self.b_i: List[torch.Tensor] = biases  # noqa: UP006
        self.w_hrz: List[torch.Tensor] = [  # noqa: UP006
            weight(f"weight_hh_l{i}")[: 2 * H].t().contiguous() for i in range(L)]
        self.w_hn: List[torch.Tensor] = [  # noqa: UP006
            weight(f"weight_hh_l{i}")[2 * H :].t().contiguous() for i in range(L)]
        self.b_hn: List[torch.Tensor] = [  # noqa: UP006
            weight(f"bias_hh_l{i}")[2 * H :].contiguous() for i in range(L)]
        self.head_w = head.weight.detach().t().contiguous()
        self.head_b = head.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape[0], x.shape[1], self.hidden
        if self.min_batch > B:  # B: the batch size
            _, last = self.rnn(x)
            return torch.addmm(self.head_b, last[self.layers - 1], self.head_w)
        hs: List[torch.Tensor] = [x.new_zeros(B, H) for _ in range(self.layers)]  # noqa: UP006
        xt = x.transpose(0, 1)  # (T, B, C) view
        for t0 in range(0, T, self.chunk):
            tc = min(self.chunk, T - t0)
            g0 = torch.addmm(self.b_i[0], xt[t0 : t0 + tc].reshape(tc * B, -1),
                             self.w_ih[0]).view(tc, B, 3 * H)
            for t in range(tc):
                for i in range(self.layers):
                    gi = g0[t] if i == 0 else torch.addmm(self.b_i[i], hs[i - 1], self.w_ih[i])
                    h = hs[i]
                    rz = torch.addmm(gi[:, : 2 * H], h, self.w_hrz[i]).sigmoid_()
                    hn = torch.addmm(self.b_hn[i], h, self.w_hn[i])
                    n = torch.addcmul(gi[:, 2 * H :], rz[:, :H], hn).tanh_()
                    hs[i] = torch.lerp(n, h, rz[:, H:])
        return torch.addmm(self.head_b, hs[self.layers - 1], self.head_w)


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
