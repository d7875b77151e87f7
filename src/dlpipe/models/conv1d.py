"""1-D convolutional network for series classification: the fully convolutional network
(FCN) of Wang, Yan and Oates 2017, "Time series classification from scratch with deep
neural networks: a strong baseline".

Blocks of convolution, batch norm and ReLU slide along the time axis ('same' padding
keeps its length); global average pooling over time makes the features independent of
the series' length; a linear layer scores them. A sequence (steps, features) is read
with its features as channels, a flat vector (features,) as a single-channel series.
Padded steps (all NaN, see dlpipe.models.padding) are zeroed, kept zero after each block
and left out of the batch statistics and the pooling, so padding changes no output.

The pieces (ConvBN, series_of, check_series) are shared with the other convolutional
families over time (resnet1d, inception).
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.errors import ConfigError
from dlpipe.models.padding import MaskedBatchNorm1d, masked_mean, steps_mask
from dlpipe.models.shapes import mismatch

SERIES = "sequences shaped (steps, features) or flat vectors (features,)"
Sizes = Annotated[list[int], Range(gt=0, nonempty=True)]


def check_series(model: str, input_shape: Sequence[int]) -> int:
    """The number of channels of the series a convolutional model reads from `input_shape`."""
    if len(input_shape) not in (1, 2):
        raise mismatch(model, SERIES, input_shape)
    return input_shape[1] if len(input_shape) == 2 else 1


def series_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as series (batch, channels, steps), padded steps zeroed, and its real steps'
    mask (batch, steps): (batch, steps, features) or (batch, T) -> (batch, 1, T)."""
    steps, mask = steps_mask(x if x.dim() == 3 else x[:, :, None])
    return steps.transpose(1, 2), mask


def same_padding(kernel: int) -> nn.Module:
    """Zeros that keep a series' length through a convolution `kernel` steps wide.

    The extra step of an even kernel goes on the right (as Keras pads); spelled out, as
    torch warns on padding="same" with even kernels."""
    return nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)


class ConvBN(nn.Module):
    """Convolution along time with 'same' padding, then batch norm (over real steps) and,
    unless `relu` is False, ReLU; padded steps come out zero."""

    def __init__(self, width: int, size: int, kernel: int, relu: bool = True) -> None:
        super().__init__()
        self.pad = same_padding(kernel)
        self.conv = nn.Conv1d(width, size, kernel, bias=False)
        self.norm = MaskedBatchNorm1d(size)
        self.relu = relu

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(self.pad(x)), mask)
        return torch.relu(out) if self.relu else out


class FCN(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int],
        kernels: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        widths = [check_series("conv1d", input_shape), *channels]
        self.blocks = nn.ModuleList(
            ConvBN(width, size, kernel)
            for width, size, kernel in zip(widths[:-1], channels, kernels, strict=True)
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        series, mask = series_of(x)
        for block in self.blocks:
            series = block(series, mask)
        return self.head(masked_mean(series, mask, dim=2))  # global average pooling over time


def conv1d(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sizes = (128, 256, 128),
    kernels: Sizes = (8, 5, 3),
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """One block per entry of `channels`, its kernel `kernels` long (same-length lists)."""
    if len(kernels) != len(channels):
        raise ConfigError(
            f"model.kernels={list(kernels)} and model.channels={list(channels)} differ in "
            "length: give one kernel size per block"
        )
    return FCN(input_shape, num_outputs, channels, kernels, dropout)
