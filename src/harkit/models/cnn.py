"""HARCNN: a compact temporal CNN with a window-statistics branch, harkit's default model."""

from __future__ import annotations

import torch
from torch import nn

from harkit.models import MODELS
from harkit.models.base import HarModel


def _block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class HARCNN(HarModel):
    """Temporal convolutions + global mean/max pooling + per-channel window statistics.

    The convolutional trunk (kernels 7-5-5-3-3, two 2x poolings) learns motion patterns; the
    statistics branch (mean, std, min, max of every input channel over the window, batch-
    normalised) gives the classifier direct access to posture, i.e. the gravity direction,
    which is what separates sitting from standing. Both are concatenated into a small MLP.

    Args:
        width: filters in the first two convolutions (doubled after the first pooling).
        hidden: units of the classifier's hidden layer.
        dropout: dropout in the classifier.
        stats: include the window-statistics branch.
    """

    registry_name = "harcnn"

    def __init__(self, n_channels: int, n_classes: int, window_len: int, width: int = 64,
                 hidden: int = 128, dropout: float = 0.3, stats: bool = True) -> None:
        super().__init__(n_channels, n_classes, window_len, width=width, hidden=hidden,
                         dropout=dropout, stats=stats)
        w = width
        self.trunk = nn.Sequential(
            _block(n_channels, w, 7), _block(w, w, 5), nn.MaxPool1d(2),
            _block(w, 2 * w, 5), _block(2 * w, 2 * w, 3), nn.MaxPool1d(2),
            _block(2 * w, 2 * w, 3),
        )
        self.use_stats = stats
        n_stats = 4 * n_channels if stats else 0
        self.stats_norm = nn.BatchNorm1d(n_stats) if stats else nn.Identity()
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(4 * w + n_stats, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x.transpose(1, 2))  # (B, T, C) -> (B, C, T) -> (B, 2w, T/4)
        feats = [h.mean(dim=2), h.amax(dim=2)]  # pooled over time: (B, 2w) each
        if self.use_stats:
            # statistics over the time axis (dim 1) of the input: (B, C) each -> (B, 4C)
            s = torch.cat([x.mean(1), x.std(1), x.amin(1), x.amax(1)], dim=1)
            feats.append(self.stats_norm(s))
        return self.head(torch.cat(feats, dim=1))  # (B, n_classes)


MODELS.register("harcnn", description="temporal CNN + window statistics (harkit default; "
                "width, hidden, dropout, stats)",
                variants={"tiny": {"width": 4, "hidden": 8}})(HARCNN)
