"""Residual network over time for series classification (Wang, Yan and Oates 2017, as
reviewed by Fawaz et al. 2019, "Deep learning for time series classification: a review").

Each residual block is three 'same'-padded convolutions (kernels 8, 5, 3 by default) with
batch norm, ReLU between them; its input joins the output through a shortcut (a 1x1
convolution when the width changes, then batch norm) before the last ReLU. Global average
pooling over time and a linear layer score the series. Reads what conv1d (the FCN)
reads, the same way, padded steps included.
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.conv1d import ConvBN, Sizes, check_series, series_of
from dlpipe.models.padding import MaskedBatchNorm1d, masked_mean


class Shortcut(nn.Module):
    """The block's input brought to its output's width: 1x1 convolution (when the widths
    differ) and batch norm, padded steps zero."""

    def __init__(self, width: int, size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, size, 1, bias=False) if width != size else nn.Identity()
        self.norm = MaskedBatchNorm1d(size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x), mask)


class ResidualBlock(nn.Module):
    """Convolutions of `kernels` widths, `size` channels each, plus the shortcut."""

    def __init__(self, width: int, size: int, kernels: Sequence[int]) -> None:
        super().__init__()
        widths = [width] + [size] * (len(kernels) - 1)
        last = len(kernels) - 1
        self.convs = nn.ModuleList(
            ConvBN(w, size, kernel, relu=i < last)
            for i, (w, kernel) in enumerate(zip(widths, kernels, strict=True))
        )
        self.shortcut = Shortcut(width, size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = x
        for conv in self.convs:
            out = conv(out, mask)
        return torch.relu(out + self.shortcut(x, mask))


class ResNet1d(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int],
        kernels: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        widths = [check_series("resnet1d", input_shape), *channels]
        self.blocks = nn.ModuleList(
            ResidualBlock(width, size, kernels)
            for width, size in zip(widths[:-1], channels, strict=True)
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        series, mask = series_of(x)
        for block in self.blocks:
            series = block(series, mask)
        return self.head(masked_mean(series, mask, dim=2))  # global average pooling over time


def resnet1d(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sizes = (64, 128, 128),
    kernels: Sizes = (8, 5, 3),
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """One residual block per entry of `channels`; each block has one convolution per
    entry of `kernels`."""
    return ResNet1d(input_shape, num_outputs, channels, kernels, dropout)
