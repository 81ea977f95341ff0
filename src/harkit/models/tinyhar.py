"""TinyHAR (Zhou, Zhao, Huang, Hefenbrock, Riedel & Beigl, ISWC 2022): a lightweight HAR model.

"TinyHAR: A Lightweight Deep Learning Model Designed for Human Activity Recognition",
ISWC 2022, doi:10.1145/3544794.3558467. The paper's design guidelines, and where they live here:

1. individual convolutions (G1, G2, G5): four 5 x 1 convolutions along time only, shared by
   all sensor channels, each with batch normalisation and ReLU and stride 2 in time;
2. cross-channel interaction (G2): one transformer encoder block (scaled dot-product
   self-attention + two-layer feed-forward network) across the sensor channels at each step;
3. cross-channel fusion (G3): one fully connected layer from ``C * F`` to ``F* = 2F`` features;
4. global temporal information (G4): one LSTM layer of ``F*`` units;
5. temporal attention: the attention-weighted mean of the LSTM states, scaled by a trainable
   ``gamma``, added to the last state; then a linear classifier.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel, init_recurrent


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, dim=-1)`` written out (``exp(x - max) / sum``), for a short last axis.

    PyTorch's CPU softmax kernel vectorises along the softmax axis; for the 9 x 9 attention
    maps of 2,048 channel-token sets per UCI HAR batch (9 values per row) it took 1.39 ms
    where these four element-wise kernels take 0.21 ms (2 threads, the Xeon of BENCHMARKS.md,
    `benchmarks/inference_paths.py`). Same values within float rounding, same gradients;
    exports to ONNX as the same four ops.
    """
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


class ChannelSelfAttention(nn.Module):
    """One post-norm transformer encoder block over a set of tokens: ``(N, L, D) -> (N, L, D)``.

    Single-head scaled dot-product self-attention and a two-layer feed-forward network
    (``D -> 2D -> D``, ReLU), each with a residual connection and layer normalisation.
    """

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (N, L, D) each
        weights = softmax_last(q @ k.transpose(1, 2) * self.scale)  # (N, L, L)
        x = self.norm1(x + self.drop(self.proj(weights @ v)))  # (N, L, D)
        return self.norm2(x + self.drop(self.ffn(x)))  # (N, L, D)


class TinyHAR(HarModel):
    """TinyHAR (Zhou et al., ISWC 2022): individual convolutions, cross-channel attention and
    fusion, one LSTM, temporal attention.

    Input ``(batch, time, channels)``; output ``(batch, n_classes)`` logits. Time shrinks by
    the convolutions' strides (``ceil(T / 2)`` per layer with stride 2: 128 -> 8, 24 -> 2).
    The parameters grow with the channel count only through the fusion layer (``C * F * 2F``).

    Args:
        filters: ``F``, filters of every individual convolution and the width of each sensor
            channel's token in the cross-channel attention.
        kernel: temporal kernel size of the convolutions (5 in the paper).
        conv_layers: number of individual convolutions (4 in the paper).
        stride: temporal stride of every convolution (2 in the paper).
        dropout: dropout in the attention block and on the classifier's input (harkit's
            addition; the paper does not specify one).

    Example:
        >>> m = TinyHAR(n_channels=6, n_classes=6, window_len=128)
        >>> m(torch.zeros(2, 128, 6)).shape
        torch.Size([2, 6])
    """

    registry_name = "tinyhar"

    def __init__(self, n_channels: int, n_classes: int, window_len: int, filters: int = 24,
                 kernel: int = 5, conv_layers: int = 4, stride: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__(n_channels, n_classes, window_len, filters=filters, kernel=kernel,
                         conv_layers=conv_layers, stride=stride, dropout=dropout)
        for name, v in (("filters", filters), ("kernel", kernel), ("conv_layers", conv_layers),
                        ("stride", stride)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        convs: list[nn.Module] = []
        for i in range(conv_layers):
            convs += [
                nn.Conv2d(1 if i == 0 else filters, filters, (kernel, 1), stride=(stride, 1),
                          padding=(kernel // 2, 0), bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
            ]
        # Channels-last filters: oneDNN runs these (kernel x 1) convolutions 2-3x faster with
        # the filter axis innermost (256 windows of 128 x 9: 34 -> 13 ms on 2 CPU threads), and
        # the permute in forward() is then a view. The memory format survives .to(device),
        # load_state_dict and the optimiser; the numbers are the same.
        self.convs = nn.Sequential(*convs).to(  # type: ignore[call-overload]
            memory_format=torch.channels_last)
        self.channel_attention = ChannelSelfAttention(filters, dropout)
        fused = 2 * filters  # F* = 2F, as in the paper
        self.fusion = nn.Sequential(nn.Linear(n_channels * filters, fused), nn.ReLU(inplace=True))
        self.rnn = nn.LSTM(fused, fused, batch_first=True)
        self.temporal_score = nn.Linear(fused, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(fused, n_classes)
        init_recurrent(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        h = self.convs(x.unsqueeze(1))  # (B, T, C) -> (B, 1, T, C) -> (B, F, T*, C)
        f, t = h.shape[1], h.shape[2]
        h = h.permute(0, 2, 3, 1).reshape(b * t, c, f)  # (B, F, T*, C) -> (B, T*, C, F) -> (B*T*, C, F)
        h = self.channel_attention(h)  # attention across the C channel tokens: (B*T*, C, F)
        h = self.fusion(h.reshape(b, t, c * f))  # (B*T*, C, F) -> (B, T*, C*F) -> (B, T*, 2F)
        out, _ = self.rnn(h)  # (B, T*, 2F)
        alpha = torch.softmax(self.temporal_score(out), dim=1)  # weights over time: (B, T*, 1)
        context = (alpha * out).sum(dim=1)  # (B, 2F)
        z = out[:, -1] + self.gamma * context  # last step + scaled global context: (B, 2F)
        return self.head(self.drop(z))  # (B, n_classes)


MODELS.register("tinyhar", description="TinyHAR (Zhou et al. 2022): individual convs, "
                "cross-channel attention + fusion, 1 LSTM, temporal attention (filters, dropout)",
                variants={"tiny": {"filters": 4}})(TinyHAR)
